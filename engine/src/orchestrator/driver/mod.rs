//! The per-run state machine.
//!
//! `restore.rs` rebuilds a resumed run from its events; `cancel.rs` stops one.
//!
//! One driver task owns all of a run's state; executions report back over one
//! channel. Each wake-up is a *step*: apply the signals received, dispatch what became
//! ready, write the step's events to the store, then start the dispatched executions
//! and publish the events. Nothing polls: the driver sleeps until a signal, a permit
//! or the cancellation deadline arrives.

mod cancel;
mod restore;

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use slab::Slab;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::result::{ItemReport, NodeReport, RunResult};
use super::shared::Shared;
use crate::context::JobContext;
use crate::error::{ErrorInfo, ErrorKind};
use crate::events::{Event, EventKind, NodeEvent};
use crate::executor::{Execution, ExecutionHandle};
use crate::ids::RunId;
use crate::limit::Permit;
use crate::signal::{CONTROL, Signal, SignalSender};
use crate::state::{NodeState, RunState};
use crate::store::{Lease, StoreError};
use crate::workflow::TriggerRule;
use crate::workflow::plan::{Plan, PlanNode, Values};

type Acquire = Pin<Box<dyn Future<Output = Permit> + Send + 'static>>;

#[derive(Debug, Default)]
struct ItemRt {
    state: Option<NodeState>,
    attempts: u32,
    /// Attempts made before a from-failure retry put the item back (see
    /// [`NodeRt::base`]).
    base: u32,
    start: Option<Instant>,
    end: Option<Instant>,
    output: Option<Arc<Value>>,
    error: Option<ErrorInfo>,
}

impl ItemRt {
    fn state(&self) -> NodeState {
        self.state.unwrap_or(NodeState::Ready)
    }
}

#[derive(Debug)]
struct FanRt {
    base: Value,
    items: Vec<Value>,
    st: Vec<ItemRt>,
    next: u32,
    retry: VecDeque<u32>,
    running: u32,
    settled: u32,
    failed: u32,
    cancelled: u32,
}

impl FanRt {
    /// A fan-out whose items have not started.
    fn new(base: Value, items: Vec<Value>) -> Self {
        let st = std::iter::repeat_with(ItemRt::default)
            .take(items.len())
            .collect();
        FanRt {
            base,
            items,
            st,
            next: 0,
            retry: VecDeque::new(),
            running: 0,
            settled: 0,
            failed: 0,
            cancelled: 0,
        }
    }

    fn has_work(&self) -> bool {
        !self.retry.is_empty() || (self.next as usize) < self.items.len()
    }
}

#[derive(Debug)]
struct NodeRt {
    state: NodeState,
    waiting: u32,
    attempts: u32,
    /// Attempts made before a from-failure retry of the run put the node back to
    /// Pending: its retry budget counts only the attempts after them (attempt numbers
    /// go on from `attempts`). Zero otherwise.
    base: u32,
    /// For a fan-out node a from-failure retry put back to Pending after its items
    /// ran: each item's last recorded attempt, so that the items, expanded again,
    /// number their attempts on from there (and get a fresh budget).
    item_floor: Option<Box<[u32]>>,
    queued: bool,
    start: Option<Instant>,
    end: Option<Instant>,
    output: Option<Arc<Value>>,
    error: Option<Box<ErrorInfo>>,
    reason: Option<Arc<str>>,
    fan: Option<Box<FanRt>>,
}

#[derive(Debug)]
struct Running {
    node: u32,
    item: Option<u32>,
    attempt: u32,
    handle: ExecutionHandle,
}

/// Ready nodes, highest priority first and FIFO within a priority. Few distinct
/// priorities are in use at once, so levels are a short sorted list: push and pop are
/// O(levels), not O(log n) as with a heap of thousands of ready nodes.
#[derive(Debug, Default)]
struct ReadyQueue {
    levels: Vec<(i32, VecDeque<u32>)>,
    len: usize,
}

impl ReadyQueue {
    fn push(&mut self, priority: i32, node: u32) {
        let at = self.levels.partition_point(|(p, _)| *p > priority);
        match self.levels.get_mut(at) {
            Some((p, q)) if *p == priority => q.push_back(node),
            _ => self.levels.insert(at, (priority, VecDeque::from([node]))),
        }
        self.len += 1;
    }

