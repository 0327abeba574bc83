//! Runs attempts in child processes: the user's own binary in worker mode (see
//! [`crate::worker`] and `docs/protocol.md`).

pub(super) mod console;
pub(crate) mod lines;
mod spawn;
mod supervise;
pub(super) mod watch;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Execution, ExecutionHandle, Executor};
use crate::error::{ErrorInfo, ErrorKind};

/// The smallest [`max_message_bytes`](ProcessExecutorBuilder::max_message_bytes).
const MIN_MESSAGE: usize = 4096;

type Configure = dyn Fn(&Execution, &mut WorkerCommand) + Send + Sync;

/// Runs each attempt in a child process: by default the current binary
/// (`std::env::current_exe()`) with the argument `worker`, the subcommand that
/// `App` gives every binary; configure another program or other arguments for a
/// binary that calls [`worker::run`](crate::worker::run) itself.
///
/// The invocation goes in `DAGFORGE_WORKER_*` environment variables. The worker's
/// stdin is the protocol channel, a Unix socket: the input goes to the worker as JSON
/// on it, and the worker's protocol lines come back on it (the worker takes it off
/// fd 0 at once, so the job's own code cannot write to it by accident). They become
/// the attempt's log lines, progress and outcome. Everything the job prints on stdout
/// and stderr — protocol-looking lines included — is console output, forwarded to the
/// run's log as `info` lines marked `[stdout]` / `[stderr]`, up to the [console
/// limit](ProcessExecutorBuilder::console_limit) per attempt. The exit status and the
/// final `output`/`error` line decide the outcome.
///
/// - **Environment**: workers inherit the engine's environment except its
///   `DAGFORGE_*` settings (the store URL and its password among them); they get their
///   invocation, the artifact store's URL (without credentials), and what
///   [`env`](ProcessExecutorBuilder::env) and
///   [`configure`](ProcessExecutorBuilder::configure) set.
/// - **Bounds**: console output is kept up to the console limit per attempt (its first
///   and last halves, with a marker line saying how much was dropped between them); a
///   console line keeps its first 16 KiB; a protocol line may take
///   [`max_message_bytes`](ProcessExecutorBuilder::max_message_bytes): an output over
///   it fails the attempt with an `output` error naming the job, the size and the
///   limit, and is not logged.
///
/// - **Process group**: each worker leads a process group of its own, and every
///   signal goes to the whole group, so processes a job starts (a `sh -c …`, a
///   tool) stop with it. When the worker exits — in any way — whatever is left in
///   its group gets SIGKILL: nothing a job started outlives its attempt (a job that
///   must leave a daemon behind detaches it into a session of its own, `setsid`).
///   Being in their own group, workers do not get the terminal's signals (Ctrl-C):
///   the engine stops them itself — an execution that is dropped (aborted, its run
///   dropped, the runtime shut down) kills its group — and a worker whose engine
///   died kills its group (see [`worker::run`](crate::worker::run)).
/// - **Cancellation**: when the run is cancelled the worker's group gets SIGTERM
///   (the job's cancellation token fires), and SIGKILL after the [grace
///   period](ProcessExecutorBuilder::grace_period). Aborting the
///   [`ExecutionHandle`] (the engine's own grace period ran out, or the engine stops)
///   kills the group at once.
/// - **Timeout**: the worker applies the attempt's timeout itself; a worker still
///   alive a grace period after it is killed (with its group). Either way the
///   attempt is `TimedOut`.
/// - **Heartbeat**: a worker that writes no protocol line for the [heartbeat
///   timeout](ProcessExecutorBuilder::heartbeat_timeout) is killed with its group;
///   the attempt fails and is retried per the node's policy.
/// - Every child is waited for: no zombie is left behind.
///
/// ```no_run
/// use std::time::Duration;
/// use dagforge::{Engine, ProcessExecutor};
///
/// let executor = ProcessExecutor::builder()
///     .program("/usr/local/bin/my-jobs")
///     .args(["worker"])
///     .concurrency(8)
///     .env("RUST_LOG", "info")
///     .grace_period(Duration::from_secs(5))
///     .configure(|execution, command| {
///         command.env("MY_NODE", execution.context().node_id());
///     })
///     .build();
/// let engine = Engine::builder().executor(executor).build();
/// ```
#[derive(Clone, Debug)]
pub struct ProcessExecutor {
    inner: Arc<Inner>,
}

