//! Executors run node attempts: in this process, in child processes, or in pods.
//!
//! The orchestrator hands each attempt to [`Executor::start`] as an [`Execution`]
//! and gets back an [`ExecutionHandle`] it can use to stop the attempt hard. The
//! executor reports the outcome exactly once through the execution
//! ([`Execution::run_here`] or [`Execution::complete`]); logs and progress flow through
//! the execution's [`JobContext`].

mod in_process;
#[cfg(all(feature = "process", unix))]
mod process;

use std::time::Duration;

use serde_json::Value;
use tokio::task::AbortHandle;

use crate::context::JobContext;
use crate::error::ErrorInfo;
use crate::limit::Permit;
use crate::registry::{Attempt, DynJob, guarded};

pub use in_process::InProcess;
#[cfg(all(feature = "process", unix))]
pub use process::{ProcessExecutor, ProcessExecutorBuilder, WorkerCommand};

/// Starts node attempts.
pub trait Executor: Send + Sync + std::fmt::Debug + 'static {
    /// Starts one attempt. Must not block: spawn the work and return.
    fn start(&self, execution: Execution) -> ExecutionHandle;

    /// Whether the orchestrator may run an attempt inside its own task, instead of
    /// calling [`start`](Executor::start), when the run has nothing else to do (no other
    /// attempt running, nothing else ready, no retry pending). On sequential stretches
    /// of a DAG this saves a task spawn and two cross-task wake-ups per node without
    /// losing any parallelism. Only executors that run jobs in this process say yes.
    fn runs_inline(&self) -> bool {
        false
    }
}

/// One attempt to run: the job, its input, its context and its limits.
#[derive(Debug)]
pub struct Execution {
    job: DynJob,
    input: Value,
    ctx: JobContext,
    timeout: Option<Duration>,
    permit: Option<Permit>,
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
            ctx,
            timeout,
            permit,
        }
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
        &self.ctx
    }

    /// The attempt's timeout.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Reports the outcome of an attempt run elsewhere (a child process, a pod).
    pub fn complete(mut self, outcome: Result<Value, ErrorInfo>) {
        drop(self.permit.take());
        self.ctx.report_done(outcome);
    }

    /// Runs the attempt in the current task: decodes the input, runs the job under
    /// its timeout, turns a panic into a failed attempt, and reports the outcome.
    pub async fn run_here(self) {
        let ctx = self.ctx.clone();
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

    /// Stops the attempt now. Its outcome will not be reported.
    pub fn abort(&self) {
        if let Some(a) = &self.abort {
            a.abort();
        }
    }
}