    fn pop(&mut self) -> Option<u32> {
        let n = self.levels.iter_mut().find_map(|(_, q)| q.pop_front())?;
        self.len -= 1;
        Some(n)
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.levels.clear();
        self.len = 0;
    }
}

/// A recorded item transition: item, attempt, new state, output, error, and whether
/// a from-failure retry put the item back.
type ItemEvent = (
    u32,
    u32,
    NodeState,
    Option<Arc<Value>>,
    Option<Box<ErrorInfo>>,
    bool,
);

/// Wraps an output for sharing; the common `null` output shares one allocation.
fn shared_output(v: Value) -> Arc<Value> {
    static NULL: std::sync::LazyLock<Arc<Value>> =
        std::sync::LazyLock::new(|| Arc::new(Value::Null));
    if v.is_null() {
        Arc::clone(&NULL)
    } else {
        Arc::new(v)
    }
}

enum Wake {
    Signals,
    Permit(Permit),
    Deadline,
    Renew,
}

/// Changes attached to a node transition.
#[derive(Default)]
struct Detail {
    output: Option<Arc<Value>>,
    error: Option<ErrorInfo>,
    reason: Option<Arc<str>>,
}

impl Detail {
    fn error(e: ErrorInfo) -> Self {
        Detail {
            error: Some(e),
            ..Detail::default()
        }
    }
    fn reason(r: impl Into<Arc<str>>) -> Self {
        Detail {
            reason: Some(r.into()),
            ..Detail::default()
        }
    }
}

pub(crate) struct Driver {
    run: RunId,
    plan: Arc<Plan>,
    params: Vec<Value>,
    sh: Arc<Shared>,
    tx: UnboundedSender<(u32, Signal)>,
    rx: UnboundedReceiver<(u32, Signal)>,
    job_cancel: CancellationToken,
    nodes: Vec<NodeRt>,
    running: Slab<Running>,
    ready: ReadyQueue,
    spare: Option<Permit>,
    acquire: Option<Acquire>,
    to_start: Vec<(usize, Execution)>,
    seq: u64,
    batch: Vec<Event>,
    unsettled: usize,
    state: RunState,
    cancelling: bool,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Retry timers that have not fired yet.
    retry_timers: usize,
    /// Set by an inline attempt: the next step starts without waiting.
    continue_step: bool,
    /// When the run's lease is renewed next.
    renew: Pin<Box<Sleep>>,
    /// This engine's lease on the run; every store write presents it.
    lease: Lease,
    /// Set when the lease was lost: the run stops at once without recording more.
    lost: Option<StoreError>,
    /// Claimed from the store (enqueued, or resumed after its engine stopped): its
    /// cancellation may have been requested before this engine took it, so the first
    /// step looks before starting anything (see `cancel_if_requested`).
    claimed: bool,
    now: SystemTime,
    tick: Instant,
    started: Instant,
    work: Vec<u32>,
    signals: Vec<(u32, Signal)>,
}

impl Drop for Driver {
    /// A driver that goes away (run finished, lease lost, task aborted) takes the
    /// attempts it started with it.
    fn drop(&mut self) {
        for (_, r) in self.running.iter() {
            r.handle.abort();
        }
    }
}

impl Values for Driver {
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

impl Driver {
    pub(crate) fn new(
        run: RunId,
        plan: Arc<Plan>,
        params: Vec<Value>,
        sh: Arc<Shared>,
        tx: UnboundedSender<(u32, Signal)>,
        rx: UnboundedReceiver<(u32, Signal)>,
        lease: Lease,
    ) -> Self {
        let renew_every = sh.lease_ttl / 3;
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
        let now = Instant::now();
        Driver {
            run,
            unsettled: plan.nodes.len(),
            plan,
            params,
            sh,
            tx,
            rx,
            job_cancel: CancellationToken::new(),
            nodes,
            running: Slab::new(),
            ready: ReadyQueue::default(),
            spare: None,
            acquire: None,
            to_start: Vec::new(),
            seq: 0,
            batch: Vec::with_capacity(256),
            state: RunState::Pending,
            cancelling: false,
            deadline: None,
            retry_timers: 0,
            continue_step: false,
            renew: Box::pin(tokio::time::sleep(renew_every)),
            lease,
            lost: None,
            claimed: false,
            now: SystemTime::now(),
            tick: now,
            started: now,
            work: Vec::new(),
            signals: Vec::with_capacity(256),
        }
    }

