//! Faults of the database and of engines: outages of any length, fenced drivers, poison
//! runs. In-process cases here (a store that fails on command); real engine processes,
//! a database cut off through a proxy and frozen engines in `faults/procs.rs`.

mod capture;
#[cfg(feature = "postgres")]
mod pgcrash;
mod procs;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dagforge::prelude::*;
use dagforge::store::{
    Claimed, ExecutionRecord, Lease, Page, RunQuery, RunRecord, ScheduleAdvance, ScheduleRecord,
    Store, StoreError,
};
use dagforge::{Event, RunId};

/// A memory store that fails on command.
#[derive(Debug, Default)]
struct Faulty {
    inner: MemoryStore,
    /// Every call the serving loop and the drivers make fails (the database is gone).
    down: AtomicBool,
    /// Appends and renewals fail (a driver cut off while claims still work).
    writes_down: AtomicBool,
    /// The append that records this node starting is refused as fenced (the lease was
    /// taken over while the step was being written).
    fence_start_of: Mutex<Option<String>>,
    /// Claims made.
    claims: AtomicU32,
}

impl Faulty {
    fn gone(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unreachable {
                message: "store: connection refused (test outage)".to_owned(),
                source: None,
            });
        }
        Ok(())
    }

    fn writes_gone(&self) -> Result<(), StoreError> {
        self.gone()?;
        if self.writes_down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend {
                message: "store: connection reset (test outage)".to_owned(),
                source: None,
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl dagforge::store::RunLog for Faulty {
    async fn create_run(&self, r: &RunRecord, l: &Lease, ttl: Duration) -> Result<(), StoreError> {
        Store::create_run(&self.inner, r, l, ttl).await
    }

    async fn append(&self, run: RunId, lease: &Lease, events: &[Event]) -> Result<(), StoreError> {
        self.writes_gone()?;
        let fenced = self.fence_start_of.lock().unwrap().clone();
        if let Some(node) = fenced {
            let starts = events.iter().any(|e| {
                matches!(&e.kind, EventKind::Node(n)
                    if *n.node == *node && n.to == NodeState::Running)
            });
            if starts {
                return Err(StoreError::Fenced {
                    run,
                    owner: lease.owner.to_string(),
                    fence: lease.fence,
                });
            }
        }
        Store::append(&self.inner, run, lease, events).await
    }

    async fn renew(&self, run: RunId, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        self.writes_gone()?;
        Store::renew(&self.inner, run, lease, ttl).await
    }

    async fn release(&self, run: RunId, lease: &Lease) -> Result<(), StoreError> {
        self.gone()?;
        Store::release(&self.inner, run, lease).await
    }

    async fn request_cancel(&self, run: RunId) -> Result<bool, StoreError> {
        Store::request_cancel(&self.inner, run).await
    }

    async fn cancel_requests(&self, owner: &str) -> Result<Vec<RunId>, StoreError> {
        self.gone()?;
        Store::cancel_requests(&self.inner, owner).await
    }

    async fn claim(&self, o: &str, ttl: Duration, n: usize) -> Result<Vec<Claimed>, StoreError> {
        self.gone()?;
        self.claims.fetch_add(1, Ordering::SeqCst);
        Store::claim(&self.inner, o, ttl, n).await
    }

    async fn claim_run(
        &self,
        run: RunId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        self.gone()?;
        Store::claim_run(&self.inner, run, owner, ttl).await
    }

    async fn claim_workflows(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
        workflows: &[String],
        except: &[RunId],
    ) -> Result<Vec<Claimed>, StoreError> {
        self.gone()?;
        let c = Store::claim_workflows(&self.inner, owner, ttl, limit, workflows, except).await?;
        self.claims.fetch_add(c.len() as u32, Ordering::SeqCst);
        Ok(c)
    }
}

#[async_trait::async_trait]
impl dagforge::store::RunQueries for Faulty {
    async fn get_run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        Store::get_run(&self.inner, run).await
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Page<RunRecord>, StoreError> {
        Store::list_runs(&self.inner, query).await
    }

    async fn executions(&self, run: RunId) -> Result<Vec<ExecutionRecord>, StoreError> {
        Store::executions(&self.inner, run).await
    }

    async fn events(&self, run: RunId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        Store::events(&self.inner, run, after, limit).await
    }
}

#[async_trait::async_trait]
impl dagforge::store::QueueAdmin for Faulty {
    async fn set_queue_limit(&self, q: &str, max: Option<u32>) -> Result<(), StoreError> {
        Store::set_queue_limit(&self.inner, q, max).await
    }

    async fn queue_limits(&self) -> Result<Vec<(String, u32)>, StoreError> {
        Store::queue_limits(&self.inner).await
    }

    async fn release_key(&self, key: &str, holder: RunId) -> Result<(), StoreError> {
        Store::release_key(&self.inner, key, holder).await
    }
}

#[async_trait::async_trait]
impl dagforge::store::ScheduleStore for Faulty {
    async fn put_schedule(&self, s: &ScheduleRecord) -> Result<(), StoreError> {
        Store::put_schedule(&self.inner, s).await
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        Store::get_schedule(&self.inner, id).await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        Store::list_schedules(&self.inner).await
    }

    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        Store::delete_schedule(&self.inner, id).await
    }

    async fn set_schedule_enabled(
        &self,
        id: &str,
        enabled: bool,
        next: Option<std::time::SystemTime>,
    ) -> Result<bool, StoreError> {
        Store::set_schedule_enabled(&self.inner, id, enabled, next).await
    }

    async fn due_schedules(
        &self,
        now: std::time::SystemTime,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.gone()?;
        Store::due_schedules(&self.inner, now, limit).await
    }

    async fn next_schedule_fire(
        &self,
        after: std::time::SystemTime,
    ) -> Result<Option<std::time::SystemTime>, StoreError> {
        self.gone()?;
        Store::next_schedule_fire(&self.inner, after).await
    }

    async fn advance_schedule(
        &self,
        id: &str,
        expected: Option<std::time::SystemTime>,
        advance: &ScheduleAdvance,
    ) -> Result<bool, StoreError> {
        Store::advance_schedule(&self.inner, id, expected, advance).await
    }
}

impl dagforge::store::EngineRegistry for Faulty {}
impl dagforge::store::EventFeed for Faulty {}

#[async_trait::async_trait]
impl dagforge::store::Watch for Faulty {
    async fn next_start(&self) -> Result<Option<std::time::SystemTime>, StoreError> {
        self.gone()?;
        Store::next_start(&self.inner).await
    }
}

/// Counts the bodies that started, by node.
#[derive(Clone, Default)]
struct Counted {
    started: Arc<Mutex<Vec<(String, u32)>>>,
    ms: u64,
}

impl Job for Counted {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "counted";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<(), JobError> {
        self.started
            .lock()
            .unwrap()
            .push((ctx.node_id().to_owned(), ctx.attempt()));
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        Ok(())
    }
}

fn chain(name: &str, job: &Counted, nodes: usize) -> Workflow {
    let mut wf = Workflow::builder(name);
    let mut prev = wf.add("n0", job.clone()).handle();
    for i in 1..nodes {
        prev = wf.add(format!("n{i}"), job.clone()).after(&prev).handle();
    }
    wf.build().unwrap()
}

async fn state_within(store: &dyn Store, id: RunId, limit: Duration) -> RunState {
    let t = Instant::now();
    loop {
        let state = store.get_run(id).await.unwrap().unwrap().state;
        if state.is_terminal() || t.elapsed() > limit {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A driver whose step was refused as fenced (another engine took the run over while
/// it was writing) starts none of the attempts that step dispatched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_step_starts_nothing() {
    let store = Arc::new(Faulty::default());
    *store.fence_start_of.lock().unwrap() = Some("n1".to_owned());
    let job = Counted::default();
    let wf = chain("fenced", &job, 3);
    let engine = Engine::builder().shared_store(store.clone()).build();
    let run = engine.start(&wf, ()).await.unwrap();
    let err = run.wait().await.expect_err("the lease was lost");
    assert!(err.to_string().contains("lease"), "{err}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *job.started.lock().unwrap(),
        [("n0".to_owned(), 1)],
        "n1's start was refused: its body must not run"
    );
}

/// `serve` rides out a store outage (every call failing) instead of ending, and
/// serves again once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_rides_out_an_outage() {
    let store = Arc::new(Faulty::default());
    let job = Counted::default();
    let wf = chain("outage", &job, 2);
    let engine = Engine::builder()
        .shared_store(store.clone())
        .workflow(&wf)
        .build();
    store.down.store(true, Ordering::SeqCst);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let logs = capture::Capture::default();
    let serving = tokio::spawn({
        use tracing::instrument::WithSubscriber;
        let engine = engine.clone();
        async move {
            engine
                .serve(Duration::from_millis(50), async {
                    let _ = stopped.await;
                })
                .await
        }
        .with_subscriber(logs.clone())
    });
    // Recorded meanwhile (straight into the store, which is only out of reach for the
    // serving engine).
    let id = Engine::builder()
        .shared_store(Arc::new(FaultyView(store.clone())))
        .build()
        .enqueue(&wf, ())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!serving.is_finished(), "serve ended during the outage");
    store.down.store(false, Ordering::SeqCst);
    let back = Instant::now();
    assert_eq!(
        state_within(&*store, id, Duration::from_secs(5)).await,
        RunState::Succeeded
    );
    let took = back.elapsed();
    println!("store back → run finished: {took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
    // Some fifteen failed turns, logged once (with the cause) and once back.
    let warned = logs.count(tracing::Level::WARN, "store unavailable");
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("test outage"), "{warned:?}");
    let back = logs.count(tracing::Level::INFO, "store reachable again");
    assert_eq!(back.len(), 1, "{back:?}");
}

/// The inner memory store of a [`Faulty`], without its faults.
#[derive(Debug)]
struct FaultyView(Arc<Faulty>);

/// No wake-ups: the engine polls.
impl dagforge::store::Watch for FaultyView {}
impl dagforge::store::EngineRegistry for FaultyView {}
impl dagforge::store::EventFeed for FaultyView {}

#[async_trait::async_trait]
impl dagforge::store::RunLog for FaultyView {
    async fn create_run(&self, r: &RunRecord, l: &Lease, ttl: Duration) -> Result<(), StoreError> {
        Store::create_run(&self.0.inner, r, l, ttl).await
    }

    async fn append(&self, run: RunId, lease: &Lease, events: &[Event]) -> Result<(), StoreError> {
        Store::append(&self.0.inner, run, lease, events).await
    }

    async fn renew(&self, run: RunId, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        Store::renew(&self.0.inner, run, lease, ttl).await
    }

    async fn release(&self, run: RunId, lease: &Lease) -> Result<(), StoreError> {
        Store::release(&self.0.inner, run, lease).await
    }

    async fn request_cancel(&self, run: RunId) -> Result<bool, StoreError> {
        Store::request_cancel(&self.0.inner, run).await
    }

    async fn cancel_requests(&self, owner: &str) -> Result<Vec<RunId>, StoreError> {
        Store::cancel_requests(&self.0.inner, owner).await
    }

    async fn claim(&self, o: &str, ttl: Duration, n: usize) -> Result<Vec<Claimed>, StoreError> {
        Store::claim(&self.0.inner, o, ttl, n).await
    }

    async fn claim_run(
        &self,
        run: RunId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        Store::claim_run(&self.0.inner, run, owner, ttl).await
    }

    async fn claim_workflows(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
        workflows: &[String],
        except: &[RunId],
    ) -> Result<Vec<Claimed>, StoreError> {
        Store::claim_workflows(&self.0.inner, owner, ttl, limit, workflows, except).await
    }
}

#[async_trait::async_trait]
impl dagforge::store::RunQueries for FaultyView {
    async fn get_run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        Store::get_run(&self.0.inner, run).await
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Page<RunRecord>, StoreError> {
        Store::list_runs(&self.0.inner, query).await
    }

    async fn executions(&self, run: RunId) -> Result<Vec<ExecutionRecord>, StoreError> {
        Store::executions(&self.0.inner, run).await
    }

    async fn events(&self, run: RunId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        Store::events(&self.0.inner, run, after, limit).await
    }
}

#[async_trait::async_trait]
impl dagforge::store::QueueAdmin for FaultyView {
    async fn set_queue_limit(&self, q: &str, max: Option<u32>) -> Result<(), StoreError> {
        Store::set_queue_limit(&self.0.inner, q, max).await
    }

    async fn queue_limits(&self) -> Result<Vec<(String, u32)>, StoreError> {
        Store::queue_limits(&self.0.inner).await
    }

    async fn release_key(&self, key: &str, holder: RunId) -> Result<(), StoreError> {
        Store::release_key(&self.0.inner, key, holder).await
    }
}

#[async_trait::async_trait]
impl dagforge::store::ScheduleStore for FaultyView {
    async fn put_schedule(&self, s: &ScheduleRecord) -> Result<(), StoreError> {
        Store::put_schedule(&self.0.inner, s).await
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        Store::get_schedule(&self.0.inner, id).await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        Store::list_schedules(&self.0.inner).await
    }

    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        Store::delete_schedule(&self.0.inner, id).await
    }

    async fn set_schedule_enabled(
        &self,
        id: &str,
        enabled: bool,
        next: Option<std::time::SystemTime>,
    ) -> Result<bool, StoreError> {
        Store::set_schedule_enabled(&self.0.inner, id, enabled, next).await
    }

    async fn due_schedules(
        &self,
        now: std::time::SystemTime,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        Store::due_schedules(&self.0.inner, now, limit).await
    }

    async fn next_schedule_fire(
        &self,
        after: std::time::SystemTime,
    ) -> Result<Option<std::time::SystemTime>, StoreError> {
        Store::next_schedule_fire(&self.0.inner, after).await
    }

    async fn advance_schedule(
        &self,
        id: &str,
        expected: Option<std::time::SystemTime>,
        advance: &ScheduleAdvance,
    ) -> Result<bool, StoreError> {
        Store::advance_schedule(&self.0.inner, id, expected, advance).await
    }
}

/// A serving engine claims no more runs than it has room for (its concurrency), so
/// that engines sharing a store share its queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_stop_at_free_capacity() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let job = Counted {
        ms: 150,
        ..Counted::default()
    };
    let wf = chain("capacity", &job, 1);
    let engine = Engine::builder()
        .shared_store(Arc::clone(&store))
        .concurrency(2)
        .workflow(&wf)
        .build();
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(engine.enqueue(&wf, ()).await.unwrap());
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .serve(Duration::from_millis(20), async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let t = Instant::now();
    let mut most = 0;
    loop {
        let mut running = 0;
        let mut done = 0;
        for id in &ids {
            match store.get_run(*id).await.unwrap().unwrap().state {
                RunState::Running => running += 1,
                s if s.is_terminal() => done += 1,
                _ => {}
            }
        }
        most = most.max(running);
        if done == ids.len() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "runs did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        most <= 2,
        "{most} runs claimed at once by an engine of concurrency 2"
    );
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}

