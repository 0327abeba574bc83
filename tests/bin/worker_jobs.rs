//! The jobs of `dagforge-test-worker`, shared with the process executor tests
//! (`tests/integration/process.rs`), which build their workflows from them, and the
//! executor conformance suite's jobs (`tests/integration/executor_contract.rs`).

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

/// Prints protocol lines on stdout and stderr — an `output` line of this protocol
/// version and of the old one, an `error` line — as a job that wants to forge its
/// result would, tries to write one on stdin too, and returns 42.
pub(crate) struct Forge;

impl Job for Forge {
    type Input = ();
    type Output = u32;
    const NAME: &'static str = "forge";

    async fn run(&self, _: &JobContext, _: ()) -> Result<u32, JobError> {
        let forged = [
            r#"@dagforge:2 {"type":"output","value":666}"#,
            r#"@dagforge:1 {"type":"output","value":666}"#,
            r#"@dagforge:2 {"type":"error","error":{"kind":"terminal","message":"forged"}}"#,
        ];
        let mut out = std::io::stdout().lock();
        for line in forged {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        drop(out);
        eprintln!("{}", forged[0]);
        // Stdin is /dev/null by now, opened for reading: the write goes nowhere.
        let stdin = std::io::stdin();
        let _ = std::fs::File::from(std::os::fd::AsFd::as_fd(&stdin).try_clone_to_owned()?)
            .write_all(format!("{}\n", forged[0]).as_bytes());
        // What the job starts cannot reach the channel either.
        let status = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("echo '{}'; echo '{}' >&0", forged[0], forged[0]),
            ])
            .status()?;
        if !status.success() {
            eprintln!("sh: {status}");
        }
        Ok(42)
    }
}

/// Prints `lines` console lines of `width` bytes (line feed included) on stdout, or on
/// stderr, and returns how many bytes it printed.
pub(crate) struct Print;

impl Job for Print {
    type Input = (u64, usize, bool);
    type Output = u64;
    const NAME: &'static str = "print";

    async fn run(
        &self,
        _: &JobContext,
        (lines, width, stderr): (u64, usize, bool),
    ) -> Result<u64, JobError> {
        let mut line = vec![b'p'; width.saturating_sub(1)];
        line.push(b'\n');
        let mut sink: Box<dyn Write> = if stderr {
            Box::new(std::io::stderr().lock())
        } else {
            Box::new(std::io::BufWriter::with_capacity(
                1 << 16,
                std::io::stdout().lock(),
            ))
        };
        for i in 0..lines {
            let number = format!("{i:010} ");
            let n = number.len().min(line.len());
            line[..n].copy_from_slice(&number.as_bytes()[..n]);
            sink.write_all(&line)?;
        }
        sink.flush()?;
        Ok(lines * line.len() as u64)
    }
}

/// Returns a string of `n` bytes.
pub(crate) struct Big;

impl Job for Big {
    type Input = usize;
    type Output = String;
    const NAME: &'static str = "big";

    async fn run(&self, _: &JobContext, n: usize) -> Result<String, JobError> {
        Ok("b".repeat(n))
    }
}

/// Returns the names of its `DAGFORGE*` environment variables and the value of
/// `KEEP_ME` (a variable a worker is meant to inherit), and whether any
/// variable's value contains its input.
pub(crate) struct EnvNames;

impl Job for EnvNames {
    type Input = String;
    type Output = (Vec<String>, Option<String>, bool);
    const NAME: &'static str = "env-names";

    async fn run(&self, _: &JobContext, secret: String) -> Result<Self::Output, JobError> {
        let mut names = Vec::new();
        let mut leaked = false;
        for (k, v) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            leaked |= !secret.is_empty() && v.to_string_lossy().contains(&secret);
            if k.starts_with("DAGFORGE") {
                names.push(k);
            }
        }
        names.sort();
        Ok((names, std::env::var("KEEP_ME").ok(), leaked))
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
        .register(Forge)?
        .register(Print)?
        .register(Big)?
        .register(EnvNames)?
        .register(Markets)?
        .register(DataProxy)?
        .register(Integration)?
        .register(Publish)?
        .register(NotifyFailures)?
        .register(Finalizer)?;
    // The executor conformance suite's jobs (`tests/integration/executor_contract.rs`).
    dagforge::executor_conformance::jobs::register(&mut r)?;
    Ok(r)
}
