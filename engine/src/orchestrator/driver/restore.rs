//! Rebuilding a resumed run from its recorded events.

use std::sync::Arc;
use std::time::Duration;

use super::{Detail, Driver, FanRt, ItemEvent};
use crate::error::{ErrorInfo, ErrorKind};
use crate::events::{Event, EventKind};
use crate::state::NodeState;
use crate::workflow::plan::Plan;

impl Driver {
    /// Rebuilds the run's state from its recorded events (a resumed run); with no
    /// events this is a new run and nothing changes.
    ///
    /// Terminal nodes keep their state and output and never run again. What was in
    /// flight when the previous engine stopped is picked up: Ready nodes are queued;
    /// Retrying ones retry now (their timer died with the engine); an attempt that was
    /// Running is recorded as interrupted and runs again as a new attempt, whatever its
    /// retry budget (the crash was not the job's failure).
    pub(crate) fn restore(mut self, events: Vec<Event>) -> Self {
        if events.is_empty() {
            return self;
        }
        let plan = Arc::clone(&self.plan);
        let mut items: std::collections::HashMap<u32, Vec<ItemEvent>> = Default::default();
        for e in events {
            self.seq = e.seq;
            match e.kind {
                EventKind::Run { to, .. } => self.state = to,
                EventKind::Node(n) => {
                    let Some(&i) = plan.index.get(&*n.node) else {
                        continue;
                    };
                    match n.item {
                        Some(item) => items
                            .entry(i)
                            .or_default()
                            .push((item, n.attempt, n.to, n.output, n.error)),
                        None => {
                            let rt = &mut self.nodes[i as usize];
                            if n.to == NodeState::Pending {
                                // Put back by a retry: what the old attempts left goes.
                                rt.output = None;
                                rt.error = None;
                                rt.reason = None;
                            }
                            rt.state = n.to;
                            if n.item.is_none() && plan.nodes[i as usize].fan_out.is_none() {
                                rt.attempts = rt.attempts.max(n.attempt);
                            }
                            if n.output.is_some() {
                                rt.output = n.output;
                            }
                            if n.error.is_some() {
                                rt.error = n.error;
                            }
                            if n.reason.is_some() {
                                rt.reason = n.reason;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        self.clock();
        self.unsettled = self.nodes.iter().filter(|n| !n.state.is_terminal()).count();
        for n in 0..self.nodes.len() as u32 {
            if self.nodes[n as usize].state.is_terminal() {
                self.nodes[n as usize].end = Some(self.tick);
            }
            let waiting = plan
                .parents(n)
                .iter()
                .filter(|&&p| !self.nodes[p as usize].state.is_terminal())
                .count() as u32;
            self.nodes[n as usize].waiting = waiting;
        }
        let interrupted = || {
            ErrorInfo::new(
                ErrorKind::Interrupted,
                "interrupted: the engine running this attempt stopped",
            )
        };
        for n in 0..self.nodes.len() as u32 {
            let state = self.nodes[n as usize].state;
            let is_fan = plan.nodes[n as usize].fan_out.is_some();
            match state {
                NodeState::Pending if self.nodes[n as usize].waiting == 0 => {
                    self.evaluate(&plan, n);
                }
                NodeState::Ready => self.enqueue(&plan, n),
                NodeState::Retrying => self.schedule_retry(n, None, Duration::ZERO),
                NodeState::Running if !is_fan => {
                    let attempt = self.nodes[n as usize].attempts;
                    self.nodes[n as usize].start = Some(self.tick);
                    self.set_node(
                        &plan,
                        n,
                        NodeState::Retrying,
                        attempt,
                        Detail::error(interrupted()),
                    );
                    self.schedule_retry(n, None, Duration::ZERO);
                }
                NodeState::Running => {
                    let recorded = items.remove(&n).unwrap_or_default();
                    self.restore_fan(&plan, n, recorded);
                }
                _ => {}
            }
        }
        self.drain_work(&plan);
        self
    }

    /// Rebuilds a running fan-out node: items are recomputed from the (recorded)
    /// upstream outputs, their states come from the events.
    fn restore_fan(&mut self, plan: &Plan, n: u32, recorded: Vec<ItemEvent>) {
        let node = &plan.nodes[n as usize];
        let expanded = node
            .build_input(&*self)
            .and_then(|base| node.fan_out_items(plan, &*self).map(|items| (base, items)));
        let (base, items) = match expanded {
            Ok(x) => x,
            Err(msg) => {
                let e = ErrorInfo::new(
                    ErrorKind::FanOut,
                    format!("cannot resume the fan-out: {msg}"),
                );
                self.set_node(plan, n, NodeState::Failed, 0, Detail::error(e));
                self.work.push(n);
                return;
            }
        };
        let mut fan = FanRt::new(base, items);
        for (item, attempt, to, output, error) in recorded {
            let Some(it) = fan.st.get_mut(item as usize) else {
                continue;
            };
            if to == NodeState::Pending {
                // Put back by a retry.
                it.output = None;
                it.error = None;
            }
            it.state = Some(to);
            it.attempts = it.attempts.max(attempt);
            if output.is_some() {
                it.output = output;
            }
            if let Some(e) = error {
                it.error = Some(*e);
            }
        }
        fan.next = fan.items.len() as u32;
        let mut interrupted = Vec::new();
        let mut retrying = Vec::new();
        for (i, it) in fan.st.iter().enumerate() {
            let s = it.state();
            if s.is_terminal() {
                fan.settled += 1;
                if s.is_failure() {
                    fan.failed += 1;
                } else if s == NodeState::Cancelled {
                    fan.cancelled += 1;
                }
            } else if s == NodeState::Running {
                interrupted.push((i as u32, it.attempts));
            } else if s == NodeState::Retrying {
                retrying.push(i as u32);
            } else {
                fan.retry.push_back(i as u32);
            }
        }
        self.nodes[n as usize].attempts = fan.st.iter().map(|it| it.attempts).sum();
        self.nodes[n as usize].start = Some(self.tick);
        self.nodes[n as usize].fan = Some(Box::new(fan));
        for (i, attempt) in interrupted {
            let e = ErrorInfo::new(
                ErrorKind::Interrupted,
                "interrupted: the engine running this attempt stopped",
            );
            self.set_item(plan, n, i, NodeState::Retrying, attempt, Detail::error(e));
            self.schedule_retry(n, Some(i), Duration::ZERO);
        }
        for i in retrying {
            self.schedule_retry(n, Some(i), Duration::ZERO);
        }
        if self.nodes[n as usize]
            .fan
            .as_deref()
            .is_some_and(FanRt::has_work)
        {
            self.enqueue(plan, n);
        }
        self.maybe_finish_fan(plan, n);
    }
}
