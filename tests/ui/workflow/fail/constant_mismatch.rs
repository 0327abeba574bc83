use dagforge::prelude::*;
use serde::{Deserialize, Serialize};

/// A type with no conversions from other types, so the error lists none.
#[derive(Serialize, Deserialize)]
pub struct Count(u64);

#[job]
async fn double(n: Count) -> Result<u64, JobError> {
    Ok(n.0 * 2)
}

#[workflow]
fn flow() {
    let a = double("two");
    let b = double(2.5);
}

fn main() {}
