//! The per-run driver: the task that runs a run's [`Core`](core::Core) and does its I/O.
//!
//! `core/` is the DAG walk as a state machine without I/O (readiness, trigger rules,
//! fan-out, retries and backoff, cancellation, skip propagation, rebuilding a resumed
//! run); this module feeds it inputs and carries out its effects: store writes under
//! the run's lease (`write.rs`), executions (here and `inline.rs`), retry timers
//! (`timers.rs`), concurrency permits, cancellation's token and grace deadline
//! (`cancel.rs`).
//!
//! One driver task owns all of a run's state; executions report back over one
//! channel. Each wake-up is a *step*: apply the signals received, dispatch what became
//! ready, write the step's events to the store, then start the dispatched executions
//! and publish the events. Nothing polls: the driver sleeps until a signal, a permit,
//! a retry timer or the cancellation deadline arrives.

mod cancel;
mod core;
mod inline;
mod timers;
mod write;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::SystemTime;

use serde_json::Value;
use slab::Slab;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use self::core::{Core, Dispatch, Input, Start};
use self::timers::RetryTimers;
use super::result::RunResult;
use super::shared::Shared;
use crate::context::JobContext;
use crate::events::Event;
use crate::executor::{Execution, ExecutionHandle};
use crate::ids::RunId;
use crate::limit::Permit;
use crate::signal::{CONTROL, Signal, SignalSender};
use crate::state::RunState;
use crate::store::{Lease, StoreError};
use crate::telemetry::observe::RunObserver;
use crate::workflow::plan::Plan;

type Acquire = Pin<Box<dyn Future<Output = Permit> + Send + 'static>>;

#[derive(Debug)]
struct Running {
    node: u32,
    item: Option<u32>,
    attempt: u32,
    handle: ExecutionHandle,
}

enum Wake {
    Signals,
    Permit(Permit),
    Deadline,
    Renew,
    Retry,
}

