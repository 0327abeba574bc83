use dagforge::prelude::*;

#[job]
struct Double;

fn main() {}
