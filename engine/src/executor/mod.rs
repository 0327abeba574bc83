//! Executors run node attempts: in this process, in child processes, or in pods.
//!
//! The orchestrator hands each attempt to [`Executor::start`] as an [`Execution`]
//! and gets back an [`ExecutionHandle`] it can use to stop the attempt hard. The
//! executor reports the outcome exactly once through the execution
//! ([`Execution::run_here`] or [`Execution::complete`]); logs and progress flow through
//! the execution's [`JobContext`]. An execution dropped without either (an executor
//! that loses it, a task that panics holding it) fails its attempt with an
//! [`ErrorKind::Executor`] error instead of leaving the run waiting forever; the node's
//! retry policy decides whether it runs again.

mod in_process;
#[cfg(feature = "kubernetes")]
mod kubernetes;
#[cfg(all(feature = "process", unix))]
mod process;
mod queue;
#[cfg(all(feature = "process", unix))]
pub(crate) use process::lines;

use std::time::Duration;

use serde_json::Value;
use tokio::task::AbortHandle;

use crate::context::JobContext;
use crate::error::{ErrorInfo, ErrorKind};
use crate::limit::Permit;
use crate::registry::{Attempt, DynJob, guarded};

pub use in_process::InProcess;
#[cfg(feature = "kubernetes")]
pub use kubernetes::{
    ConfigError as KubernetesConfigError, KubernetesConfig, KubernetesExecutor,
    KubernetesExecutorBuilder, Propagation, Reaped,
};
#[cfg(all(feature = "process", unix))]
pub use process::{ProcessExecutor, ProcessExecutorBuilder, WorkerCommand};
pub(crate) use queue::host_name;
pub use queue::{QueueExecutor, QueueExecutorBuilder, Route};

