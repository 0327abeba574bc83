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
impl Store for Flaky {
    async fn create_run(
        &self,
        run: &RunRecord,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.inner.create_run(run, lease, ttl).await
    }
    async fn append(&self, run: RunId, lease: &Lease, events: &[Event]) -> Result<(), StoreError> {
        self.down()?;
        self.inner.append(run, lease, events).await
    }
    async fn renew(&self, run: RunId, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        self.down()?;
        self.inner.renew(run, lease, ttl).await
    }
    async fn release(&self, run: RunId, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release(run, lease).await
    }
    async fn claim(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.inner.claim(owner, ttl, limit).await
    }
    async fn get_run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        self.inner.get_run(run).await
    }
    async fn list_runs(&self, query: &RunQuery) -> Result<Page<RunRecord>, StoreError> {
        self.inner.list_runs(query).await
    }
    async fn executions(&self, run: RunId) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.inner.executions(run).await
    }
    async fn events(&self, run: RunId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.inner.events(run, after, limit).await
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
    // Backoff 50, 100, 200, 400, 800, 1600 ms before the writes went through.
    assert!(
        t.elapsed() >= Duration::from_millis(3150),
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
