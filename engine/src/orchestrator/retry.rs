//! Retrying a finished run, and cancelling a recorded run no engine is driving.
//!
//! A retry is a **new run** of the same workflow version with the same inputs. With
//! [`RetryMode::FromFailed`] the new run starts from the old run's history: its event
//! log begins with a copy of the old run's node, log and progress events (so succeeded
//! nodes keep their outputs, and every attempt — the failed ones included — stays on
//! record with its number), followed by events that put the nodes to re-run back to
//! Pending. The engine then drives it like a run resumed after a crash: succeeded
//! nodes never run again, attempt numbers continue, and each re-run node and item
//! gets its full retry budget again (counted from the event that put it back, see
//! `Driver::restore`). The old run is left untouched.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::engine::{Engine, RunHandle, bind_params};
use crate::error::{Error, Result};
use crate::events::{Event, EventKind, NodeEvent};
use crate::ids::RunId;
use crate::state::{NodeState, RunState};
use crate::store::{Lease, RunRecord};
use crate::workflow::{Workflow, WorkflowSnapshot};

/// The reason recorded on the events that put a node back to Pending for a retry,
/// followed by the old run's id.
pub(crate) const RETRY_REASON_PREFIX: &str = "re-run by a retry of run ";

/// What [`Engine::retry`] re-runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryMode {
    /// Only the nodes that failed, timed out or were cancelled, and the nodes skipped
    /// because of them (downstream of one, in the Skipped state); of a fan-out node
    /// whose items ran, only the items that did not succeed. Everything else keeps its
    /// recorded state and output. Nodes downstream of a re-run node that did run (an
    /// `all_done` cleanup, a `one_failed` handler) are not run again.
    ///
    /// Each re-run node (and fan-out item) gets its full retry budget again, while
    /// its attempt numbers go on from the old run's: a node with `retries(2)` that
    /// failed attempts 1–3 runs attempts 4–6, and attempts 1–3 stay on record.
    FromFailed,
    /// A fresh run with the same inputs.
    Fresh,
}

impl Engine {
    /// Retries the finished run `run` as a new run, driven by this engine; see
    /// [`RetryMode`]. The new run's id is the handle's.
    ///
    /// Errors: [`Error::RunNotFound`], [`Error::RunNotFinished`],
    /// [`Error::UnknownWorkflow`] when the run's workflow version is not registered
    /// with this engine ([`EngineBuilder::workflow`](super::EngineBuilder::workflow)),
    /// [`Error::NothingToRetry`] for `FromFailed` on a run where every node succeeded
    /// or was skipped by its own rule.
    pub async fn retry(&self, run: RunId, mode: RetryMode) -> Result<RunHandle> {
        let (old, workflow) = self.finished_run(run).await?;
        match mode {
            RetryMode::Fresh => self.start(&workflow, &old.inputs).await,
            RetryMode::FromFailed => {
                crate::bounds::check_run_inputs(&old.inputs, self.sh.max_input)?;
                let params = bind_params(&workflow, &old.inputs)?;
                let (id, lease, events) = self.record_retry(&old, &workflow).await?;
                Ok(self.drive(id, Arc::clone(&workflow.plan), params, lease, events, false))
            }
        }
    }

    /// Like [`retry`](Engine::retry), but records the new run for any engine serving
    /// the store (see [`serve`](Engine::serve)) to claim, and returns its id.
    pub async fn enqueue_retry(&self, run: RunId, mode: RetryMode) -> Result<RunId> {
        let (old, workflow) = self.finished_run(run).await?;
        match mode {
            RetryMode::Fresh => self.enqueue(&workflow, &old.inputs).await,
            RetryMode::FromFailed => {
                crate::bounds::check_run_inputs(&old.inputs, self.sh.max_input)?;
                bind_params(&workflow, &old.inputs)?;
                let (id, lease, _) = self.record_retry(&old, &workflow).await?;
                self.sh.store.release(id, &lease).await?;
                Ok(id)
            }
        }
    }

