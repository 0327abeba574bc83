//! Rebuilding a resumed run from its recorded events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::Core;
use super::rt::{Detail, FanRt, ItemEvent};
use crate::error::{ErrorInfo, ErrorKind};
use crate::events::{Event, EventKind, NodeEvent};
use crate::orchestrator::RETRY_REASON_PREFIX;
use crate::state::{NodeState, RunState};
use crate::workflow::plan::Plan;

impl Core {
    /// Rebuilds the run's state from its recorded events (a resumed run); with no
    /// events this is a new run and nothing changes.
    ///
    /// Terminal nodes keep their state and output and never run again. What was in
    /// flight when the previous engine stopped is picked up: Ready nodes are queued;
    /// Retrying ones retry now (their timer died with the engine); an attempt that was
    /// Running is recorded as interrupted and runs again as a new attempt, whatever its
    /// retry budget (the crash was not the job's failure).
    ///
    /// The events a from-failure retry adds (reason [`RETRY_REASON_PREFIX`]) put nodes
    /// back to Pending and items back to Ready: their attempt numbers go on from the
    /// history, but their retry budget counts only the attempts after that event
    /// (`NodeRt::base`, `ItemRt::base`). The offset comes from the log, so resuming a
    /// retried run after a crash finds the same offset and does not reset it again.
    pub(crate) fn restore(&mut self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let plan = Arc::clone(&self.plan);
        let (items, floors) = self.rebuild(&plan, events);
        self.resume_open(&plan, items, floors);
        self.drain_work(&plan);
    }

    /// Rebuilds the run from its recorded `events` (possibly none, when they cannot be
    /// read; `recorded` is then the log's length) and fails it at once with `reason`
    /// instead of running anything more: what the engine does with a *poison* run,
    /// whose engines kept dying while driving it. Attempts recorded as running fail
    /// with `reason`; nodes that could still run fail or are skipped; the run ends
    /// Failed. Nothing starts.
    pub(crate) fn give_up(&mut self, events: Vec<Event>, recorded: u64, reason: &str) {
        let plan = Arc::clone(&self.plan);
        let (mut items, _) = self.rebuild(&plan, events);
        self.seq = self.seq.max(recorded);
        if self.state == RunState::Pending {
            self.set_run(RunState::Running);
        }
        let error = || ErrorInfo::new(ErrorKind::Interrupted, reason);
        for n in 0..self.nodes.len() as u32 {
            let attempt = self.nodes[n as usize].attempts;
            match self.nodes[n as usize].state {
                NodeState::Pending if self.nodes[n as usize].waiting == 0 => {
                    self.set_node(&plan, n, NodeState::Ready, 0, Detail::default());
                    self.set_node(&plan, n, NodeState::Failed, 0, Detail::error(error()));
                }
                NodeState::Pending => {
                    let why = format!("run given up: {reason}");
                    self.set_node(&plan, n, NodeState::Skipped, 0, Detail::reason(why));
                }
                NodeState::Retrying => {
                    self.set_node(&plan, n, NodeState::Ready, attempt, Detail::default());
                    self.set_node(&plan, n, NodeState::Failed, attempt, Detail::error(error()));
                }
                NodeState::Ready | NodeState::Running => {
                    // A fan-out's items that were running fail too.
                    let mut last: HashMap<u32, (u32, NodeState)> = HashMap::new();
                    for (item, attempt, to, ..) in items.remove(&n).unwrap_or_default() {
                        last.insert(item, (attempt, to));
                    }
                    let mut open: Vec<_> = last
                        .into_iter()
                        .filter(|(_, (_, s))| *s == NodeState::Running)
                        .collect();
                    open.sort_unstable_by_key(|(item, _)| *item);
                    for (item, (attempt, from)) in open {
                        let d = Detail::error(error());
                        self.push_transition(
                            &plan,
                            n,
                            Some(item),
                            attempt,
                            from,
                            NodeState::Failed,
                            d,
                        );
                    }
                    self.set_node(&plan, n, NodeState::Failed, attempt, Detail::error(error()));
                }
                _ => {}
            }
        }
        // Every node is settled: nothing is left to evaluate or start.
        self.work.clear();
        self.ready.clear();
    }