/// A serving engine whose writes fail longer than its lease does not claim the run it
/// still drives (which would leave the run with two drivers in one engine and, when
/// the old one ends, no handle to cancel it with): once the store is back, a cancel
/// still reaches the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_does_not_claim_a_run_it_drives() {
    let store = Arc::new(Faulty::default());
    let job = Counted {
        ms: 400,
        ..Counted::default()
    };
    let wf = chain("own", &job, 8);
    let engine = Engine::builder()
        .shared_store(store.clone())
        .lease_ttl(Duration::from_secs(1))
        .workflow(&wf)
        .build();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .serve(Duration::from_millis(50), async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let id = engine.enqueue(&wf, ()).await.unwrap();
    let t = Instant::now();
    while job.started.lock().unwrap().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(5), "never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let claims = store.claims.load(Ordering::SeqCst);
    // Writes fail for twice the lease: the lease lapses; claims still work.
    store.writes_down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    store.writes_down.store(false, Ordering::SeqCst);
    assert_eq!(
        store.claims.load(Ordering::SeqCst),
        claims,
        "the engine claimed a run it drives"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let asked = Instant::now();
    engine.cancel_recorded(id).await.unwrap();
    assert_eq!(
        state_within(&*store, id, Duration::from_secs(3)).await,
        RunState::Cancelled,
        "the cancel was lost"
    );
    println!("cancel → cancelled: {:?}", asked.elapsed());
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}

/// A run claimed more times than the limit without progress is failed by the engine
/// that claims it next, with a reason naming the cause, and nothing of it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stalled_past_the_limit_is_failed() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let job = Counted {
        ms: 10_000,
        ..Counted::default()
    };
    let wf = chain("stalled", &job, 2);
    let engine = || {
        Engine::builder()
            .shared_store(Arc::clone(&store))
            .lease_ttl(Duration::from_secs(1))
            .max_stalled_claims(2)
            .workflow(&wf)
            .build()
    };
    let id = engine().enqueue(&wf, ()).await.unwrap();
    // Two engines take the run and "die" while driving it (their drivers are
    // abandoned, as if their processes were killed).
    for _ in 0..2 {
        let handles = engine().resume().await.unwrap();
        assert_eq!(handles.len(), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        for h in handles {
            h.abandon();
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let started = job.started.lock().unwrap().len();
    let handles = engine().resume().await.unwrap();
    assert_eq!(handles.len(), 1);
    let result = handles.into_iter().next().unwrap().wait().await.unwrap();
    assert_eq!(result.state, RunState::Failed, "{}", result.table());
    let n0 = result.node("n0").unwrap();
    assert_eq!(n0.state, NodeState::Failed);
    let message = &n0.error.as_ref().unwrap().message;
    assert!(
        message.contains("claimed 3 times") && message.contains("max_stalled_claims"),
        "{message}"
    );
    assert_eq!(job.started.lock().unwrap().len(), started, "nothing ran");
    let rec = store.get_run(id).await.unwrap().unwrap();
    assert_eq!(rec.state, RunState::Failed);
}