    /// Marks a run claimed from the store (see `Driver::claimed`).
    pub(crate) fn claimed(mut self, claimed: bool) -> Self {
        self.claimed = claimed;
        self
    }

    pub(crate) async fn run(mut self) -> Result<RunResult, StoreError> {
        let plan = Arc::clone(&self.plan);
        let fresh = self.state == RunState::Pending;
        if fresh {
            self.set_run(RunState::Running);
        }
        if self.claimed {
            self.cancel_if_requested(&plan).await;
        }
        if fresh {
            for &r in &plan.roots {
                self.evaluate(&plan, r);
            }
        }
        self.drain_work(&plan);
        self.dispatch(&plan);
        self.flush().await;
        self.start_dispatched(&plan).await;

        while (self.unsettled > 0 || !self.running.is_empty()) && self.lost.is_none() {
            // After an inline attempt the step continues at once: its outcome is
            // already applied and nothing else was running.
            if !std::mem::take(&mut self.continue_step) {
                match self.wait().await {
                    Wake::Signals => {}
                    Wake::Permit(p) => self.spare = Some(p),
                    Wake::Deadline => {
                        self.clock();
                        self.deadline = None;
                        self.abort_all(&plan);
                    }
                    Wake::Renew => {
                        self.renew_lease().await;
                        continue;
                    }
                }
            }
            // Other attempts are still out: let the tasks that are ready run first and
            // collect their results too, so that one step (one store write) covers
            // many completions instead of one.
            if self.running.len() > self.signals.len() {
                tokio::task::yield_now().await;
            }
            while self.signals.len() < 4096 {
                match self.rx.try_recv() {
                    Ok(s) => self.signals.push(s),
                    Err(_) => break,
                }
            }
            self.clock();
            let mut signals = std::mem::take(&mut self.signals);
            for (key, signal) in signals.drain(..) {
                self.on_signal(&plan, key, signal);
            }
            self.signals = signals;
            self.drain_work(&plan);
            self.dispatch(&plan);
            self.flush().await;
            self.start_dispatched(&plan).await;
        }

        if let Some(lost) = self.lost.take() {
            // Another engine owns the run now: stop everything, record nothing.
            tracing::warn!(run_id = %self.run, error = %lost, "lease lost; stopping this engine's copy of the run");
            for (_, r) in self.running.iter() {
                r.handle.abort();
            }
            self.job_cancel.cancel();
            return Err(lost);
        }
        let end = if self.cancelling {
            RunState::Cancelled
        } else if self.nodes.iter().any(|n| n.state.is_failure()) {
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        self.clock();
        self.set_run(end);
        self.flush().await;
        if let Some(lost) = self.lost.take() {
            return Err(lost);
        }
        Ok(self.result())
    }

    async fn renew_lease(&mut self) {
        let ttl = self.sh.lease_ttl;
        self.renew
            .as_mut()
            .reset(tokio::time::Instant::now() + ttl / 3);
        match self.sh.store.renew(self.run, &self.lease, ttl).await {
            Ok(()) => {}
            Err(e @ (StoreError::Fenced { .. } | StoreError::UnknownRun(_))) => self.lost = Some(e),
            Err(e) => {
                tracing::warn!(run_id = %self.run, error = %e, "lease renewal failed; retrying at the next tick");
            }
        }
    }

    fn clock(&mut self) {
        self.now = SystemTime::now();
        self.tick = Instant::now();
    }

    async fn wait(&mut self) -> Wake {
        poll_fn(|cx| {
            if self.renew.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Renew);
            }
            if let Some(d) = self.deadline.as_mut()
                && d.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Wake::Deadline);
            }
            if let Some(a) = self.acquire.as_mut()
                && let Poll::Ready(p) = a.as_mut().poll(cx)
            {
                self.acquire = None;
                return Poll::Ready(Wake::Permit(p));
            }
            match self.rx.poll_recv_many(cx, &mut self.signals, 1024) {
                Poll::Ready(_) => Poll::Ready(Wake::Signals),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    // ----- events -----------------------------------------------------------------

    fn push_event(&mut self, kind: EventKind) {
        self.seq += 1;
        self.batch.push(Event {
            run: self.run,
            seq: self.seq,
            at: self.now,
            kind,
        });
    }

    fn set_run(&mut self, to: RunState) {
        let from = self.state;
        match from.transition(to) {
            Ok(s) => self.state = s,
            Err(e) => {
                tracing::error!(run_id = %self.run, error = %e, "orchestrator bug: run transition refused");
                debug_assert!(false, "{e}");
                return;
            }
        }
        tracing::debug!(run_id = %self.run, %from, %to, "run state");
        self.push_event(EventKind::Run { from, to });
    }

    /// The one place a node's state changes (items: [`set_item`](Self::set_item)).
    fn set_node(&mut self, plan: &Plan, n: u32, to: NodeState, attempt: u32, d: Detail) -> bool {
        let rt = &mut self.nodes[n as usize];
        let from = rt.state;
        if let Err(e) = from.transition(to) {
            tracing::error!(run_id = %self.run, node = %plan.nodes[n as usize].id, error = %e, "orchestrator bug: node transition refused");
            debug_assert!(false, "node {}: {e}", plan.nodes[n as usize].id);
            return false;
        }
        rt.state = to;
        if to == NodeState::Running && rt.start.is_none() {
            rt.start = Some(self.tick);
        }
        if to.is_terminal() {
            rt.end = Some(self.tick);
            self.unsettled -= 1;
        }
        if d.output.is_some() {
            rt.output.clone_from(&d.output);
        }
        if d.error.is_some() {
            rt.error = d.error.clone().map(Box::new);
        }
        if d.reason.is_some() {
            rt.reason.clone_from(&d.reason);
        }
        self.push_transition(plan, n, None, attempt, from, to, d);
        true
    }

    fn set_item(
        &mut self,
        plan: &Plan,
        n: u32,
        i: u32,
        to: NodeState,
        attempt: u32,
        d: Detail,
    ) -> bool {
        let Some(fan) = self.nodes[n as usize].fan.as_deref_mut() else {
            return false;
        };
        let it = &mut fan.st[i as usize];
        let from = it.state();
        if let Err(e) = from.transition(to) {
            tracing::error!(run_id = %self.run, node = %plan.nodes[n as usize].id, item = i, error = %e, "orchestrator bug: item transition refused");
            debug_assert!(false, "node {} item {i}: {e}", plan.nodes[n as usize].id);
            return false;
        }
        it.state = Some(to);
        if to == NodeState::Running && it.start.is_none() {
            it.start = Some(self.tick);
        }
        if to.is_terminal() {
            it.end = Some(self.tick);
        }
        if d.output.is_some() {
            it.output.clone_from(&d.output);
        }
        if d.error.is_some() {
            it.error.clone_from(&d.error);
        }
        self.push_transition(plan, n, Some(i), attempt, from, to, d);
        true
    }

    /// Records a node or item transition as an event.
    #[allow(clippy::too_many_arguments)]
    fn push_transition(
        &mut self,
        plan: &Plan,
        n: u32,
        item: Option<u32>,
        attempt: u32,
        from: NodeState,
        to: NodeState,
        d: Detail,
    ) {
        self.push_event(EventKind::Node(NodeEvent {
            node: plan.nodes[n as usize].id.clone(),
            item,
            attempt,
            from,
            to,
            output: d.output,
            error: d.error.map(Box::new),
            reason: d.reason,
        }));
    }

    async fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        // Subscribers get copies; the store may take the originals.
        let publish: Vec<Event> = if self.sh.events.receiver_count() > 0 {
            self.batch.clone()
        } else {
            Vec::new()
        };
        if self.lost.is_some() {
            self.batch.clear();
            return;
        }
        let written = match self
            .sh
            .store
            .append_now(self.run, &self.lease, &mut self.batch)
        {
            Some(Ok(())) => true,
            Some(Err(
                e @ (StoreError::Fenced { .. }
                | StoreError::UnknownRun(_)
                | StoreError::OutOfSequence { .. }),
            )) => {
                self.lost = Some(e);
                self.batch.clear();
                return;
            }
            Some(Err(e)) => {
                tracing::warn!(run_id = %self.run, error = %e, "store append failed; retrying");
                false
            }
            None => false,
        };
        if !written {
            let mut delay = Duration::from_millis(50);
            loop {
                match self
                    .sh
                    .store
                    .append(self.run, &self.lease, &self.batch)
                    .await
                {
                    Ok(()) => break,
                    Err(
                        e @ (StoreError::Fenced { .. }
                        | StoreError::UnknownRun(_)
                        | StoreError::OutOfSequence { .. }),
                    ) => {
                        self.lost = Some(e);
                        self.batch.clear();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(run_id = %self.run, error = %e, retry_in = ?delay, "store append failed; retrying");
                        tokio::time::sleep(delay).await;
                        // At most a second apart: the run goes on within about a
                        // second of the store coming back.
                        delay = (delay * 2).min(Duration::from_secs(1));
                    }
                }
            }
        }
        self.batch.clear();
        for e in publish {
            let _ = self.sh.events.send(e);
        }
    }

