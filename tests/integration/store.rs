//! The store conformance suite: every `Store` implementation must pass all of it.
//!
//! `conformance!(name, async { store })` generates one test per guarantee for a store
//! built by the given expression (each test gets a fresh store).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dagforge::prelude::*;
use dagforge::store::{Lease, RunQuery, RunRecord, Store, StoreError};
use dagforge::workflow::WorkflowSnapshot;
use dagforge::{ErrorInfo, ErrorKind, NodeEvent, RunId};
use serde_json::json;

use crate::common::*;

fn workflow(name: &str) -> Workflow {
    let mut wf = Workflow::builder(name);
    wf.add("a", Noop);
    wf.build().unwrap()
}

fn record(name: &str) -> RunRecord {
    let wf = workflow(name);
    RunRecord::new(
        RunId::new(),
        name.to_owned(),
        "1".to_owned(),
        WorkflowSnapshot::of(&wf),
        json!({"k": 1}),
    )
}

fn node(run: RunId, seq: u64, n: NodeEvent) -> Event {
    Event::new(run, seq, SystemTime::now(), EventKind::Node(n))
}

fn run_event(run: RunId, seq: u64, from: RunState, to: RunState) -> Event {
    Event::new(run, seq, SystemTime::now(), EventKind::Run { from, to })
}

const TTL: Duration = Duration::from_secs(30);

/// A run in a store with a live lease, started (seq 1).
pub(crate) async fn started(store: &dyn Store, name: &str) -> (RunRecord, Lease) {
    let rec = record(name);
    let lease = Lease::new("engine-a", 1);
    store.create_run(&rec, &lease, TTL).await.unwrap();
    store
        .append(
            rec.id,
            &lease,
            &[run_event(rec.id, 1, RunState::Pending, RunState::Running)],
        )
        .await
        .unwrap();
    (rec, lease)
}

pub(crate) async fn create_get_and_duplicates(store: Arc<dyn Store>) {
    let rec = record("wf");
    let lease = Lease::new("e", 1);
    store.create_run(&rec, &lease, TTL).await.unwrap();
    let got = store.get_run(rec.id).await.unwrap().unwrap();
    assert_eq!(got.id, rec.id);
    assert_eq!(got.workflow, "wf");
    assert_eq!(got.inputs, json!({"k": 1}));
    assert_eq!(got.state, RunState::Pending);
    assert_eq!(got.spec.spec().nodes.len(), 1);
    assert!(matches!(
        store.create_run(&rec, &lease, TTL).await,
        Err(StoreError::RunExists(id)) if id == rec.id
    ));
    assert!(store.get_run(RunId::new()).await.unwrap().is_none());
}

pub(crate) async fn events_are_ordered_and_paged(store: Arc<dyn Store>) {
    let (rec, lease) = started(&*store, "wf").await;
    let id = rec.id;
    let mut batch = Vec::new();
    for i in 0..250u64 {
        batch.push(Event::new(
            id,
            2 + i,
            SystemTime::now(),
            EventKind::Log {
                node: "a".into(),
                item: None,
                attempt: 1,
                level: LogLevel::Info,
                message: format!("line {i}"),
            },
        ));
    }
    store.append(id, &lease, &batch[..100]).await.unwrap();
    store.append(id, &lease, &batch[100..]).await.unwrap();
    let all = store.events(id, 0, 10_000).await.unwrap();
    assert_eq!(all.len(), 251);
    assert!(all.iter().zip(1..).all(|(e, s)| e.seq == s && e.run == id));
    let page = store.events(id, 120, 5).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![121, 122, 123, 124, 125]
    );
    assert_eq!(page[0], all[120]);
    assert!(store.events(id, 251, 10).await.unwrap().is_empty());
    assert!(matches!(
        store.events(RunId::new(), 0, 10).await,
        Err(StoreError::UnknownRun(_))
    ));
}

pub(crate) async fn node_events_become_executions(store: Arc<dyn Store>) {
    use NodeState::*;
    let (rec, lease) = started(&*store, "wf").await;
    let id = rec.id;
    let evs = vec![
        node(id, 2, NodeEvent::new("a", None, 0, Pending, Ready)),
        node(id, 3, NodeEvent::new("a", None, 1, Ready, Running)),
        node(
            id,
            4,
            NodeEvent::new("a", None, 1, Running, Retrying)
                .with_error(ErrorInfo::new(ErrorKind::Failed, "boom")),
        ),
        node(id, 5, NodeEvent::new("a", None, 2, Retrying, Ready)),
        node(id, 6, NodeEvent::new("a", None, 2, Ready, Running)),
        node(
            id,
            7,
            NodeEvent::new("a", None, 2, Running, Succeeded).with_output(json!({"n": 3})),
        ),
        node(
            id,
            8,
            NodeEvent::new("b", None, 0, Pending, Skipped).with_reason("upstream `x` failed"),
        ),
        run_event(id, 9, RunState::Running, RunState::Succeeded),
    ];
    store.append(id, &lease, &evs).await.unwrap();
    let ex = store.executions(id).await.unwrap();
    let summary: Vec<_> = ex
        .iter()
        .map(|e| (e.node.as_str(), e.attempt, e.state))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("a", 0, Ready),
            ("a", 1, Retrying),
            ("a", 2, Succeeded),
            ("b", 0, Skipped)
        ]
    );
    assert_eq!(ex[1].error.as_ref().unwrap().message, "boom");
    assert_eq!(ex[2].output, Some(json!({"n": 3})));
    assert!(ex[2].started_at.is_some());
    assert_eq!(ex[3].reason.as_deref(), Some("upstream `x` failed"));
    let run = store.get_run(id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Succeeded);
    assert!(run.started_at.is_some() && run.finished_at.is_some());
}

