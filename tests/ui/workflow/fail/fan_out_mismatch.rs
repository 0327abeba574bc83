use dagforge::prelude::*;

#[job]
async fn one() -> Result<u64, JobError> {
    Ok(1)
}

#[job]
async fn words() -> Result<Vec<String>, JobError> {
    Ok(vec![])
}

#[job]
async fn double(n: u64) -> Result<u64, JobError> {
    Ok(n * 2)
}

#[workflow]
fn flow() {
    let one = one();
    let words = words();
    let a = for n in one { double(n) };
    let b = words.map(|w| double(w));
}

fn main() {}
