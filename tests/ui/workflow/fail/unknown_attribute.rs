use dagforge::prelude::*;

#[job]
async fn one() -> Result<u64, JobError> {
    Ok(1)
}

#[workflow(name = "flow", schedule = "0 * * * *", version = "2", version = "3", cron = "every day")]
fn flow() {
    let a = one();
}

fn main() {}