pub(crate) struct Driver {
    run: RunId,
    plan: Arc<Plan>,
    sh: Arc<Shared>,
    core: Core,
    tx: UnboundedSender<(u32, Signal)>,
    rx: UnboundedReceiver<(u32, Signal)>,
    job_cancel: Arc<CancellationToken>,
    running: Slab<Running>,
    spare: Option<Permit>,
    acquire: Option<Acquire>,
    to_start: Vec<(usize, Execution)>,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Retry timers waiting for their backoff.
    timers: RetryTimers,
    /// Retries due at once, sent as signals and not applied yet.
    retries_sent: usize,
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
    started: Instant,
    signals: Vec<(u32, Signal)>,
    /// Counts the run's written events into the engine's metrics.
    observer: RunObserver,
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
        let now = Instant::now();
        let core = Core::new(
            run,
            Arc::clone(&plan),
            params,
            sh.max_output,
            SystemTime::now(),
            now,
        );
        let observer = RunObserver::new(Arc::clone(&sh.telemetry), Arc::clone(&plan));
        Driver {
            run,
            plan,
            sh,
            core,
            tx,
            rx,
            job_cancel: Arc::new(CancellationToken::new()),
            running: Slab::new(),
            spare: None,
            acquire: None,
            to_start: Vec::new(),
            deadline: None,
            timers: RetryTimers::default(),
            retries_sent: 0,
            continue_step: false,
            renew: Box::pin(tokio::time::sleep(renew_every)),
            lease,
            lost: None,
            claimed: false,
            started: now,
            signals: Vec::with_capacity(256),
            observer,
        }
    }

    /// Marks a run claimed from the store (see `Driver::claimed`).
    pub(crate) fn claimed(mut self, claimed: bool) -> Self {
        self.claimed = claimed;
        self
    }

    /// Rebuilds the run's state from its recorded events (a resumed run; see
    /// `Core::restore`).
    pub(crate) fn restore(mut self, events: Vec<Event>) -> Self {
        self.clock();
        self.core.restore(events);
        self.arm_retries();
        self
    }

    /// Rebuilds the run from its events and fails it at once (a poison run; see
    /// `Core::give_up`).
    pub(crate) fn give_up(mut self, events: Vec<Event>, recorded: u64, reason: &str) -> Self {
        self.clock();
        self.core.give_up(events, recorded, reason);
        self
    }

    pub(crate) async fn run(mut self) -> Result<RunResult, StoreError> {
        let fresh = self.core.state() == RunState::Pending;
        if fresh {
            self.core.mark_running();
        }
        if self.claimed {
            self.cancel_if_requested().await;
        }
        if fresh {
            self.core.evaluate_roots();
        } else {
            self.core.propagate();
        }
        self.dispatch();
        self.flush().await;
        self.start_dispatched().await;

        while (self.core.unsettled() || !self.running.is_empty()) && self.lost.is_none() {
            // After an inline attempt the step continues at once: its outcome is
            // already applied and nothing else was running.
            if !std::mem::take(&mut self.continue_step) {
                match self.wait().await {
                    Wake::Signals | Wake::Retry => {}
                    Wake::Permit(p) => self.spare = Some(p),
                    Wake::Deadline => {
                        self.clock();
                        self.deadline = None;
                        self.abort_all();
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
            while let Some((node, item)) = self.timers.pop_due(self.core.tick()) {
                self.core.on(Input::RetryDue { node, item });
            }
            self.apply_signals();
            self.core.propagate();
            self.dispatch();
            self.flush().await;
            self.start_dispatched().await;
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
        self.clock();
        self.core.finish();
        self.flush().await;
        if let Some(lost) = self.lost.take() {
            return Err(lost);
        }
        Ok(self.core.result(self.started))
    }

    /// Passes the time to the core.
    fn clock(&mut self) {
        self.core.clock(SystemTime::now(), Instant::now());
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
            if self.timers.poll_due(cx).is_ready() {
                return Poll::Ready(Wake::Retry);
            }
            match self.rx.poll_recv_many(cx, &mut self.signals, 1024) {
                Poll::Ready(_) => Poll::Ready(Wake::Signals),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    // ----- signals ----------------------------------------------------------------------

    /// Applies the signals received (`self.signals`).
    fn apply_signals(&mut self) {
        let mut signals = std::mem::take(&mut self.signals);
        for (key, signal) in signals.drain(..) {
            self.on_signal(key, signal);
        }
        self.signals = signals;
    }

    /// Turns an execution's (or the engine's) signal into the core's input, then
    /// carries out what it led to.
    fn on_signal(&mut self, key: u32, signal: Signal) {
        let input = match signal {
            Signal::Done(outcome) => {
                let Some(r) = self.running.try_remove(key as usize) else {
                    return;
                };
                Input::Done {
                    node: r.node,
                    item: r.item,
                    attempt: r.attempt,
                    outcome,
                }
            }
            Signal::Log { level, message } => {
                let Some(r) = self.running.get(key as usize) else {
                    return;
                };
                Input::Log {
                    node: r.node,
                    item: r.item,
                    attempt: r.attempt,
                    level,
                    message,
                }
            }
            Signal::Progress { percent, message } => {
                let Some(r) = self.running.get(key as usize) else {
                    return;
                };
                Input::Progress {
                    node: r.node,
                    item: r.item,
                    attempt: r.attempt,
                    percent,
                    message,
                }
            }
            Signal::Retry { node, item } => {
                self.retries_sent -= 1;
                Input::RetryDue { node, item }
            }
            Signal::Cancel => {
                self.begin_cancel();
                return;
            }
        };
        self.core.on(input);
        self.arm_retries();
    }

    /// Arms the retry timers the core asked for: one due now is sent as a signal (it
    /// is applied with the next step's signals, in order), a later one goes to the
    /// timer queue.
    fn arm_retries(&mut self) {
        let tick = self.core.tick();
        for t in self.core.take_retries() {
            if t.delay.is_zero() {
                self.retries_sent += 1;
                let _ = self.tx.send((
                    CONTROL,
                    Signal::Retry {
                        node: t.node,
                        item: t.item,
                    },
                ));
            } else {
                self.timers.push(tick + t.delay, t.node, t.item);
            }
        }
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

    /// Starts what is ready while permits last.
    fn dispatch(&mut self) {
        while self.core.has_ready() {
            let Some(permit) = self.permit() else { return };
            match self.core.dispatch_one() {
                Dispatch::Start(start) => self.prepare(start, permit),
                Dispatch::Settled => drop(permit),
                Dispatch::Idle => self.spare = Some(permit),
            }
            self.arm_retries();
        }
        // Nothing waits for capacity any more: stop asking for it.
        self.acquire = None;
    }

    /// Reserves the execution's key and queues it to start after the next flush.
    fn prepare(&mut self, start: Start, permit: Permit) {
        let Start {
            node: n,
            item,
            attempt,
            input,
        } = start;
        let node = &self.plan.nodes[n as usize];
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
            Arc::clone(&self.job_cancel),
            Some(sink),
        )
        .with_artifacts(self.sh.artifacts.clone())
        .with_live(self.sh.resources.clone());
        let exec = Execution::new(node.job.clone(), input, ctx, node.timeout, Some(permit));
        self.to_start.push((key, exec));
    }

    async fn start_dispatched(&mut self) {
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
            && !self.core.has_ready()
            && self.timers.len() == 0
            && self.retries_sent == 0
            && !self.core.cancelling()
            && self.sh.executor.runs_inline()
            && let Some((key, exec)) = self.to_start.pop()
        {
            self.run_inline(key, exec).await;
            return;
        }
        for (key, mut exec) in self.to_start.drain(..) {
            // Dropped by the executor without an outcome, it fails the attempt.
            exec.arm(self.sh.executor_name);
            let handle = self.sh.executor.start(exec);
            if let Some(r) = self.running.get_mut(key) {
                r.handle = handle;
            }
        }
    }
}
