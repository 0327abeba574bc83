//! A dagforge `App` for the CLI tests (`tests/integration/cli.rs`): `cli-echo`, whose
//! job logs the id of the process it runs in, and `cli-sleep`, which waits a minute
//! unless cancelled; `cli-env` and `cli-typed` for `tests/integration/hygiene.rs`;
//! `cli-block`, whose jobs block their threads, for `tests/integration/cancel_queued.rs`;
//! the examples' `catalog-integration` for `tests/integration/kubernetes/cli.rs`.

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

/// Logs its whole environment, one variable a line: what a worker child inherits
/// (`tests/integration/hygiene.rs` looks for secrets in it).
struct Env;

impl Job for Env {
    type Input = ();
    type Output = usize;
    const NAME: &'static str = "env";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<usize, JobError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        for (k, v) in &vars {
            ctx.info(format!("env {k}={v}"));
        }
        Ok(vars.len())
    }
}

/// Squares a `u32` parameter (a typed parameter for the input checks).
struct Square;

impl Job for Square {
    type Input = u32;
    type Output = u64;
    const NAME: &'static str = "square";

    async fn run(&self, _: &JobContext, n: u32) -> Result<u64, JobError> {
        Ok(u64::from(n) * u64::from(n))
    }
}

/// Logs a `String` parameter and fails with it: text that reaches the terminal.
struct Say;

impl Job for Say {
    type Input = String;
    type Output = ();
    const NAME: &'static str = "say";

    async fn run(&self, ctx: &JobContext, text: String) -> Result<(), JobError> {
        ctx.info(format!("said {text}"));
        Err(JobError::terminal(format!("refused {text}")))
    }
}

/// `cli-env`, `cli-typed` (`n: u32`, `text: String`) for the hygiene tests.
fn hygiene_workflows() -> Result<[Workflow; 2], dagforge::workflow::ValidationErrors> {
    let mut env = Workflow::builder("cli-env");
    env.add("env", Env);
    let mut typed = Workflow::builder("cli-typed");
    let n = typed.param::<u32>("n");
    let text = typed.param_or::<String>("text", "hello".to_owned());
    typed.add("square", Square).input_from(n);
    typed.add("say", Say).input_from(text);
    Ok([env.build()?, typed.build()?])
}

/// Appends a line (its process id and node) to `started.log` in the current directory,
/// then blocks its thread for good: a `std::thread::sleep` loop that never looks at
/// its cancellation token (`tests/integration/cancel_queued.rs`: a job that makes its
/// process hard to stop).
struct Block;

impl Job for Block {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "block";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<(), JobError> {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open("started.log")
            .map_err(|e| JobError::terminal(format!("started.log: {e}")))?;
        writeln!(log, "{} {}", std::process::id(), ctx.node_id())
            .map_err(|e| JobError::terminal(format!("started.log: {e}")))?;
        drop(log);
        ctx.info("blocking");
        loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// `cli-block`: four `block` nodes side by side, more than the runtime has worker
/// threads on a small machine.
fn block_workflow() -> Result<Workflow, dagforge::workflow::ValidationErrors> {
    let mut block = Workflow::builder("cli-block");
    for id in ["b1", "b2", "b3", "b4"] {
        block.add(id, Block);
    }
    block.build()
}

/// Saves the artifact `kept.txt` and returns its key (`tests/integration/artifacts/cli.rs`:
/// where the App puts artifacts).
struct Keep;

impl Job for Keep {
    type Input = ();
    type Output = String;
    const NAME: &'static str = "keep";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<String, JobError> {
        let r = ctx
            .save_bytes("kept.txt", "kept")
            .await
            .map_err(|e| e.into_job_error())?;
        ctx.info(format!("saved {}", r.key()));
        Ok(r.key().to_owned())
    }
}

/// `cli-artifact`: one `keep` node.
fn artifact_workflow() -> Result<Workflow, dagforge::workflow::ValidationErrors> {
    let mut keep = Workflow::builder("cli-artifact");
    keep.add("keep", Keep);
    keep.build()
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut echo = Workflow::builder("cli-echo");
    echo.add("pid", Pid);
    let mut sleep = Workflow::builder("cli-sleep");
    sleep.add("nap", Nap);
    let block = match block_workflow() {
        Ok(block) => block,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let keep = match artifact_workflow() {
        Ok(keep) => keep,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match (echo.build(), sleep.build(), hygiene_workflows()) {
        (Ok(echo), Ok(sleep), Ok([env, typed])) => {
            App::new()
                .name("cli-app")
                .workflow(echo)
                .workflow(sleep)
                .workflow(env)
                .workflow(typed)
                .workflow(block)
                .workflow(keep)
                .workflow(examples::catalog::macros::catalog().expect("a valid catalog"))
                .run()
                .await
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