    // ----- readiness ----------------------------------------------------------------

    /// Decides what happens to a node whose upstream nodes have all settled.
    fn evaluate(&mut self, plan: &Plan, n: u32) {
        if self.nodes[n as usize].state != NodeState::Pending {
            return;
        }
        if self.cancelling {
            self.set_node(
                plan,
                n,
                NodeState::Cancelled,
                0,
                Detail::reason("run cancelled"),
            );
            self.work.push(n);
            return;
        }
        let node = &plan.nodes[n as usize];
        if let Some(reason) = self.trigger_blocks(plan, n, node.trigger) {
            self.set_node(plan, n, NodeState::Skipped, 0, Detail::reason(reason));
            self.work.push(n);
            return;
        }
        for c in &node.conditions {
            let holds = match c.on {
                Some(p) => c.pred.eval(self.output(p).unwrap_or(&Value::Null)),
                None => {
                    let doc = self.upstream_doc(plan, n);
                    c.pred.eval(&doc)
                }
            };
            if !holds {
                let reason = format!("condition `{}` is false", c.text);
                self.set_node(plan, n, NodeState::Skipped, 0, Detail::reason(reason));
                self.work.push(n);
                return;
            }
        }
        self.set_node(plan, n, NodeState::Ready, 0, Detail::default());
        self.enqueue(plan, n);
    }

