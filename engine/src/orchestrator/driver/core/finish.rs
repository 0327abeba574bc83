//! What an attempt's outcome leads to: success, a retry after a backoff, failure;
//! fan-outs settling; cancellation.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::rt::{Detail, shared_output};
use super::{Core, RetryTimer};
use crate::error::{ErrorInfo, ErrorKind};
use crate::state::NodeState;
use crate::workflow::plan::{Plan, PlanNode};

impl Core {
    /// Refuses outputs nested too deep (measured first, without recursion: encoding
    /// to measure the size recurses per level) or over the engine's size limit.
    pub(super) fn limit_output(
        &self,
        plan: &Plan,
        n: u32,
        outcome: Result<Value, ErrorInfo>,
    ) -> Result<Value, ErrorInfo> {
        let limit = self.max_output;
        let outcome = outcome.and_then(|v| {
            crate::bounds::admit(v, crate::bounds::MAX_DEPTH).map_err(|e| {
                let node = &plan.nodes[n as usize].id;
                ErrorInfo::new(
                    ErrorKind::Output,
                    format!("the output of node `{node}` is {e}"),
                )
            })
        });
        match outcome {
            Ok(v) if crate::bounds::encoded_len_exceeds(&v, limit) => Err(ErrorInfo::new(
                ErrorKind::Output,
                format!(
                    "the output of node `{}` is larger than the {limit}-byte limit: save it as an \
                     artifact and return the artifact's reference instead",
                    plan.nodes[n as usize].id
                ),
            )),
            other => other,
        }
    }

    /// The attempts of item `i` of fan-out node `n` made before a from-failure retry
    /// put it back.
    pub(super) fn item_base(&self, n: u32, i: u32) -> u32 {
        self.nodes[n as usize]
            .fan
            .as_deref()
            .and_then(|f| f.st.get(i as usize))
            .map_or(0, |it| it.base)
    }

    /// What a failed attempt leads to; `attempts` counts the attempts against the
    /// node's retry budget (those since a from-failure retry put it back, if one did).
    pub(super) fn after_failure(
        &self,
        node: &PlanNode,
        attempts: u32,
        e: &ErrorInfo,
    ) -> Result<Duration, NodeState> {
        if self.cancelling {
            Err(NodeState::Cancelled)
        } else if e.kind.is_retryable() && attempts <= node.retries {
            Ok(node.backoff.delay(attempts))
        } else if e.kind == ErrorKind::TimedOut {
            Err(NodeState::TimedOut)
        } else {
            Err(NodeState::Failed)
        }
    }

    /// Arms a retry timer (an effect: the driver waits, then feeds
    /// [`Input::RetryDue`](super::Input::RetryDue)).
    pub(super) fn schedule_retry(&mut self, node: u32, item: Option<u32>, delay: Duration) {
        self.retries.push(RetryTimer { node, item, delay });
    }

    pub(super) fn node_finished(
        &mut self,
        plan: &Plan,
        n: u32,
        attempt: u32,
        outcome: Result<Value, ErrorInfo>,
    ) {
        if self.nodes[n as usize].state != NodeState::Running {
            return;
        }
        match outcome {
            Ok(v) => {
                let d = Detail {
                    output: Some(shared_output(v)),
                    ..Detail::default()
                };
                self.set_node(plan, n, NodeState::Succeeded, attempt, d);
                self.work.push(n);
            }
            Err(e) => {
                let node = &plan.nodes[n as usize];
                let counted = attempt.saturating_sub(self.nodes[n as usize].base);
                match self.after_failure(node, counted, &e) {
                    Ok(delay) => {
                        self.set_node(plan, n, NodeState::Retrying, attempt, Detail::error(e));
                        self.schedule_retry(n, None, delay);
                    }
                    Err(state) => {
                        let mut d = Detail::error(e);
                        if state == NodeState::Cancelled {
                            d.reason = Some("run cancelled".into());
                        }
                        self.set_node(plan, n, state, attempt, d);
                        self.work.push(n);
                    }
                }
            }
        }
    }

