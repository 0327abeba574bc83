//! A dagforge `App` for the CLI tests (`tests/integration/cli.rs`): one workflow,
//! `cli-echo`, whose job logs the id of the process it runs in.

use std::process::ExitCode;

use dagforge::App;
use dagforge::prelude::*;

struct Pid;

impl Job for Pid {
    type Input = ();
    type Output = u32;
    const NAME: &'static str = "pid";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<u32, JobError> {
        ctx.info(format!("pid {}", std::process::id()));
        Ok(std::process::id())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut wf = Workflow::builder("cli-echo");
    wf.add("pid", Pid);
    match wf.build() {
        Ok(wf) => App::new().name("cli-app").workflow(wf).run().await,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