    fn trigger_blocks(&self, plan: &Plan, n: u32, rule: TriggerRule) -> Option<String> {
        let parents = plan.parents(n);
        let name = |p: u32| &plan.nodes[p as usize].id;
        match rule {
            TriggerRule::AllDone => None,
            TriggerRule::AllSuccess => parents
                .iter()
                .find(|&&p| self.nodes[p as usize].state != NodeState::Succeeded)
                .map(|&p| format!("upstream `{}` {}", name(p), self.nodes[p as usize].state)),
            TriggerRule::NoneFailed => parents
                .iter()
                .find(|&&p| self.nodes[p as usize].state.is_failure())
                .map(|&p| format!("upstream `{}` {}", name(p), self.nodes[p as usize].state)),
            TriggerRule::OneFailed => {
                if parents
                    .iter()
                    .any(|&p| self.nodes[p as usize].state.is_failure())
                {
                    None
                } else {
                    Some("no upstream node failed".to_owned())
                }
            }
        }
    }

    fn upstream_doc(&self, plan: &Plan, n: u32) -> Value {
        let mut map = Map::new();
        for &p in plan.parents(n) {
            let v = self.output(p).cloned().unwrap_or(Value::Null);
            map.insert(String::from(&*plan.nodes[p as usize].id), v);
        }
        Value::Object(map)
    }

    /// Propagates settled nodes to their children.
    fn drain_work(&mut self, plan: &Plan) {
        while let Some(n) = self.work.pop() {
            for &c in plan.children(n) {
                let rt = &mut self.nodes[c as usize];
                rt.waiting -= 1;
                if rt.waiting == 0 {
                    self.evaluate(plan, c);
                }
            }
        }
    }

    fn enqueue(&mut self, plan: &Plan, n: u32) {
        let rt = &mut self.nodes[n as usize];
        if rt.queued {
            return;
        }
        rt.queued = true;
        self.ready.push(plan.nodes[n as usize].priority, n);
    }

