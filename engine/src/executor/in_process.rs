//! Runs attempts as tokio tasks in the engine's own process.

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
        execution.spawn_task()
    }

    fn runs_inline(&self) -> bool {
        true
    }
}
