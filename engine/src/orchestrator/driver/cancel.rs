//! Cancelling a run: cooperative first, aborted after the grace period; and a run
//! claimed from the store whose cancellation was requested before it was claimed is
//! cancelled before anything starts. What cancelling does to the nodes is the core's
//! (`core/finish.rs`); this is its I/O.

use std::time::Duration;

use super::Driver;
use super::core::Input;
use crate::error::{ErrorInfo, ErrorKind};
use crate::signal::Signal;

impl Driver {
    /// The first step of a run claimed from the store: a cancellation requested while
    /// the run was queued, delayed or orphaned (`Engine::cancel_recorded`, the CLI's
    /// `runs cancel`) cancels it here, before any node is dispatched — no attempt
    /// starts and no job body runs.
    ///
    /// The run's start (and whatever `restore` recorded) is written first, then the
    /// request is looked for: a request that lands after the look found the run
    /// recorded as running, not queued, and reaches this engine the way any cancel of
    /// a running run does (a notification or the store watch of `Engine::serve`, or
    /// [`Engine::follow_cancel_requests`](crate::Engine::follow_cancel_requests)).
    /// A store that fails is asked again (with backoff) rather than risk starting a
    /// cancelled run.
    pub(super) async fn cancel_if_requested(&mut self) {
        self.flush().await;
        let mut delay = Duration::from_millis(50);
        while self.lost.is_none() {
            match self.sh.store.cancel_requests(&self.sh.owner).await {
                Ok(ids) => {
                    if ids.contains(&self.run) {
                        tracing::info!(run_id = %self.run, "cancelled before starting: its cancellation was requested before this engine claimed it");
                        self.clock();
                        self.begin_cancel();
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(run_id = %self.run, error = %e, retry_in = ?delay, "reading cancellation requests failed; retrying before starting the run");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Cancels the run: the core cancels every node not running; the jobs' token
    /// fires, capacity is no longer asked for, and running attempts get the grace
    /// period.
    pub(super) fn begin_cancel(&mut self) {
        if self.core.cancelling() {
            return;
        }
        self.core.on(Input::Cancel);
        self.job_cancel.cancel();
        self.acquire = None;
        if !self.running.is_empty() {
            self.deadline = Some(Box::pin(tokio::time::sleep(self.sh.grace)));
        }
    }

    /// The grace period ran out: aborts the attempts still running and records them
    /// Cancelled.
    pub(super) fn abort_all(&mut self) {
        let keys: Vec<usize> = self.running.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(r) = self.running.get(key) {
                r.handle.abort();
            }
            let e = ErrorInfo::new(
                ErrorKind::Cancelled,
                format!(
                    "stopped after the cancellation grace period ({:?})",
                    self.sh.grace
                ),
            );
            self.on_signal(key as u32, Signal::Done(Err(e)));
        }
    }
}
