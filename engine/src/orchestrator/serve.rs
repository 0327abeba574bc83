//! Serving a store: claiming runs (enqueued, or whose engine stopped) up to the
//! engine's free capacity, driving them, riding out store outages, and handing the
//! runs over when serving stops.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::engine::{Engine, RunHandle, bind_params};
use super::result::RunResult;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::ids::RunId;
use crate::store::{Claimed, EngineRecord, Lease, Store, Wakeups};

/// How long an engine leaves alone a run it claimed and gave back because it does not
/// know the run's workflow version (an engine that knows it takes it meanwhile).
const FOREIGN_HOLD: Duration = Duration::from_secs(2);

/// The first wait after a failed turn of `serve`; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between turns while the store fails: how late, at most, a serving
/// engine notices that the store is back.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Most runs claimed by one statement.
const CLAIM_BATCH: usize = 64;

/// The runs a serving engine claimed and drives.
#[derive(Default)]
struct Served {
    /// Waits for each run's end.
    tasks: JoinSet<(RunId, Result<RunResult>)>,
    /// Each run's lease (given back when serving stops) and driver task.
    runs: HashMap<RunId, (Lease, AbortHandle)>,
}

impl Served {
    fn add(&mut self, handle: RunHandle, lease: Lease) {
        let id = handle.id();
        self.runs.insert(id, (lease, handle.abort_handle()));
        self.tasks.spawn(async move { (id, handle.wait().await) });
    }

    /// Forgets a run that ended (or whose waiter failed).
    fn ended(
        &mut self,
        done: std::result::Result<(RunId, Result<RunResult>), tokio::task::JoinError>,
    ) {
        match done {
            Ok((id, result)) => {
                self.runs.remove(&id);
                if let Err(e) = result {
                    tracing::warn!(run_id = %id, error = %e, "run stopped");
                }
            }
            Err(e) => tracing::error!(error = %e, "a run's waiter failed"),
        }
    }
}

/// What the loop of `serve` carries from one turn to the next.
struct Turns {
    wakeups: Option<Wakeups>,
    /// Whether the store's wake-up stream is set up (or the store has none).
    watching: bool,
    /// Whether the declared recurring schedules are registered.
    registered: bool,
    schedules_at: Instant,
    /// Runs given back because this engine cannot drive them, left alone until then.
    held: HashMap<RunId, Instant>,
    /// Whether the last claim stopped at this engine's capacity.
    full: bool,
}

/// The store's health as a serving engine sees it. A failure is logged (warn, with
/// its cause) when the store starts failing, and the recovery (info) when it is back:
/// once per change, not once per retry.
struct Health {
    failing_since: Option<Instant>,
    backoff: Duration,
}

impl Health {
    fn ok(&mut self) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(
                after = ?since.elapsed(),
                "store reachable again; serving resumes"
            );
        }
        self.backoff = BACKOFF_FIRST;
    }

    /// Records a failed turn; returns how long to wait before the next one.
    fn failed(&mut self, e: &Error) -> Duration {
        let cause = chain(e);
        if self.failing_since.is_none() {
            self.failing_since = Some(Instant::now());
            tracing::warn!(error = %cause, retry_every = ?BACKOFF_MAX,
                "store unavailable; serving goes on and retries until it is back");
        } else {
            tracing::debug!(error = %cause, "store still unavailable");
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        wait
    }
}

/// An error with its causes, `: `-separated.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The engine's heartbeat while it serves: its [`EngineRecord`] written at start and
/// every lease-renewal interval by a task of its own, removed on a clean stop. A beat
/// that fails (the store out of reach) is logged and tried again at the next
/// interval; it never stops serving.
struct Heartbeat {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    store: Arc<dyn Store>,
    id: Arc<str>,
}

impl Heartbeat {
    /// Beats once, then every `every` on a task.
    async fn start(
        store: Arc<dyn Store>,
        id: Arc<str>,
        every: Duration,
        telemetry: Arc<crate::telemetry::Telemetry>,
    ) -> Heartbeat {
        let record = EngineRecord::new(
            &*id,
            host_name(),
            std::process::id(),
            env!("CARGO_PKG_VERSION"),
            std::time::SystemTime::now(),
        );
        let mut failing = false;
        beat(&*store, &record, &mut failing).await;
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let beats = Arc::clone(&store);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(every) => {}
                }
                let record = record.clone().beat_at(std::time::SystemTime::now());
                beat(&*beats, &record, &mut failing).await;
                if !failing {
                    telemetry.liveness.renewed();
                }
            }
        });
        Heartbeat {
            stop,
            task,
            store,
            id,
        }
    }

    /// Stops beating (a beat under way finishes) and removes the engine's record.
    async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the heartbeat task failed");
        }
        if let Err(e) = self.store.forget_engine(&self.id).await {
            tracing::warn!(error = %chain(&e),
                "could not remove the engine's heartbeat record; it goes stale on its own");
        }
    }
}

