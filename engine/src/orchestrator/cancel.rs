//! Cancelling a run by its id from anywhere: [`Engine::cancel_recorded`] records the
//! request in the store (or cancels the run itself when no engine drives it), and
//! [`Engine::follow_cancel_requests`] (which [`Engine::serve`] does too) honours the
//! requests for the runs an engine drives. [`Engine::cancel`] (engine.rs) is the
//! in-memory half: it reaches only the runs this engine drives.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::engine::{Engine, bind_params};
use crate::error::{Error, Result};
use crate::ids::RunId;
use crate::state::RunState;

impl Engine {
    /// Cancels run `run` wherever it is, through the store, and returns its state. Use
    /// it for a run known by its id only (the CLI's `runs cancel`): enqueued, delayed,
    /// driven by this engine, by another engine or process, or orphaned by an engine
    /// that stopped. For a run this engine drives it does what [`cancel`](Engine::cancel)
    /// does (`Cancelled`); a run no engine drives (enqueued, due or for later, or its
    /// engine stopped) is claimed and cancelled here at once (its final state); a
    /// finished run is left as it is (its state). Otherwise the request is recorded in
    /// the store and the run's current (unfinished) state is returned: a run another
    /// live engine drives (`Running`) is
    /// cancelled by that engine when it next looks — at once on PostgreSQL (a
    /// notification wakes it), within 20 ms on a SQLite file, within its poll interval
    /// otherwise — provided it [serves](Engine::serve) the store or
    /// [follows cancel requests](Engine::follow_cancel_requests).
    ///
    /// A queued or delayed run cancelled here never starts a job: whichever engine
    /// claims it (this one, a serving engine racing for it, one claiming it later)
    /// finds the request before dispatching anything and records the run `Cancelled`
    /// with every node cancelled and no attempt.
    ///
    /// ```
    /// # use dagforge::prelude::*;
    /// # struct Noop;
    /// # impl Job for Noop {
    /// #     type Input = ();
    /// #     type Output = ();
    /// #     const NAME: &'static str = "noop";
    /// #     async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), dagforge::Error> {
    /// let wf = Workflow::of_job(Noop)?;
    /// let engine = Engine::builder().workflow(&wf).build();
    /// let queued = engine.enqueue(&wf, ()).await?;
    /// // Not driven by this engine (nor any): `cancel` does nothing.
    /// assert!(!engine.cancel(queued));
    /// // Through the store: claimed here and cancelled before any job starts.
    /// assert_eq!(engine.cancel_recorded(queued).await?, RunState::Cancelled);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Errors: [`Error::RunNotFound`]; [`Error::UnknownWorkflow`] when the run is to
    /// be cancelled here and its workflow version is not registered with this engine
    /// (the claim is given back); [`Error::Store`].
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
            // Another live engine drives it (a run queued for later is taken above,
            // its cancel being recorded): whoever drives it sees the request. A run that was queued is looked at again:
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
}
