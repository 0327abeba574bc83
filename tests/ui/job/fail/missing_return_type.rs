use dagforge::prelude::*;

#[job]
async fn log(ctx: &JobContext, line: String) {
    ctx.info(line);
}

fn main() {}
