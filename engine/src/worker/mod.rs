//! Worker mode: the user's binary running one job execution for a
//! [`ProcessExecutor`](crate::ProcessExecutor) (feature `process`, Unix only).
//!
//! The executor starts the binary with the invocation in `DAGFORGE_WORKER_*`
//! environment variables and a Unix socket on stdin: the protocol channel. The worker
//! reads the input JSON from it, then answers with the line protocol of [`Message`]
//! (`@dagforge:2 {json}`, see `docs/protocol.md`) on it. Stdout and stderr are the
//! job's console: whatever it prints there — protocol-looking lines included — is
//! console output, which the executor forwards to the run's log (bounded per attempt).
//!
//! A binary built with dagforge's `App` gets a hidden `worker`
//! subcommand that calls [`run`]. A binary without it checks
//! [`is_worker_invocation`] first thing in `main`:
//!
//! ```no_run
//! use dagforge::prelude::*;
//!
//! #[job]
//! async fn hello(ctx: &JobContext, name: String) -> Result<String, JobError> {
//!     ctx.info("greeting");
//!     Ok(format!("hello {name}"))
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     if dagforge::worker::is_worker_invocation() {
//!         let mut registry = Registry::new();
//!         registry.register(Hello).expect("one job per name");
//!         return dagforge::worker::run(&registry).await;
//!     }
//!     // … the engine side: Engine::builder().executor(
//!     //     dagforge::ProcessExecutor::builder().args(Vec::<String>::new()).build()) …
//!     std::process::ExitCode::SUCCESS
//! }
//! ```

mod channel;
mod invocation;
mod protocol;
mod stdout;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::unbounded_channel;
use tokio_util::sync::CancellationToken;

use crate::artifact::{ArtifactStore, ENV_URL};
use crate::context::JobContext;
use crate::error::{ErrorInfo, ErrorKind};
use crate::log_level::LogLevel;
use crate::registry::{Registry, guarded};
use crate::resource::ResourceSet;
use crate::signal::SignalSender;
use channel::Channel;

pub use invocation::{
    ENV_ATTEMPT, ENV_EXECUTION_ID, ENV_GRACE_MS, ENV_HEARTBEAT_MS, ENV_ITEM, ENV_JOB,
    ENV_MAX_MESSAGE_BYTES, ENV_NODE, ENV_PROTOCOL, ENV_RUN_ID, ENV_TIMEOUT_MS, ENV_WORKER,
    Invocation, InvocationError,
};
pub(crate) use protocol::quote;
pub use protocol::{Message, PREFIX, ProtocolError, VERSION, parse_line};
pub use stdout::{ENV_CHANNEL, ENV_INPUT, ENV_INPUT_ARTIFACT, Framed, unframe};

/// Exit code of a worker whose job returned an error, panicked or timed out (an
/// `error` line was written).
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a worker started without a valid invocation: a missing or invalid
/// `DAGFORGE_WORKER_*` variable, unreadable or non-JSON input on stdin, or an
/// artifact store that cannot be opened (an `error` line was written).
pub const EXIT_INVOCATION: u8 = 64;
/// Exit code of a worker asked to run a job its registry does not have (an `error`
/// line was written).
pub const EXIT_UNKNOWN_JOB: u8 = 65;

/// Whether this process was started by a [`ProcessExecutor`](crate::ProcessExecutor)
/// to run one execution (the `DAGFORGE_WORKER` environment variable is `1`).
pub fn is_worker_invocation() -> bool {
    std::env::var_os(ENV_WORKER).is_some_and(|v| v == "1")
}

/// Runs the one execution this worker process was started for and returns the exit
/// code to end the process with.
///
/// Takes the protocol channel off stdin (a socket the executor created; fd 0 becomes
/// `/dev/null`), reads the [`Invocation`] from the environment and the input JSON from
/// the channel (nothing is `null`), finds the job in `registry`, and runs it: log lines
/// and progress go out as protocol lines on the channel, a heartbeat line every
/// `DAGFORGE_WORKER_HEARTBEAT_MS`, and finally one `output` or `error` line. What the
/// job prints on stdout and stderr is console output, never protocol. SIGTERM fires the
/// job's cancellation token; a job still running `DAGFORGE_WORKER_GRACE_MS` after that
/// (or after the engine that started the worker went away) is ended with the process. A
/// worker that leads a process group of its own (a `ProcessExecutor` starts it so) and
/// finds its engine gone signals its group itself, as the engine no longer can: SIGTERM
/// at once, SIGKILL as it ends (itself included), so nothing the job started keeps
/// running. A panic or a timeout (`DAGFORGE_WORKER_TIMEOUT_MS`) is a failed attempt, as
/// in process. Exit codes: 0 on success, [`EXIT_FAILED`], [`EXIT_INVOCATION`],
/// [`EXIT_UNKNOWN_JOB`].
///
/// Call it from inside a tokio runtime with timers, I/O and signals enabled (e.g.
/// `#[tokio::main]`); with a multi-thread runtime the heartbeat keeps going while a
/// job blocks its thread.
pub async fn run(registry: &Registry) -> ExitCode {
    run_with(registry, &ResourceSet::new(), false).await
}

/// [`run`], with the shared resources the jobs take (see [`resource`](crate::resource)):
/// built in this process on first use (each factory at most once), or all before the
/// job starts when `check` is set (`worker --check-resources`), and closed before the
/// worker exits. A job that takes a resource `resources` does not register fails
/// without running, with a terminal error naming the type; a factory that fails fails
/// the attempt (retryable) naming it.
///
/// ```no_run
/// use dagforge::prelude::*;
/// use dagforge::resource::ResourceSet;
///
/// #[derive(Debug)]
/// struct Client;
///
/// #[job]
/// async fn ping(#[resource] client: &Client) -> Result<String, JobError> {
///     Ok(format!("{client:?}"))
/// }
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     // The same registrations as the engine side's, so both run the same jobs.
///     let resources = ResourceSet::new().factory(|_| async { Ok::<_, std::io::Error>(Client) });
///     if dagforge::worker::is_worker_invocation() {
///         let mut registry = Registry::new();
///         registry.register(Ping).expect("one job per name");
///         return dagforge::worker::run_with(&registry, &resources, false).await;
///     }
///     // … Engine::builder().resources(resources).executor(…) …
///     std::process::ExitCode::SUCCESS
/// }
/// ```
pub async fn run_with(registry: &Registry, resources: &ResourceSet, check: bool) -> ExitCode {
    // Listen for SIGTERM first thing, so that a cancellation that comes early is not
    // a plain death.
    let sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let stdout_channel = stdout::selected();
    let taken = if stdout_channel {
        Channel::take_stdout()
    } else {
        Channel::take()
    };
    let mut channel = match taken {
        Ok(c) => c,
        Err(e) => {
            // No channel to report on: stderr, which is the executor's console.
            let line = format!("dagforge worker: {e}\n");
            let _ = tokio::task::spawn_blocking(move || {
                use std::io::Write;
                std::io::stderr().write_all(line.as_bytes())
            })
            .await;
            return ExitCode::from(EXIT_INVOCATION);
        }
    };
    let invocation = match Invocation::from_env() {
        Ok(i) => i,
        Err(e) => {
            return refuse(
                &mut channel,
                ErrorKind::Executor,
                e.to_string(),
                EXIT_INVOCATION,
            )
            .await;
        }
    };
    channel.set_limit(invocation.max_message, &invocation.job);
    let Some(job) = registry.get(&invocation.job).cloned() else {
        let message = format!(
            "no job named `{}` is registered in this worker binary (it has: {})",
            invocation.job,
            registry.names().join(", ")
        );
        return refuse(&mut channel, ErrorKind::Executor, message, EXIT_UNKNOWN_JOB).await;
    };
    let live = resources.start();
    if let Err(e) = resources.check(&invocation.job, job.uses()) {
        return refuse(
            &mut channel,
            ErrorKind::Terminal,
            e.to_string(),
            EXIT_FAILED,
        )
        .await;
    }
    if check
        && let Some(live) = &live
        && let Err(e) = live.build_all().await
    {
        let message = format!("job `{}`: {}", invocation.job, error_chain(&e));
        live.close().await;
        return refuse(&mut channel, ErrorKind::Failed, message, EXIT_FAILED).await;
    }
    let artifacts = match std::env::var_os(ENV_URL) {
        Some(_) => match ArtifactStore::from_env() {
            Ok(store) => Some(store),
            Err(e) => {
                let message = format!("job `{}`: artifact store: {e}", invocation.job);
                return refuse(&mut channel, ErrorKind::Executor, message, EXIT_INVOCATION).await;
            }
        },
        None => None,
    };
    let input = match stdout::input_artifact() {
        None => channel.read_input().await,
        Some(reference) => stdout::load_input(reference, artifacts.as_ref()).await,
    };
    let input = match input {
        Ok(v) => v,
        Err(message) => {
            let message = format!("job `{}`: {message}", invocation.job);
            return refuse(&mut channel, ErrorKind::Input, message, EXIT_INVOCATION).await;
        }
    };

    let (tx, rx) = unbounded_channel();
    let cancel = CancellationToken::new();
    let mut ctx = JobContext::new(
        invocation.run,
        Arc::from(invocation.node.as_str()),
        invocation.item,
        invocation.attempt,
        cancel.clone(),
        Some(SignalSender::new(tx, 0)),
    );
    if let Some(store) = artifacts {
        ctx = ctx.with_artifacts(store);
    }
    ctx = ctx.with_live(live.clone());

    let hello = Message::Hello {
        version: VERSION,
        job: invocation.job.clone(),
        pid: std::process::id(),
        dagforge: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let orphan = Orphan::default();
    let (last_tx, last_rx) = tokio::sync::mpsc::channel(1);
    let writer = tokio::spawn(channel.write_lines(
        hello,
        rx,
        last_rx,
        invocation.heartbeat,
        cancel.clone(),
        orphan.clone(),
    ));
    let sigterm = tokio::spawn(cancel_on_sigterm(sigterm, ctx.clone()));
    let watchdog = tokio::spawn(exit_after_grace(
        cancel,
        invocation.grace,
        invocation.job.clone(),
        orphan.clone(),
        last_tx,
    ));

    let outcome = guarded(job.call(ctx.clone(), input), invocation.timeout).await;
    watchdog.abort();
    let succeeded = outcome.is_ok();
    ctx.report_done(outcome);
    drop(ctx);
    if stdout_channel {
        // The relay of the job's console ends once nothing holds it open.
        stdout::close_console();
    }
    let written = writer.await.unwrap_or(false);
    if let Some(live) = &live {
        live.close().await;
    }
    sigterm.abort();
    orphan.end_group();
    if succeeded && written {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// `e` and its sources, joined by `: `.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// Writes an error line and returns `code`: the worker cannot run the job at all.
async fn refuse(channel: &mut Channel, kind: ErrorKind, message: String, code: u8) -> ExitCode {
    let line = Message::Error {
        error: ErrorInfo::new(kind, message),
    };
    let _ = channel.send(&line).await;
    ExitCode::from(code)
}

/// How long the worker waits for its last line to be written before it exits anyway.
const LAST_WORDS: Duration = Duration::from_secs(1);

/// Once the job is cancelled (SIGTERM, or the engine is gone), gives it `grace` to
/// stop, then ends the process (and, when the engine is gone, its group): a job deaf
/// to cancellation does not outlive its engine.
async fn exit_after_grace(
    cancel: CancellationToken,
    grace: Duration,
    job: String,
    orphan: Orphan,
    last: tokio::sync::mpsc::Sender<channel::LastWords>,
) {
    cancel.cancelled().await;
    tokio::time::sleep(grace).await;
    let error = ErrorInfo::new(
        ErrorKind::Cancelled,
        format!(
            "job `{job}` did not stop within the grace period ({grace:?}) after it was \
             cancelled; the worker exits"
        ),
    );
    let (done, written) = tokio::sync::oneshot::channel();
    if last.send((Message::Error { error }, done)).await.is_ok() {
        let _ = tokio::time::timeout(LAST_WORDS, written).await;
    }
    orphan.end_group();
    #[allow(clippy::exit)] // The job's thread may be blocked: nothing else ends it.
    std::process::exit(i32::from(EXIT_FAILED));
}

/// Whether the engine that started this worker is gone (its pipe broke, or the worker
/// was re-parented). An executor signals a worker's process group; once the engine is
/// gone, a worker that leads its group does that itself.
#[derive(Clone, Default)]
struct Orphan(Arc<AtomicBool>);

impl Orphan {
    /// The engine is gone: SIGTERM to the worker's group (the worker's own handler
    /// only cancels the job, which is cancelled anyway), so that what the job started
    /// stops too.
    fn found(&self) {
        if !self.0.swap(true, Ordering::SeqCst)
            && let Some(group) = own_group()
        {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
        }
    }

    /// As the worker ends: if the engine is gone, SIGKILL to the worker's group — the
    /// worker included, which ends here — since nobody else will end what is left.
    fn end_group(&self) {
        if self.0.load(Ordering::SeqCst)
            && let Some(group) = own_group()
        {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// This process's group, if it leads it (as a worker a `ProcessExecutor` started
/// does); `None` for a worker in someone else's group (say, a shell's), which it must
/// not signal.
fn own_group() -> Option<nix::unistd::Pid> {
    let group = nix::unistd::getpgrp();
    (group == nix::unistd::getpid()).then_some(group)
}

/// Fires the job's cancellation token on SIGTERM (instead of dying at once).
async fn cancel_on_sigterm(sigterm: std::io::Result<tokio::signal::unix::Signal>, ctx: JobContext) {
    let mut term = match sigterm {
        Ok(s) => s,
        Err(e) => {
            ctx.log(
                LogLevel::Warn,
                format!("cannot listen for SIGTERM ({e}); cancellation will kill the job"),
            );
            return;
        }
    };
    if term.recv().await.is_some() {
        ctx.log(LogLevel::Warn, "SIGTERM received: cancelling the job");
        ctx.cancellation_token().cancel();
    }
}
