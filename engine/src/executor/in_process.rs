//! Runs attempts as tokio tasks in the engine's own process.

use tracing::Instrument;

use super::{Execution, ExecutionHandle, Executor};

/// Runs each attempt as a tokio task. The default executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct InProcess;

impl InProcess {
    /// The in-process executor.
    pub fn new() -> Self {
        InProcess
    }
}

impl Executor for InProcess {
    fn start(&self, execution: Execution) -> ExecutionHandle {
        let ctx = execution.context();
        let span = tracing::info_span!(
            "node",
            run_id = %ctx.run_id(),
            node = ctx.node_id(),
            item = ctx.item(),
            attempt = ctx.attempt(),
        );
        let task = tokio::spawn(execution.run_here().instrument(span));
        ExecutionHandle::from_task(task.abort_handle())
    }
}
