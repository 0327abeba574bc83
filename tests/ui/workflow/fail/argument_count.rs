use dagforge::prelude::*;

#[job]
async fn add(ctx: &JobContext, a: u64, b: u64) -> Result<u64, JobError> {
    ctx.info("adding");
    Ok(a + b)
}

#[workflow]
fn too_few() {
    let sum = add(1);
}

#[workflow]
fn too_many() {
    let sum = add(1, 2, 3);
}

fn main() {}
