//! Runs attempts in child processes: the user's own binary in worker mode (see
//! [`crate::worker`] and `docs/protocol.md`).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep_until};

use super::{Execution, ExecutionHandle, Executor};
use crate::artifact::{ENV_URL, Provider};
use crate::context::{JobContext, LogLevel};
use crate::error::{ErrorInfo, ErrorKind};
use crate::worker::{EXIT_UNKNOWN_JOB, Invocation, Message, parse_line};

/// The longest line read from a worker; a longer one is cut into pieces (and is then
/// no valid protocol line). Outputs are far smaller (the engine's output limit).
const MAX_LINE: usize = 16 << 20;

/// How many characters of a stderr line an error message quotes.
const QUOTE_LINE: usize = 300;

/// How long the pipes of a worker that exited are still read (a grandchild may hold
/// them open).
const DRAIN: Duration = Duration::from_millis(250);

type Configure = dyn Fn(&Execution, &mut WorkerCommand) + Send + Sync;

/// Runs each attempt in a child process: by default the current binary
/// (`std::env::current_exe()`) with the argument `worker`, the subcommand that
/// `App` gives every binary; configure another program or other arguments for a
/// binary that calls [`worker::run`](crate::worker::run) itself.
///
/// The invocation goes in `DAGFORGE_WORKER_*` environment variables, the input as
/// JSON on stdin; the worker's protocol lines on stdout become the attempt's log
/// lines, progress and outcome, and everything else it prints (stdout and stderr) is
/// forwarded to the run's log as `info` lines marked `[stdout]` / `[stderr]`.
/// The exit status and the final `output`/`error` line decide the outcome.
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
    /// environment otherwise).
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
        let ctx = execution.context();
        let span = tracing::info_span!(
            "node",
            run_id = %ctx.run_id(),
            node = ctx.node_id(),
            item = ctx.item(),
            attempt = ctx.attempt(),
            executor = "process",
        );
        // The task owns the child (a `Worker`): aborting it kills the worker's process
        // group, and tokio reaps the killed child in the background.
        let task = tokio::spawn(
            async move {
                let slot = match &inner.limit {
                    None => None,
                    Some(limit) => tokio::select! {
                        slot = Arc::clone(limit).acquire_owned() => slot.ok(),
                        () = execution.context().cancelled() => {
                            execution.complete(Err(ErrorInfo::new(
                                ErrorKind::Cancelled,
                                "run cancelled before a worker slot was free",
                            )));
                            return;
                        }
                    },
                };
                let outcome = Box::pin(supervise(&inner, &execution)).await;
                drop(slot);
                execution.complete(outcome);
            }
            .instrument(span),
        );
        ExecutionHandle::from_task(task.abort_handle())
    }
}