    /// Cancels a recorded run and returns its state: a run this engine drives is
    /// asked to cancel (`Cancelled`); a run no engine drives (enqueued, or its engine
    /// stopped) is claimed and cancelled here (its final state); a finished run is left
    /// as it is. Otherwise the request is recorded in the store and the run's current
    /// (unfinished) state is returned: a run enqueued for later (`Pending`) is
    /// cancelled by the engine that claims it when it comes due, before any of its
    /// attempts starts; a run another live engine drives (`Running`) is cancelled by
    /// that engine when it next looks — at once on PostgreSQL (a notification wakes
    /// it), within 20 ms on a SQLite file, within its poll interval otherwise —
    /// provided it [serves](Engine::serve) the store or
    /// [follows cancel requests](Engine::follow_cancel_requests).
    ///
    /// A queued or delayed run cancelled here never starts a job: whichever engine
    /// claims it (this one, a serving engine racing for it, one claiming it later)
    /// finds the request before dispatching anything and records the run `Cancelled`
    /// with every node cancelled and no attempt.
    pub async fn cancel_recorded(&self, run: RunId) -> Result<RunState> {
        let record = self
            .sh
            .store
            .get_run(run)
            .await?
            .ok_or(Error::RunNotFound(run))?;
        if record.state.is_terminal() {
            return Ok(record.state);
        }
        if self.cancel(run) {
            return Ok(RunState::Cancelled);
        }
        // Recorded first: whoever drives the run, now or after claiming it, cancels it.
        if !self.sh.store.request_cancel(run).await? {
            let state = self
                .sh
                .store
                .get_run(run)
                .await?
                .map_or(record.state, |r| r.state);
            return Ok(state);
        }
        // Queued, or its engine died: take it and cancel it here.
        let target = self
            .sh
            .store
            .claim_run(run, &self.sh.owner, self.sh.lease_ttl)
            .await?;
        let Some(c) = target else {
            // Another live engine drives it, or it waits for its start time: whoever
            // drives it sees the request. A run that was queued is looked at again:
            // still `Pending` now means no attempt of it will start (a driver looks for
            // the request after recording the run's start, and before starting
            // anything); an engine may have started it since the first look.
            if record.state != RunState::Pending {
                return Ok(record.state);
            }
            let now = self.sh.store.get_run(run).await?;
            return Ok(now.map_or(record.state, |r| r.state));
        };
        let Some(workflow) = self.workflow_of(&c.run) else {
            self.sh.store.release(run, &c.lease).await?;
            return Err(self.unknown_workflow(&c.run));
        };
        let params = bind_params(&workflow, &c.run.inputs)?;
        let events = self.all_events(run).await?;
        let handle = self.drive(
            run,
            Arc::clone(&workflow.plan),
            params,
            c.lease,
            events,
            true,
        );
        handle.cancel();
        Ok(handle.wait().await?.state)
    }

