//! Executors wrapped around the one under test: to time its `start`, and to drop
//! an execution as a broken executor would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::executor::{Execution, ExecutionHandle, Executor};

/// Records the longest call to the inner executor's `start`.
#[derive(Debug)]
pub(super) struct Timed<E> {
    pub(super) inner: E,
    pub(super) longest: Arc<AtomicU64>,
}

impl<E: Executor> Executor for Timed<E> {
    fn start(&self, execution: Execution) -> ExecutionHandle {
        let t = Instant::now();
        let handle = self.inner.start(execution);
        let micros = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.longest.fetch_max(micros, Ordering::SeqCst);
        handle
    }

    // Never inline: every attempt goes through `start`.
    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

/// Drops the first execution it gets (an executor that lost it) and hands the others
/// to the inner executor.
#[derive(Debug)]
pub(super) struct DropFirst<E> {
    pub(super) inner: E,
    pub(super) dropped: Arc<AtomicU64>,
}

impl<E: Executor> Executor for DropFirst<E> {
    fn start(&self, execution: Execution) -> ExecutionHandle {
        if self.dropped.fetch_add(1, Ordering::SeqCst) == 0 {
            drop(execution);
            return ExecutionHandle::detached();
        }
        self.inner.start(execution)
    }
}