/// Runs one worker to its end and decides the attempt's outcome.
async fn supervise(inner: &Inner, exec: &Execution) -> Result<Value, ErrorInfo> {
    let ctx = exec.context();
    let job = exec.job().name();
    let program = match &inner.program {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| {
            ErrorInfo::new(
                ErrorKind::Executor,
                format!("job `{job}`: cannot find the current executable to run as a worker: {e}"),
            )
        })?,
    };
    let invocation = Invocation {
        job: job.to_owned(),
        run: ctx.run_id(),
        node: ctx.node_id().to_owned(),
        item: ctx.item(),
        attempt: ctx.attempt(),
        execution: uuid::Uuid::now_v7().to_string(),
        timeout: exec.timeout(),
        heartbeat: inner.heartbeat_interval,
        grace: inner.grace,
    };
    let mut wc = WorkerCommand {
        args: inner.args.clone(),
        env: Vec::new(),
        current_dir: inner.current_dir.clone(),
    };
    if let Some(f) = &inner.configure {
        f(exec, &mut wc);
    }

    let mut cmd = Command::new(&program);
    cmd.args(&wc.args);
    for name in crate::worker::invocation_vars() {
        cmd.env_remove(name);
    }
    let artifacts = ctx.artifact_store();
    if artifacts.provider() != Provider::Memory {
        cmd.env(ENV_URL, artifacts.url());
    }
    for (k, v) in &inner.env {
        cmd.env(k, v);
    }
    for (k, v) in invocation.to_vars() {
        cmd.env(k, v);
    }
    for (k, v) in &wc.env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    if let Some(dir) = &wc.current_dir {
        cmd.current_dir(dir);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, which the worker leads: its pgid is its pid.
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| {
        ErrorInfo::new(
            ErrorKind::Executor,
            format!(
                "job `{job}`: cannot start the worker `{}`: {e}",
                program.display()
            ),
        )
    })?;
    let mut worker = Worker::new(child);
    let pid = worker.child.id().unwrap_or(0);
    let input = serde_json::to_vec(exec.input()).unwrap_or_else(|_| b"null".to_vec());
    let stdin = worker.child.stdin.take();
    let feed = async move {
        if let Some(mut stdin) = stdin {
            // A worker that exits without reading its input closes the pipe; its exit
            // status tells what happened.
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        }
    };
    tokio::pin!(feed);
    let mut out = Lines::new(worker.child.stdout.take());
    let mut err = Lines::new(worker.child.stderr.take());

    let mut watch = Watch {
        ctx,
        job,
        pid,
        tail: VecDeque::new(),
        tail_len: inner.stderr_tail,
        outcome: None,
        protocol_error: None,
    };
    let started = Instant::now();
    let mut silent_until = started + inner.heartbeat_timeout;
    let hard_deadline = exec.timeout().map(|t| started + t + inner.grace);
    let mut term_deadline: Option<Instant> = None;
    let mut killed: Option<ErrorInfo> = None;
    let mut fed = false;
    let mut status: Option<std::io::Result<ExitStatus>> = None;
    let mut drain_deadline: Option<Instant> = None;

    loop {
        if status.is_some() && !out.open && !err.open {
            break;
        }
        let alive = status.is_none();
        tokio::select! {
            line = out.next(), if out.open => {
                if let Some(line) = line
                    && watch.on_stdout(&line)
                {
                    silent_until = Instant::now() + inner.heartbeat_timeout;
                }
            }
            line = err.next(), if err.open => {
                if let Some(line) = line {
                    watch.on_stderr(&line);
                }
            }
            st = worker.child.wait(), if alive => {
                status = Some(st);
                // What the job left running in the worker's group goes with it (and
                // then no longer holds the pipes open).
                worker.exited();
                drain_deadline = Some(Instant::now() + DRAIN);
            }
            () = &mut feed, if !fed => fed = true,
            () = ctx.cancelled(), if alive && term_deadline.is_none() => {
                worker.signal(Signal::SIGTERM);
                term_deadline = Some(Instant::now() + inner.grace);
            }
            () = at(term_deadline), if alive && killed.is_none() => {
                worker.signal(Signal::SIGKILL);
                killed = Some(ErrorInfo::new(
                    ErrorKind::Cancelled,
                    format!(
                        "job `{job}`: worker (pid {pid}) did not stop within the grace period \
                         ({:?}) after SIGTERM and was killed",
                        inner.grace
                    ),
                ));
            }
            () = sleep_until(silent_until), if alive && killed.is_none() => {
                worker.signal(Signal::SIGKILL);
                killed = Some(ErrorInfo::new(
                    ErrorKind::Failed,
                    format!(
                        "job `{job}`: worker (pid {pid}) sent no heartbeat for {:?} and was killed",
                        inner.heartbeat_timeout
                    ),
                ));
            }
            () = at(hard_deadline), if alive && killed.is_none() => {
                worker.signal(Signal::SIGKILL);
                let limit = exec.timeout().unwrap_or_default();
                killed = Some(ErrorInfo::new(
                    ErrorKind::TimedOut,
                    format!(
                        "timed out after {limit:?}: job `{job}`: worker (pid {pid}) was still \
                         running {:?} later and was killed",
                        inner.grace
                    ),
                ));
            }
            () = at(drain_deadline) => {
                // The worker is gone but something it started holds its pipes open.
                out.open = false;
                err.open = false;
            }
        }
    }
    // The loop ends only once the child was waited for: no zombie.
    let status = status.unwrap_or_else(|| Err(std::io::Error::other("not waited for")));
    watch.finish(status, killed, term_deadline.is_some())
}

/// A worker process, leader of its own process group (spawned with
/// `process_group(0)`, so the group's id is the worker's pid).
///
/// Signals go to the whole group. Dropped before the worker was waited for (the
/// execution was aborted: the engine's grace period ran out, the run's driver went
/// away, the runtime shut down), it kills the group with SIGKILL; the child is then
/// dropped, which kills it again (`kill_on_drop`) and leaves it to tokio's reaper.
struct Worker {
    child: Child,
    /// The group's id; `None` if the child had no pid (it cannot happen right after
    /// a spawn).
    group: Option<Pid>,
    /// The worker was waited for (its pid is no longer ours).
    reaped: bool,
}

