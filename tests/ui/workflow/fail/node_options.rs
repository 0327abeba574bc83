use dagforge::prelude::*;

#[job]
async fn one() -> Result<u64, JobError> {
    Ok(1)
}

#[job]
async fn add(a: u64, b: u64) -> Result<u64, JobError> {
    Ok(a + b)
}

#[workflow]
fn flow() {
    let a = one().retry(3);
    let b = one().timeout("10 minutes").retries(1).retries(2);
    let c = one().concurrency(2);
    let d = add(a, b).when("$ > 1");
    let e = one().when(a, 42).trigger(sometimes);
    let f = one().backoff(linear(1s)).id(name);
}

fn main() {}
