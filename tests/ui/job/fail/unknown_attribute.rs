use dagforge::prelude::*;

#[job(retries = 2, retry_delay = "1s", name = "x")]
async fn double(n: u64) -> Result<u64, JobError> {
    Ok(n * 2)
}

fn main() {}