struct Inner {
    program: Option<PathBuf>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
    limit: Option<Arc<Semaphore>>,
    grace: Duration,
    heartbeat_interval: Duration,
    heartbeat_timeout: Duration,
    stderr_tail: usize,
    console_limit: usize,
    max_message: usize,
    configure: Option<Arc<Configure>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessExecutor")
            .field("program", &self.program)
            .field("args", &self.args)
            .field(
                "env (names)",
                &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("current_dir", &self.current_dir)
            .field(
                "concurrency",
                &self.limit.as_ref().map(|s| s.available_permits()),
            )
            .field("grace", &self.grace)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("stderr_tail", &self.stderr_tail)
            .field("console_limit", &self.console_limit)
            .field("max_message", &self.max_message)
            .field("configure", &self.configure.is_some())
            .finish()
    }
}

impl Default for ProcessExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessExecutor {
    /// The current binary with the argument `worker`, with the default limits.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Configures a process executor.
    pub fn builder() -> ProcessExecutorBuilder {
        ProcessExecutorBuilder {
            program: None,
            args: vec![OsString::from("worker")],
            env: Vec::new(),
            current_dir: None,
            concurrency: default_concurrency(),
            grace: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(10),
            stderr_tail: 20,
            console_limit: 1 << 20,
            max_message: 16 << 20,
            configure: None,
        }
    }
}

fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) * 4
}

/// Builds a [`ProcessExecutor`].
#[must_use]
pub struct ProcessExecutorBuilder {
    program: Option<PathBuf>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
    concurrency: usize,
    grace: Duration,
    heartbeat_interval: Duration,
    heartbeat_timeout: Duration,
    stderr_tail: usize,
    console_limit: usize,
    max_message: usize,
    configure: Option<Arc<Configure>>,
}

impl fmt::Debug for ProcessExecutorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessExecutorBuilder")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl ProcessExecutorBuilder {
    /// The program to run (default: the current binary, `std::env::current_exe()`).
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// The program's arguments (default: `["worker"]`, `App`'s worker subcommand).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets an environment variable for every worker (workers inherit the engine's
    /// environment otherwise, less its `DAGFORGE_*` settings).
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The workers' working directory (default: the engine's).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// How many workers may run at once; `0` means no limit of the executor's own
    /// (the engine's and the nodes' limits still apply). Default: four per CPU.
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit;
        self
    }

    /// How long a worker has to stop after SIGTERM (cancellation) or after its
    /// timeout before it gets SIGKILL. Default 5 s.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How often workers write a heartbeat line. Default 1 s.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long a worker may stay silent (no protocol line) before it is killed and
    /// the attempt fails. Keep it several heartbeat intervals. Default 10 s.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// How many of a failed worker's last stderr lines its error message quotes.
    /// Default 20.
    pub fn stderr_tail(mut self, lines: usize) -> Self {
        self.stderr_tail = lines;
        self
    }

    /// How many bytes of console output (stdout and stderr lines) one attempt may
    /// leave in the run's log. Past half of it, lines are held back and only the last
    /// half's worth of them is logged when the worker ends, after a marker line saying
    /// how many lines and bytes were dropped. Default 1 MiB.
    pub fn console_limit(mut self, bytes: usize) -> Self {
        self.console_limit = bytes;
        self
    }

    /// The longest protocol line (one message: an output, a log line) a worker may
    /// send, in bytes; at least 4 KiB. The worker cuts longer log lines, and an output
    /// over it fails the attempt with an `output` error (not retried) naming the job,
    /// the size and the limit. Outputs are also subject to the engine's own
    /// `max_output_bytes`. Default 16 MiB.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message = bytes.max(MIN_MESSAGE);
        self
    }

    /// Adjusts the command of each execution: environment, working directory,
    /// arguments.
    pub fn configure(
        mut self,
        f: impl Fn(&Execution, &mut WorkerCommand) + Send + Sync + 'static,
    ) -> Self {
        self.configure = Some(Arc::new(f));
        self
    }

    /// The executor.
    pub fn build(self) -> ProcessExecutor {
        ProcessExecutor {
            inner: Arc::new(Inner {
                program: self.program,
                args: self.args,
                env: self.env,
                current_dir: self.current_dir,
                limit: (self.concurrency > 0).then(|| Arc::new(Semaphore::new(self.concurrency))),
                grace: self.grace,
                heartbeat_interval: self.heartbeat_interval,
                heartbeat_timeout: self.heartbeat_timeout,
                stderr_tail: self.stderr_tail,
                console_limit: self.console_limit,
                max_message: self.max_message,
                configure: self.configure,
            }),
        }
    }
}