/// Starts node attempts.
///
/// # The contract
///
/// Every executor — in-process, child processes, a queue, pods — keeps these promises;
/// the conformance suite (`dagforge::executor_conformance`, feature `test-util`)
/// checks them through a real engine, and the in-process and process executors pass
/// it.
///
/// - **`start` does not block.** It hands the attempt to whatever runs it (a task, a
///   child process, a queue) and returns an [`ExecutionHandle`] at once; the engine's
///   run loop calls it, so waiting in it stalls the whole run. Attempts started one
///   after the other run side by side (an executor's own concurrency limit may make
///   them wait, *after* `start` returned). `start` does not fail: an attempt the
///   executor cannot run is reported as a failed attempt with [`ErrorKind::Executor`]
///   (retryable).
/// - **Exactly one outcome per execution.** The executor reports the attempt's result
///   once, by running it with [`Execution::run_here`] or, for an attempt run
///   elsewhere, with [`Execution::complete`] — or it drops the [`Execution`]. A
///   dropped execution (the executor lost it, its task panicked) fails the attempt
///   with [`ErrorKind::Executor`] naming the executor (see [`name`](Executor::name)),
///   and the node's retry policy decides whether it runs again: a run never waits for
///   ever on an executor. There is no way to report twice.
/// - **Outcome kinds.** `Ok(output)` is the node's output. The job's own errors keep
///   their kind ([`ErrorKind::Failed`] retryable, [`ErrorKind::Terminal`] not);
///   a panic is [`ErrorKind::Panicked`]; an attempt past its
///   [`timeout`](Execution::timeout) is [`ErrorKind::TimedOut`]; an attempt stopped by
///   cancellation is [`ErrorKind::Cancelled`]; a failure of the executor itself
///   (cannot start a process, protocol violation) is [`ErrorKind::Executor`].
/// - **Crash of the child.** An attempt whose process (or pod) dies without reporting
///   an outcome — killed by a signal, an exit code, out of memory — is a failed,
///   *retryable* attempt of kind [`ErrorKind::Crashed`], with the exit status (or
///   the pod's reason, such as `OOMKilled`) and the last console lines in the
///   message; a child silent past its heartbeat timeout is killed and crashed too
///   ([`ErrorKind::Executor`] when the executor cannot tell what happened). The in-process analogue is a panic
///   ([`ErrorKind::Panicked`]). It never takes the engine down.
/// - **Logs and progress** go through the execution's [`JobContext`]
///   ([`JobContext::info`], [`JobContext::progress`], …), from the job itself or
///   relayed by the executor (the process executor turns its worker's protocol lines
///   and console output into them). They become the run's `Log` and `Progress`
///   events, attributed to the node, item and attempt, and must be sent before the
///   outcome is reported (later ones are dropped).
/// - **Cancellation.** When the run is cancelled, the job's token fires
///   ([`JobContext::cancelled`]); an executor running the attempt elsewhere passes it
///   on (the process executor sends SIGTERM to the worker's process group). A job that
///   stops reports [`ErrorKind::Cancelled`]. After the engine's grace period
///   ([`EngineBuilder::cancel_grace`](crate::EngineBuilder::cancel_grace)) the engine
///   records every attempt still running as cancelled and calls
///   [`ExecutionHandle::abort`]; the executor then stops the attempt for good (aborts
///   its task, kills its process group, deletes its pod). An executor may have a
///   grace period of its own; it should be no longer than the engine's.
/// - **Timeouts.** [`Execution::timeout`] bounds one attempt. The executor enforces it
///   (or lets the job's runtime enforce it, as the process worker does) and stops an
///   attempt past it, reporting [`ErrorKind::TimedOut`]; an attempt deaf to it is
///   stopped by force at the latest a grace period later.
/// - **`ExecutionHandle::abort`** means: stop the attempt now, hard, and report
///   nothing more — the engine has already recorded its end. It is called after the
///   cancellation grace, when the run's driver goes away (the run finished with
///   attempts still running, its lease was lost, the engine stopped) and never
///   otherwise. It must not block either, and it may be called after the attempt
///   ended (then it does nothing).
/// - **Drop.** Dropping an [`Execution`] without an outcome fails the attempt (above),
///   unless its handle was aborted first. An executor that is itself dropped leaves
///   its running attempts to their handles: the engine aborts them when it lets go of
///   the run.
///
/// # A minimal executor
///
/// An executor that runs each attempt as a tokio task of its own — the shape of
/// [`InProcess`], without its inline fast path:
///
/// ```
/// use dagforge::prelude::*;
/// use dagforge::{Execution, ExecutionHandle, Executor};
///
/// #[derive(Debug)]
/// struct Tasks;
///
/// impl Executor for Tasks {
///     fn start(&self, execution: Execution) -> ExecutionHandle {
///         // Runs the job under its timeout, turns a panic into a failed attempt and
///         // reports the outcome once; aborting the task stops the attempt.
///         let task = tokio::spawn(execution.run_here());
///         ExecutionHandle::from_task(task.abort_handle())
///     }
/// }
///
/// struct Double;
///
/// impl Job for Double {
///     type Input = u32;
///     type Output = u32;
///     const NAME: &'static str = "double";
///
///     async fn run(&self, _: &JobContext, x: u32) -> Result<u32, JobError> {
///         Ok(x * 2)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), dagforge::Error> {
/// let engine = Engine::builder().executor(Tasks).build();
/// let mut wf = Workflow::builder("double");
/// wf.add("double", Double).input(21);
/// let result = engine.run(&wf.build()?, ()).await?;
/// assert_eq!(result.output::<u32>("double")?, 42);
/// # Ok(())
/// # }
/// ```
pub trait Executor: Send + Sync + std::fmt::Debug + 'static {
    /// Starts one attempt. Must not block: hand the work over (spawn a task, a
    /// process, a pod) and return. The outcome is reported through the execution,
    /// exactly once, or the execution is dropped (see [the contract](Executor)).
    fn start(&self, execution: Execution) -> ExecutionHandle;

    /// Whether the orchestrator may run an attempt inside its own task, instead of
    /// calling [`start`](Executor::start), when the run has nothing else to do (no other
    /// attempt running, nothing else ready, no retry pending). On sequential stretches
    /// of a DAG this saves a task spawn and two cross-task wake-ups per node without
    /// losing any parallelism. Only executors that run jobs in this process say yes.
    fn runs_inline(&self) -> bool {
        false
    }

    /// The executor's name in messages (default: its type's name without the module
    /// path), e.g. the error of an attempt whose execution it dropped.
    fn name(&self) -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }
}

