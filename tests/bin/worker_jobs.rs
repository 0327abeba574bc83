//! The jobs of `dagforge-test-worker`, shared with the process executor tests
//! (`tests/integration/process.rs`), which build their workflows from them.

use std::io::Write;
use std::time::Duration;

use dagforge::prelude::*;
use serde_json::Value;

/// Logs `pid <pid>` so that a test can find the worker process.
fn log_pid(ctx: &JobContext) {
    ctx.info(format!("pid {}", std::process::id()));
}

/// Does nothing.
pub(crate) struct Noop;

impl Job for Noop {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "noop";

    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        Ok(())
    }
}

/// Returns its input, after a log line and a progress report.
pub(crate) struct Echo;

impl Job for Echo {
    type Input = Value;
    type Output = Value;
    const NAME: &'static str = "echo";

    async fn run(&self, ctx: &JobContext, v: Value) -> Result<Value, JobError> {
        log_pid(ctx);
        ctx.warn("echoing");
        ctx.progress(50, "half way");
        Ok(v)
    }
}

/// Panics.
pub(crate) struct Boom;

impl Job for Boom {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "boom";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<(), JobError> {
        log_pid(ctx);
        panic!("boom in a worker");
    }
}

/// Ends its process with exit code `code` while the attempt is at most
/// `until_attempt`; later attempts return the attempt number.
pub(crate) struct Exit;

impl Job for Exit {
    type Input = (i32, u32);
    type Output = u32;
    const NAME: &'static str = "exit";

    async fn run(&self, ctx: &JobContext, (code, until): (i32, u32)) -> Result<u32, JobError> {
        if ctx.attempt() <= until {
            eprintln!("giving up with exit code {code}");
            #[allow(clippy::exit)]
            std::process::exit(code);
        }
        Ok(ctx.attempt())
    }
}

/// Prints garbage on stdout and stderr (text, invalid UTF-8, a broken protocol line)
/// and succeeds.
pub(crate) struct Garbage;

impl Job for Garbage {
    type Input = ();
    type Output = u32;
    const NAME: &'static str = "garbage";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<u32, JobError> {
        log_pid(ctx);
        println!("plain text on stdout");
        let mut out = std::io::stdout().lock();
        out.write_all(b"bytes \xff\xfe not utf-8\n")?;
        out.write_all(b"@dagforge:1 {not json\n")?;
        out.write_all(b"@dagforge:9 {\"type\":\"heartbeat\"}\n")?;
        out.flush()?;
        drop(out);
        eprintln!("a warning on stderr");
        Ok(7)
    }
}

/// Sleeps `ms` milliseconds; a cooperative sleeper stops when cancelled.
pub(crate) struct Sleep;

impl Job for Sleep {
    type Input = (u64, bool);
    type Output = u64;
    const NAME: &'static str = "sleep";

    async fn run(&self, ctx: &JobContext, (ms, cooperative): (u64, bool)) -> Result<u64, JobError> {
        log_pid(ctx);
        let nap = tokio::time::sleep(Duration::from_millis(ms));
        if cooperative {
            tokio::select! {
                () = nap => {}
                () = ctx.cancelled() => return Err(JobError::cancelled()),
            }
        } else {
            nap.await;
        }
        Ok(ms)
    }
}

/// Blocks its thread for `ms` milliseconds (deaf to timeouts and cancellation).
pub(crate) struct Block;

impl Job for Block {
    type Input = u64;
    type Output = u64;
    const NAME: &'static str = "block";

    async fn run(&self, ctx: &JobContext, ms: u64) -> Result<u64, JobError> {
        log_pid(ctx);
        std::thread::sleep(Duration::from_millis(ms));
        Ok(ms)
    }
}

/// On its first attempt, stops its own process (SIGSTOP): no more heartbeats. Later
/// attempts return the attempt number.
pub(crate) struct Hang;

impl Job for Hang {
    type Input = ();
    type Output = u32;
    const NAME: &'static str = "hang";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<u32, JobError> {
        log_pid(ctx);
        if ctx.attempt() == 1 {
            // Give the log line time to leave before the process freezes.
            tokio::time::sleep(Duration::from_millis(50)).await;
            nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP)?;
        }
        Ok(ctx.attempt())
    }
}

/// Starts a `sleep 60` of its own and leaves it running — deaf to SIGTERM if asked
/// (`trap '' TERM`, kept across `exec`) — logs `grandchild <pid>`, then sleeps `ms`
/// milliseconds (stopping when cancelled) without ever waiting for it.
pub(crate) struct Spawn;

impl Job for Spawn {
    type Input = (u64, bool);
    type Output = u64;
    const NAME: &'static str = "spawn";

    async fn run(&self, ctx: &JobContext, (ms, deaf): (u64, bool)) -> Result<u64, JobError> {
        log_pid(ctx);
        let mut command = std::process::Command::new("sh");
        if deaf {
            command.args(["-c", "trap '' TERM; exec sleep 60"]);
        } else {
            command.args(["-c", "exec sleep 60"]);
        }
        let child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        ctx.info(format!("grandchild {}", child.id()));
        // Dropping a `std::process::Child` neither kills nor waits for it.
        drop(child);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(ms),
            () = ctx.cancelled() => Err(JobError::cancelled()),
        }
    }
}

/// Returns the working directory, the value of the environment variable named by its
/// input, and the attempt's identity as the worker sees it.
pub(crate) struct Environ;

impl Job for Environ {
    type Input = String;
    type Output = (String, Option<String>, Value);
    const NAME: &'static str = "environ";

    async fn run(&self, ctx: &JobContext, name: String) -> Result<Self::Output, JobError> {
        let cwd = std::env::current_dir()?.display().to_string();
        let identity = serde_json::json!({
            "run": ctx.run_id().to_string(),
            "node": ctx.node_id(),
            "item": ctx.item(),
            "attempt": ctx.attempt(),
        });
        Ok((cwd, std::env::var(name).ok(), identity))
    }
}

/// Registers every job above and those of the catalog example.
pub(crate) fn registry() -> Result<Registry, dagforge::Error> {
    use examples::catalog::macros::{
        DataProxy, Finalizer, Integration, Markets, NotifyFailures, Publish,
    };
    let mut r = Registry::new();
    r.register(Noop)?
        .register(Echo)?
        .register(Boom)?
        .register(Exit)?
        .register(Garbage)?
        .register(Sleep)?
        .register(Block)?
        .register(Hang)?
        .register(Spawn)?
        .register(Environ)?
        .register(Markets)?
        .register(DataProxy)?
        .register(Integration)?
        .register(Publish)?
        .register(NotifyFailures)?
        .register(Finalizer)?;
    Ok(r)
}