    // ----- dispatch -------------------------------------------------------------------

    fn permit(&mut self) -> Option<Permit> {
        if let Some(p) = self.spare.take() {
            return Some(p);
        }
        match self.sh.permits.try_acquire() {
            Some(p) => Some(p),
            None => {
                if self.acquire.is_none() {
                    self.acquire = Some(Box::pin(Arc::clone(&self.sh.permits).acquire()));
                }
                None
            }
        }
    }

    fn dispatch(&mut self, plan: &Plan) {
        while !self.ready.is_empty() {
            let Some(permit) = self.permit() else { return };
            let Some(n) = self.ready.pop() else {
                self.spare = Some(permit);
                return;
            };
            self.nodes[n as usize].queued = false;
            let node = &plan.nodes[n as usize];
            if node.fan_out.is_some() {
                self.dispatch_item(plan, n, permit);
            } else {
                self.dispatch_plain(plan, n, permit);
            }
            self.drain_work(plan);
        }
        // Nothing waits for capacity any more: stop asking for it.
        if self.ready.is_empty() {
            self.acquire = None;
        }
    }

    fn dispatch_plain(&mut self, plan: &Plan, n: u32, permit: Permit) {
        let node = &plan.nodes[n as usize];
        let input = match node.build_input(&*self) {
            Ok(v) => v,
            Err(msg) => {
                drop(permit);
                let e = ErrorInfo::new(ErrorKind::Input, format!("cannot build the input: {msg}"));
                self.set_node(plan, n, NodeState::Failed, 0, Detail::error(e));
                self.work.push(n);
                return;
            }
        };
        let attempt = {
            let rt = &mut self.nodes[n as usize];
            rt.attempts += 1;
            rt.attempts
        };
        self.set_node(plan, n, NodeState::Running, attempt, Detail::default());
        self.prepare(node, n, None, attempt, input, permit);
    }

    fn dispatch_item(&mut self, plan: &Plan, n: u32, permit: Permit) {
        let node = &plan.nodes[n as usize];
        if self.nodes[n as usize].fan.is_none() {
            // First dispatch: expand the fan-out.
            let expanded = node
                .build_input(&*self)
                .map_err(|m| {
                    ErrorInfo::new(ErrorKind::Input, format!("cannot build the input: {m}"))
                })
                .and_then(|base| {
                    node.fan_out_items(plan, &*self)
                        .map(|items| (base, items))
                        .map_err(|m| ErrorInfo::new(ErrorKind::FanOut, m))
                });
            let (base, items) = match expanded {
                Ok(x) => x,
                Err(e) => {
                    drop(permit);
                    self.set_node(plan, n, NodeState::Failed, 0, Detail::error(e));
                    self.work.push(n);
                    return;
                }
            };
            self.set_node(plan, n, NodeState::Running, 0, Detail::default());
            if items.is_empty() {
                drop(permit);
                let out = Detail {
                    output: Some(Arc::new(Value::Array(Vec::new()))),
                    ..Detail::default()
                };
                self.set_node(plan, n, NodeState::Succeeded, 0, out);
                self.work.push(n);
                return;
            }
            let mut fan = FanRt::new(base, items);
            if let Some(floor) = self.nodes[n as usize].item_floor.take() {
                // Items that ran before a from-failure retry: numbers go on, the budget
                // starts afresh.
                for (it, &f) in fan.st.iter_mut().zip(floor.iter()) {
                    it.attempts = f;
                    it.base = f;
                    self.nodes[n as usize].attempts += f;
                }
            }
            self.nodes[n as usize].fan = Some(Box::new(fan));
        }
        let cap = node.concurrency.unwrap_or(u32::MAX);
        let Some(fan) = self.nodes[n as usize].fan.as_deref_mut() else {
            return;
        };
        let i = if let Some(i) = fan.retry.pop_front() {
            i
        } else if (fan.next as usize) < fan.items.len() {
            fan.next += 1;
            fan.next - 1
        } else {
            self.spare = Some(permit);
            return;
        };
        let input = node.with_item(&fan.base, fan.items[i as usize].clone());
        fan.running += 1;
        let more = fan.has_work() && fan.running < cap;
        let it = &mut fan.st[i as usize];
        it.attempts += 1;
        let attempt = it.attempts;
        self.nodes[n as usize].attempts += 1;
        if more {
            self.enqueue(plan, n);
        }
        match input {
            Ok(input) => {
                self.set_item(plan, n, i, NodeState::Running, attempt, Detail::default());
                self.prepare(node, n, Some(i), attempt, input, permit);
            }
            Err(msg) => {
                drop(permit);
                // Recorded as a failed attempt of the item; not retried (same input).
                self.set_item(plan, n, i, NodeState::Running, attempt, Detail::default());
                let e = ErrorInfo::new(ErrorKind::Input, format!("cannot build the input: {msg}"));
                self.item_finished(plan, n, i, attempt, Err(e));
            }
        }
    }

