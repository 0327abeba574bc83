use dagforge::prelude::*;

#[job]
async fn one() -> Result<u64, JobError> {
    Ok(1)
}

#[job]
async fn double(n: u64) -> Result<u64, JobError> {
    Ok(n * 2)
}

#[workflow]
fn flow() {
    let first = one();
    let early = double(later);
    let later = double(frist);
    let field = double(nope.value);
    let ordered = double(first).after(ghost);
    let cond = double(first).when(phantom, "$ > 1");
}

fn main() {}
