use dagforge::prelude::*;

#[job]
async fn double(n: u64) -> Result<u64, JobError> {
    Ok(n * 2)
}

#[workflow]
fn flow() {
    let a = double("two");
    let b = double(2.5);
}

fn main() {}
