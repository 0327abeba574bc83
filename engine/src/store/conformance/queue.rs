//! The execution queue's guarantees ([`ExecutionQueue`]): what the queue executor and
//! the `work` loop rely on, on every store that has the queue.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;

use crate::error::{ErrorInfo, ErrorKind};
use crate::ids::RunId;
use crate::job::JobSpec;
use crate::log_level::LogLevel;

use super::super::queue::{
    Cancelled, Capacity, ExecutionQueue, QueueId, QueueTopic, QueuedAttempt, Report, WorkerOffer,
    WorkerRecord, WorkerReport,
};

/// A claim's lease in the suite.
const LEASE: Duration = Duration::from_secs(30);

/// Attempt `n` of node `node` for owner `owner` (job `noop`, input `n`).
pub fn queued(owner: &str, node: &str, n: u32) -> QueuedAttempt {
    QueuedAttempt::new(
        owner,
        RunId::new(),
        node,
        None,
        n,
        "noop",
        json!(n),
        JobSpec::new(),
    )
}

fn offer(worker: &str, lanes: &[&str], free: Capacity) -> WorkerOffer {
    WorkerOffer::new(
        worker,
        lanes.iter().map(|l| (*l).to_owned()).collect(),
        BTreeMap::new(),
        free,
    )
}

