//! A store that fails for a while (a database restart, a cut connection pool): the
//! engine retries with backoff and carries on, losing nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dagforge::prelude::*;
use dagforge::store::{
    Claimed, ExecutionRecord, Lease, Page, RunQuery, RunRecord, Store, StoreError,
};
use dagforge::{Event, RunId};

use crate::common::*;

/// Wraps a store; appends and renewals fail while `outage` is above zero.
#[derive(Debug)]
struct Flaky {
    inner: MemoryStore,
    outage: AtomicU32,
    failed: AtomicU32,
}

impl Flaky {
    fn down(&self) -> Result<(), StoreError> {
        if self
            .outage
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Backend {
                message: "connection reset by peer".to_owned(),
                source: None,
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl dagforge::store::RunLog for Flaky {
    async fn create_run(
        &self,
        run: &RunRecord,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        Store::create_run(&self.inner, run, lease, ttl).await
    }

    async fn append(&self, run: RunId, lease: &Lease, events: &[Event]) -> Result<(), StoreError> {
        self.down()?;
        Store::append(&self.inner, run, lease, events).await
    }

    async fn renew(&self, run: RunId, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        self.down()?;
        Store::renew(&self.inner, run, lease, ttl).await
    }

    async fn release(&self, run: RunId, lease: &Lease) -> Result<(), StoreError> {
        Store::release(&self.inner, run, lease).await
    }

    async fn claim_run(
        &self,
        run: RunId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<dagforge::store::Claimed>, StoreError> {
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
        Store::claim_workflows(&self.inner, owner, ttl, limit, workflows, except).await
    }

    async fn request_cancel(&self, run: RunId) -> Result<bool, StoreError> {
        Store::request_cancel(&self.inner, run).await
    }

    async fn cancel_requests(&self, owner: &str) -> Result<Vec<RunId>, StoreError> {
        Store::cancel_requests(&self.inner, owner).await
    }

    async fn claim(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        Store::claim(&self.inner, owner, ttl, limit).await
    }
}

#[async_trait::async_trait]
impl dagforge::store::RunQueries for Flaky {
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
impl dagforge::store::QueueAdmin for Flaky {
    async fn set_queue_limit(
        &self,
        queue: &str,
        max_running: Option<u32>,
    ) -> Result<(), StoreError> {
        Store::set_queue_limit(&self.inner, queue, max_running).await
    }

    async fn queue_limits(&self) -> Result<Vec<(String, u32)>, StoreError> {
        Store::queue_limits(&self.inner).await
    }

    async fn release_key(&self, key: &str, holder: RunId) -> Result<(), StoreError> {
        Store::release_key(&self.inner, key, holder).await
    }
}

#[async_trait::async_trait]
impl dagforge::store::ScheduleStore for Flaky {
    async fn put_schedule(
        &self,
        schedule: &dagforge::store::ScheduleRecord,
    ) -> Result<(), StoreError> {
        Store::put_schedule(&self.inner, schedule).await
    }

    async fn get_schedule(
        &self,
        id: &str,
    ) -> Result<Option<dagforge::store::ScheduleRecord>, StoreError> {
        Store::get_schedule(&self.inner, id).await
    }

    async fn list_schedules(&self) -> Result<Vec<dagforge::store::ScheduleRecord>, StoreError> {
        Store::list_schedules(&self.inner).await
    }

    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        Store::delete_schedule(&self.inner, id).await
    }

    async fn set_schedule_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_fire: Option<std::time::SystemTime>,
    ) -> Result<bool, StoreError> {
        Store::set_schedule_enabled(&self.inner, id, enabled, next_fire).await
    }

    async fn due_schedules(
        &self,
        now: std::time::SystemTime,
        limit: usize,
    ) -> Result<Vec<dagforge::store::ScheduleRecord>, StoreError> {
        Store::due_schedules(&self.inner, now, limit).await
    }

    async fn next_schedule_fire(
        &self,
        after: std::time::SystemTime,
    ) -> Result<Option<std::time::SystemTime>, StoreError> {
        Store::next_schedule_fire(&self.inner, after).await
    }

    async fn advance_schedule(
        &self,
        id: &str,
        expected: Option<std::time::SystemTime>,
        advance: &dagforge::store::ScheduleAdvance,
    ) -> Result<bool, StoreError> {
        Store::advance_schedule(&self.inner, id, expected, advance).await
    }
}

impl dagforge::store::EngineRegistry for Flaky {}
impl dagforge::store::EventFeed for Flaky {}

#[async_trait::async_trait]
impl dagforge::store::Watch for Flaky {
    async fn next_start(&self) -> Result<Option<std::time::SystemTime>, StoreError> {
        Store::next_start(&self.inner).await
    }
}

#[tokio::test(start_paused = true)]
async fn the_engine_rides_out_a_store_outage() {
    let store = Arc::new(Flaky {
        inner: MemoryStore::new(),
        outage: AtomicU32::new(0),
        failed: AtomicU32::new(0),
    });
    let engine = Engine::builder().shared_store(store.clone()).build();
    let mut wf = Workflow::builder("outage");
    let a = wf.add("a", Sleep::default()).input(100).handle();
    let b = wf.add("b", Sleep::default()).input(100).after(&a).handle();
    wf.add("c", Sleep::default()).input(100).after(&b);
    let run = engine.start(&wf.build().unwrap(), ()).await.unwrap();
    // The database goes away for the next 6 writes while `a` runs.
    store.outage.store(6, Ordering::SeqCst);
    let t = tokio::time::Instant::now();
    let r = run.wait().await.unwrap();
    assert!(r.is_success(), "{}", r.table());
    assert_eq!(store.failed.load(Ordering::SeqCst), 6);
    // Backoff 50, 100, 200, 400, 800, 1000 ms (at most a second) before the writes
    // went through.
    assert!(
        t.elapsed() >= Duration::from_millis(2550),
        "{:?}",
        t.elapsed()
    );
    let events = store.events(r.id, 0, 1000).await.unwrap();
    assert!(
        events.iter().zip(1..).all(|(e, s)| e.seq == s),
        "no gap, nothing lost"
    );
    let last = events.last().unwrap();
    assert!(matches!(
        last.kind,
        EventKind::Run {
            to: RunState::Succeeded,
            ..
        }
    ));
    assert_eq!(
        store.get_run(r.id).await.unwrap().unwrap().state,
        RunState::Succeeded
    );
}

/// A real connection loss: while a 300-node run is going (30 layers of 40 ms jobs,
/// over 1.2 s), every connection of the engine's store is terminated by the server
/// (`pg_terminate_backend`) every 50 ms for 1 s. Writes fail with I/O errors, the pool reconnects, the driver retries with
/// backoff, and a write whose commit succeeded but whose reply was lost is recognised
/// on retry instead of being written twice.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_cut_mid_run_lose_nothing() {
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Counts how many times each node ran.
    #[derive(Clone, Default)]
    struct Count(Arc<Mutex<HashMap<String, u32>>>);
    impl Job for Count {
        type Input = ();
        type Output = u32;
        const NAME: &'static str = "count";
        async fn run(&self, ctx: &JobContext, _: ()) -> Result<u32, JobError> {
            tokio::time::sleep(Duration::from_millis(40)).await;
            let mut runs = self.0.lock().unwrap();
            let n = runs.entry(ctx.node_id().to_owned()).or_default();
            *n += 1;
            Ok(*n)
        }
    }

    let app = format!("dagforge-cut-{}", &RunId::new().to_uuid_string()[24..]);
    let store = Arc::new(crate::store::pg::TempSchema::with(|o| o.application_name(&app)).await);
    let count = Count::default();
    let mut wf = Workflow::builder("cut");
    let mut prev: Vec<NodeRef<u32>> = Vec::new();
    for layer in 0..30 {
        let mut next = Vec::new();
        for i in 0..10 {
            let mut n = wf.add(format!("n{layer}-{i}"), count.clone());
            if let Some(p) = prev.get(i) {
                n = n.after(p);
            }
            next.push(n.handle());
        }
        prev = next;
    }
    let wf = wf.build().unwrap();
    let engine = Engine::builder().shared_store(store.clone()).build();
    let run = engine.start(&wf, ()).await.unwrap();

    let url = crate::store::pg::url();
    let cutter = tokio::task::spawn_blocking(move || {
        let mut cut = 0;
        let until = std::time::Instant::now() + Duration::from_millis(1000);
        while std::time::Instant::now() < until {
            let out = std::process::Command::new("psql")
                .args([url.as_str(), "-Atc"])
                .arg(format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = '{app}'"
                ))
                .output()
                .expect("psql runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            cut += String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u32>()
                .unwrap_or(0);
            std::thread::sleep(Duration::from_millis(50));
        }
        cut
    });
    let r = run.wait().await.unwrap();
    let cut = cutter.await.unwrap();
    assert!(cut > 0, "no connection was cut");
    eprintln!("{cut} connections cut during the run");
    assert!(r.is_success(), "{}", r.table());
    // Every node ran once, and the store says so.
    let runs = count.0.lock().unwrap().clone();
    assert_eq!(runs.len(), 300);
    assert!(runs.values().all(|&n| n == 1), "a node ran twice: {runs:?}");
    // (Attempt 0 is the node's pending → ready row.)
    let execs = store.executions(r.id).await.unwrap();
    let attempts: Vec<_> = execs.iter().filter(|x| x.attempt > 0).collect();
    assert_eq!(attempts.len(), 300, "one attempt per node");
    assert!(
        attempts
            .iter()
            .all(|x| x.attempt == 1 && x.state == NodeState::Succeeded)
    );
    // The log is dense: no gap, no duplicate.
    let mut events = Vec::new();
    loop {
        let page = store.events(r.id, events.len() as u64, 1000).await.unwrap();
        if page.is_empty() {
            break;
        }
        events.extend(page);
    }
    assert!(events.iter().zip(1..).all(|(e, s)| e.seq == s));
    let succeeded = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Node(n) if n.to == NodeState::Succeeded))
        .count();
    assert_eq!(succeeded, 300, "each success recorded once");
    assert_eq!(
        store.get_run(r.id).await.unwrap().unwrap().state,
        RunState::Succeeded
    );
}
