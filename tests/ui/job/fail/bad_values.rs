use dagforge::prelude::*;

#[job(retries = -1, priority = 3_000_000_000, name = "", queue = 5)]
async fn double(n: u64) -> Result<u64, JobError> {
    Ok(n * 2)
}

fn main() {}
