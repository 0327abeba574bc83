use dagforge::prelude::*;

#[job]
async fn one() -> Result<u64, JobError> {
    Ok(1)
}

#[workflow]
async fn flow(name: &str) -> Workflow {
    let a = one();
}

#[workflow]
fn empty() {}

fn main() {}