/// Writes one beat; logs a failure at warn when beats start failing, at debug while
/// they go on failing, and the recovery at info.
async fn beat(store: &dyn Store, record: &EngineRecord, failing: &mut bool) {
    match store.beat(record).await {
        Ok(()) if *failing => {
            *failing = false;
            tracing::info!("engine heartbeat recorded again");
        }
        Ok(()) => {}
        Err(e) if !*failing => {
            *failing = true;
            tracing::warn!(error = %chain(&e), "engine heartbeat not recorded; retrying");
        }
        Err(e) => tracing::debug!(error = %chain(&e), "engine heartbeat still not recorded"),
    }
}

/// This machine's name (`HOSTNAME`, else `/etc/hostname`, else `unknown`).
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

impl Engine {
    /// Serves the store until `shutdown` completes: claims runs that were enqueued or
    /// whose engine died (see [`resume`](Engine::resume)) and drives them, at most as
    /// many at once as the engine's [concurrency](crate::EngineBuilder::concurrency)
    /// (runs it drives from [`start`](Engine::start) count too), so that engines
    /// sharing a store share its work. Wakes on the store's notifications when it has
    /// them (PostgreSQL LISTEN/NOTIFY, the memory store), and re-reads the store every
    /// `poll` anyway, since a notification can be lost.
    ///
    /// Store failures do not end it: a turn that fails (the database restarting or out
    /// of reach, for any length of time) is logged once, at warn, and retried with a
    /// backoff of at most one second, so serving resumes within about a second of the
    /// store coming back. Runs being driven go on meanwhile (their writes retry).
    ///
    /// When `shutdown` completes, no more runs are claimed; the runs this loop claimed
    /// get the engine's [cancel grace](crate::EngineBuilder::cancel_grace) to finish,
    /// and those still running then are stopped and their leases given back, so that
    /// another engine resumes them at once (their running attempts are recorded as
    /// interrupted and run again there). Runs started with [`start`](Engine::start)
    /// are left running.
    ///
    /// While it serves, the engine records a heartbeat in the store (an
    /// [`EngineRecord`]: id, host, pid, version, start, last beat) at start and every
    /// lease-renewal interval (a third of the [lease TTL](crate::EngineBuilder::lease_ttl)),
    /// and removes it when serving stops; read them with
    /// `engine.store().engines()` ([`EngineRegistry`](crate::store::EngineRegistry)).
    pub async fn serve(
        &self,
        poll: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        use futures_util::StreamExt;
        tokio::pin!(shutdown);
        let heartbeat = Heartbeat::start(
            Arc::clone(&self.sh.store),
            Arc::clone(&self.sh.owner),
            self.sh.lease_ttl / 3,
            Arc::clone(&self.sh.telemetry),
        )
        .await;
        self.sh
            .telemetry
            .liveness
            .serving(poll, self.sh.lease_ttl / 3);
        let mut served = Served::default();
        let mut health = Health {
            failing_since: None,
            backoff: BACKOFF_FIRST,
        };
        let mut turns = Turns {
            wakeups: None,
            watching: false,
            registered: false,
            schedules_at: Instant::now(),
            held: HashMap::new(),
            full: false,
        };
        loop {
            while let Some(done) = served.tasks.try_join_next() {
                served.ended(done);
            }
            let sleep = match self.serve_turn(poll, &mut turns, &mut served).await {
                Ok(sleep) => {
                    health.ok();
                    self.sh.telemetry.liveness.turned();
                    sleep
                }
                Err(e) => health.failed(&e),
            };
            let wake = async {
                match turns.wakeups.as_mut() {
                    Some(w) => w.next().await.is_some(),
                    None => std::future::pending().await,
                }
            };
            let at_capacity = turns.full && !served.tasks.is_empty();
            tokio::select! {
                () = &mut shutdown => break,
                alive = wake => if !alive {
                    // The store stopped notifying: poll, and watch again next turn.
                    turns.wakeups = None;
                    turns.watching = false;
                },
                Some(done) = served.tasks.join_next(), if at_capacity => served.ended(done),
                () = tokio::time::sleep(sleep) => {}
            }
        }
        self.sh.telemetry.liveness.stopped();
        self.stop_serving(served).await;
        heartbeat.stop().await;
        Ok(())
    }