impl Worker {
    fn new(child: Child) -> Self {
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .filter(|&id| id > 0)
            .map(Pid::from_raw);
        Worker {
            child,
            group,
            reaped: false,
        }
    }

    /// Sends `sig` to the worker's process group. Until the worker is reaped its pid
    /// — the group's id — cannot be reused, so the signal reaches only its group.
    fn signal(&mut self, sig: Signal) {
        if self.reaped {
            return;
        }
        let sent = self
            .group
            .is_some_and(|g| nix::sys::signal::killpg(g, sig).is_ok());
        if !sent && sig == Signal::SIGKILL {
            // No group to signal (cannot happen): at least the worker itself.
            let _ = self.child.start_kill();
        }
    }

    /// The worker was waited for: kills whatever is left in its group (processes the
    /// job started and did not end), so none outlives the attempt.
    ///
    /// Right after the wait the group's id is still the group's: a pid is reused only
    /// once it is neither a process's nor a group's id, and Linux hands pids out
    /// cyclically, so the id of a group that just emptied comes back only after the
    /// whole pid range was used.
    fn exited(&mut self) {
        if !self.reaped {
            self.reaped = true;
            if let Some(g) = self.group {
                // ESRCH: the group is empty already, as it usually is.
                let _ = nix::sys::signal::killpg(g, Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One pipe of the worker, read line by line (bytes, so garbage is no error).
struct Lines<R> {
    reader: Option<BufReader<R>>,
    buf: Vec<u8>,
    open: bool,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    fn new(reader: Option<R>) -> Self {
        Lines {
            open: reader.is_some(),
            reader: reader.map(BufReader::new),
            buf: Vec::new(),
        }
    }

    /// The next line (at most [`MAX_LINE`] bytes: a longer one comes in pieces);
    /// `None` at the end (then `open` is false). Cancel-safe: a partial line stays in
    /// the buffer.
    async fn next(&mut self) -> Option<Vec<u8>> {
        let reader = self.reader.as_mut()?;
        loop {
            let chunk = match reader.fill_buf().await {
                Ok(chunk) if !chunk.is_empty() => chunk,
                // The end, or a broken pipe: what was read is the last line.
                _ => {
                    self.open = false;
                    self.reader = None;
                    return (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf));
                }
            };
            let room = MAX_LINE.saturating_sub(self.buf.len()).max(1);
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) if i < room => (i + 1, true),
                _ => (chunk.len().min(room), chunk.len() >= room),
            };
            self.buf.extend_from_slice(&chunk[..take]);
            reader.consume(take);
            if done {
                return Some(std::mem::take(&mut self.buf));
            }
        }
    }
}

/// What the supervisor learned from the worker's output.
struct Watch<'a> {
    ctx: &'a JobContext,
    job: &'static str,
    pid: u32,
    tail: VecDeque<String>,
    tail_len: usize,
    outcome: Option<Result<Value, ErrorInfo>>,
    protocol_error: Option<String>,
}

impl Watch<'_> {
    /// Handles a stdout line; returns whether it was a protocol message.
    fn on_stdout(&mut self, line: &[u8]) -> bool {
        match parse_line(line) {
            Ok(Some(message)) => {
                match message {
                    Message::Hello { job, .. } if job != self.job => {
                        self.protocol_violation(format!(
                            "the worker says it runs job `{job}`, not `{}`",
                            self.job
                        ));
                    }
                    Message::Hello { .. } | Message::Heartbeat => {}
                    Message::Log { level, message } => self.ctx.log(level, message),
                    Message::Progress { percent, message } => self.ctx.progress(percent, message),
                    Message::Output { value } => self.set_outcome(Ok(value)),
                    Message::Error { error } => self.set_outcome(Err(error)),
                }
                true
            }
            Ok(None) => {
                self.console("stdout", line);
                false
            }
            Err(e) => {
                self.protocol_violation(e.to_string());
                false
            }
        }
    }

    fn on_stderr(&mut self, line: &[u8]) {
        let text = self.console("stderr", line);
        if self.tail_len > 0 {
            if self.tail.len() == self.tail_len {
                self.tail.pop_front();
            }
            let mut text = text;
            if let Some((cut, _)) = text.char_indices().nth(QUOTE_LINE) {
                text.truncate(cut);
                text.push('…');
            }
            self.tail.push_back(text);
        }
    }

