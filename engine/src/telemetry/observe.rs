//! A run's metrics, read from the events its driver writes: runs started and
//! finished, attempts by outcome, attempt durations and queue waits, attempts waiting
//! and running.
//!
//! The driver hands each step's events to [`RunObserver::observe`] as it writes
//! them, so the counters follow the run's recorded history. The per-job handles of a
//! plan are made once and shared by all its runs ([`Telemetry::plan_handles`]), so a
//! node's events cost an index lookup, an atomic add and, at the attempt's end, a
//! histogram observation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use prometheus::{Histogram, IntCounter, IntGauge};

use super::Telemetry;
use super::metrics::{DEFAULT_LANE, Metrics};
use crate::error::ErrorKind;
use crate::events::{Event, EventKind, NodeEvent};
use crate::state::{NodeState, RunState};
use crate::workflow::plan::Plan;

/// The metric handles of one job (shared by every node running it).
#[derive(Debug)]
pub(crate) struct JobHandles {
    succeeded: IntCounter,
    failed: IntCounter,
    timed_out: IntCounter,
    cancelled: IntCounter,
    duration: Histogram,
    wait: Histogram,
    waiting: IntGauge,
    running: IntGauge,
}

impl JobHandles {
    fn new(m: &Metrics, job: &str, lane: &str) -> JobHandles {
        let job = m.jobs.admit(job);
        let lane = m.lanes.admit(lane);
        let outcome = |o: &str| m.attempts.with_label_values(&[job, o]);
        JobHandles {
            succeeded: outcome("succeeded"),
            failed: outcome("failed"),
            timed_out: outcome("timed_out"),
            cancelled: outcome("cancelled"),
            duration: m.attempt_duration.with_label_values(&[job]),
            wait: m.queue_wait.with_label_values(&[job]),
            waiting: m.attempts_waiting.with_label_values(&[lane]),
            running: m.attempts_running.with_label_values(&[lane]),
        }
    }
}

/// A plan's handles: per node (by index), and the run counter of its workflow.
#[derive(Debug)]
pub(crate) struct PlanHandles {
    plan: Weak<Plan>,
    nodes: Vec<Arc<JobHandles>>,
    started: IntCounter,
}

/// Most plans whose handles are kept; past it the cache starts afresh.
const MAX_PLANS: usize = 1024;

/// Plans' handles, by the plan's address (checked against a weak reference, so a new
/// plan at a dropped one's address gets its own).
#[derive(Debug, Default)]
pub(crate) struct PlanCache {
    plans: Mutex<HashMap<usize, Arc<PlanHandles>>>,
    jobs: Mutex<HashMap<(Arc<str>, Option<String>), Arc<JobHandles>>>,
}

impl Telemetry {
    /// The handles of `plan`'s nodes, made on its first run.
    pub(crate) fn plan_handles(&self, plan: &Arc<Plan>) -> Arc<PlanHandles> {
        let key = Arc::as_ptr(plan) as usize;
        let mut plans = self.cache.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = plans.get(&key)
            && h.plan.upgrade().is_some_and(|p| Arc::ptr_eq(&p, plan))
        {
            return Arc::clone(h);
        }
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        let mut jobs = self.cache.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let nodes = plan
            .nodes
            .iter()
            .map(|n| {
                let lane = n.job.spec().queue;
                let key = (Arc::clone(&n.job_name), lane);
                Arc::clone(jobs.entry(key).or_insert_with_key(|(job, lane)| {
                    Arc::new(JobHandles::new(
                        &self.metrics,
                        job,
                        lane.as_deref().unwrap_or(DEFAULT_LANE),
                    ))
                }))
            })
            .collect();
        let handles = Arc::new(PlanHandles {
            plan: Arc::downgrade(plan),
            nodes,
            started: self.metrics.started(&plan.name),
        });
        plans.insert(key, Arc::clone(&handles));
        handles
    }
}

/// Where a node (or item) was when last seen, for waits and durations.
#[derive(Debug, Clone, Copy)]
enum Open {
    Ready(SystemTime),
    Running(SystemTime),
}

/// One run's observer, owned by its driver.
#[derive(Debug)]
pub(crate) struct RunObserver {
    telemetry: Arc<Telemetry>,
    plan: Arc<Plan>,
    handles: Arc<PlanHandles>,
    /// Nodes and items ready or running, with the instant they got there.
    open: HashMap<(u32, Option<u32>), Open>,
    /// When each fan-out node became ready: its items' first attempts waited from it.
    fan_ready: HashMap<u32, SystemTime>,
}

