//! Retrying a finished run.
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
use std::time::SystemTime;

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