    /// Reserves the execution's key and queues it to start after the next flush.
    fn prepare(
        &mut self,
        node: &PlanNode,
        n: u32,
        item: Option<u32>,
        attempt: u32,
        input: Value,
        permit: Permit,
    ) {
        let key = self.running.insert(Running {
            node: n,
            item,
            attempt,
            handle: ExecutionHandle::detached(),
        });
        let sink = SignalSender::new(self.tx.clone(), key as u32);
        let ctx = JobContext::new(
            self.run,
            node.id.clone(),
            item,
            attempt,
            self.job_cancel.clone(),
            Some(sink),
        )
        .with_artifacts(self.sh.artifacts.clone());
        let exec = Execution::new(node.job.clone(), input, ctx, node.timeout, Some(permit));
        self.to_start.push((key, exec));
    }

    async fn start_dispatched(&mut self, plan: &Plan) {
        if self.lost.is_some() {
            // The step's events (these attempts' starts among them) were refused: the
            // lease is gone and another engine may be running the same attempt numbers.
            // Start nothing; the run loop stops this copy of the run.
            for (key, exec) in self.to_start.drain(..) {
                self.running.try_remove(key);
                drop(exec);
            }
            return;
        }
        // A sequential stretch: this is the only thing the run can do right now, so run
        // it in this task (see `Executor::runs_inline`).
        if self.to_start.len() == 1
            && self.running.len() == 1
            && self.ready.is_empty()
            && self.retry_timers == 0
            && !self.cancelling
            && self.sh.executor.runs_inline()
            && let Some((key, exec)) = self.to_start.pop()
        {
            self.run_inline(plan, key, exec).await;
            return;
        }
        for (key, mut exec) in self.to_start.drain(..) {
            // Dropped by the executor without an outcome, it fails the attempt.
            let sink = SignalSender::new(self.tx.clone(), key as u32);
            let silenced = exec.arm(sink, self.sh.executor.name());
            let handle = self.sh.executor.start(exec).silenced_by(silenced);
            if let Some(r) = self.running.get_mut(key) {
                r.handle = handle;
            }
        }
    }

    /// Runs one attempt inside the driver task while still serving the run's signals
    /// (log lines, progress, cancellation and its grace deadline), then applies its
    /// outcome.
    async fn run_inline(&mut self, plan: &Plan, key: usize, exec: Execution) {
        let attempt = exec.run_inline();
        tokio::pin!(attempt);
        loop {
            tokio::select! {
                biased;
                outcome = &mut attempt => {
                    // Log lines the attempt sent just before finishing come first.
                    while let Ok((k, signal)) = self.rx.try_recv() {
                        self.signals.push((k, signal));
                    }
                    self.clock();
                    let mut signals = std::mem::take(&mut self.signals);
                    for (k, signal) in signals.drain(..) {
                        self.on_signal(plan, k, signal);
                    }
                    self.signals = signals;
                    self.on_signal(plan, key as u32, Signal::Done(outcome));
                    self.continue_step = true;
                    return;
                }
                () = async {
                    match self.deadline.as_mut() {
                        Some(d) => d.as_mut().await,
                        None => std::future::pending().await,
                    }
                }, if self.deadline.is_some() => {
                    self.clock();
                    self.deadline = None;
                    // Dropping the attempt's future stops it, as aborting a task would.
                    let e = ErrorInfo::new(
                        ErrorKind::Cancelled,
                        format!("stopped after the cancellation grace period ({:?})", self.sh.grace),
                    );
                    self.on_signal(plan, key as u32, Signal::Done(Err(e)));
                    self.continue_step = true;
                    return;
                }
                () = self.renew.as_mut() => {
                    self.renew_lease().await;
                    if self.lost.is_some() {
                        return;
                    }
                }
                _ = self.rx.recv_many(&mut self.signals, 1024) => {
                    self.clock();
                    let mut signals = std::mem::take(&mut self.signals);
                    for (k, signal) in signals.drain(..) {
                        self.on_signal(plan, k, signal);
                    }
                    self.signals = signals;
                    self.flush().await;
                    if self.lost.is_some() {
                        return;
                    }
                }
            }
        }
    }

