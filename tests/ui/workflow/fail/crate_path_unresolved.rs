//! The generated code names dagforge by the `crate = …` path: a path that leads nowhere
//! is reported where it is written, for a job and for a workflow.
use dagforge::prelude::*;

#[job(crate = missing::forge)]
async fn one() -> Result<u64, JobError> {
    Ok(1)
}

#[job]
async fn two() -> Result<u64, JobError> {
    Ok(2)
}

#[workflow(crate = "elsewhere::forge")]
fn unresolved() {
    let x = two();
}

fn main() {}