    /// One turn of `serve`: claims and starts runs, forwards recorded cancellations,
    /// fires due schedules. Returns how long to sleep at most.
    async fn serve_turn(
        &self,
        poll: Duration,
        turns: &mut Turns,
        served: &mut Served,
    ) -> Result<Duration> {
        if !turns.watching {
            turns.wakeups = self.sh.store.watch().await?;
            turns.watching = true;
        }
        if !turns.registered {
            self.schedules().register_declared().await?;
            turns.registered = true;
        }
        let now = Instant::now();
        turns.held.retain(|_, until| *until > now);
        let room = self.sh.capacity.saturating_sub(self.active().len());
        let (claimed, failed) = self.claim_runs(room, &mut turns.held).await;
        turns.full = claimed.len() >= room;
        for (handle, lease) in claimed {
            served.add(handle, lease);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        // Cancellations asked for elsewhere (`Engine::cancel_recorded`, the CLI's
        // `runs cancel`) of runs this engine drives.
        for id in self.sh.store.cancel_requests(&self.sh.owner).await? {
            if self.cancel(id) {
                tracing::info!(run_id = %id, "cancelling on request");
            }
        }
        // Fire due recurring schedules; sleep no later than the next fire.
        let mut sleep = self.schedules().turn(poll, &mut turns.schedules_at).await?;
        // A run enqueued for later: wake when it may start (a moment after, so that
        // its lease has surely expired by the store's clock).
        if let Some(at) = self.sh.store.next_start().await? {
            let wait = at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            sleep = sleep.min(wait + Duration::from_millis(2));
        }
        if let Some(until) = turns.held.values().min() {
            sleep = sleep.min(until.saturating_duration_since(now));
        }
        Ok(sleep)
    }

    /// Stops serving: waits up to the cancel grace for the runs `serve` claimed, then
    /// stops the rest and gives their leases back.
    async fn stop_serving(&self, mut served: Served) {
        if served.runs.is_empty() {
            return;
        }
        tracing::info!(runs = served.runs.len(), grace = ?self.sh.grace,
            "stopping: waiting for the runs being driven to finish");
        let deadline = tokio::time::sleep(self.sh.grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                done = served.tasks.join_next() => match done {
                    Some(done) => served.ended(done),
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
        if served.runs.is_empty() {
            return;
        }
        for (_, abort) in served.runs.values() {
            abort.abort();
        }
        while served.tasks.join_next().await.is_some() {}
        let mut handed = 0;
        for (id, (lease, _)) in served.runs.drain() {
            match self.sh.store.release(id, &lease).await {
                Ok(()) => handed += 1,
                Err(e) => {
                    tracing::warn!(run_id = %id, error = %chain(&e),
                        "could not give the run's lease back; it expires on its own")
                }
            }
        }
        tracing::info!(
            runs = handed,
            "stopped; runs still running handed over to other engines"
        );
    }

    /// Claims the unfinished runs whose engine stopped (their lease expired) and drives
    /// them on from where their events leave off: nodes that succeeded keep their
    /// outputs and never run again; attempts that were running when the engine stopped
    /// are recorded as interrupted and run again (a new attempt). Runs of workflows this
    /// engine does not know (see [`EngineBuilder::workflow`](crate::EngineBuilder::workflow))
    /// are left to other engines, and runs this engine drives already are left alone.
    /// A run claimed too many times without progress is failed instead (see
    /// [`EngineBuilder::max_stalled_claims`](crate::EngineBuilder::max_stalled_claims)).
    pub async fn resume(&self) -> Result<Vec<RunHandle>> {
        let (claimed, failed) = self.claim_runs(usize::MAX, &mut HashMap::new()).await;
        match failed {
            Some(e) if claimed.is_empty() => Err(e),
            Some(e) => {
                tracing::warn!(error = %chain(&e), "resuming some runs failed");
                Ok(claimed.into_iter().map(|(h, _)| h).collect())
            }
            None => Ok(claimed.into_iter().map(|(h, _)| h).collect()),
        }
    }

    /// Claims up to `limit` runs and starts driving them; runs in `held` are left
    /// alone, and runs given back go there. Returns the runs started, with their
    /// leases, and the first failure (after which it claims no more).
    async fn claim_runs(
        &self,
        limit: usize,
        held: &mut HashMap<RunId, Instant>,
    ) -> (Vec<(RunHandle, Lease)>, Option<Error>) {
        let mut out = Vec::new();
        // Only runs of workflows this engine can drive (by name; a version it does not
        // know is given back below and left to others).
        let mut names: Vec<String> = self.sh.workflows.keys().map(|(n, _)| n.clone()).collect();
        names.sort();
        names.dedup();
        if names.is_empty() {
            return (out, None);
        }
        loop {
            let want = limit.saturating_sub(out.len()).min(CLAIM_BATCH);
            if want == 0 {
                return (out, None);
            }
            // Runs this engine drives already (their lease may have lapsed while the
            // store was out of reach: their drivers carry on), and runs held back.
            let except: Vec<RunId> = self
                .active()
                .keys()
                .copied()
                .chain(held.keys().copied())
                .collect();
            let claimed = match self
                .sh
                .store
                .claim_workflows(&self.sh.owner, self.sh.lease_ttl, want, &names, &except)
                .await
            {
                Ok(c) => c,
                Err(e) => return (out, Some(e.into())),
            };
            let got = claimed.len();
            let mut failed = None;
            for c in claimed {
                match self.take_claimed(c, held).await {
                    Ok(Some(started)) => out.push(started),
                    Ok(None) => {}
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            if failed.is_some() {
                return (out, failed);
            }
            if got < want {
                return (out, None);
            }
        }
    }

    /// Starts driving a claimed run, fails it (a poison run, or inputs that no longer
    /// fit its workflow), or gives it back (a workflow version this engine does not
    /// know: `None`).
    async fn take_claimed(
        &self,
        c: Claimed,
        held: &mut HashMap<RunId, Instant>,
    ) -> Result<Option<(RunHandle, Lease)>> {
        let (run, lease, recorded) = (c.run, c.lease, c.events);
        let key = (run.workflow.clone(), run.version.clone());
        let Some(workflow) = self.sh.workflows.get(&key) else {
            // A version this engine does not know: give it back and leave it alone for
            // a while, so that an engine that knows the version takes it.
            tracing::debug!(run_id = %run.id, workflow = %run.workflow, version = %run.version,
                "left to other engines: workflow not registered with this engine");
            held.insert(run.id, Instant::now() + FOREIGN_HOLD);
            self.sh.store.release(run.id, &lease).await?;
            return Ok(None);
        };
        let plan = Arc::clone(&workflow.plan);
        let max = self.sh.max_stalled;
        if max > 0 && c.stalled_claims > max {
            let reason = format!(
                "given up: the run was claimed {} times in a row without progress (its \
                 engines kept stopping while driving it: a crash, an abort, the out-of-memory \
                 killer); the limit is {max} (EngineBuilder::max_stalled_claims)",
                c.stalled_claims
            );
            tracing::error!(run_id = %run.id, claims = c.stalled_claims, "failing a poison run");
            // The log may be what kills engines: read what can be read.
            let events = self.recorded_events(run.id, recorded).await.unwrap_or_else(|e| {
                tracing::warn!(run_id = %run.id, error = %chain(&e), "the run's events cannot be read");
                Vec::new()
            });
            let handle = self.drive_given_up(run.id, plan, lease.clone(), events, recorded, reason);
            return Ok(Some((handle, lease)));
        }
        let params = match bind_params(workflow, &run.inputs) {
            Ok(p) => p,
            Err(e) => {
                let reason = format!("given up: the run's inputs do not fit its workflow: {e}");
                let events = self.recorded_events(run.id, recorded).await?;
                let handle =
                    self.drive_given_up(run.id, plan, lease.clone(), events, recorded, reason);
                return Ok(Some((handle, lease)));
            }
        };
        // On failure the claim is kept: the lease expires and the run is claimed again
        // (counted as a stalled claim).
        let events = self.recorded_events(run.id, recorded).await?;
        tracing::info!(run_id = %run.id, events = events.len(), "resuming run");
        let handle = self.drive(run.id, plan, params, lease.clone(), events, true);
        Ok(Some((handle, lease)))
    }

    /// The first `recorded` events of a run's log (none for a run enqueued and never
    /// started).
    async fn recorded_events(&self, run: RunId, recorded: u64) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        while events.len() < usize::try_from(recorded).unwrap_or(usize::MAX) {
            let page = self
                .sh
                .store
                .events(run, events.len() as u64, 10_000)
                .await?;
            if page.is_empty() {
                break;
            }
            events.extend(page);
        }
        Ok(events)
    }
}