impl RunObserver {
    pub(crate) fn new(telemetry: Arc<Telemetry>, plan: Arc<Plan>) -> RunObserver {
        let handles = telemetry.plan_handles(&plan);
        RunObserver {
            telemetry,
            plan,
            handles,
            open: HashMap::new(),
            fan_ready: HashMap::new(),
        }
    }

    /// Counts what a step's written events say.
    pub(crate) fn observe(&mut self, events: &[Event]) {
        for e in events {
            match &e.kind {
                EventKind::Node(n) => self.node(n, e.at),
                EventKind::Run { from, to } => self.run(*from, *to),
                _ => {}
            }
        }
    }

    /// The time one store write of the run's events took.
    pub(crate) fn wrote(&self, took: std::time::Duration) {
        self.telemetry
            .metrics
            .store_write
            .observe(took.as_secs_f64());
    }

    fn run(&self, from: RunState, to: RunState) {
        if from == RunState::Pending && to == RunState::Running {
            self.handles.started.inc();
        } else if to.is_terminal() {
            self.telemetry
                .metrics
                .finished(&self.plan.name, to.as_str());
        }
    }

    fn node(&mut self, e: &NodeEvent, at: SystemTime) {
        let Some(&n) = self.plan.index.get(&e.node) else {
            return;
        };
        let Some(h) = self.handles.nodes.get(n as usize) else {
            return;
        };
        let fan = self.plan.nodes[n as usize].fan_out.is_some();
        if fan && e.item.is_none() {
            // The fan-out node itself runs no attempt: its items do.
            match e.to {
                NodeState::Ready => {
                    self.fan_ready.insert(n, at);
                }
                s if s.is_terminal() => {
                    self.fan_ready.remove(&n);
                }
                _ => {}
            }
            return;
        }
        let key = (n, e.item);
        match e.to {
            NodeState::Ready => {
                h.waiting.inc();
                self.open.insert(key, Open::Ready(at));
            }
            NodeState::Running => {
                let since = match self.open.get(&key) {
                    Some(Open::Ready(t)) => {
                        h.waiting.dec();
                        Some(*t)
                    }
                    Some(Open::Running(_)) => None,
                    None if e.attempt == 1 => self.fan_ready.get(&n).copied(),
                    None => None,
                };
                if let Some(t) = since {
                    h.wait.observe(seconds(t, at));
                }
                h.running.inc();
                self.telemetry.metrics.workers_alive.inc();
                self.open.insert(key, Open::Running(at));
            }
            to => {
                match self.open.remove(&key) {
                    Some(Open::Running(t)) => {
                        h.running.dec();
                        self.telemetry.metrics.workers_alive.dec();
                        h.duration.observe(seconds(t, at));
                    }
                    Some(Open::Ready(_)) => h.waiting.dec(),
                    None => {}
                }
                if e.from == NodeState::Running {
                    outcome(h, to, e).inc();
                }
            }
        }
    }
}

/// The counter of an attempt that left Running for `to`.
fn outcome<'h>(h: &'h JobHandles, to: NodeState, e: &NodeEvent) -> &'h IntCounter {
    let kind = e.error.as_deref().map(|i| i.kind);
    match (to, kind) {
        (NodeState::Succeeded, _) => &h.succeeded,
        (NodeState::TimedOut, _) | (_, Some(ErrorKind::TimedOut)) => &h.timed_out,
        (NodeState::Cancelled, _) | (_, Some(ErrorKind::Cancelled)) => &h.cancelled,
        _ => &h.failed,
    }
}

fn seconds(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from).unwrap_or_default().as_secs_f64()
}

impl Drop for RunObserver {
    /// A run that stops (ended, lease lost, aborted) leaves nothing waiting or running
    /// in the gauges.
    fn drop(&mut self) {
        for ((n, _), open) in self.open.drain() {
            let Some(h) = self.handles.nodes.get(n as usize) else {
                continue;
            };
            match open {
                Open::Ready(_) => h.waiting.dec(),
                Open::Running(_) => {
                    h.running.dec();
                    self.telemetry.metrics.workers_alive.dec();
                }
            }
        }
    }
}
