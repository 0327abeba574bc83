//! Resuming runs after their engine stopped: nothing that succeeded runs again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dagforge::prelude::*;
use dagforge::store::Store;

/// Counts executions per node; nodes in `slow` sleep long enough to be interrupted.
#[derive(Clone, Default)]
struct Count {
    runs: Arc<Mutex<HashMap<String, u32>>>,
    slow: Arc<[String]>,
    finished: Arc<AtomicU32>,
}

impl Job for Count {
    type Input = ();
    type Output = u32;
    const NAME: &'static str = "count";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<u32, JobError> {
        *self
            .runs
            .lock()
            .unwrap()
            .entry(ctx.node_id().to_owned())
            .or_default() += 1;
        if self.slow.iter().any(|s| s == ctx.node_id()) && ctx.attempt() == 1 {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        self.finished.fetch_add(1, Ordering::SeqCst);
        Ok(ctx.attempt())
    }
}

fn chain(job: &Count) -> Workflow {
    let mut wf = Workflow::builder("resumable");
    let a = wf.add("a", job.clone()).handle();
    let b = wf.add("b", job.clone()).after(&a).handle();
    let c = wf.add("c", job.clone()).after(&b).handle();
    wf.add("d", job.clone()).after(&c);
    wf.build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_stopped_engine_s_run_is_resumed_without_rerunning_succeeded_nodes() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let job = Count {
        slow: Arc::from(["c".to_owned()]),
        ..Count::default()
    };
    let wf = chain(&job);
    let a = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id("engine-a")
        .lease_ttl(Duration::from_secs(10))
        .workflow(&wf)
        .build();
    let run = a.start(&wf, ()).await.unwrap();
    let id = run.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // `c` is stuck in its first attempt when engine A stops dead: nothing more is
    // recorded and its lease is left to expire, as after `kill -9`.
    run.abandon();
    drop(a);
    tokio::task::yield_now().await;
    assert_eq!(job.runs.lock().unwrap().get("c"), Some(&1));

    let b = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id("engine-b")
        .workflow(&wf)
        .build();
    assert!(
        b.resume().await.unwrap().is_empty(),
        "A's lease is still valid"
    );
    tokio::time::sleep(Duration::from_secs(11)).await;
    let handles = b.resume().await.unwrap();
    assert_eq!(handles.len(), 1);
    let r = handles.into_iter().next().unwrap().wait().await.unwrap();
    assert_eq!(r.id, id);
    assert_eq!(r.state, RunState::Succeeded, "{}", r.table());
    let runs = job.runs.lock().unwrap().clone();
    assert_eq!(
        runs.get("a"),
        Some(&1),
        "succeeded before the stop: never again"
    );
    assert_eq!(runs.get("b"), Some(&1));
    assert_eq!(runs.get("c"), Some(&2), "interrupted attempt ran again");
    assert_eq!(runs.get("d"), Some(&1));
    assert_eq!(r.output::<u32>("c").unwrap(), 2, "a new attempt number");
    let c = store
        .executions(id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.node == "c" && e.attempt == 1)
        .unwrap();
    assert_eq!(c.state, NodeState::Retrying);
    assert_eq!(c.error.unwrap().kind, dagforge::ErrorKind::Interrupted);
}

#[tokio::test(start_paused = true)]
async fn a_fenced_engine_stops_and_records_nothing() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let job = Count {
        slow: Arc::from(["b".to_owned()]),
        ..Count::default()
    };
    let wf = chain(&job);
    let a = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id("engine-a")
        .lease_ttl(Duration::from_secs(10))
        .workflow(&wf)
        .build();
    let run_a = a.start(&wf, ()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Engine A is paused (its renewals stop reaching the store): emulate with a store
    // that refuses A's renewals by letting another engine claim after expiry.
    let b = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id("engine-b")
        .lease_ttl(Duration::from_secs(10))
        .workflow(&wf)
        .build();
    // A renews every ~3.3 s, so its lease never expires while it lives; force the
    // takeover by releasing A's lease through the store as an operator would.
    let id = run_a.id();
    let claimed_by_b = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let lease = dagforge::store::Lease::new("engine-a", 1);
        store.release(id, &lease).await.unwrap();
        let h = b.resume().await.unwrap();
        if !h.is_empty() {
            break h;
        }
    };
    let err = run_a.wait().await.unwrap_err();
    assert!(err.to_string().contains("lease on run"), "{err}");
    let r = claimed_by_b
        .into_iter()
        .next()
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(r.state, RunState::Succeeded);
    assert_eq!(job.runs.lock().unwrap().get("a"), Some(&1));
}

/// Counts executions per item; item 5's first attempt hangs.
#[derive(Clone, Default)]
struct Items {
    runs: Arc<Mutex<HashMap<u32, u32>>>,
}

impl Job for Items {
    type Input = u32;
    type Output = u32;
    const NAME: &'static str = "items";

    async fn run(&self, ctx: &JobContext, n: u32) -> Result<u32, JobError> {
        *self.runs.lock().unwrap().entry(n).or_default() += 1;
        if n == 5 && ctx.attempt() == 1 {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(n * 10)
    }
}

#[tokio::test(start_paused = true)]
async fn a_fan_out_resumes_item_by_item() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let items = Items::default();
    let mut wf = Workflow::builder("fan-resume");
    let src = wf
        .add(
            "src",
            crate::common::Emit(serde_json::json!((0..10).collect::<Vec<u32>>())),
        )
        .handle();
    wf.add("each", items.clone())
        .each_input(src.each_at::<u32>("$"))
        .concurrency(2);
    let wf = wf.build().unwrap();
    let a = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id("engine-a")
        .lease_ttl(Duration::from_secs(10))
        .workflow(&wf)
        .build();
    let run = a.start(&wf, ()).await.unwrap();
    let run_id = run.id();
    tokio::time::sleep(Duration::from_millis(25)).await;
    run.abandon();
    tokio::task::yield_now().await;
    let before = items.runs.lock().unwrap().clone();
    assert_eq!(before.get(&5), Some(&1));
    assert!(before.len() < 10, "some items had not started: {before:?}");
    let done_before: Vec<u32> = store
        .executions(run_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.node == "each" && e.state == NodeState::Succeeded)
        .filter_map(|e| e.item)
        .collect();
    assert!(!done_before.is_empty());

    tokio::time::sleep(Duration::from_secs(11)).await;
    let b = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id("engine-b")
        .workflow(&wf)
        .build();
    let r = b
        .resume()
        .await
        .unwrap()
        .pop()
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(r.state, RunState::Succeeded, "{}", r.table());
    assert_eq!(
        r.output::<Vec<u32>>("each").unwrap(),
        (0..10).map(|n| n * 10).collect::<Vec<_>>()
    );
    let after = items.runs.lock().unwrap().clone();
    for n in 0..10u32 {
        let ran = after.get(&n).copied().unwrap_or(0);
        if done_before.contains(&n) {
            assert_eq!(ran, 1, "item {n} succeeded before the stop: {after:?}");
        } else {
            assert!((1..=2).contains(&ran), "item {n}: {after:?}");
        }
    }
    assert_eq!(after.get(&5), Some(&2), "the hung item ran again");
}