pub(crate) async fn stale_leases_are_fenced(store: Arc<dyn Store>) {
    let rec = record("wf");
    let id = rec.id;
    let old = Lease::new("engine-a", 1);
    // Created with a lease that expires at once: another engine may claim it.
    store.create_run(&rec, &old, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let claimed = store.claim("engine-b", TTL, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let new = claimed[0].lease.clone();
    assert_eq!(&*new.owner, "engine-b");
    assert!(new.fence > old.fence);

    let late = [run_event(id, 1, RunState::Pending, RunState::Running)];
    assert!(matches!(
        store.append(id, &old, &late).await,
        Err(StoreError::Fenced { fence, .. }) if fence == old.fence
    ));
    assert!(matches!(
        store.renew(id, &old, TTL).await,
        Err(StoreError::Fenced { .. })
    ));
    assert!(
        store.events(id, 0, 10).await.unwrap().is_empty(),
        "nothing recorded"
    );
    store.append(id, &new, &late).await.unwrap();
    store.renew(id, &new, TTL).await.unwrap();
    // A valid lease is not claimable.
    assert!(store.claim("engine-c", TTL, 10).await.unwrap().is_empty());
}

pub(crate) async fn release_and_finish(store: Arc<dyn Store>) {
    let (rec, lease) = started(&*store, "wf").await;
    store.release(rec.id, &lease).await.unwrap();
    let claimed = store.claim("engine-b", TTL, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].run.id, rec.id);
    assert_eq!(claimed[0].run.state, RunState::Running);
    let lease = claimed[0].lease.clone();
    store
        .append(
            rec.id,
            &lease,
            &[run_event(rec.id, 2, RunState::Running, RunState::Failed)],
        )
        .await
        .unwrap();
    // Finished runs are never claimed again, and their lease is gone.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        store
            .claim("engine-c", Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.renew(rec.id, &lease, TTL).await,
        Err(StoreError::Fenced { .. })
    ));
}

pub(crate) async fn concurrent_claims_take_each_run_once(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for _ in 0..40 {
        let rec = record("wf");
        store
            .create_run(&rec, &Lease::new("dead", 1), Duration::ZERO)
            .await
            .unwrap();
        ids.push(rec.id);
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut tasks = Vec::new();
    for e in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim(&format!("engine-{e}"), TTL, 3).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.run.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    ids.sort();
    assert_eq!(all, ids, "every run claimed exactly once");
}

pub(crate) async fn list_runs_filters_and_pages(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let (rec, lease) = started(&*store, if i % 2 == 0 { "even" } else { "odd" }).await;
        if i % 2 == 1 {
            store
                .append(
                    rec.id,
                    &lease,
                    &[run_event(rec.id, 2, RunState::Running, RunState::Failed)],
                )
                .await
                .unwrap();
        }
        ids.push(rec.id);
    }
    let page = store.list_runs(&RunQuery::new().limit(2)).await.unwrap();
    assert_eq!(
        page.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]]
    );
    let page2 = store
        .list_runs(&RunQuery::new().limit(2).before(page.next.unwrap()))
        .await
        .unwrap();
    assert_eq!(
        page2.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    let page3 = store
        .list_runs(&RunQuery::new().limit(2).before(page2.next.unwrap()))
        .await
        .unwrap();
    assert_eq!(
        page3.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    assert_eq!(page3.next, None);
    let failed = store
        .list_runs(&RunQuery::new().state(RunState::Failed))
        .await
        .unwrap();
    assert_eq!(failed.items.len(), 2);
    let even = store
        .list_runs(&RunQuery::new().workflow("even"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 3);
}

/// Generates the conformance tests for one store.
macro_rules! conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn make() -> std::sync::Arc<dyn dagforge::store::Store> {
                $make
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn create_get_and_duplicates() {
                crate::store::create_get_and_duplicates(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn events_are_ordered_and_paged() {
                crate::store::events_are_ordered_and_paged(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn node_events_become_executions() {
                crate::store::node_events_become_executions(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stale_leases_are_fenced() {
                crate::store::stale_leases_are_fenced(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn release_and_finish() {
                crate::store::release_and_finish(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_claims_take_each_run_once() {
                crate::store::concurrent_claims_take_each_run_once(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn list_runs_filters_and_pages() {
                crate::store::list_runs_filters_and_pages(make().await).await;
            }
        }
    };
}

conformance!(
    memory,
    std::sync::Arc::new(dagforge::store::MemoryStore::new())
);