    // ----- signals ----------------------------------------------------------------------

    fn on_signal(&mut self, plan: &Plan, key: u32, signal: Signal) {
        match signal {
            Signal::Done(outcome) => {
                let Some(r) = self.running.try_remove(key as usize) else {
                    return;
                };
                let outcome = self.limit_output(plan, r.node, outcome);
                match r.item {
                    None => self.node_finished(plan, r.node, r.attempt, outcome),
                    Some(i) => {
                        if let Some(fan) = self.nodes[r.node as usize].fan.as_deref_mut() {
                            fan.running -= 1;
                        }
                        self.item_finished(plan, r.node, i, r.attempt, outcome);
                    }
                }
            }
            Signal::Log { level, message } => {
                if let Some(r) = self.running.get(key as usize) {
                    let kind = EventKind::Log {
                        node: plan.nodes[r.node as usize].id.clone(),
                        item: r.item,
                        attempt: r.attempt,
                        level,
                        message,
                    };
                    self.push_event(kind);
                }
            }
            Signal::Progress { percent, message } => {
                if let Some(r) = self.running.get(key as usize) {
                    let kind = EventKind::Progress {
                        node: plan.nodes[r.node as usize].id.clone(),
                        item: r.item,
                        attempt: r.attempt,
                        percent,
                        message,
                    };
                    self.push_event(kind);
                }
            }
            Signal::Retry { node, item } => {
                self.retry_timers -= 1;
                self.retry_due(plan, node, item);
            }
            Signal::Cancel => self.begin_cancel(plan),
        }
    }

    /// Refuses outputs nested too deep (measured first, without recursion: encoding
    /// to measure the size recurses per level) or over the engine's size limit.
    fn limit_output(
        &self,
        plan: &Plan,
        n: u32,
        outcome: Result<Value, ErrorInfo>,
    ) -> Result<Value, ErrorInfo> {
        let limit = self.sh.max_output;
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
    fn item_base(&self, n: u32, i: u32) -> u32 {
        self.nodes[n as usize]
            .fan
            .as_deref()
            .and_then(|f| f.st.get(i as usize))
            .map_or(0, |it| it.base)
    }

    /// What a failed attempt leads to; `attempts` counts the attempts against the
    /// node's retry budget (those since a from-failure retry put it back, if one did).
    fn after_failure(
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

    fn schedule_retry(&mut self, node: u32, item: Option<u32>, delay: Duration) {
        self.retry_timers += 1;
        let tx = self.tx.clone();
        if delay.is_zero() {
            let _ = tx.send((CONTROL, Signal::Retry { node, item }));
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send((CONTROL, Signal::Retry { node, item }));
            });
        }
    }

    fn node_finished(
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

    fn item_finished(
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

    fn maybe_finish_fan(&mut self, plan: &Plan, n: u32) {
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

    fn retry_due(&mut self, plan: &Plan, n: u32, item: Option<u32>) {
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

    // ----- result ---------------------------------------------------------------------------

    fn result(mut self) -> RunResult {
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
            duration: self.tick.saturating_duration_since(self.started),
            nodes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReadyQueue;

    #[test]
    fn ready_queue_is_priority_then_fifo() {
        let mut q = ReadyQueue::default();
        for (p, n) in [(0, 1), (5, 2), (0, 3), (-1, 4), (5, 5), (9, 6)] {
            q.push(p, n);
        }
        let mut out = Vec::new();
        while let Some(n) = q.pop() {
            out.push(n);
        }
        assert_eq!(out, vec![6, 2, 5, 1, 3, 4]);
        assert!(q.is_empty());
    }
}
