//! The checks that stop attempts: cancellation (cooperative, and deaf past the grace
//! period) and timeouts.

use std::time::{Duration, Instant};

use super::jobs::{self, Nap};
use super::watch::Watch;
use super::{Check, Suite, Violation};
use crate::error::ErrorKind;
use crate::executor::Executor;
use crate::orchestrator::{Engine, RunResult};
use crate::state::{NodeState, RunState};
use crate::store::MemoryStore;
use crate::workflow::Workflow;

impl<F, E> Suite<F>
where
    F: Fn() -> E + Send + Sync,
    E: Executor,
{
    /// Cancelling the run fires the job's token: a cooperative job stops well within
    /// the grace period and the node ends Cancelled.
    pub async fn cancel_cooperative(&self) -> Check {
        const C: &str = "cancel_cooperative";
        // A long grace: the job must stop because it was asked, not because it was killed.
        let grace = Duration::from_secs(30);
        let engine = Engine::builder()
            .store(MemoryStore::new())
            .executor((self.make)())
            .cancel_grace(grace)
            .build();
        let (r, took, _) = self.cancel_nap(C, &engine, true, None).await?;
        let node = r.node("nap");
        ensure!(
            self,
            C,
            r.state == RunState::Cancelled,
            "the run ended {} (expected cancelled): {}",
            r.state,
            r.table()
        );
        ensure!(
            self,
            C,
            node.is_some_and(|n| n.state == NodeState::Cancelled),
            "the node should end Cancelled: {node:?}"
        );
        ensure!(
            self,
            C,
            took <= self.slack,
            "the cooperative job took {took:?} to stop after the cancel (at most {:?})",
            self.slack
        );
        Ok(())
    }

    /// A job deaf to its token is stopped once the grace period has run out — not
    /// before half of it, not after it (plus the slack): the node ends Cancelled, and
    /// the attempt never runs to its end.
    pub async fn cancel_deaf_after_grace(&self) -> Check {
        const C: &str = "cancel_deaf_after_grace";
        let engine = self.engine_with((self.make)());
        let marker = Marker::new();
        let nap = self.grace + self.slack + Duration::from_millis(300);
        let (r, took, started) = self
            .cancel_nap(C, &engine, false, Some((&marker, nap)))
            .await?;
        let node = r.node("nap");
        ensure!(
            self,
            C,
            r.state == RunState::Cancelled,
            "the run ended {} (expected cancelled): {}",
            r.state,
            r.table()
        );
        ensure!(
            self,
            C,
            node.is_some_and(|n| n.state == NodeState::Cancelled),
            "the node should end Cancelled: {node:?}"
        );
        let bound = self.grace + self.slack;
        ensure!(
            self,
            C,
            took <= bound,
            "the deaf job ended {took:?} after the cancel (at most the grace {:?} + slack)",
            self.grace
        );
        ensure!(
            self,
            C,
            took >= self.grace / 2,
            "the deaf job was stopped {took:?} after the cancel: a job gets a grace period \
             to stop on its own (the engine's is {:?}; an executor's own should be at least \
             half of it)",
            self.grace
        );
        self.never_finishes(C, &marker, started + nap).await
    }

    /// An attempt past its timeout fails with kind TimedOut (not retried here), and
    /// is stopped: it never runs to its end.
    pub async fn timeout(&self) -> Check {
        const C: &str = "timeout";
        let marker = Marker::new();
        let limit = Duration::from_millis(300);
        let nap = limit + self.grace + self.slack + Duration::from_millis(300);
        let mut wf = Workflow::builder("conformance-timeout");
        wf.add("nap", Nap)
            .input((nap.as_millis() as u64, false, Some(marker.path())))
            .timeout(limit)
            .retries(0);
        let wf = self.workflow(C, wf)?;
        let started = Instant::now();
        let (r, _) = self.run_with(C, (self.make)(), &wf).await?;
        let took = started.elapsed();
        let node = r.node("nap");
        ensure!(
            self,
            C,
            r.state == RunState::Failed,
            "the run ended {} (expected failed): {}",
            r.state,
            r.table()
        );
        ensure!(
            self,
            C,
            node.is_some_and(|n| n
                .error
                .as_ref()
                .is_some_and(|e| e.kind == ErrorKind::TimedOut)),
            "the node's error should be of kind TimedOut: {node:?}"
        );
        let bound = limit + self.grace + self.slack;
        ensure!(
            self,
            C,
            took <= bound,
            "the run took {took:?} with a {limit:?} timeout (at most {bound:?})"
        );
        self.never_finishes(C, &marker, started + nap).await
    }

    /// A run that goes away while its attempt runs (abandoned, as when the engine
    /// stops: its driver drops and aborts the attempt's handle) takes the attempt
    /// with it: a deaf job never runs to its end.
    pub async fn abandoned_run(&self) -> Check {
        const C: &str = "abandoned_run";
        let engine = self.engine_with((self.make)());
        let marker = Marker::new();
        let nap = self.slack + Duration::from_millis(500);
        let mut wf = Workflow::builder("conformance-abandon");
        wf.add("nap", Nap)
            .input((nap.as_millis() as u64, false, Some(marker.path())));
        let wf = self.workflow(C, wf)?;
        let mut watch = Watch::new(&engine);
        let started = Instant::now();
        let run = engine
            .start(&wf, ())
            .await
            .map_err(|e| self.violation(C, format!("the run did not start: {e}")))?;
        watch.follow(run.id());
        let running = watch
            .wait_for_log(jobs::NAP_STARTED, Duration::from_secs(10) + self.slack)
            .await;
        run.abandon();
        ensure!(
            self,
            C,
            running,
            "the nap did not log that it started; events: {:?}",
            watch.events()
        );
        self.never_finishes(C, &marker, started + nap).await
    }

    /// Starts a one-node run of a nap, cancels it once the job runs, and returns the
    /// result, the time from the cancel to the end, and when the nap started.
    async fn cancel_nap(
        &self,
        check: &'static str,
        engine: &Engine,
        cooperative: bool,
        marker: Option<(&Marker, Duration)>,
    ) -> Result<(RunResult, Duration, Instant), Violation> {
        let ms = marker.map_or(60_000, |(_, d)| d.as_millis() as u64);
        let mut wf = Workflow::builder("conformance-cancel");
        wf.add("nap", Nap)
            .input((ms, cooperative, marker.map(|(m, _)| m.path())));
        let wf = self.workflow(check, wf)?;
        let mut watch = Watch::new(engine);
        let started = Instant::now();
        let run = engine
            .start(&wf, ())
            .await
            .map_err(|e| self.violation(check, format!("the run did not start: {e}")))?;
        watch.follow(run.id());
        if !watch
            .wait_for_log(jobs::NAP_STARTED, Duration::from_secs(10) + self.slack)
            .await
        {
            run.cancel();
            return Err(self.violation(
                check,
                format!(
                    "the nap did not log that it started; events: {:?}",
                    watch.events()
                ),
            ));
        }
        let cancelled = Instant::now();
        run.cancel();
        let r = self.wait(check, run.wait()).await?;
        Ok((r, cancelled.elapsed(), started))
    }

    /// Waits until a little after `end` (when an attempt that was not stopped would
    /// have created `marker`) and checks that it did not.
    async fn never_finishes(&self, check: &'static str, marker: &Marker, end: Instant) -> Check {
        tokio::time::sleep_until((end + Duration::from_millis(300)).into()).await;
        ensure!(
            self,
            check,
            !marker.exists(),
            "the attempt was not stopped: it ran to its end after the run finished"
        );
        Ok(())
    }
}

/// A file an attempt creates when it runs to its end; removed on drop.
struct Marker(std::path::PathBuf);

impl Marker {
    fn new() -> Self {
        Marker(std::env::temp_dir().join(format!("dagforge-conformance-{}", uuid::Uuid::now_v7())))
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }

    fn exists(&self) -> bool {
        self.0.exists()
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
