//! The run's DAG walk as a state machine with no I/O.
//!
//! [`Core`] holds every node's and item's state and decides what happens next:
//! readiness and trigger rules (`walk.rs`), fan-out expansion and dispatch order
//! (`walk.rs`), the outcome of an attempt, retries and their backoff, cancellation and
//! skip propagation (`finish.rs`), and rebuilding a resumed run from its events
//! (`restore.rs`). Inputs come in through [`Core::on`] (and [`Core::dispatch_one`] when
//! the driver holds a concurrency permit); what the driver must do comes out as
//! effects: the events to append ([`Core::events`]), the attempts to start
//! ([`Dispatch::Start`]) and the retry timers to arm ([`Core::take_retries`]). The
//! driver (`super`) does the I/O: store writes, executors, timers, signals, permits.
//! The core never reads a clock: the driver passes the time in ([`Core::clock`]).

mod finish;
mod restore;
mod rt;
#[cfg(test)]
mod tests;
mod transition;
mod walk;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::time::Instant;

use super::super::result::{ItemReport, NodeReport, RunResult};
use crate::error::ErrorInfo;
use crate::events::{Event, EventKind};
use crate::ids::RunId;
use crate::log_level::LogLevel;
use crate::state::{NodeState, RunState};
use crate::workflow::plan::{Plan, Values};

use rt::{NodeRt, ReadyQueue};

/// Something that happened to the run, fed to [`Core::on`].
#[derive(Debug)]
pub(crate) enum Input {
    /// An attempt ended with `outcome`.
    Done {
        node: u32,
        item: Option<u32>,
        attempt: u32,
        outcome: Result<Value, ErrorInfo>,
    },
    /// A running attempt logged a line.
    Log {
        node: u32,
        item: Option<u32>,
        attempt: u32,
        level: LogLevel,
        message: String,
    },
    /// A running attempt reported progress.
    Progress {
        node: u32,
        item: Option<u32>,
        attempt: u32,
        percent: u8,
        message: String,
    },
    /// A retry's backoff elapsed.
    RetryDue { node: u32, item: Option<u32> },
    /// The run was asked to cancel.
    Cancel,
}

/// An attempt the core decided to start (once its events are stored).
#[derive(Debug)]
pub(crate) struct Start {
    pub(crate) node: u32,
    pub(crate) item: Option<u32>,
    pub(crate) attempt: u32,
    pub(crate) input: Value,
}

/// What [`Core::dispatch_one`] did with the concurrency permit it was offered.
#[derive(Debug)]
pub(crate) enum Dispatch {
    /// Start this attempt with the permit.
    Start(Start),
    /// The node settled without an attempt (its input could not be built, or an
    /// empty fan-out): the permit goes back.
    Settled,
    /// Nothing to start after all: keep the permit for the next one.
    Idle,
}

/// A retry timer to arm: `node` (item `item`) becomes ready again after `delay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryTimer {
    pub(crate) node: u32,
    pub(crate) item: Option<u32>,
    pub(crate) delay: Duration,
}

/// The pure state of one run (see the module docs).
pub(crate) struct Core {
    run: RunId,
    plan: Arc<Plan>,
    params: Vec<Value>,
    nodes: Vec<NodeRt>,
    ready: ReadyQueue,
    work: Vec<u32>,
    seq: u64,
    batch: Vec<Event>,
    retries: Vec<RetryTimer>,
    unsettled: usize,
    state: RunState,
    cancelling: bool,
    max_output: usize,
    now: SystemTime,
    tick: Instant,
}

impl Values for Core {
    fn output(&self, n: u32) -> Option<&Value> {
        let rt = &self.nodes[n as usize];
        if rt.state == NodeState::Succeeded {
            rt.output.as_deref()
        } else {
            None
        }
    }

    fn param(&self, i: u32) -> &Value {
        &self.params[i as usize]
    }
}

impl Core {
    /// A new run of `plan`; `max_output` bounds an attempt's encoded output, `now` and
    /// `tick` are the time of its first step.
    pub(crate) fn new(
        run: RunId,
        plan: Arc<Plan>,
        params: Vec<Value>,
        max_output: usize,
        now: SystemTime,
        tick: Instant,
    ) -> Self {
        let nodes = (0..plan.nodes.len() as u32)
            .map(|i| NodeRt {
                state: NodeState::Pending,
                waiting: plan.parents(i).len() as u32,
                attempts: 0,
                base: 0,
                item_floor: None,
                queued: false,
                start: None,
                end: None,
                output: None,
                error: None,
                reason: None,
                fan: None,
            })
            .collect();
        Core {
            run,
            unsettled: plan.nodes.len(),
            plan,
            params,
            nodes,
            ready: ReadyQueue::default(),
            work: Vec::new(),
            seq: 0,
            batch: Vec::with_capacity(256),
            retries: Vec::new(),
            state: RunState::Pending,
            cancelling: false,
            max_output,
            now,
            tick,
        }
    }

    /// Sets the time the next inputs happen at.
    #[inline]
    pub(crate) fn clock(&mut self, now: SystemTime, tick: Instant) {
        self.now = now;
        self.tick = tick;
    }

