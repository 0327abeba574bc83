//! Guarantees of enqueued runs at the store level (what `Engine::enqueue_with` relies
//! on): one run per idempotency key, claims by priority, delayed runs, capped lanes.
//! An enqueued run is created under the placeholder lease `queue` (fence 0), expiring
//! when it may start.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::ids::RunId;
use crate::state::RunState;
use crate::store::{Lease, RunRecord, Store, StoreError};

use super::{TTL, record, run_event};

/// `rec` enqueued: claimable after `wait`.
async fn enqueue(store: &dyn Store, rec: &RunRecord, wait: Duration) -> Result<(), StoreError> {
    store.create_run(rec, &Lease::new("queue", 0), wait).await
}

/// A second run with a held idempotency key is [`StoreError::KeyExists`] naming the
/// holder, also when racing; once the key is released, a new run takes it and the
/// old run is kept without it.
pub async fn idempotency_keys_hold_one_run(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut rec = record("keyed");
            rec.idempotency_key = Some("k-1".to_owned());
            (rec.id, enqueue(&*store, &rec, Duration::ZERO).await)
        }));
    }
    let mut won = Vec::new();
    let mut holders = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (id, Ok(())) => won.push(id),
            (_, Err(StoreError::KeyExists { key, run, .. })) => {
                assert_eq!(key, "k-1");
                holders.push(run);
            }
            (_, Err(e)) => panic!("{e}"),
        }
    }
    assert_eq!(won.len(), 1, "one run per key");
    assert!(holders.iter().all(|h| *h == won[0]), "the holder is named");
    store.release_key("k-1", RunId::new()).await.unwrap();
    let mut again = record("keyed");
    again.idempotency_key = Some("k-1".to_owned());
    assert!(
        matches!(
            enqueue(&*store, &again, Duration::ZERO).await,
            Err(StoreError::KeyExists { .. })
        ),
        "released only by its holder"
    );
    store.release_key("k-1", won[0]).await.unwrap();
    enqueue(&*store, &again, Duration::ZERO).await.unwrap();
    let old = store.get_run(won[0]).await.unwrap().unwrap();
    assert_eq!(old.idempotency_key, None);
    let new = store.get_run(again.id).await.unwrap().unwrap();
    assert_eq!(new.idempotency_key.as_deref(), Some("k-1"));
}

/// Enqueued runs are claimed higher priority first, by `claim` and
/// `claim_workflows` alike; an engine that knows other workflows takes none.
pub async fn claims_follow_priority(store: Arc<dyn Store>) {
    let mut by_priority = Vec::new();
    for p in [0, 10, -5, 3] {
        let mut rec = record("enqueued");
        rec.priority = p;
        enqueue(&*store, &rec, Duration::ZERO).await.unwrap();
        by_priority.push((p, rec.id));
    }
    by_priority.sort_by_key(|p| std::cmp::Reverse(p.0));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let other = ["something-else".to_owned()];
    assert!(
        store
            .claim_workflows("engine-o", TTL, 10, &other, &[])
            .await
            .unwrap()
            .is_empty()
    );
    let mine = ["enqueued".to_owned()];
    let mut claimed = Vec::new();
    for i in 0..4 {
        let c = if i % 2 == 0 {
            store.claim("engine-p", TTL, 1).await.unwrap()
        } else {
            store
                .claim_workflows("engine-p", TTL, 1, &mine, &[])
                .await
                .unwrap()
        };
        assert_eq!(c.len(), 1);
        claimed.push((c[0].run.priority, c[0].run.id));
    }
    assert_eq!(claimed, by_priority, "higher priority first");
}

