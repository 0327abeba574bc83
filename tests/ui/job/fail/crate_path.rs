//! Bad `crate = …` values: each is reported at the value, and the other attributes are
//! still checked.
use dagforge::prelude::*;

#[job(crate = 5)]
async fn number() -> Result<(), JobError> {
    Ok(())
}

#[job(crate = "not a path", retries = -1)]
async fn spaces() -> Result<(), JobError> {
    Ok(())
}

#[job(crate = "")]
async fn empty() -> Result<(), JobError> {
    Ok(())
}

#[job(crate = facade::<T>::forge)]
async fn generic() -> Result<(), JobError> {
    Ok(())
}

#[job(crate = dagforge, crate = ::dagforge)]
async fn twice() -> Result<(), JobError> {
    Ok(())
}

#[job(crate)]
async fn no_value() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
