use dagforge::prelude::*;

#[job]
async fn double(n: u64) -> u64 {
    n * 2
}

fn main() {}
