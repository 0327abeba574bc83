//! The core on its own: random small DAGs (random edges, trigger rules, retries,
//! fan-outs, priorities and concurrency caps) driven by random sequences of
//! dispatches, outcomes, retry timers and a cancellation at a random point, with no
//! executor, store, timer or clock. Each run is checked against the walk's
//! invariants.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use proptest::prelude::*;
use serde_json::Value;
use tokio::time::Instant;

use super::{Core, Dispatch, Input, RetryTimer};
use crate::context::JobContext;
use crate::error::{ErrorInfo, ErrorKind, JobError};
use crate::events::{Event, EventKind};
use crate::ids::RunId;
use crate::job::Job;
use crate::state::{NodeState, RunState};
use crate::workflow::plan::Plan;
use crate::workflow::{Source, TriggerRule, Workflow};

struct Noop;
impl Job for Noop {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "noop";
    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        Ok(())
    }
}

/// One node of a random DAG; parents have smaller indices (so it is acyclic).
#[derive(Clone, Debug)]
struct NodeSpec {
    parents: Vec<usize>,
    trigger: TriggerRule,
    retries: u32,
    /// A fan-out over this many items.
    items: Option<usize>,
    cap: Option<u32>,
    priority: i32,
}

fn node_spec(i: usize) -> impl Strategy<Value = NodeSpec> {
    let rules = prop_oneof![
        Just(TriggerRule::AllSuccess),
        Just(TriggerRule::AllDone),
        Just(TriggerRule::OneFailed),
        Just(TriggerRule::NoneFailed),
    ];
    (
        any::<u8>(),
        rules,
        0u32..=2,
        prop::option::weighted(0.3, 0usize..=3),
        prop::option::of(1u32..=2),
        -1i32..=1,
    )
        .prop_map(
            move |(mask, trigger, retries, items, cap, priority)| NodeSpec {
                parents: (0..i).filter(|p| mask & (1 << (p % 8)) != 0).collect(),
                trigger,
                retries,
                items,
                cap,
                priority,
            },
        )
}

fn dag() -> impl Strategy<Value = Vec<NodeSpec>> {
    (1usize..=8).prop_flat_map(|n| (0..n).map(node_spec).collect::<Vec<_>>())
}

fn plan(specs: &[NodeSpec]) -> Arc<Plan> {
    let mut wf = Workflow::builder("prop");
    for (i, s) in specs.iter().enumerate() {
        let mut node = wf
            .add(format!("n{i}"), Noop)
            .trigger(s.trigger)
            .retries(s.retries)
            .priority(s.priority);
        for &p in &s.parents {
            node = node.after_named(&format!("n{p}"));
        }
        if let Some(c) = s.cap {
            node = node.concurrency(c);
        }
        if let Some(k) = s.items {
            node.each_input(Source::value(vec![(); k]));
        }
    }
    Arc::clone(&wf.build().expect("a valid random DAG").plan)
}

fn rule_holds(rule: TriggerRule, parents: &[NodeState]) -> bool {
    match rule {
        TriggerRule::AllDone => true,
        TriggerRule::AllSuccess => parents.iter().all(|s| *s == NodeState::Succeeded),
        TriggerRule::NoneFailed => !parents.iter().any(|s| s.is_failure()),
        TriggerRule::OneFailed => parents.iter().any(|s| s.is_failure()),
    }
}

fn outcome(pick: u8) -> Result<Value, ErrorInfo> {
    match pick % 4 {
        0 | 1 => Ok(Value::Null),
        2 => Err(ErrorInfo::new(ErrorKind::Failed, "boom")),
        _ => Err(ErrorInfo::new(ErrorKind::Input, "bad input")),
    }
}

/// A test executor and timer wheel around one core, checking invariants as it goes.
struct Sim {
    core: Core,
    plan: Arc<Plan>,
    running: Vec<(u32, Option<u32>, u32)>,
    timers: Vec<RetryTimer>,
    /// Last attempt started, by node and item.
    attempts: HashMap<(u32, Option<u32>), u32>,
    /// Recorded state of each node and item, from the events.
    recorded: HashMap<(u32, Option<u32>), NodeState>,
    seq: u64,
    cancelled: bool,
    /// Nodes neither settled nor running when the run was cancelled.
    idle_at_cancel: Vec<u32>,
    /// Every event so far: the store's log.
    log: Vec<Event>,
    /// Whether the engine crashed and another resumed the run from its log.
    resumed: bool,
}