/// The command of one execution, as [`ProcessExecutorBuilder::configure`] may adjust
/// it.
#[derive(Debug)]
pub struct WorkerCommand {
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    current_dir: Option<PathBuf>,
}

impl WorkerCommand {
    /// Appends an argument.
    pub fn arg(&mut self, arg: impl Into<OsString>) -> &mut Self {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable.
    pub fn env(&mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> &mut Self {
        self.env.push((name.into(), Some(value.into())));
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(&mut self, name: impl Into<OsString>) -> &mut Self {
        self.env.push((name.into(), None));
        self
    }

    /// Sets the working directory.
    pub fn current_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.current_dir = Some(dir.into());
        self
    }
}

impl Executor for ProcessExecutor {
    fn start(&self, execution: Execution) -> ExecutionHandle {
        use tracing::Instrument;
        let inner = Arc::clone(&self.inner);
        let span = attempt_span(&execution, "process");
        // The task owns the child (a `Worker`): aborting it kills the worker's process
        // group, and tokio reaps the killed child in the background.
        let task = tokio::spawn(
            async move {
                let Ok(slot) = wait_for_slot(inner.limit.as_ref(), &execution).await else {
                    execution.complete(Err(cancelled_waiting("a worker slot")));
                    return;
                };
                let outcome = Box::pin(supervise::supervise(&inner, &execution)).await;
                drop(slot);
                execution.complete(outcome);
            }
            .instrument(span),
        );
        ExecutionHandle::from_task(task.abort_handle())
    }
}

/// The `node` span of an attempt run outside this process (by `executor`).
pub(crate) fn attempt_span(execution: &Execution, executor: &'static str) -> tracing::Span {
    let ctx = execution.context();
    tracing::info_span!(
        "node",
        run_id = %ctx.run_id(),
        node = ctx.node_id(),
        item = ctx.item(),
        attempt = ctx.attempt(),
        executor,
    )
}

/// Waits for a slot under the executor's concurrency cap (at once without a cap);
/// `Err` when the run is cancelled first.
pub(crate) async fn wait_for_slot(
    limit: Option<&Arc<Semaphore>>,
    execution: &Execution,
) -> Result<Option<OwnedSemaphorePermit>, ()> {
    let Some(limit) = limit else { return Ok(None) };
    tokio::select! {
        slot = Arc::clone(limit).acquire_owned() => Ok(slot.ok()),
        () = execution.context().cancelled() => Err(()),
    }
}

/// The outcome of an attempt whose run was cancelled while it waited for `slot`.
pub(crate) fn cancelled_waiting(slot: &str) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::Cancelled,
        format!("run cancelled before {slot} was free"),
    )
}