/// `a::b::C<d::E>` → `C<d::E>`: the path of the type itself goes, its parameters stay.
fn short_type_name(full: &'static str) -> &'static str {
    let head = full.find('<').map_or(full, |i| &full[..i]);
    match head.rfind("::") {
        Some(i) => &full[i + 2..],
        None => full,
    }
}

/// One attempt to run: the job, its input, its context and its limits.
#[derive(Debug)]
pub struct Execution {
    job: DynJob,
    input: Value,
    ctx: Guarded,
    timeout: Option<Duration>,
    permit: Option<Permit>,
}

/// The attempt's context, and while an executor holds the execution, the guard that
/// fails the attempt if the execution is dropped without an outcome.
///
/// The failure goes through the context's own signal sender: arming costs no
/// allocation and no clone of the run's channel (this is on every attempt's path).
/// After [`ExecutionHandle::abort`] the engine has recorded the attempt's end and
/// stopped listening for it (the driver forgot the attempt, and starts nothing new
/// in a cancelling run or a run whose lease it lost), so what a dropped aborted
/// execution reports is ignored.
#[derive(Debug)]
struct Guarded {
    /// Present until [`Guarded::take`] hands it on.
    ctx: Option<JobContext>,
    /// The executor's name while armed.
    armed: Option<&'static str>,
}

impl Guarded {
    fn context(&self) -> &JobContext {
        // `ctx` is only emptied by `take`, which consumes the guard.
        self.ctx
            .as_ref()
            .unwrap_or_else(|| unreachable!("the context is present until taken"))
    }

    /// The context, disarmed: the outcome is reported another way.
    fn take(mut self) -> JobContext {
        self.armed = None;
        self.ctx
            .take()
            .unwrap_or_else(|| unreachable!("the context is present until taken"))
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let (Some(executor), Some(ctx)) = (self.armed.take(), self.ctx.as_ref()) else {
            return;
        };
        tracing::warn!(executor, "an execution was dropped without a result");
        ctx.report_done(Err(ErrorInfo::new(
            ErrorKind::Executor,
            format!("execution dropped by executor `{executor}` without a result"),
        )));
    }
}

impl Execution {
    pub(crate) fn new(
        job: DynJob,
        input: Value,
        ctx: JobContext,
        timeout: Option<Duration>,
        permit: Option<Permit>,
    ) -> Self {
        Execution {
            job,
            input,
            ctx: Guarded {
                ctx: Some(ctx),
                armed: None,
            },
            timeout,
            permit,
        }
    }

    /// Hands the execution to `executor`: from here on, dropping it without an
    /// outcome reports a failed attempt through its context.
    #[inline]
    pub(crate) fn arm(&mut self, executor: &'static str) {
        self.ctx.armed = Some(executor);
    }

    /// The job to run.
    pub fn job(&self) -> &DynJob {
        &self.job
    }

    /// The assembled input.
    pub fn input(&self) -> &Value {
        &self.input
    }

    /// The attempt's context.
    pub fn context(&self) -> &JobContext {
        self.ctx.context()
    }

    /// The attempt's timeout.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Reports the outcome of an attempt run elsewhere (a child process, a pod).
    pub fn complete(self, outcome: Result<Value, ErrorInfo>) {
        let Execution { ctx, permit, .. } = self;
        drop(permit);
        ctx.take().report_done(outcome);
    }

    /// Runs the attempt in the current task: decodes the input, runs the job under
    /// its timeout, turns a panic into a failed attempt, and reports the outcome.
    pub async fn run_here(self) {
        let ctx = self.ctx.context().clone();
        let outcome = self.run_inline().await;
        ctx.report_done(outcome);
    }

    /// Runs the attempt in the current task inside its `node` tracing span and returns
    /// the outcome instead of reporting it (the orchestrator's inline path).
    pub(crate) fn run_inline(
        self,
    ) -> impl std::future::Future<Output = Result<Value, ErrorInfo>> + Send {
        use tracing::Instrument;
        let Execution {
            job,
            input,
            ctx,
            timeout,
            permit,
        } = self;
        // The outcome is returned (and reported by the caller): nothing to guard.
        let ctx = ctx.take();
        let span = tracing::info_span!(
            "node",
            run_id = %ctx.run_id(),
            node = ctx.node_id(),
            item = ctx.item(),
            attempt = ctx.attempt(),
        );
        async move {
            let outcome = guarded(job.call(ctx, input), timeout).await;
            drop(permit);
            outcome
        }
        .instrument(span)
    }

    /// Spawns the attempt as a tokio task in this process (the in-process executor).
    pub(crate) fn spawn_task(self) -> ExecutionHandle {
        let Execution {
            job,
            input,
            ctx,
            timeout,
            permit,
        } = self;
        // The task reports the outcome itself (a panic included); an abort is the
        // orchestrator's own doing.
        let ctx = ctx.take();
        let task = job.spawn(Attempt {
            ctx,
            input,
            timeout,
            permit,
        });
        ExecutionHandle::from_task(task.abort_handle())
    }
}

/// Stops a started attempt hard (after the cooperative grace period).
#[derive(Debug, Default)]
pub struct ExecutionHandle {
    abort: Option<AbortHandle>,
}

impl ExecutionHandle {
    /// A handle that aborts a tokio task.
    pub fn from_task(abort: AbortHandle) -> Self {
        ExecutionHandle { abort: Some(abort) }
    }

    /// A handle with nothing to abort.
    pub fn detached() -> Self {
        ExecutionHandle { abort: None }
    }

    /// Stops the attempt now, hard (the cooperative grace period is over, or the run
    /// is gone). The engine has recorded the attempt's end already: whatever the
    /// attempt would still report, its dropped execution's failure included, is
    /// ignored. Does nothing once the attempt ended; never blocks.
    pub fn abort(&self) {
        if let Some(a) = &self.abort {
            a.abort();
        }
    }
}
