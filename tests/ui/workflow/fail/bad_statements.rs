use dagforge::prelude::*;

#[job]
async fn one() -> Result<u64, JobError> {
    Ok(1)
}

#[job]
async fn double(n: u64) -> Result<u64, JobError> {
    Ok(n * 2)
}

#[workflow]
fn flow() {
    let a = one();
    let (b, c) = (one(), one());
    let d: u64 = one();
    println!("hello");
    let e = 1 + 2;
    let f = double(a + 1);
    let g = for x in a { double(x.inner) };
    let h = for x in a { double(1) };
}

fn main() {}
