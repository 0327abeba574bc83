use std::cell::RefCell;

use dagforge::prelude::*;

/// Not `Sync`: attempts running at once would share it.
#[job]
async fn cell(#[resource] counter: &RefCell<u32>, n: u32) -> Result<u32, JobError> {
    Ok(*counter.borrow() + n)
}

fn main() {}