/// Every guarantee of the queue, each on a fresh queue from `make`.
pub async fn run_queue_all<F, Fut>(mut make: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn ExecutionQueue>>,
{
    queue_round_trip(make().await).await;
    queue_claims_route_and_fit(make().await).await;
    queue_fences_lost_and_released_claims(make().await).await;
    queue_concurrent_claims_take_each_once(make().await).await;
    queue_cancel_withdraws_or_asks(make().await).await;
    queue_workers_beat_and_list(make().await).await;
    queue_watch_wakes(make().await).await;
}

/// Pushed attempts are claimed highest priority first, their reports read back by
/// their owner in order, and acknowledged reports are gone.
pub async fn queue_round_trip(q: Arc<dyn ExecutionQueue>) {
    let ids = q
        .push(&[
            queued("e1", "low", 1),
            queued("e1", "high", 1).priority(5),
            queued("e1", "mid", 1).priority(2),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "ids in push order");
    let got = q
        .claim_attempts(&offer("w1", &["default"], Capacity::slots(8)), LEASE)
        .await
        .unwrap();
    let nodes: Vec<&str> = got.iter().map(|c| c.attempt.node.as_str()).collect();
    assert_eq!(nodes, ["high", "mid", "low"], "highest priority first");
    assert!(got.iter().all(|c| c.fence >= 1));
    assert_eq!(got[0].attempt.input, json!(1));
    let c = &got[0];
    let accepted = q
        .report(
            "w1",
            &[WorkerReport::new(
                c.id,
                c.fence,
                vec![
                    Report::Log {
                        level: LogLevel::Info,
                        message: "one".into(),
                    },
                    Report::Progress {
                        percent: 50,
                        message: "half".into(),
                    },
                    Report::Outcome(Ok(json!(42))),
                ],
            )],
        )
        .await
        .unwrap();
    assert_eq!(accepted, [true]);
    let reports = q.reports("e1", 100).await.unwrap();
    assert_eq!(reports.len(), 3);
    assert!(reports.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(matches!(reports[2].report, Report::Outcome(Ok(ref v)) if *v == json!(42)));
    assert!(q.reports("nobody", 100).await.unwrap().is_empty());
    // A report after the outcome is refused: the claim is over.
    let late = q
        .report(
            "w1",
            &[WorkerReport::new(
                c.id,
                c.fence,
                vec![Report::Outcome(Ok(json!(0)))],
            )],
        )
        .await
        .unwrap();
    assert_eq!(late, [false], "a second outcome is refused");
    let seqs: Vec<u64> = reports.iter().map(|r| r.seq).collect();
    q.acknowledge("e1", &seqs, &[c.id]).await.unwrap();
    assert!(q.reports("e1", 100).await.unwrap().is_empty());
}

/// Claims take only the worker's lanes, attempts whose tags it carries, and
/// demands that fit its free capacity together.
pub async fn queue_claims_route_and_fit(q: Arc<dyn ExecutionQueue>) {
    let big = Capacity::ONE_SLOT
        .with_cpu_millis(3000)
        .with_memory_bytes(1 << 30);
    q.push(&[
        queued("e", "gpu", 1).lane("gpu"),
        queued("e", "eu", 1).require("region", "eu"),
        queued("e", "big1", 1).demand(big),
        queued("e", "big2", 1).demand(big),
        queued("e", "huge", 1).demand(Capacity::ONE_SLOT.with_cpu_millis(100_000)),
    ])
    .await
    .unwrap();
    // A worker with 4 cpus, 4 GiB, 8 slots, no tags, default lane: one big attempt
    // fits, not two; the gpu, eu and huge ones are not for it.
    let room = Capacity::slots(8)
        .with_cpu_millis(4000)
        .with_memory_bytes(4 << 30);
    let got = q
        .claim_attempts(&offer("plain", &["default"], room), LEASE)
        .await
        .unwrap();
    let nodes: Vec<&str> = got.iter().map(|c| c.attempt.node.as_str()).collect();
    assert_eq!(
        nodes,
        ["big1"],
        "one big attempt fits, the rest is not for it"
    );
    let mut eu = offer("eu", &["default", "gpu"], Capacity::slots(8));
    eu.tags.insert("region".into(), "eu".into());
    eu.tags.insert("zone".into(), "a".into());
    let got = q.claim_attempts(&eu, LEASE).await.unwrap();
    let mut nodes: Vec<&str> = got.iter().map(|c| c.attempt.node.as_str()).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["eu", "gpu"], "tags and lanes route");
    let mut us = offer(
        "us",
        &["default"],
        Capacity::slots(8).with_cpu_millis(200_000),
    );
    us.tags.insert("region".into(), "us".into());
    us.limit = 1;
    let got = q.claim_attempts(&us, LEASE).await.unwrap();
    assert_eq!(got.len(), 1, "the limit holds");
    let no_slot = offer(
        "full",
        &["default"],
        Capacity::ZERO.with_cpu_millis(1 << 40),
    );
    assert!(q.claim_attempts(&no_slot, LEASE).await.unwrap().is_empty());
}

/// A claim whose lease lapsed is lost: its worker's reports are refused. A released
/// claim is claimed again under a new token; the old token's reports are refused.
pub async fn queue_fences_lost_and_released_claims(q: Arc<dyn ExecutionQueue>) {
    q.push(&[queued("e", "a", 1), queued("e", "b", 1)])
        .await
        .unwrap();
    let got = q
        .claim_attempts(
            &offer("slow", &["default"], Capacity::slots(1)),
            Duration::from_millis(50),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let a = got[0].clone();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(q.expire_claims("other").await.unwrap().is_empty());
    assert_eq!(q.expire_claims("e").await.unwrap(), [a.id]);
    let late = q
        .report(
            "slow",
            &[WorkerReport::new(
                a.id,
                a.fence,
                vec![Report::Outcome(Ok(json!(1)))],
            )],
        )
        .await
        .unwrap();
    assert_eq!(late, [false], "a lost claim's late result is refused");
    assert!(q.reports("e", 10).await.unwrap().is_empty());
    assert!(
        q.renew_claims("slow", LEASE).await.unwrap().held == 0,
        "a lost claim is not renewed"
    );
    let b = q
        .claim_attempts(&offer("w1", &["default"], Capacity::slots(1)), LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(q.release_claims("w1", &[b.id]).await.unwrap(), 1);
    let again = q
        .claim_attempts(&offer("w2", &["default"], Capacity::slots(1)), LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(again.id, b.id);
    assert!(again.fence > b.fence, "a new claim, a new token");
    let stale = q
        .report(
            "w1",
            &[WorkerReport::new(
                b.id,
                b.fence,
                vec![Report::Outcome(Ok(json!(1)))],
            )],
        )
        .await
        .unwrap();
    assert_eq!(stale, [false], "the first claimer is fenced");
    let fresh = q
        .report(
            "w2",
            &[WorkerReport::new(
                again.id,
                again.fence,
                vec![Report::Outcome(Err(ErrorInfo::new(
                    ErrorKind::Failed,
                    "no",
                )))],
            )],
        )
        .await
        .unwrap();
    assert_eq!(fresh, [true]);
}

/// Workers claiming at once from many tasks take every attempt exactly once.
pub async fn queue_concurrent_claims_take_each_once(q: Arc<dyn ExecutionQueue>) {
    let attempts: Vec<QueuedAttempt> = (0..200).map(|n| queued("e", "n", n)).collect();
    let ids = q.push(&attempts).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..6 {
        let q = Arc::clone(&q);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = q
                    .claim_attempts(
                        &offer(&format!("w{w}"), &["default"], Capacity::slots(7)),
                        LEASE,
                    )
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id), "attempt {id} claimed twice");
        }
    }
    let want: HashSet<QueueId> = ids.into_iter().collect();
    assert_eq!(seen, want, "every attempt claimed");
}

/// Cancelling a queued attempt withdraws it; cancelling a claimed one asks its worker
/// (seen at its next renewal); cancelling a finished one does nothing.
pub async fn queue_cancel_withdraws_or_asks(q: Arc<dyn ExecutionQueue>) {
    let ids = q
        .push(&[queued("e", "a", 1), queued("e", "b", 1)])
        .await
        .unwrap();
    assert_eq!(
        q.cancel_attempt(ids[1]).await.unwrap(),
        Cancelled::Withdrawn
    );
    let got = q
        .claim_attempts(&offer("w", &["default"], Capacity::slots(4)), LEASE)
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "the withdrawn attempt is not claimed");
    assert_eq!(q.cancel_attempt(ids[0]).await.unwrap(), Cancelled::Asked);
    let renewed = q.renew_claims("w", LEASE).await.unwrap();
    assert_eq!(renewed.cancel, [ids[0]]);
    assert_eq!(renewed.held, 1);
    q.report(
        "w",
        &[WorkerReport::new(
            ids[0],
            got[0].fence,
            vec![Report::Outcome(Err(ErrorInfo::new(
                ErrorKind::Cancelled,
                "cancelled",
            )))],
        )],
    )
    .await
    .unwrap();
    assert_eq!(q.cancel_attempt(ids[0]).await.unwrap(), Cancelled::Over);
}

/// Worker heartbeats are listed with their live load, and forgotten.
pub async fn queue_workers_beat_and_list(q: Arc<dyn ExecutionQueue>) {
    let cap = Capacity::parse("cpu=8,memory=16Gi,slots=32").unwrap();
    let mut tags = BTreeMap::new();
    tags.insert("region".to_owned(), "eu".to_owned());
    let w = WorkerRecord::new("w1", "host-a", 42, vec!["default".into()], tags, cap);
    q.worker_beat(&w).await.unwrap();
    q.worker_beat(&WorkerRecord::new(
        "w0",
        "host-b",
        7,
        vec![],
        BTreeMap::new(),
        cap,
    ))
    .await
    .unwrap();
    let demand = Capacity::ONE_SLOT.with_cpu_millis(1500);
    q.push(&[queued("e", "a", 1).demand(demand)]).await.unwrap();
    q.claim_attempts(&offer("w1", &["default"], cap), LEASE)
        .await
        .unwrap();
    let list = q.workers().await.unwrap();
    let ids: Vec<&str> = list.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["w0", "w1"]);
    let w1 = &list[1];
    assert_eq!(w1.host, "host-a");
    assert_eq!(w1.pid, 42);
    assert_eq!(w1.capacity, cap);
    assert_eq!(w1.tags.get("region").map(String::as_str), Some("eu"));
    assert_eq!((w1.used, w1.running), (demand, 1));
    assert_eq!(list[0].running, 0);
    assert!(q.forget_worker("w0").await.unwrap());
    assert!(!q.forget_worker("w0").await.unwrap());
    assert_eq!(q.workers().await.unwrap().len(), 1);
}

/// Watches wake: a worker's when attempts are pushed, an owner's when its attempts
/// are reported on.
pub async fn queue_watch_wakes(q: Arc<dyn ExecutionQueue>) {
    let within = Duration::from_secs(5);
    let mut worker = q.watch_queue(QueueTopic::Worker("w".into())).await.unwrap();
    let mut owner = q.watch_queue(QueueTopic::Owner("e".into())).await.unwrap();
    q.push(&[queued("e", "a", 1)]).await.unwrap();
    tokio::time::timeout(within, worker.next())
        .await
        .expect("a push wakes the workers")
        .expect("the watch goes on");
    let c = q
        .claim_attempts(&offer("w", &["default"], Capacity::slots(1)), LEASE)
        .await
        .unwrap()
        .remove(0);
    q.report(
        "w",
        &[WorkerReport::new(
            c.id,
            c.fence,
            vec![Report::Outcome(Ok(json!(1)))],
        )],
    )
    .await
    .unwrap();
    tokio::time::timeout(within, owner.next())
        .await
        .expect("a report wakes its owner")
        .expect("the watch goes on");
}