    /// The time of the last [`clock`](Self::clock).
    #[inline]
    pub(crate) fn tick(&self) -> Instant {
        self.tick
    }

    /// The run's state.
    #[inline]
    pub(crate) fn state(&self) -> RunState {
        self.state
    }

    /// Whether the run is being cancelled.
    #[inline]
    pub(crate) fn cancelling(&self) -> bool {
        self.cancelling
    }

    /// Whether some node or item has not settled.
    #[inline]
    pub(crate) fn unsettled(&self) -> bool {
        self.unsettled > 0
    }

    /// Whether something is ready to start (given a permit).
    #[inline]
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The events decided since the last write: the driver appends them, in order.
    #[inline]
    pub(crate) fn events(&mut self) -> &mut Vec<Event> {
        &mut self.batch
    }

    /// The retry timers decided since the last call: the driver arms them.
    #[inline]
    pub(crate) fn take_retries(&mut self) -> std::vec::Drain<'_, RetryTimer> {
        self.retries.drain(..)
    }

    /// Marks a run whose state was restored Running (the driver of a fresh run calls
    /// [`begin`](Self::begin) after looking for a cancellation request first).
    pub(crate) fn mark_running(&mut self) {
        if self.state == RunState::Pending {
            self.set_run(RunState::Running);
        }
    }

    /// Evaluates the roots of a fresh run (after [`mark_running`](Self::mark_running)).
    pub(crate) fn evaluate_roots(&mut self) {
        let plan = Arc::clone(&self.plan);
        for &r in &plan.roots {
            self.evaluate(&plan, r);
        }
        self.drain_work(&plan);
    }

    /// Applies one input; its effects land in [`events`](Self::events) and
    /// [`take_retries`](Self::take_retries).
    pub(crate) fn on(&mut self, input: Input) {
        let plan = Arc::clone(&self.plan);
        match input {
            Input::Done {
                node,
                item,
                attempt,
                outcome,
            } => {
                let outcome = self.limit_output(&plan, node, outcome);
                match item {
                    None => self.node_finished(&plan, node, attempt, outcome),
                    Some(i) => {
                        if let Some(fan) = self.nodes[node as usize].fan.as_deref_mut() {
                            fan.running -= 1;
                        }
                        self.item_finished(&plan, node, i, attempt, outcome);
                    }
                }
            }
            Input::Log {
                node,
                item,
                attempt,
                level,
                message,
            } => {
                let kind = EventKind::Log {
                    node: plan.nodes[node as usize].id.clone(),
                    item,
                    attempt,
                    level,
                    message,
                };
                self.push_event(kind);
            }
            Input::Progress {
                node,
                item,
                attempt,
                percent,
                message,
            } => {
                let kind = EventKind::Progress {
                    node: plan.nodes[node as usize].id.clone(),
                    item,
                    attempt,
                    percent,
                    message,
                };
                self.push_event(kind);
            }
            Input::RetryDue { node, item } => self.retry_due(&plan, node, item),
            Input::Cancel => {
                self.begin_cancel(&plan);
            }
        }
    }

    /// Settles what the inputs applied so far unblocked (children of settled nodes).
    pub(crate) fn propagate(&mut self) {
        let plan = Arc::clone(&self.plan);
        self.drain_work(&plan);
    }

    /// Ends the run once nothing is unsettled or running: Cancelled, Failed or
    /// Succeeded.
    pub(crate) fn finish(&mut self) {
        let end = if self.cancelling {
            RunState::Cancelled
        } else if self.nodes.iter().any(|n| n.state.is_failure()) {
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        self.set_run(end);
    }

    /// The run's report; `started` is when the driver started.
    pub(crate) fn result(&mut self, started: Instant) -> RunResult {
        let plan = Arc::clone(&self.plan);
        let nodes = plan
            .nodes
            .iter()
            .zip(self.nodes.iter_mut())
            .map(|(p, rt)| {
                let duration = match (rt.start, rt.end) {
                    (Some(s), Some(e)) => Some(e.saturating_duration_since(s)),
                    _ => None,
                };
                let items = rt
                    .fan
                    .as_deref()
                    .map(|f| {
                        f.st.iter()
                            .enumerate()
                            .map(|(i, it)| ItemReport {
                                index: i as u32,
                                state: it.state(),
                                attempts: it.attempts,
                                duration: match (it.start, it.end) {
                                    (Some(s), Some(e)) => Some(e.saturating_duration_since(s)),
                                    _ => None,
                                },
                                error: it.error.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let output = rt
                    .output
                    .take()
                    .map(|o| Arc::try_unwrap(o).unwrap_or_else(|a| (*a).clone()));
                NodeReport {
                    id: Arc::clone(&p.id),
                    job: Arc::clone(&p.job_name),
                    state: rt.state,
                    attempts: rt.attempts,
                    duration,
                    output,
                    error: rt.error.take().map(|e| *e),
                    reason: rt.reason.as_deref().map(str::to_owned),
                    items,
                }
            })
            .collect();
        RunResult {
            id: self.run,
            workflow: plan.name.clone(),
            state: self.state,
            duration: self.tick.saturating_duration_since(started),
            nodes,
        }
    }
}
