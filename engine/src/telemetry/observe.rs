//! A run's metrics, read from the events its driver writes: runs started and
//! finished, attempts by outcome, attempt durations and queue waits, attempts waiting
//! and running.
//!
//! The driver hands each step's events to [`RunObserver::observe`] as it writes
//! them, so the counters follow the run's recorded history. The per-job handles of a
//! plan are made once and shared by all its runs ([`Telemetry::plan_handles`]); a
//! run counts into local (unsynchronised) copies, added to the shared metrics every
//! half second and when the run ends, so a node's events cost a lookup by address
//! and a few plain adds, no atomic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use prometheus::local::{LocalHistogram, LocalIntCounter};
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

/// A hasher for keys that are already well spread (addresses, indices): one
/// multiplication, instead of SipHash on the hot path.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Mix(u64);

impl std::hash::Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type MixMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Mix>>;

/// A plan's handles: one slot per distinct job, each node's slot, the node ids'
/// addresses (events carry the plan's own `Arc<str>`s), and its workflow's counter.
#[derive(Debug)]
pub(crate) struct PlanHandles {
    plan: Weak<Plan>,
    slots: Vec<Arc<JobHandles>>,
    slot_of: Vec<u32>,
    by_address: MixMap<usize, u32>,
    started: IntCounter,
}

/// Most plans whose handles are kept; past it the cache starts afresh.
const MAX_PLANS: usize = 1024;

