//! The store conformance suite (feature `test-util`): the guarantees every store
//! must keep, as functions over an `Arc<dyn Store>`, each given a fresh store. A store
//! written outside this crate proves itself with one line in a test:
//!
//! ```no_run
//! # async fn my_store() -> std::sync::Arc<dyn dagforge::store::Store> {
//! #     std::sync::Arc::new(dagforge::store::MemoryStore::new())
//! # }
//! # #[tokio::main]
//! # async fn main() {
//! dagforge::store::conformance::run_all(|| async { my_store().await }).await;
//! # }
//! ```
//!
//! A guarantee that does not hold panics, naming what went wrong (these are test
//! assertions). `run_all` needs a multi-threaded runtime (some guarantees race
//! claimers on several tasks). Enqueueing is tested at the store level here
//! (priorities, delays, lanes' caps, idempotency keys: what `Engine::enqueue_with`
//! relies on); the engine's own options over them are tested with the engine, in the
//! crate's integration tests.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::context::JobContext;
use crate::error::{ErrorInfo, ErrorKind, JobError};
use crate::events::{Event, EventKind, NodeEvent};
use crate::ids::RunId;
use crate::job::Job;
use crate::log_level::LogLevel;
use crate::state::{NodeState, RunState};
use crate::workflow::{Workflow, WorkflowSnapshot};

use super::{Lease, RunRecord, Store, StoreError};

mod claims;
mod enqueue;
mod feed;
mod queries;
mod queue;
mod summaries;

pub use claims::{
    appends_in_batches, concurrent_claims_take_each_run_once, list_runs_filters_and_pages,
    release_and_finish, specs_are_stored_once_and_read_back,
    stalled_claims_count_claims_without_progress,
};
pub use enqueue::{
    cancelled_delayed_runs_are_claimable_by_id, capped_lanes_hold_their_cap,
    claims_follow_priority, delayed_runs_wait, idempotency_keys_hold_one_run,
};
pub use feed::{
    engines_beat_list_and_forget, the_feed_has_every_event_once,
    the_feed_keeps_up_with_concurrent_writers,
};
pub use queries::{
    executions_page_and_count, logs_filter_page_and_tail, run_queries_filter_page_and_count,
};
pub use queue::{
    queue_cancel_withdraws_or_asks, queue_claims_route_and_fit,
    queue_concurrent_claims_take_each_once, queue_fences_lost_and_released_claims,
    queue_round_trip, queue_watch_wakes, queue_workers_beat_and_list, queued, run_queue_all,
};
pub use summaries::node_summaries_sum_up_executions;

/// Runs every guarantee of the suite, each on a fresh store from `make`, in order;
/// panics at the first that does not hold.
pub async fn run_all<F, Fut>(mut make: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Store>>,
{
    create_get_and_duplicates(make().await).await;
    events_are_ordered_and_paged(make().await).await;
    node_events_become_executions(make().await).await;
    stale_leases_are_fenced(make().await).await;
    appends_continue_the_log_and_retries_change_nothing(make().await).await;
    release_and_finish(make().await).await;
    concurrent_claims_take_each_run_once(make().await).await;
    list_runs_filters_and_pages(make().await).await;
    appends_in_batches(make().await).await;
    specs_are_stored_once_and_read_back(make().await).await;
    stalled_claims_count_claims_without_progress(make().await).await;
    idempotency_keys_hold_one_run(make().await).await;
    claims_follow_priority(make().await).await;
    delayed_runs_wait(make().await).await;
    cancelled_delayed_runs_are_claimable_by_id(make().await).await;
    capped_lanes_hold_their_cap(make().await).await;
    run_queries_filter_page_and_count(make().await).await;
    executions_page_and_count(make().await).await;
    logs_filter_page_and_tail(make().await).await;
    node_summaries_sum_up_executions(make().await).await;
    the_feed_has_every_event_once(make().await).await;
    the_feed_keeps_up_with_concurrent_writers(make().await).await;
    engines_beat_list_and_forget(make().await).await;
}

/// A job that does nothing.
struct Noop;

impl Job for Noop {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "noop";

    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        Ok(())
    }
}

/// A one-node workflow named `name` (its node does nothing).
pub fn workflow(name: &str) -> Workflow {
    let mut wf = Workflow::builder(name);
    wf.add("a", Noop);
    wf.build().unwrap()
}