impl Sim {
    fn new(plan: Arc<Plan>) -> Sim {
        let mut core = Core::new(
            RunId::new(),
            Arc::clone(&plan),
            Vec::new(),
            1 << 20,
            SystemTime::UNIX_EPOCH,
            Instant::now(),
        );
        core.mark_running();
        core.evaluate_roots();
        let mut sim = Sim {
            core,
            plan,
            running: Vec::new(),
            timers: Vec::new(),
            attempts: HashMap::new(),
            recorded: HashMap::new(),
            seq: 0,
            cancelled: false,
            idle_at_cancel: Vec::new(),
            log: Vec::new(),
            resumed: false,
        };
        sim.effects();
        sim
    }

    fn state(&self, n: u32) -> NodeState {
        self.core.nodes[n as usize].state
    }

    /// Takes the core's effects: checks the events, arms the timers.
    fn effects(&mut self) {
        self.core.propagate();
        let events: Vec<Event> = std::mem::take(self.core.events());
        self.log.extend(events.iter().cloned());
        for e in events {
            assert_eq!(e.seq, self.seq + 1, "events are numbered densely");
            self.seq = e.seq;
            if let EventKind::Node(ne) = e.kind {
                let n = self.plan.index[&*ne.node];
                let initial = if ne.item.is_some() {
                    NodeState::Ready
                } else {
                    NodeState::Pending
                };
                let key = (n, ne.item);
                let from = self.recorded.get(&key).copied().unwrap_or(initial);
                assert_eq!(ne.from, from, "node {n} item {:?}: event from", ne.item);
                assert!(from.transition(ne.to).is_ok(), "{from} → {}", ne.to);
                self.recorded.insert(key, ne.to);
            }
        }
        let retries: Vec<RetryTimer> = self.core.take_retries().collect();
        for t in retries {
            assert!(
                !self.cancelled,
                "no retry is armed once the run is cancelling"
            );
            self.timers.push(t);
        }
    }

    fn dispatch(&mut self) {
        match self.core.dispatch_one() {
            Dispatch::Start(s) => {
                assert!(!self.cancelled, "nothing starts once the run is cancelling");
                let parents: Vec<NodeState> = self
                    .plan
                    .parents(s.node)
                    .iter()
                    .map(|&p| self.state(p))
                    .collect();
                assert!(
                    parents.iter().all(|p| p.is_terminal()),
                    "node {} started before its upstream settled: {parents:?}",
                    s.node
                );
                let pn = &self.plan.nodes[s.node as usize];
                assert!(
                    rule_holds(pn.trigger, &parents),
                    "node {} ran against its rule",
                    s.node
                );
                let key = (s.node, s.item);
                let last = self.attempts.insert(key, s.attempt).unwrap_or(0);
                // Never repeated nor skipped, across a resume too.
                assert_eq!(s.attempt, last + 1, "attempt numbers go up by one");
                // An attempt interrupted by a crash runs again whatever its budget.
                assert!(
                    self.resumed || s.attempt <= pn.retries + 1,
                    "attempts within the retry budget"
                );
                self.running.push((s.node, s.item, s.attempt));
            }
            Dispatch::Settled | Dispatch::Idle => {}
        }
        self.effects();
    }

    fn finish(&mut self, k: usize, result: Result<Value, ErrorInfo>) {
        let (node, item, attempt) = self.running.swap_remove(k);
        self.core.on(Input::Done {
            node,
            item,
            attempt,
            outcome: result,
        });
        self.effects();
    }

    fn cancel(&mut self) {
        self.idle_at_cancel = (0..self.plan.nodes.len() as u32)
            .filter(|&n| {
                let s = self.state(n);
                !s.is_terminal() && s != NodeState::Running
            })
            .collect();
        self.cancelled = true;
        self.core.on(Input::Cancel);
        self.effects();
    }

    /// The engine dies: its attempts and timers go; another engine rebuilds the run
    /// from the log and goes on.
    fn crash(&mut self) {
        self.running.clear();
        self.timers.clear();
        let mut core = Core::new(
            RunId::new(),
            Arc::clone(&self.plan),
            Vec::new(),
            1 << 20,
            SystemTime::UNIX_EPOCH,
            Instant::now(),
        );
        core.restore(self.log.clone());
        self.core = core;
        self.resumed = true;
        self.effects();
    }

