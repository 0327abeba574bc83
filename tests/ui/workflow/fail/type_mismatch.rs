use dagforge::prelude::*;

#[job]
async fn names() -> Result<Vec<String>, JobError> {
    Ok(vec![])
}

#[job]
async fn double(n: u64) -> Result<u64, JobError> {
    Ok(n * 2)
}

#[workflow]
fn flow() {
    let names = names();
    let doubled = double(names);
}

fn main() {}