    /// Applies recorded `events` to the driver's state: run and node states, attempt
    /// numbers, outputs. Returns the fan-out items' recorded transitions by node, and
    /// the attempt floors of fan-outs a from-failure retry put back.
    fn rebuild(
        &mut self,
        plan: &Plan,
        events: Vec<Event>,
    ) -> (HashMap<u32, Vec<ItemEvent>>, HashMap<u32, Vec<u32>>) {
        let mut items: HashMap<u32, Vec<ItemEvent>> = HashMap::new();
        // Fan-out nodes a from-failure retry put back to Pending: each item's last
        // attempt at that point (their budget counts from there).
        let mut floors: HashMap<u32, Vec<u32>> = HashMap::new();
        for e in events {
            self.seq = e.seq;
            match e.kind {
                EventKind::Run { to, .. } => self.state = to,
                EventKind::Node(n) => {
                    let Some(&i) = plan.index.get(&*n.node) else {
                        continue;
                    };
                    let reset = put_back_by_retry(&n);
                    match n.item {
                        Some(item) => items
                            .entry(i)
                            .or_default()
                            .push((item, n.attempt, n.to, n.output, n.error, reset)),
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
                                // A Ready event carries the number of the attempt it
                                // readies (the next one), not of one that was made.
                                let made = if n.to == NodeState::Ready {
                                    n.attempt.saturating_sub(1)
                                } else {
                                    n.attempt
                                };
                                rt.attempts = rt.attempts.max(made);
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
                            if reset && n.to == NodeState::Pending {
                                // A fresh retry budget from here.
                                rt.base = rt.attempts;
                                if plan.nodes[i as usize].fan_out.is_some() {
                                    // Its items will be expanded again: their earlier
                                    // states go, their attempt numbers stay.
                                    let before = items.remove(&i);
                                    let f = floors.entry(i).or_default();
                                    raise(f, before.as_deref().unwrap_or_default());
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
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
        (items, floors)
    }

    /// Picks up what was in flight when the previous engine stopped (see
    /// [`restore`](Self::restore)).
    fn resume_open(
        &mut self,
        plan: &Arc<Plan>,
        mut items: HashMap<u32, Vec<ItemEvent>>,
        mut floors: HashMap<u32, Vec<u32>>,
    ) {
        let plan = Arc::clone(plan);
        // A fan-out put back to Pending after its items ran expands its items again:
        // they go on from their last recorded attempts.
        for (&n, floor) in &floors {
            let state = self.nodes[n as usize].state;
            if !state.is_terminal() && state != NodeState::Running {
                self.nodes[n as usize].item_floor = Some(floor.clone().into_boxed_slice());
            }
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
                    let floor = floors.remove(&n).unwrap_or_default();
                    self.restore_fan(&plan, n, recorded, &floor);
                }
                _ => {}
            }
        }
    }

    /// Rebuilds a running fan-out node: items are recomputed from the (recorded)
    /// upstream outputs, their states come from the events. `floor`: the items' last
    /// attempts when a from-failure retry put the whole node back to Pending.
    fn restore_fan(&mut self, plan: &Plan, n: u32, recorded: Vec<ItemEvent>, floor: &[u32]) {
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
        for (item, attempt, to, output, error, reset) in recorded {
            let Some(it) = fan.st.get_mut(item as usize) else {
                continue;
            };
            if reset || to == NodeState::Pending {
                // Put back by a retry: what the old attempts left goes, and the retry
                // budget starts afresh.
                it.output = None;
                it.error = None;
            }
            it.state = Some(to);
            it.attempts = it.attempts.max(attempt);
            if reset {
                it.base = it.attempts;
            }
            if output.is_some() {
                it.output = output;
            }
            if let Some(e) = error {
                it.error = Some(*e);
            }
        }
        for (it, &f) in fan.st.iter_mut().zip(floor) {
            // The latest put-back counts: a node-level one, or an item's own later one.
            it.attempts = it.attempts.max(f);
            it.base = it.base.max(f);
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

/// Whether `n` is one of the events a from-failure retry adds to put a node or an item
/// back (see `orchestrator::retry`).
fn put_back_by_retry(n: &NodeEvent) -> bool {
    n.reason
        .as_deref()
        .is_some_and(|r| r.starts_with(RETRY_REASON_PREFIX))
}

/// Raises `floor` (each item's last attempt, by item index) to the attempts in
/// `recorded`.
fn raise(floor: &mut Vec<u32>, recorded: &[ItemEvent]) {
    for &(item, attempt, ..) in recorded {
        let i = item as usize;
        if floor.len() <= i {
            floor.resize(i + 1, 0);
        }
        floor[i] = floor[i].max(attempt);
    }
}