/// Plans' handles, by the plan's address (checked against a weak reference, so a new
/// plan at a dropped one's address gets its own).
#[derive(Debug, Default)]
pub(crate) struct PlanCache {
    plans: Mutex<HashMap<usize, Arc<PlanHandles>>>,
    /// Each job's handles, by name (its lane is read from its spec once).
    jobs: Mutex<HashMap<Arc<str>, Arc<JobHandles>>>,
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
        let mut slots: Vec<Arc<JobHandles>> = Vec::new();
        let mut slot_by_job: MixMap<usize, u32> = MixMap::default();
        let mut slot_of = Vec::with_capacity(plan.nodes.len());
        let mut by_address = MixMap::default();
        let mut last: Option<(&str, u32)> = None;
        for (i, n) in plan.nodes.iter().enumerate() {
            // Neighbours often run the same job: no lookup then.
            let slot = match last {
                Some((name, slot)) if name == &*n.job_name => slot,
                _ => {
                    let h = jobs
                        .entry(Arc::clone(&n.job_name))
                        .or_insert_with_key(|job| {
                            let lane = n.job.spec().queue;
                            Arc::new(JobHandles::new(
                                &self.metrics,
                                job,
                                lane.as_deref().unwrap_or(DEFAULT_LANE),
                            ))
                        });
                    let next = u32::try_from(slots.len()).unwrap_or(u32::MAX);
                    *slot_by_job
                        .entry(Arc::as_ptr(h) as usize)
                        .or_insert_with(|| {
                            slots.push(Arc::clone(h));
                            next
                        })
                }
            };
            last = Some((&n.job_name, slot));
            slot_of.push(slot);
            by_address.insert(Arc::as_ptr(&n.id) as *const u8 as usize, i as u32);
        }
        let handles = Arc::new(PlanHandles {
            plan: Arc::downgrade(plan),
            slots,
            slot_of,
            by_address,
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

/// One job's counts in one run, kept in the driver's task and added to the shared
/// metrics now and then ([`RunObserver::flush`]): no atomic per event.
#[derive(Debug)]
struct Slot {
    handles: Arc<JobHandles>,
    succeeded: LocalIntCounter,
    failed: LocalIntCounter,
    timed_out: LocalIntCounter,
    cancelled: LocalIntCounter,
    duration: LocalHistogram,
    wait: LocalHistogram,
    /// Changes of the waiting and running gauges since the last flush.
    waiting: i64,
    running: i64,
}

impl Slot {
    fn new(handles: &Arc<JobHandles>) -> Slot {
        Slot {
            succeeded: handles.succeeded.local(),
            failed: handles.failed.local(),
            timed_out: handles.timed_out.local(),
            cancelled: handles.cancelled.local(),
            duration: handles.duration.local(),
            wait: handles.wait.local(),
            waiting: 0,
            running: 0,
            handles: Arc::clone(handles),
        }
    }

    fn flush(&mut self) {
        self.succeeded.flush();
        self.failed.flush();
        self.timed_out.flush();
        self.cancelled.flush();
        self.duration.flush();
        self.wait.flush();
        self.handles.waiting.add(std::mem::take(&mut self.waiting));
        self.handles.running.add(std::mem::take(&mut self.running));
    }
}

/// How often a run's counts reach the shared metrics while it runs (and when it
/// ends).
const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// One run's observer, owned by its driver.
#[derive(Debug)]
pub(crate) struct RunObserver {
    telemetry: Arc<Telemetry>,
    plan: Arc<Plan>,
    handles: Arc<PlanHandles>,
    slots: Vec<Slot>,
    /// Nodes (not items) ready or running, with the instant they got there.
    nodes: Vec<Option<Open>>,
    /// Fan-out items ready or running.
    items: MixMap<(u32, u32), Open>,
    /// When each fan-out node became ready: its items' first attempts waited from it.
    fan_ready: MixMap<u32, SystemTime>,
    workers: i64,
    store_write: LocalHistogram,
    flushed: Instant,
}

impl RunObserver {
    pub(crate) fn new(telemetry: Arc<Telemetry>, plan: Arc<Plan>) -> RunObserver {
        let handles = telemetry.plan_handles(&plan);
        RunObserver {
            slots: handles.slots.iter().map(Slot::new).collect(),
            nodes: vec![None; plan.nodes.len()],
            items: MixMap::default(),
            fan_ready: MixMap::default(),
            workers: 0,
            store_write: telemetry.metrics.store_write.local(),
            flushed: Instant::now(),
            telemetry,
            plan,
            handles,
        }
    }

    /// Counts what a step's events say.
    pub(crate) fn observe(&mut self, events: &[Event]) {
        for e in events {
            match &e.kind {
                EventKind::Node(n) => self.node(n, e.at),
                EventKind::Run { from, to } => self.run(*from, *to),
                _ => {}
            }
        }
    }

    /// One store write of the run's events took `took`, ending at `now`; the run's
    /// counts reach the shared metrics at most every [`FLUSH_EVERY`].
    pub(crate) fn wrote(&mut self, took: Duration, now: Instant) {
        self.store_write.observe(took.as_secs_f64());
        if now.saturating_duration_since(self.flushed) >= FLUSH_EVERY {
            self.flushed = now;
            self.flush();
        }
    }

    /// Adds the run's counts so far to the shared metrics.
    fn flush(&mut self) {
        for s in &mut self.slots {
            s.flush();
        }
        self.store_write.flush();
        self.telemetry
            .metrics
            .workers_alive
            .add(std::mem::take(&mut self.workers));
    }

    fn run(&mut self, from: RunState, to: RunState) {
        if from == RunState::Pending && to == RunState::Running {
            self.handles.started.inc();
        } else if to.is_terminal() {
            // Its counts first, so that a reader who sees the run finished sees them.
            self.flush();
            self.telemetry
                .metrics
                .finished(&self.plan.name, to.as_str());
        }
    }

    fn index(&self, node: &Arc<str>) -> Option<u32> {
        let address = Arc::as_ptr(node) as *const u8 as usize;
        match self.handles.by_address.get(&address) {
            Some(&n) => Some(n),
            None => self.plan.index.get(node).copied(),
        }
    }

    fn node(&mut self, e: &NodeEvent, at: SystemTime) {
        let Some(n) = self.index(&e.node) else {
            return;
        };
        let Some(&slot) = self.handles.slot_of.get(n as usize) else {
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
        let before = match e.item {
            None => self.nodes[n as usize],
            Some(i) => self.items.get(&(n, i)).copied(),
        };
        let now = match e.to {
            NodeState::Ready => Some(Open::Ready(at)),
            NodeState::Running => Some(Open::Running(at)),
            _ => None,
        };
        match e.item {
            None => self.nodes[n as usize] = now,
            Some(i) => match now {
                Some(o) => {
                    self.items.insert((n, i), o);
                }
                None => {
                    self.items.remove(&(n, i));
                }
            },
        }
        let fan_ready = if e.attempt == 1 {
            self.fan_ready.get(&n).copied()
        } else {
            None
        };
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        match (before, e.to) {
            (Some(Open::Ready(_)), _) => s.waiting -= 1,
            (Some(Open::Running(t)), to) if to != NodeState::Running => {
                s.running -= 1;
                self.workers -= 1;
                s.duration.observe(seconds(t, at));
            }
            _ => {}
        }
        match e.to {
            NodeState::Ready => s.waiting += 1,
            NodeState::Running => {
                let since = match before {
                    Some(Open::Ready(t)) => Some(t),
                    Some(Open::Running(_)) => None,
                    None => fan_ready,
                };
                if let Some(t) = since {
                    s.wait.observe(seconds(t, at));
                }
                s.running += 1;
                self.workers += 1;
            }
            to if e.from == NodeState::Running => outcome(s, to, e).inc(),
            _ => {}
        }
    }
}

/// The counter of an attempt that left Running for `to`.
fn outcome<'s>(s: &'s Slot, to: NodeState, e: &NodeEvent) -> &'s LocalIntCounter {
    let kind = e.error.as_deref().map(|i| i.kind);
    match (to, kind) {
        (NodeState::Succeeded, _) => &s.succeeded,
        (NodeState::TimedOut, _) | (_, Some(ErrorKind::TimedOut)) => &s.timed_out,
        (NodeState::Cancelled, _) | (_, Some(ErrorKind::Cancelled)) => &s.cancelled,
        _ => &s.failed,
    }
}

fn seconds(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from).unwrap_or_default().as_secs_f64()
}

impl Drop for RunObserver {
    /// A run that stops (ended, lease lost, aborted) adds its counts and leaves
    /// nothing waiting or running in the gauges.
    fn drop(&mut self) {
        let open = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(n, o)| o.map(|o| (n as u32, o)))
            .chain(self.items.iter().map(|(&(n, _), &o)| (n, o)))
            .collect::<Vec<_>>();
        for (n, o) in open {
            let Some(s) = self
                .handles
                .slot_of
                .get(n as usize)
                .and_then(|&i| self.slots.get_mut(i as usize))
            else {
                continue;
            };
            match o {
                Open::Ready(_) => s.waiting -= 1,
                Open::Running(_) => {
                    s.running -= 1;
                    self.workers -= 1;
                }
            }
        }
        self.flush();
    }
}
