//! The suite's guarantees about leases, claims, listing, batches and specs.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::events::NodeEvent;
use crate::ids::RunId;
use crate::state::{NodeState, RunState};
use crate::workflow::WorkflowSnapshot;

use super::super::{Lease, RunQuery, RunRecord, Store, StoreError};
use super::{TTL, node, record, run_event, started, workflow};

/// A released lease can be claimed at once; a run that finished cannot be claimed.
pub async fn release_and_finish(store: Arc<dyn Store>) {
    let (rec, lease) = started(&*store, "wf").await;
    store.release(rec.id, &lease).await.unwrap();
    let claimed = store.claim("engine-b", TTL, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].run.id, rec.id);
    assert_eq!(claimed[0].run.state, RunState::Running);
    assert_eq!(claimed[0].events, 1, "the claim says how long the log is");
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

/// Claimers racing on several tasks take each run once.
pub async fn concurrent_claims_take_each_run_once(store: Arc<dyn Store>) {
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

/// Runs list newest first, filtered by workflow and state, in keyset pages.
pub async fn list_runs_filters_and_pages(store: Arc<dyn Store>) {
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

/// Many runs appending at once: every batch lands, in order.
pub async fn appends_in_batches(store: Arc<dyn Store>) {
    // Not a timed assertion: prints appends/s and events/s for 100-event batches
    // (`cargo test … appends_in_batches -- --nocapture`).
    let name = format!("{store:?}");
    let name = name
        .split([' ', '(', '{'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let (rec, lease) = started(&*store, "wf").await;
    let id = rec.id;
    const BATCHES: u64 = 200;
    let mut seq = 2;
    let started_at = std::time::Instant::now();
    for b in 0..BATCHES {
        let mut batch = Vec::with_capacity(100);
        for i in 0..50u32 {
            let n = format!("n{}", b * 50 + u64::from(i));
            batch.push(node(
                id,
                seq,
                NodeEvent::new(n.as_str(), None, 1, NodeState::Ready, NodeState::Running),
            ));
            batch.push(node(
                id,
                seq + 1,
                NodeEvent::new(
                    n.as_str(),
                    None,
                    1,
                    NodeState::Running,
                    NodeState::Succeeded,
                )
                .with_output(json!({"i": i})),
            ));
            seq += 2;
        }
        store.append(id, &lease, &batch).await.unwrap();
    }
    let secs = started_at.elapsed().as_secs_f64();
    println!(
        "{name}: {BATCHES} appends of 100 events in {secs:.3} s: {:.0} appends/s, {:.0} events/s",
        BATCHES as f64 / secs,
        (BATCHES * 100) as f64 / secs
    );
    let all = store.events(id, 0, usize::MAX).await.unwrap();
    assert_eq!(all.len() as u64, 1 + BATCHES * 100);
    assert_eq!(all.last().unwrap().seq, 1 + BATCHES * 100);
    let ex = store.executions(id).await.unwrap();
    assert_eq!(ex.len() as u64, BATCHES * 50);
    assert!(
        ex.iter()
            .all(|e| e.state == NodeState::Succeeded && e.output.is_some())
    );
}

/// A run's workflow spec reads back as it was written.
pub async fn specs_are_stored_once_and_read_back(store: Arc<dyn Store>) {
    // Many runs of one workflow share its spec; a different version is its own.
    let wf = workflow("shared");
    let lease = Lease::new("e", 1);
    let mut ids = Vec::new();
    for v in ["1", "1", "2"] {
        let rec = RunRecord::new(
            RunId::new(),
            "shared".to_owned(),
            v.to_owned(),
            WorkflowSnapshot::of(&wf),
            json!(null),
        );
        store.create_run(&rec, &lease, TTL).await.unwrap();
        ids.push(rec.id);
    }
    for id in ids {
        let got = store.get_run(id).await.unwrap().unwrap();
        assert_eq!(got.spec.spec(), WorkflowSnapshot::of(&wf).spec());
    }
}

/// Claims count as stalled until the run makes progress (a node settles); a claim
/// given back does not count; runs in `except` are not claimed.
pub async fn stalled_claims_count_claims_without_progress(store: Arc<dyn Store>) {
    const SHORT: Duration = Duration::from_millis(60);
    let lapse = || tokio::time::sleep(Duration::from_millis(100));
    let (rec, lease) = started(&*store, "stalled").await;
    store.renew(rec.id, &lease, SHORT).await.unwrap();
    let mut counts = Vec::new();
    let mut last = None;
    for owner in ["b", "c"] {
        lapse().await;
        let c = store.claim(owner, SHORT, 10).await.unwrap();
        assert_eq!(c.len(), 1, "the lapsed run is claimable");
        counts.push(c[0].stalled_claims);
        last = Some(c[0].lease.clone());
    }
    lapse().await;
    let names = ["stalled".to_owned()];
    assert!(
        store
            .claim_workflows("d", SHORT, 10, &names, &[rec.id])
            .await
            .unwrap()
            .is_empty(),
        "a run in `except` is left alone"
    );
    // Claimed and given back: that claim does not count.
    let c = store
        .claim_workflows("d", TTL, 10, &names, &[])
        .await
        .unwrap();
    counts.push(c[0].stalled_claims);
    store.release(rec.id, &c[0].lease).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let c = store.claim("e", TTL, 10).await.unwrap();
    counts.push(c[0].stalled_claims);
    assert_ne!(Some(&c[0].lease), last.as_ref());
    // Progress: node `a` succeeds under this claim.
    store
        .append(
            rec.id,
            &c[0].lease,
            &[
                node(
                    rec.id,
                    2,
                    NodeEvent::new("a", None, 1, NodeState::Ready, NodeState::Running),
                ),
                node(
                    rec.id,
                    3,
                    NodeEvent::new("a", None, 1, NodeState::Running, NodeState::Succeeded)
                        .with_output(json!(1)),
                ),
            ],
        )
        .await
        .unwrap();
    store.renew(rec.id, &c[0].lease, SHORT).await.unwrap();
    for owner in ["f", "g"] {
        lapse().await;
        let c = store.claim(owner, SHORT, 10).await.unwrap();
        assert_eq!(c.len(), 1);
        counts.push(c[0].stalled_claims);
    }
    assert_eq!(counts, [1, 2, 3, 3, 1, 2], "stalled claims, claim by claim");
}