    /// Drives the run to its end with `script` (then a default that always makes
    /// progress); cancels before step `cancel_at` and crashes before step `crash_at`
    /// if set.
    fn drive(&mut self, script: &[(u8, u8)], cancel_at: Option<usize>, crash_at: Option<usize>) {
        for step in 0.. {
            assert!(step < 10_000, "the run does not end");
            if !self.core.unsettled() && self.running.is_empty() {
                break;
            }
            if crash_at == Some(step) && !self.cancelled {
                self.crash();
                continue;
            }
            if cancel_at == Some(step) && !self.cancelled {
                self.cancel();
                continue;
            }
            let (a, b) = script.get(step).copied().unwrap_or((0, 0));
            let can_dispatch = self.core.has_ready() && self.running.len() < 3;
            let mut acts = Vec::new();
            if can_dispatch {
                acts.push(0);
            }
            if !self.running.is_empty() {
                acts.push(1);
            }
            if !self.timers.is_empty() {
                acts.push(2);
            }
            if self.cancelled && !self.running.is_empty() {
                acts.push(3);
            }
            assert!(
                !acts.is_empty(),
                "stuck with unsettled nodes: nothing ready, running or due"
            );
            match acts[a as usize % acts.len()] {
                0 => self.dispatch(),
                1 => {
                    let k = b as usize % self.running.len();
                    self.finish(k, outcome(b / 8));
                }
                2 => {
                    let t = self.timers.swap_remove(b as usize % self.timers.len());
                    self.core.on(Input::RetryDue {
                        node: t.node,
                        item: t.item,
                    });
                    self.effects();
                }
                _ => {
                    // The grace period ran out: every running attempt is aborted.
                    while !self.running.is_empty() {
                        let e = ErrorInfo::new(ErrorKind::Cancelled, "aborted");
                        self.finish(0, Err(e));
                    }
                }
            }
        }
        self.core.finish();
        self.effects();
    }

