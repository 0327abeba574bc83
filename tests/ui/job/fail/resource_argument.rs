use dagforge::prelude::*;

#[derive(Debug)]
struct Pool;

trait Client {}

#[job]
async fn owned(#[resource] db: Pool) -> Result<(), JobError> {
    Ok(())
}

#[job]
async fn mutable(#[resource] db: &mut Pool) -> Result<(), JobError> {
    Ok(())
}

#[job]
async fn with_arguments(#[resource(name = "db")] db: &Pool) -> Result<(), JobError> {
    Ok(())
}

#[job]
async fn twice(#[resource] #[resource] db: &Pool) -> Result<(), JobError> {
    Ok(())
}

#[job]
async fn context(#[resource] ctx: &JobContext) -> Result<(), JobError> {
    Ok(())
}

#[job]
async fn trait_object(#[resource] client: &dyn Client) -> Result<(), JobError> {
    Ok(())
}

#[job]
async fn unmarked(db: &Pool, n: u32) -> Result<u32, JobError> {
    Ok(n)
}

fn main() {}
