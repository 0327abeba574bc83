use dagforge::prelude::*;

#[job(resources(cpu = "half", memory = "256MB", gpu = "1"))]
async fn train() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
