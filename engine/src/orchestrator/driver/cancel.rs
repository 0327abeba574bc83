//! Cancelling a run: cooperative first, aborted after the grace period; and a run
//! claimed from the store whose cancellation was requested before it was claimed is
//! cancelled before anything starts.

use std::time::Duration;

use super::{Detail, Driver};
use crate::error::{ErrorInfo, ErrorKind};
use crate::signal::Signal;
use crate::state::NodeState;
use crate::workflow::plan::Plan;

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
    pub(super) async fn cancel_if_requested(&mut self, plan: &Plan) {
        self.flush().await;
        let mut delay = Duration::from_millis(50);
        while self.lost.is_none() {
            match self.sh.store.cancel_requests(&self.sh.owner).await {
                Ok(ids) => {
                    if ids.contains(&self.run) {
                        tracing::info!(run_id = %self.run, "cancelled before starting: its cancellation was requested before this engine claimed it");
                        self.clock();
                        self.begin_cancel(plan);
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

    pub(super) fn begin_cancel(&mut self, plan: &Plan) {
        if self.cancelling {
            return;
        }
        tracing::info!(run_id = %self.run, "cancelling run");
        self.cancelling = true;
        self.job_cancel.cancel();
        self.ready.clear();
        self.acquire = None;
        for n in 0..self.nodes.len() as u32 {
            let state = self.nodes[n as usize].state;
            match state {
                NodeState::Pending | NodeState::Ready | NodeState::Retrying => {
                    let attempt = self.nodes[n as usize].attempts;
                    self.set_node(
                        plan,
                        n,
                        NodeState::Cancelled,
                        attempt,
                        Detail::reason("run cancelled"),
                    );
                }
                NodeState::Running => self.cancel_idle_items(plan, n),
                _ => {}
            }
        }
        // Children of cancelled nodes are cancelled too; no need to propagate.
        self.work.clear();
        if !self.running.is_empty() {
            self.deadline = Some(Box::pin(tokio::time::sleep(self.sh.grace)));
        }
    }

    /// Cancels the items of a running fan-out node that are not executing.
    fn cancel_idle_items(&mut self, plan: &Plan, n: u32) {
        let Some(fan) = self.nodes[n as usize].fan.as_deref_mut() else {
            return;
        };
        let mut idle = Vec::new();
        for (i, it) in fan.st.iter_mut().enumerate() {
            match it.state() {
                NodeState::Ready | NodeState::Retrying => {
                    idle.push((i as u32, it.attempts, it.state.is_some()))
                }
                _ => {}
            }
        }
        fan.retry.clear();
        fan.next = fan.items.len() as u32;
        for (i, attempts, seen) in idle {
            if seen {
                self.set_item(
                    plan,
                    n,
                    i,
                    NodeState::Cancelled,
                    attempts,
                    Detail::reason("run cancelled"),
                );
            } else if let Some(fan) = self.nodes[n as usize].fan.as_deref_mut() {
                // Never started: no event, just the final state.
                fan.st[i as usize].state = Some(NodeState::Cancelled);
            }
            if let Some(fan) = self.nodes[n as usize].fan.as_deref_mut() {
                fan.settled += 1;
                fan.cancelled += 1;
            }
        }
        self.maybe_finish_fan(plan, n);
    }

    pub(super) fn abort_all(&mut self, plan: &Plan) {
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
            self.on_signal(plan, key as u32, Signal::Done(Err(e)));
        }
    }
}
