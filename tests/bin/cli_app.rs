//! A dagforge `App` for the CLI tests (`tests/integration/cli.rs`): `cli-echo`, whose
//! job logs the id of the process it runs in, and `cli-sleep`, which waits a minute
//! unless cancelled.

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

struct Nap;

impl Job for Nap {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "nap";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<(), JobError> {
        ctx.info("napping");
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(60)) => Ok(()),
            () = ctx.cancelled() => Err(JobError::cancelled()),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut echo = Workflow::builder("cli-echo");
    echo.add("pid", Pid);
    let mut sleep = Workflow::builder("cli-sleep");
    sleep.add("nap", Nap);
    match (echo.build(), sleep.build()) {
        (Ok(echo), Ok(sleep)) => {
            App::new()
                .name("cli-app")
                .workflow(echo)
                .workflow(sleep)
                .run()
                .await
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
