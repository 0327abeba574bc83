use dagforge::prelude::*;

#[job]
async fn sum((a, b): (u64, u64), _: u64) -> Result<u64, JobError> {
    Ok(a + b)
}

#[job]
async fn borrow(name: &str) -> Result<usize, JobError> {
    Ok(name.len())
}

#[job]
async fn late_context(n: u64, ctx: &JobContext) -> Result<u64, JobError> {
    ctx.info("late");
    Ok(n)
}

fn main() {}
