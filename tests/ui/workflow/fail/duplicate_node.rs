use dagforge::prelude::*;

#[job]
async fn one() -> Result<u64, JobError> {
    Ok(1)
}

#[workflow]
fn dupes() {
    let a = one();
    let b = one().id("a");
    one();
    one();
}

fn main() {}