    pub(super) fn item_finished(
        &mut self,
        plan: &Plan,
        n: u32,
        i: u32,
        attempt: u32,
        outcome: Result<Value, ErrorInfo>,
    ) {
        let node = &plan.nodes[n as usize];
        let terminal = match outcome {
            Ok(v) => {
                let d = Detail {
                    output: Some(shared_output(v)),
                    ..Detail::default()
                };
                self.set_item(plan, n, i, NodeState::Succeeded, attempt, d);
                NodeState::Succeeded
            }
            Err(e) => {
                match self.after_failure(node, attempt.saturating_sub(self.item_base(n, i)), &e) {
                    Ok(delay) => {
                        self.set_item(plan, n, i, NodeState::Retrying, attempt, Detail::error(e));
                        self.schedule_retry(n, Some(i), delay);
                        return;
                    }
                    Err(state) => {
                        self.set_item(plan, n, i, state, attempt, Detail::error(e));
                        state
                    }
                }
            }
        };
        let Some(fan) = self.nodes[n as usize].fan.as_deref_mut() else {
            return;
        };
        fan.settled += 1;
        if terminal.is_failure() {
            fan.failed += 1;
        } else if terminal == NodeState::Cancelled {
            fan.cancelled += 1;
        }
        if fan.has_work() && !self.cancelling {
            self.enqueue(plan, n);
        }
        self.maybe_finish_fan(plan, n);
    }

    pub(super) fn maybe_finish_fan(&mut self, plan: &Plan, n: u32) {
        let Some(fan) = self.nodes[n as usize].fan.as_deref() else {
            return;
        };
        if (fan.settled as usize) < fan.items.len()
            || self.nodes[n as usize].state != NodeState::Running
        {
            return;
        }
        let (state, d) = if fan.cancelled > 0 {
            (NodeState::Cancelled, Detail::reason("run cancelled"))
        } else if fan.failed > 0 {
            let first = fan
                .st
                .iter()
                .enumerate()
                .find(|(_, it)| it.state().is_failure());
            let detail = first
                .map(|(i, it)| {
                    let msg = it.error.as_ref().map_or("", |e| e.message.as_str());
                    format!("; first: item {i}: {msg}")
                })
                .unwrap_or_default();
            let e = ErrorInfo::new(
                ErrorKind::FanOut,
                format!("{} of {} items failed{detail}", fan.failed, fan.items.len()),
            );
            (NodeState::Failed, Detail::error(e))
        } else {
            let out: Vec<Value> = fan
                .st
                .iter()
                .map(|it| it.output.as_deref().cloned().unwrap_or(Value::Null))
                .collect();
            let d = Detail {
                output: Some(Arc::new(Value::Array(out))),
                ..Detail::default()
            };
            (NodeState::Succeeded, d)
        };
        self.set_node(plan, n, state, 0, d);
        self.work.push(n);
    }

    pub(super) fn retry_due(&mut self, plan: &Plan, n: u32, item: Option<u32>) {
        match item {
            None => {
                if self.nodes[n as usize].state == NodeState::Retrying {
                    // Ready for the *next* attempt.
                    let attempt = self.nodes[n as usize].attempts + 1;
                    self.set_node(plan, n, NodeState::Ready, attempt, Detail::default());
                    self.enqueue(plan, n);
                }
            }
            Some(i) => {
                let is_retrying = self.nodes[n as usize]
                    .fan
                    .as_deref()
                    .is_some_and(|f| f.st[i as usize].state() == NodeState::Retrying);
                if !is_retrying {
                    return;
                }
                let attempt = self.nodes[n as usize]
                    .fan
                    .as_deref()
                    .map_or(0, |f| f.st[i as usize].attempts);
                self.set_item(plan, n, i, NodeState::Ready, attempt, Detail::default());
                if let Some(fan) = self.nodes[n as usize].fan.as_deref_mut() {
                    fan.retry.push_back(i);
                    let cap = plan.nodes[n as usize].concurrency.unwrap_or(u32::MAX);
                    if fan.running < cap {
                        self.enqueue(plan, n);
                    }
                }
            }
        }
    }

    /// Cancels every node and item not running; returns false when the run was
    /// already cancelling. The driver then fires the jobs' cancellation token and arms
    /// the grace deadline.
    pub(super) fn begin_cancel(&mut self, plan: &Plan) -> bool {
        if self.cancelling {
            return false;
        }
        tracing::info!(run_id = %self.run, "cancelling run");
        self.cancelling = true;
        self.ready.clear();
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
        true
    }

    /// Cancels the items of a running fan-out node that are not executing.
    pub(super) fn cancel_idle_items(&mut self, plan: &Plan, n: u32) {
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
}