    fn check_end(&self) {
        let n = self.plan.nodes.len() as u32;
        for i in 0..n {
            let s = self.state(i);
            assert!(s.is_terminal(), "node {i} ended {s}");
            assert_eq!(
                self.recorded.get(&(i, None)),
                Some(&s),
                "node {i}: recorded state"
            );
            if let Some(fan) = self.core.nodes[i as usize].fan.as_deref() {
                for (k, it) in fan.st.iter().enumerate() {
                    assert!(
                        it.state().is_terminal(),
                        "node {i} item {k} ended {}",
                        it.state()
                    );
                }
            }
        }
        let any_failed = (0..n).any(|i| self.state(i).is_failure());
        let expected = if self.cancelled {
            RunState::Cancelled
        } else if any_failed {
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        assert_eq!(self.core.state(), expected);
        if self.cancelled {
            for &i in &self.idle_at_cancel {
                assert_eq!(
                    self.state(i),
                    NodeState::Cancelled,
                    "node {i} idle at cancel"
                );
            }
        } else {
            // Skip propagation follows the trigger rules exactly.
            for i in 0..n {
                let parents: Vec<NodeState> = self
                    .plan
                    .parents(i)
                    .iter()
                    .map(|&p| self.state(p))
                    .collect();
                let rule = self.plan.nodes[i as usize].trigger;
                assert_eq!(
                    self.state(i) == NodeState::Skipped,
                    !rule_holds(rule, &parents),
                    "node {i} ({rule:?}) after {parents:?} ended {}",
                    self.state(i)
                );
                assert_ne!(self.state(i), NodeState::Cancelled);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_dags_settle_by_their_rules(
        specs in dag(),
        script in prop::collection::vec(any::<(u8, u8)>(), 0..64),
        cancel_at in prop::option::weighted(0.3, 0usize..40),
    ) {
        let plan = plan(&specs);
        let mut sim = Sim::new(plan);
        sim.drive(&script, cancel_at, None);
        sim.check_end();
    }

    #[test]
    fn a_run_resumed_from_its_log_at_any_point_settles_by_its_rules(
        specs in dag(),
        script in prop::collection::vec(any::<(u8, u8)>(), 0..64),
        crash_at in 0usize..40,
        cancel_at in prop::option::weighted(0.2, 0usize..60),
    ) {
        let plan = plan(&specs);
        let mut sim = Sim::new(plan);
        sim.drive(&script, cancel_at, Some(crash_at));
        sim.check_end();
    }
}

#[test]
fn a_failure_skips_all_success_children_and_runs_one_failed_ones() {
    let specs = vec![
        NodeSpec {
            parents: vec![],
            trigger: TriggerRule::AllSuccess,
            retries: 0,
            items: None,
            cap: None,
            priority: 0,
        },
        NodeSpec {
            parents: vec![0],
            trigger: TriggerRule::AllSuccess,
            retries: 0,
            items: None,
            cap: None,
            priority: 0,
        },
        NodeSpec {
            parents: vec![0],
            trigger: TriggerRule::OneFailed,
            retries: 0,
            items: None,
            cap: None,
            priority: 0,
        },
        NodeSpec {
            parents: vec![1, 2],
            trigger: TriggerRule::AllDone,
            retries: 0,
            items: None,
            cap: None,
            priority: 0,
        },
    ];
    let mut sim = Sim::new(plan(&specs));
    sim.dispatch();
    sim.finish(0, Err(ErrorInfo::new(ErrorKind::Input, "bad")));
    assert_eq!(sim.state(1), NodeState::Skipped);
    assert_eq!(sim.state(2), NodeState::Ready);
    sim.drive(&[], None, None);
    sim.check_end();
    assert_eq!(sim.state(2), NodeState::Succeeded);
    assert_eq!(sim.state(3), NodeState::Succeeded);
    assert_eq!(sim.core.state(), RunState::Failed);
}

#[test]
fn a_retryable_failure_arms_one_timer_and_runs_the_next_attempt() {
    let specs = vec![NodeSpec {
        parents: vec![],
        trigger: TriggerRule::AllSuccess,
        retries: 1,
        items: None,
        cap: None,
        priority: 0,
    }];
    let mut sim = Sim::new(plan(&specs));
    sim.dispatch();
    sim.finish(0, Err(ErrorInfo::new(ErrorKind::Failed, "flaky")));
    assert_eq!(sim.state(0), NodeState::Retrying);
    assert_eq!(sim.timers.len(), 1);
    assert_eq!((sim.timers[0].node, sim.timers[0].item), (0, None));
    assert!(!sim.core.has_ready(), "not ready before the timer fires");
    sim.core.on(Input::RetryDue {
        node: 0,
        item: None,
    });
    sim.timers.clear();
    sim.effects();
    sim.dispatch();
    assert_eq!(sim.running, vec![(0, None, 2)]);
    sim.finish(0, Ok(Value::Null));
    sim.drive(&[], None, None);
    sim.check_end();
    assert_eq!(sim.core.state(), RunState::Succeeded);
}

#[test]
fn a_node_resumed_ready_for_its_retry_runs_the_next_attempt_number() {
    let specs = vec![NodeSpec {
        parents: vec![],
        trigger: TriggerRule::AllSuccess,
        retries: 2,
        items: None,
        cap: None,
        priority: 0,
    }];
    let mut sim = Sim::new(plan(&specs));
    sim.dispatch();
    sim.finish(0, Err(ErrorInfo::new(ErrorKind::Failed, "flaky")));
    sim.core.on(Input::RetryDue {
        node: 0,
        item: None,
    });
    sim.timers.clear();
    sim.effects();
    assert!(sim.core.has_ready(), "ready for attempt 2");
    // The engine dies with the node Ready for attempt 2; another resumes the run.
    sim.crash();
    sim.dispatch();
    assert_eq!(sim.running, vec![(0, None, 2)], "attempt 2, not 3");
    sim.finish(0, Ok(Value::Null));
    sim.drive(&[], None, None);
    sim.check_end();
    assert_eq!(sim.core.state(), RunState::Succeeded);
}

#[test]
fn cancelling_leaves_nothing_to_start_and_ends_cancelled() {
    let specs = vec![
        NodeSpec {
            parents: vec![],
            trigger: TriggerRule::AllSuccess,
            retries: 0,
            items: Some(3),
            cap: Some(1),
            priority: 0,
        },
        NodeSpec {
            parents: vec![0],
            trigger: TriggerRule::AllDone,
            retries: 0,
            items: None,
            cap: None,
            priority: 0,
        },
    ];
    let mut sim = Sim::new(plan(&specs));
    sim.dispatch();
    assert_eq!(sim.running, vec![(0, Some(0), 1)]);
    sim.cancel();
    assert!(!sim.core.has_ready());
    assert_eq!(sim.state(1), NodeState::Cancelled);
    sim.finish(0, Ok(Value::Null));
    sim.drive(&[], None, None);
    sim.check_end();
    assert_eq!(
        sim.state(0),
        NodeState::Cancelled,
        "its idle items were cancelled"
    );
}
