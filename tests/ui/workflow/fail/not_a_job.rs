use dagforge::prelude::*;

async fn plain(n: u64) -> Result<u64, JobError> {
    Ok(n)
}

#[workflow]
fn flow() {
    let a = plain(1);
}

fn main() {}
