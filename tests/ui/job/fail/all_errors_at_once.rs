use dagforge::prelude::*;

// Four independent mistakes, four errors in one compile.
#[job(timeout = "soon", colour = "blue")]
fn f(&(a, b): &(u32, u32)) -> u32 {
    a + b
}

fn main() {}
