use dagforge::prelude::*;

#[job(timeout = "30 seconds")]
async fn a() -> Result<(), JobError> {
    Ok(())
}

#[job(timeout = 30)]
async fn b() -> Result<(), JobError> {
    Ok(())
}

#[job(backoff = exponential(1x, max = "1m", jitter = 2.0))]
async fn c() -> Result<(), JobError> {
    Ok(())
}

#[job(backoff = fixed(1s, factor = 2))]
async fn d() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
