//! Bad `crate = …` values on a workflow are reported at the value; the function is still
//! generated (naming `::dagforge`), so its callers type-check.
use dagforge::prelude::*;

#[job]
async fn one() -> Result<u64, JobError> {
    Ok(1)
}

#[workflow(crate = "a b")]
fn bad_value() {
    let x = one();
}

#[workflow(crate = , name = "flow")]
fn no_value() {
    let x = one();
}

fn main() {
    // The functions still exist, so callers type-check.
    let _ = bad_value();
    let _ = no_value();
}
