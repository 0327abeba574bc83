use dagforge::prelude::*;

#[job]
fn double(n: u64) -> Result<u64, JobError> {
    Ok(n * 2)
}

fn main() {}
