//! A worker binary for the process executor tests (`tests/integration/process.rs`):
//! started by a `ProcessExecutor` with the `DAGFORGE_WORKER_*` variables, it runs one
//! job of [`jobs::registry`] through `dagforge::worker::run`.
//!
//! `dagforge-test-worker engine` is instead an engine process: it runs a `block` job
//! (deaf to cancellation) through a process executor that starts this binary, prints
//! the worker's `pid <pid>` line, and waits — for a test to kill it. With
//! `engine spawn` the job is a `spawn` (a grandchild deaf to SIGTERM), and its
//! `grandchild <pid>` line is printed too. With `engine env SECRET` the job is an
//! `env-names` (given SECRET), and the engine prints `env <its output as JSON>` and
//! ends: what a worker of an engine with this process's environment inherits.

use std::process::ExitCode;

#[path = "worker_jobs.rs"]
mod jobs;

#[tokio::main]
async fn main() -> ExitCode {
    let registry = match jobs::registry() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dagforge-test-worker: {e}");
            return ExitCode::from(2);
        }
    };
    if dagforge::worker::is_worker_invocation() {
        return dagforge::worker::run(&registry).await;
    }
    if std::env::args().nth(1).as_deref() == Some("engine") {
        return match engine().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dagforge-test-worker engine: {e}");
                ExitCode::FAILURE
            }
        };
    }
    eprintln!(
        "dagforge-test-worker: start me through a ProcessExecutor (DAGFORGE_WORKER=1); jobs: {}",
        registry.names().join(", ")
    );
    ExitCode::from(2)
}

async fn engine() -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    use std::time::Duration;

    use dagforge::prelude::*;

    let executor = dagforge::ProcessExecutor::builder()
        .program(std::env::current_exe()?)
        .args(Vec::<String>::new())
        .heartbeat_interval(Duration::from_millis(100))
        .grace_period(Duration::from_millis(300))
        .build();
    let engine = Engine::builder().executor(executor).build();
    let mut events = engine.subscribe();
    let mut wf = Workflow::builder("orphan");
    match std::env::args().nth(2).as_deref() {
        // A cooperative job with a grandchild deaf to SIGTERM.
        Some("spawn") => {
            wf.add("spawn", jobs::Spawn).input((60_000, true));
        }
        Some("env") => {
            let secret = std::env::args().nth(3).unwrap_or_default();
            wf.add("env", jobs::EnvNames).input(secret);
            let r = engine.run(&wf.build()?, ()).await?;
            let out: serde_json::Value = r.output("env")?;
            println!("env {out}");
            return Ok(());
        }
        _ => {
            wf.add("block", jobs::Block).input(60_000);
        }
    }
    let run = engine.start(&wf.build()?, ()).await?;
    while let Some(e) = events.next().await {
        if let EventKind::Log { message, .. } = e.kind
            && (message.starts_with("pid ") || message.starts_with("grandchild "))
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{message}")?;
            out.flush()?;
        }
    }
    run.wait().await?;
    Ok(())
}