    fn console(&self, stream: &str, line: &[u8]) -> String {
        let text = String::from_utf8_lossy(line)
            .trim_end_matches(['\n', '\r'])
            .to_owned();
        self.ctx.log(LogLevel::Info, format!("[{stream}] {text}"));
        text
    }

    fn set_outcome(&mut self, outcome: Result<Value, ErrorInfo>) {
        if self.outcome.is_some() {
            self.protocol_violation(
                "the worker reported a second outcome; the first counts".into(),
            );
        } else {
            self.outcome = Some(outcome);
        }
    }

    fn protocol_violation(&mut self, what: String) {
        self.ctx.log(LogLevel::Warn, format!("[protocol] {what}"));
        self.protocol_error.get_or_insert(what);
    }

    /// The attempt's outcome from the exit status, the final line and why it was
    /// killed (if it was).
    fn finish(
        self,
        status: std::io::Result<ExitStatus>,
        killed: Option<ErrorInfo>,
        terminated: bool,
    ) -> Result<Value, ErrorInfo> {
        let Watch {
            job,
            pid,
            tail,
            outcome,
            protocol_error,
            ..
        } = self;
        let mut context = String::new();
        if let Some(p) = &protocol_error {
            context.push_str(&format!("; protocol error: {p}"));
        }
        if !tail.is_empty() {
            context.push_str("; last stderr lines:");
            for l in &tail {
                context.push_str("\n  ");
                context.push_str(l);
            }
        }
        if let Some(mut e) = killed {
            e.message.push_str(&context);
            return Err(e);
        }
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                return Err(ErrorInfo::new(
                    ErrorKind::Executor,
                    format!("job `{job}`: cannot wait for the worker (pid {pid}): {e}{context}"),
                ));
            }
        };
        match outcome {
            Some(Ok(value)) if status.success() => Ok(value),
            Some(Err(mut e)) => {
                if status.code() == Some(i32::from(EXIT_UNKNOWN_JOB)) {
                    // The binary will never know the job: retrying cannot help.
                    e.kind = ErrorKind::Terminal;
                }
                Err(e)
            }
            Some(Ok(_)) => Err(ErrorInfo::new(
                ErrorKind::Failed,
                format!(
                    "job `{job}`: worker (pid {pid}) wrote its output but {}{context}",
                    describe(status)
                ),
            )),
            None if status.success() => Err(ErrorInfo::new(
                ErrorKind::Executor,
                format!(
                    "job `{job}`: worker (pid {pid}) exited with code 0 without an output line \
                     (is the program a dagforge worker?){context}"
                ),
            )),
            None if terminated => Err(ErrorInfo::new(
                ErrorKind::Cancelled,
                format!(
                    "job `{job}`: worker (pid {pid}) {} after SIGTERM (run cancelled) without \
                     reporting an outcome{context}",
                    describe(status)
                ),
            )),
            None => Err(ErrorInfo::new(
                ErrorKind::Failed,
                format!(
                    "job `{job}`: worker (pid {pid}) {} without reporting an outcome{context}",
                    describe(status)
                ),
            )),
        }
    }
}

/// "exited with code 3", "was killed by signal SIGKILL (9)".
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exited with code {code}")
    } else if let Some(sig) = status.signal() {
        match nix::sys::signal::Signal::try_from(sig) {
            Ok(name) => format!("was killed by signal {name} ({sig})"),
            Err(_) => format!("was killed by signal {sig}"),
        }
    } else {
        format!("ended with {status}")
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[tokio::test]
    async fn lines_keep_garbage_and_a_last_partial_line_and_cut_huge_ones() {
        let mut data = b"one\n\xff two\r\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        data.extend(b"\nlast");
        let mut lines = Lines::new(Some(&data[..]));
        assert_eq!(lines.next().await.unwrap(), b"one\n");
        assert_eq!(lines.next().await.unwrap(), b"\xff two\r\n");
        assert_eq!(lines.next().await.unwrap().len(), MAX_LINE);
        assert_eq!(lines.next().await.unwrap(), b"xxxxxxxxxx\n");
        assert!(lines.open);
        assert_eq!(lines.next().await.unwrap(), b"last");
        assert!(!lines.open);
        assert_eq!(lines.next().await, None);
        let mut none = Lines::<&[u8]>::new(None);
        assert!(!none.open);
        assert_eq!(none.next().await, None);
    }

    #[test]
    fn exit_statuses_are_described() {
        assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "exited with code 3");
        assert_eq!(
            describe(ExitStatus::from_raw(9)),
            "was killed by signal SIGKILL (9)"
        );
    }
}