    /// Honours the cancellations requested elsewhere ([`cancel_recorded`] from another
    /// engine or process, the CLI's `runs cancel`) of the runs this engine drives, for
    /// as long as the future is polled; it never completes, so drop it to stop.
    ///
    /// [`serve`](Engine::serve) does this itself. An engine that drives runs without
    /// serving ([`start`](Engine::start), [`run`](Engine::run), [`retry`](Engine::retry))
    /// on a store other processes share runs this beside them, so that their runs can
    /// be cancelled from elsewhere (the CLI's `run --wait` does). It looks when the
    /// store signals a change (at once on PostgreSQL, within 20 ms on a SQLite file,
    /// at once on a memory store), and every `poll` anyway; a store error is logged
    /// and the next look tries again.
    ///
    /// [`cancel_recorded`]: Engine::cancel_recorded
    pub async fn follow_cancel_requests(&self, poll: Duration) {
        use futures_util::StreamExt;
        let mut wakeups = match self.sh.store.watch().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "store watch unavailable; looking for cancellation requests every poll");
                None
            }
        };
        let mut asked: HashSet<RunId> = HashSet::new();
        loop {
            match self.sh.store.cancel_requests(&self.sh.owner).await {
                Ok(ids) => {
                    asked.retain(|id| ids.contains(id));
                    for id in ids {
                        if !asked.contains(&id) && self.cancel(id) {
                            tracing::info!(run_id = %id, "cancelling on request");
                            asked.insert(id);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading cancellation requests failed; trying again");
                }
            }
            let wake = async {
                match wakeups.as_mut() {
                    Some(w) => w.next().await.is_some(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                alive = wake => if !alive {
                    // The store stopped signalling: poll from now on.
                    wakeups = None;
                },
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// The finished run `run` and its registered workflow.
    async fn finished_run(&self, run: RunId) -> Result<(RunRecord, Workflow)> {
        let old = self
            .sh
            .store
            .get_run(run)
            .await?
            .ok_or(Error::RunNotFound(run))?;
        if !old.state.is_terminal() {
            return Err(Error::RunNotFinished {
                run,
                state: old.state,
            });
        }
        let workflow = self
            .workflow_of(&old)
            .ok_or_else(|| self.unknown_workflow(&old))?;
        Ok((old, workflow))
    }

    /// Records the from-failure retry of `old` as a new run leased to this engine,
    /// and returns it with its events.
    async fn record_retry(
        &self,
        old: &RunRecord,
        workflow: &Workflow,
    ) -> Result<(RunId, Lease, Vec<Event>)> {
        let history = self.all_events(old.id).await?;
        let id = RunId::new();
        let events = reopen(workflow, old.id, id, history)?;
        let record = RunRecord::new(
            id,
            workflow.name().to_owned(),
            workflow.version().to_owned(),
            WorkflowSnapshot::of(workflow),
            old.inputs.clone(),
        );
        let lease = Lease::new(Arc::clone(&self.sh.owner), 1);
        self.sh
            .store
            .create_run(&record, &lease, self.sh.lease_ttl)
            .await?;
        // In pages, so that one transaction stays a reasonable size.
        for chunk in events.chunks(5_000) {
            self.sh.store.append(id, &lease, chunk).await?;
        }
        tracing::info!(run_id = %id, retry_of = %old.id, events = events.len(), "retrying run from its failures");
        Ok((id, lease, events))
    }

    async fn all_events(&self, run: RunId) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        loop {
            let page = self
                .sh
                .store
                .events(run, events.len() as u64, 10_000)
                .await?;
            if page.is_empty() {
                return Ok(events);
            }
            events.extend(page);
        }
    }

    fn unknown_workflow(&self, run: &RunRecord) -> Error {
        let mut known: Vec<String> = self
            .sh
            .workflows
            .keys()
            .map(|(n, v)| format!("{n} v{v}"))
            .collect();
        known.sort();
        Error::UnknownWorkflow {
            name: run.workflow.clone(),
            version: Some(run.version.clone()),
            known,
        }
    }
}

/// The event log of a from-failure retry of run `old` as run `new`: the old run's
/// node, log and progress events, then events putting the nodes (and items) to re-run
/// back to Pending.
fn reopen(workflow: &Workflow, old: RunId, new: RunId, history: Vec<Event>) -> Result<Vec<Event>> {
    let plan = &workflow.plan;
    let now = SystemTime::now();
    // Final state of each node and of each item.
    let mut node_state: HashMap<u32, NodeState> = HashMap::new();
    let mut item_state: HashMap<(u32, u32), NodeState> = HashMap::new();
    let mut events = Vec::with_capacity(history.len() + 16);
    events.push(EventKind::Run {
        from: RunState::Pending,
        to: RunState::Running,
    });
    let mut ats = vec![now];
    for e in history {
        if let EventKind::Node(n) = &e.kind
            && let Some(&i) = plan.index.get(&*n.node)
        {
            match n.item {
                None => {
                    node_state.insert(i, n.to);
                }
                Some(item) => {
                    item_state.insert((i, item), n.to);
                }
            }
        }
        if !matches!(e.kind, EventKind::Run { .. }) {
            ats.push(e.at);
            events.push(e.kind);
        }
    }

    // What to re-run: failures, and skipped nodes downstream of one, in topological
    // order so that a skip caused by a skip is caught too.
    let mut reset: HashSet<u32> = HashSet::new();
    for id in workflow.topological_order() {
        let Some(&n) = plan.index.get(id) else {
            continue;
        };
        let state = node_state.get(&n).copied().unwrap_or(NodeState::Pending);
        let rerun = match state {
            NodeState::Failed | NodeState::TimedOut | NodeState::Cancelled => true,
            NodeState::Skipped => plan.parents(n).iter().any(|p| reset.contains(p)),
            // Not settled (the run was cancelled before it got there).
            s => !s.is_terminal(),
        };
        if rerun {
            reset.insert(n);
        }
    }
    if reset.is_empty() {
        return Err(Error::NothingToRetry(old));
    }
    let reason: Arc<str> = format!("{RETRY_REASON_PREFIX}{old}").into();
    let mut order: Vec<u32> = reset.iter().copied().collect();
    order.sort_unstable();
    for n in order {
        let node = &plan.nodes[n as usize];
        let state = node_state.get(&n).copied().unwrap_or(NodeState::Pending);
        let items: Vec<(u32, NodeState)> = {
            let mut v: Vec<_> = item_state
                .iter()
                .filter(|((m, _), _)| *m == n)
                .map(|((_, item), s)| (*item, *s))
                .collect();
            v.sort_unstable_by_key(|(item, _)| *item);
            v
        };
        let parents_ok = plan
            .parents(n)
            .iter()
            .all(|p| node_state.get(p) == Some(&NodeState::Succeeded));
        if node.fan_out.is_some() && !items.is_empty() && parents_ok && state != NodeState::Skipped
        {
            // Keep the items that succeeded; the others run again.
            events.push(EventKind::Node(
                NodeEvent::new(Arc::clone(&node.id), None, 0, state, NodeState::Running)
                    .with_reason(Arc::clone(&reason)),
            ));
            ats.push(now);
            for (item, s) in items {
                if s != NodeState::Succeeded {
                    events.push(EventKind::Node(
                        NodeEvent::new(Arc::clone(&node.id), Some(item), 0, s, NodeState::Ready)
                            .with_reason(Arc::clone(&reason)),
                    ));
                    ats.push(now);
                }
            }
        } else if state != NodeState::Pending {
            events.push(EventKind::Node(
                NodeEvent::new(Arc::clone(&node.id), None, 0, state, NodeState::Pending)
                    .with_reason(Arc::clone(&reason)),
            ));
            ats.push(now);
        }
    }
    Ok(events
        .into_iter()
        .zip(ats)
        .enumerate()
        .map(|(k, (kind, at))| Event::new(new, k as u64 + 1, at, kind))
        .collect())
}

impl Engine {
    fn workflow_of(&self, run: &RunRecord) -> Option<Workflow> {
        self.sh
            .workflows
            .get(&(run.workflow.clone(), run.version.clone()))
            .cloned()
    }
}