/// A run enqueued for later is claimable (by any claim, or by id) only once due, and
/// `next_start` tells when.
pub async fn delayed_runs_wait(store: Arc<dyn Store>) {
    let mut rec = record("later");
    rec.not_before = Some(SystemTime::now() + Duration::from_millis(300));
    enqueue(&*store, &rec, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(
        store.claim("engine-d", TTL, 10).await.unwrap().is_empty(),
        "not yet"
    );
    assert!(
        store
            .claim_run(rec.id, "engine-d", TTL)
            .await
            .unwrap()
            .is_none(),
        "not by id"
    );
    if let Some(next) = store.next_start().await.unwrap() {
        let off = next
            .duration_since(rec.not_before.unwrap())
            .unwrap_or_else(|e| e.duration());
        assert!(
            off < Duration::from_millis(100),
            "next start off by {off:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    let c = store
        .claim_run(rec.id, "engine-e", TTL)
        .await
        .unwrap()
        .expect("due");
    assert!(
        store
            .claim_run(rec.id, "engine-f", TTL)
            .await
            .unwrap()
            .is_none(),
        "held"
    );
    let kept = store
        .get_run(rec.id)
        .await
        .unwrap()
        .unwrap()
        .not_before
        .unwrap();
    let off = kept
        .duration_since(rec.not_before.unwrap())
        .unwrap_or_else(|e| e.duration());
    assert!(
        off < Duration::from_millis(1),
        "not_before kept (to the µs): {off:?}"
    );
    store.release(rec.id, &c.lease).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(store.claim("engine-d", TTL, 10).await.unwrap().len(), 1);
    assert_eq!(
        store.next_start().await.unwrap(),
        None,
        "nothing waits any more"
    );
}

/// A run queued for later whose cancellation was requested is taken by id at once
/// (so the canceller ends it then, not when it comes due), but by no other claim; a
/// run an engine holds is not taken early, cancelled or not.
pub async fn cancelled_delayed_runs_are_claimable_by_id(store: Arc<dyn Store>) {
    let mut rec = record("later-cancelled");
    rec.not_before = Some(SystemTime::now() + Duration::from_secs(60));
    enqueue(&*store, &rec, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        store
            .claim_run(rec.id, "engine-c", TTL)
            .await
            .unwrap()
            .is_none(),
        "not due and not cancelled: left in the queue"
    );
    assert!(store.request_cancel(rec.id).await.unwrap());
    assert!(
        store.claim("engine-c", TTL, 10).await.unwrap().is_empty(),
        "a plain claim still waits for the start time"
    );
    let c = store
        .claim_run(rec.id, "engine-c", TTL)
        .await
        .unwrap()
        .expect("cancelled: taken by id before its time");
    assert_eq!(c.run.id, rec.id);
    assert_eq!(c.run.state, RunState::Pending);
    assert!(
        store
            .claim_run(rec.id, "engine-x", TTL)
            .await
            .unwrap()
            .is_none(),
        "held by the canceller now, cancelled or not"
    );
}

/// Claimers racing take at most a capped lane's cap; a run of the lane finishing
/// makes room for exactly one more; lifting the cap lets the rest go.
pub async fn capped_lanes_hold_their_cap(store: Arc<dyn Store>) {
    store.set_queue_limit("emails", Some(2)).await.unwrap();
    store.set_queue_limit("zz", Some(1)).await.unwrap();
    store.set_queue_limit("zz", None).await.unwrap();
    assert_eq!(
        store.queue_limits().await.unwrap(),
        vec![("emails".to_owned(), 2)]
    );
    for lane in ["emails", "emails", "emails", "emails", "bulk"] {
        let mut rec = record("lanes");
        rec.queue = Some(lane.to_owned());
        enqueue(&*store, &rec, Duration::ZERO).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut tasks = Vec::new();
    for e in 0..4 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.claim(&format!("engine-{e}"), TTL, 10).await.unwrap()
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    let lane = |l: &str| {
        claimed
            .iter()
            .filter(|c| c.run.queue.as_deref() == Some(l))
            .count()
    };
    assert_eq!((lane("emails"), lane("bulk")), (2, 1), "{claimed:?}");
    let done = claimed
        .iter()
        .find(|c| c.run.queue.as_deref() == Some("emails"))
        .unwrap();
    let id = done.run.id;
    store
        .append(
            id,
            &done.lease,
            &[
                run_event(id, 1, RunState::Pending, RunState::Running),
                run_event(id, 2, RunState::Running, RunState::Succeeded),
            ],
        )
        .await
        .unwrap();
    let more = store.claim("engine-9", TTL, 10).await.unwrap();
    assert_eq!(more.len(), 1, "room for one: {more:?}");
    store.set_queue_limit("emails", None).await.unwrap();
    assert_eq!(store.claim("engine-9", TTL, 10).await.unwrap().len(), 1);
}