/// A Pending run of [`workflow`]`(name)`, version `1`, inputs `{"k": 1}`.
pub fn record(name: &str) -> RunRecord {
    let wf = workflow(name);
    RunRecord::new(
        RunId::new(),
        name.to_owned(),
        "1".to_owned(),
        WorkflowSnapshot::of(&wf),
        json!({"k": 1}),
    )
}

/// Event `seq` of `run`: node event `n`, now.
pub fn node(run: RunId, seq: u64, n: NodeEvent) -> Event {
    Event::new(run, seq, SystemTime::now(), EventKind::Node(n))
}

/// Event `seq` of `run`: the run moved `from` → `to`, now.
pub fn run_event(run: RunId, seq: u64, from: RunState, to: RunState) -> Event {
    Event::new(run, seq, SystemTime::now(), EventKind::Run { from, to })
}

/// The lease duration the suite uses.
pub const TTL: Duration = Duration::from_secs(30);

/// A run in a store with a live lease, started (seq 1).
pub async fn started(store: &dyn Store, name: &str) -> (RunRecord, Lease) {
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

/// A created run reads back as written; creating it again is [`StoreError::RunExists`].
pub async fn create_get_and_duplicates(store: Arc<dyn Store>) {
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

/// Events read back in order, paged by sequence number.
pub async fn events_are_ordered_and_paged(store: Arc<dyn Store>) {
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

/// Node events fold into one execution record per attempt (state, output, error, reason, times).
pub async fn node_events_become_executions(store: Arc<dyn Store>) {
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

/// A write under a lease that is no longer the run's is refused with [`StoreError::Fenced`] and changes nothing.
pub async fn stale_leases_are_fenced(store: Arc<dyn Store>) {
    let rec = record("wf");
    let id = rec.id;
    let old = Lease::new("engine-a", 1);
    // Created with a lease that expires at once: another engine may claim it.
    store.create_run(&rec, &old, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let claimed = store.claim("engine-b", TTL, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].events, 0, "a run never started has no log");
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

/// An append must continue the log ([`StoreError::OutOfSequence`] otherwise); the last batch appended again is accepted and changes nothing.
pub async fn appends_continue_the_log_and_retries_change_nothing(store: Arc<dyn Store>) {
    let (rec, lease) = started(&*store, "wf").await;
    let id = rec.id;
    let log = |n: u64| {
        (0..n)
            .map(|i| {
                Event::new(
                    id,
                    2 + i,
                    SystemTime::now(),
                    EventKind::Log {
                        node: "a".into(),
                        item: None,
                        attempt: 1,
                        level: crate::LogLevel::Info,
                        message: format!("line {i}"),
                    },
                )
            })
            .collect::<Vec<_>>()
    };
    let batch = log(3);
    store.append(id, &lease, &batch).await.unwrap();
    // The same batch again (a write retried after its reply was lost): accepted,
    // nothing duplicated.
    store.append(id, &lease, &batch).await.unwrap();
    assert_eq!(store.events(id, 0, 100).await.unwrap().len(), 4);
    // A batch that skips numbers, or rewrites an older part of the log, is refused.
    let gap = [run_event(id, 9, RunState::Running, RunState::Failed)];
    assert!(matches!(
        store.append(id, &lease, &gap).await,
        Err(StoreError::OutOfSequence {
            log_end: 4,
            first: 9,
            ..
        })
    ));
    let old = [run_event(id, 2, RunState::Running, RunState::Failed)];
    assert!(matches!(
        store.append(id, &lease, &old).await,
        Err(StoreError::OutOfSequence {
            log_end: 4,
            first: 2,
            ..
        })
    ));
    // The batch that finishes the run, retried: its lease is gone, and yet the retry
    // is recognised.
    let end = [run_event(id, 5, RunState::Running, RunState::Succeeded)];
    store.append(id, &lease, &end).await.unwrap();
    store.append(id, &lease, &end).await.unwrap();
    let events = store.events(id, 0, 100).await.unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        store.get_run(id).await.unwrap().unwrap().state,
        RunState::Succeeded
    );
    // Another lease never passes for a retry.
    let other = Lease::new("engine-z", lease.fence + 1);
    assert!(matches!(
        store.append(id, &other, &end).await,
        Err(StoreError::Fenced { .. })
    ));
}
