use dagforge::prelude::*;

#[job(retries = 2, timeout = "1s", retries = 3, resources(cpu = "1", cpu = "2"))]
async fn double(n: u64) -> Result<u64, JobError> {
    Ok(n * 2)
}

fn main() {}
