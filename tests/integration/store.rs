//! The store conformance suite: every `Store` implementation must pass all of it.
//!
//! `conformance!(name, async { store })` generates one test per guarantee for a store
//! built by the given expression (each test gets a fresh store): the store-level
//! guarantees of the exported suite (`dagforge::store::conformance`, feature
//! `test-util`), and the enqueueing guarantees tested through the engine below.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dagforge::prelude::*;
use dagforge::store::{Lease, RunQuery, Store};
use dagforge::{NodeEvent, RunId};

use dagforge::store::conformance::{TTL, node, record, run_event, started};

/// A one-node workflow for enqueue tests.
fn enqueued_workflow() -> Workflow {
    let mut wf = Workflow::builder("enqueued");
    wf.add("noop", crate::common::Noop);
    wf.build().unwrap()
}

pub(crate) async fn idempotency_keys_give_one_run(store: Arc<dyn Store>) {
    let wf = enqueued_workflow();
    let engine = Engine::builder().shared_store(Arc::clone(&store)).build();
    // Racing enqueues with one key: one run, and every caller gets its id.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (engine, wf) = (engine.clone(), wf.clone());
        tasks.push(tokio::spawn(async move {
            engine
                .enqueue_with(&wf, (), dagforge::Enqueue::new().idempotency_key("k-1"))
                .await
                .unwrap()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let runs = store.list_runs(&RunQuery::new().limit(100)).await.unwrap();
    assert_eq!(runs.items.len(), 1);
    assert_eq!(runs.items[0].idempotency_key.as_deref(), Some("k-1"));
    // Another key, another run.
    let other = engine
        .enqueue_with(&wf, (), dagforge::Enqueue::new().idempotency_key("k-2"))
        .await
        .unwrap();
    assert_ne!(other, ids[0]);
    // Once the key's retention is over, the key starts a new run.
    let later = engine
        .enqueue_with(
            &wf,
            (),
            dagforge::Enqueue::new()
                .idempotency_key("k-1")
                .key_retention(Duration::ZERO),
        )
        .await
        .unwrap();
    assert_ne!(later, ids[0]);
    let again = engine
        .enqueue_with(&wf, (), dagforge::Enqueue::new().idempotency_key("k-1"))
        .await
        .unwrap();
    assert_eq!(again, later, "the key now belongs to the new run");
    assert_eq!(
        store
            .get_run(ids[0])
            .await
            .unwrap()
            .unwrap()
            .idempotency_key,
        None,
        "the old run is kept, without the key"
    );
}

pub(crate) async fn claims_follow_priority(store: Arc<dyn Store>) {
    let wf = enqueued_workflow();
    let engine = Engine::builder().shared_store(Arc::clone(&store)).build();
    let mut by_priority = Vec::new();
    for p in [0, 10, -5, 3] {
        let id = engine
            .enqueue_with(&wf, (), dagforge::Enqueue::new().priority(p))
            .await
            .unwrap();
        by_priority.push((p, id));
    }
    by_priority.sort_by_key(|p| std::cmp::Reverse(p.0));
    tokio::time::sleep(Duration::from_millis(5)).await;
    // An engine that knows other workflows takes none of these.
    let other = ["something-else".to_owned()];
    assert!(
        store
            .claim_workflows("engine-o", TTL, 10, &other, &[])
            .await
            .unwrap()
            .is_empty()
    );
    let mut claimed = Vec::new();
    for i in 0..4 {
        let c = if i % 2 == 0 {
            store.claim("engine-p", TTL, 1).await.unwrap()
        } else {
            let mine = ["enqueued".to_owned()];
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

pub(crate) async fn delayed_runs_wait(store: Arc<dyn Store>) {
    let wf = enqueued_workflow();
    let engine = Engine::builder().shared_store(Arc::clone(&store)).build();
    let id = engine
        .enqueue_with(
            &wf,
            (),
            dagforge::Enqueue::new().delay(Duration::from_millis(400)),
        )
        .await
        .unwrap();
    let rec = store.get_run(id).await.unwrap().unwrap();
    let wait = rec
        .not_before
        .unwrap()
        .duration_since(rec.created_at)
        .unwrap();
    assert!(
        wait >= Duration::from_millis(390) && wait <= Duration::from_millis(410),
        "{wait:?}"
    );
    assert!(
        store.claim("engine-d", TTL, 10).await.unwrap().is_empty(),
        "not yet"
    );
    assert!(
        store
            .claim_run(id, "engine-d", TTL)
            .await
            .unwrap()
            .is_none(),
        "not yet, even by id"
    );
    let next = store.next_start().await.unwrap().expect("a run waits");
    let off = next
        .duration_since(rec.not_before.unwrap())
        .unwrap_or_else(|e| e.duration());
    assert!(off < Duration::from_millis(50), "next start off by {off:?}");
    tokio::time::sleep(Duration::from_millis(450)).await;
    let by_id = store
        .claim_run(id, "engine-e", TTL)
        .await
        .unwrap()
        .expect("due: claimable by id");
    assert_eq!(by_id.run.id, id);
    assert!(
        store
            .claim_run(id, "engine-f", TTL)
            .await
            .unwrap()
            .is_none(),
        "held now"
    );
    // Given back for the claim below.
    store.release(id, &by_id.lease).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    let c = store.claim("engine-d", TTL, 10).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].run.id, id);
    assert_eq!(
        store.next_start().await.unwrap(),
        None,
        "nothing waits any more"
    );
    // Out of range: a clear error naming the option.
    let err = engine
        .enqueue_with(
            &wf,
            (),
            dagforge::Enqueue::new().delay(Duration::from_secs(20 * 366 * 86_400)),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("delay"), "{err}");
}

pub(crate) async fn capped_lanes_hold_their_cap(store: Arc<dyn Store>) {
    let wf = enqueued_workflow();
    let engine = Engine::builder().shared_store(Arc::clone(&store)).build();
    engine.set_queue_limit("emails", Some(2)).await.unwrap();
    engine.set_workflow_limit(&wf, Some(1)).await.unwrap();
    assert_eq!(
        store.queue_limits().await.unwrap(),
        vec![
            ("emails".to_owned(), 2),
            ("workflow:enqueued".to_owned(), 1)
        ]
    );
    let mut emails = Vec::new();
    for _ in 0..5 {
        emails.push(
            engine
                .enqueue_with(&wf, (), dagforge::Enqueue::new().queue("emails"))
                .await
                .unwrap(),
        );
    }
    // Enqueued without a lane: the workflow's, capped at 1.
    let plain_a = engine.enqueue(&wf, ()).await.unwrap();
    let plain_b = engine.enqueue(&wf, ()).await.unwrap();
    let free = engine
        .enqueue_with(&wf, (), dagforge::Enqueue::new().queue("bulk"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Claimers racing: together they take at most the caps.
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
    let count = |ids: &[RunId]| claimed.iter().filter(|c| ids.contains(&c.run.id)).count();
    assert_eq!(count(&emails), 2, "the emails lane holds 2");
    assert_eq!(count(&[plain_a, plain_b]), 1, "the workflow's lane holds 1");
    assert_eq!(count(&[free]), 1, "an uncapped lane is not held back");
    assert_eq!(claimed.len(), 4);
    // A run of the lane finishes: room for one more, and only one.
    let done = claimed
        .iter()
        .find(|c| c.run.queue.as_deref() == Some("emails"))
        .unwrap();
    store
        .append(
            done.run.id,
            &done.lease,
            &[
                run_event(done.run.id, 1, RunState::Pending, RunState::Running),
                run_event(done.run.id, 2, RunState::Running, RunState::Succeeded),
            ],
        )
        .await
        .unwrap();
    let more = store.claim("engine-9", TTL, 10).await.unwrap();
    assert_eq!(more.len(), 1, "{more:?}");
    assert_eq!(more[0].run.queue.as_deref(), Some("emails"));
    // Lifting the cap lets the rest go.
    engine.set_queue_limit("emails", None).await.unwrap();
    assert_eq!(store.claim("engine-9", TTL, 10).await.unwrap().len(), 2);
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
                dagforge::store::conformance::create_get_and_duplicates(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn events_are_ordered_and_paged() {
                dagforge::store::conformance::events_are_ordered_and_paged(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn node_events_become_executions() {
                dagforge::store::conformance::node_events_become_executions(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn appends_continue_the_log_and_retries_change_nothing() {
                dagforge::store::conformance::appends_continue_the_log_and_retries_change_nothing(
                    make().await,
                )
                .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn idempotency_keys_give_one_run() {
                crate::store::idempotency_keys_give_one_run(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn claims_follow_priority() {
                crate::store::claims_follow_priority(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delayed_runs_wait() {
                crate::store::delayed_runs_wait(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn capped_lanes_hold_their_cap() {
                crate::store::capped_lanes_hold_their_cap(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stale_leases_are_fenced() {
                dagforge::store::conformance::stale_leases_are_fenced(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn release_and_finish() {
                dagforge::store::conformance::release_and_finish(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_claims_take_each_run_once() {
                dagforge::store::conformance::concurrent_claims_take_each_run_once(make().await)
                    .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn list_runs_filters_and_pages() {
                dagforge::store::conformance::list_runs_filters_and_pages(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn appends_in_batches() {
                dagforge::store::conformance::appends_in_batches(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stalled_claims_count_claims_without_progress() {
                dagforge::store::conformance::stalled_claims_count_claims_without_progress(
                    make().await,
                )
                .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn idempotency_keys_hold_one_run() {
                dagforge::store::conformance::idempotency_keys_hold_one_run(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn claims_follow_priority_at_the_store() {
                dagforge::store::conformance::claims_follow_priority(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delayed_runs_wait_at_the_store() {
                dagforge::store::conformance::delayed_runs_wait(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cancelled_delayed_runs_are_claimable_by_id() {
                dagforge::store::conformance::cancelled_delayed_runs_are_claimable_by_id(
                    make().await,
                )
                .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn capped_lanes_hold_their_cap_at_the_store() {
                dagforge::store::conformance::capped_lanes_hold_their_cap(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn run_queries_filter_page_and_count() {
                dagforge::store::conformance::run_queries_filter_page_and_count(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn executions_page_and_count() {
                dagforge::store::conformance::executions_page_and_count(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn logs_filter_page_and_tail() {
                dagforge::store::conformance::logs_filter_page_and_tail(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn node_summaries_sum_up_executions() {
                dagforge::store::conformance::node_summaries_sum_up_executions(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_feed_has_every_event_once() {
                dagforge::store::conformance::the_feed_has_every_event_once(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_feed_keeps_up_with_concurrent_writers() {
                dagforge::store::conformance::the_feed_keeps_up_with_concurrent_writers(
                    make().await,
                )
                .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn engines_beat_list_and_forget() {
                dagforge::store::conformance::engines_beat_list_and_forget(make().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn specs_are_stored_once_and_read_back() {
                dagforge::store::conformance::specs_are_stored_once_and_read_back(make().await)
                    .await;
            }
        }
    };
}

/// The exported suite in one line, as a store outside the crate uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_passes_the_exported_suite() {
    dagforge::store::conformance::run_all(|| async {
        std::sync::Arc::new(dagforge::store::MemoryStore::new()) as std::sync::Arc<dyn Store>
    })
    .await;
}

conformance!(
    memory,
    std::sync::Arc::new(dagforge::store::MemoryStore::new())
);

/// A fresh SQLite file for one test (under cargo's per-target temporary directory).
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("store-{}.db", RunId::new().to_uuid_string()))
}

#[cfg(feature = "sqlite")]
conformance!(
    sqlite,
    std::sync::Arc::new(
        dagforge::store::SqliteStore::open(&crate::store::sqlite_path().to_string_lossy())
            .await
            .unwrap()
    )
);

#[cfg(feature = "sqlite")]
conformance!(
    sqlite_memory,
    std::sync::Arc::new(dagforge::store::SqliteStore::open_memory().await.unwrap())
);

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reopened_keeps_everything() {
    use dagforge::store::SqliteStore;
    let path = sqlite_path();
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::open(&url).await.unwrap();
    let (rec, lease) = started(&store, "wf").await;
    store
        .append(
            rec.id,
            &lease,
            &[node(
                rec.id,
                2,
                NodeEvent::new("a", None, 1, NodeState::Ready, NodeState::Running),
            )],
        )
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let store = SqliteStore::open(&url).await.unwrap();
    let got = store.get_run(rec.id).await.unwrap().unwrap();
    assert_eq!(got.state, RunState::Running);
    assert_eq!(got.spec.spec().nodes.len(), 1);
    assert_eq!(store.events(rec.id, 0, 10).await.unwrap().len(), 2);
    assert_eq!(store.executions(rec.id).await.unwrap().len(), 1);
    // The lease survived too: the old holder may go on; nobody else may claim.
    store.renew(rec.id, &lease, TTL).await.unwrap();
    assert!(store.claim("other", TTL, 10).await.unwrap().is_empty());
}

#[cfg(feature = "postgres")]
pub(crate) mod pg {
    //! PostgreSQL at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
    //! one fresh schema per test, dropped when the test's store is dropped.

    use std::time::Duration;

    use dagforge::store::{
        ExecutionRecord, Lease, Page, PostgresStore, RunQuery, RunRecord, Store, StoreError,
    };
    use dagforge::{Event, RunId};

    pub(crate) fn url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// A store in a schema of its own; the schema is dropped with the store.
    #[derive(Debug)]
    pub(crate) struct TempSchema(pub(crate) PostgresStore);

    impl TempSchema {
        pub(crate) async fn new() -> TempSchema {
            Self::with(|o| o).await
        }

        /// A store connected with options adjusted by `adjust`.
        pub(crate) async fn with(
            adjust: impl FnOnce(dagforge::store::PostgresOptions) -> dagforge::store::PostgresOptions,
        ) -> TempSchema {
            let schema = format!("test_{}", RunId::new().to_uuid_string().replace('-', ""));
            TempSchema(
                adjust(PostgresStore::options(&url()).schema(schema))
                    .connect()
                    .await
                    .expect("PostgreSQL at DATABASE_URL"),
            )
        }
    }

    impl Drop for TempSchema {
        fn drop(&mut self) {
            // A fresh connection on a runtime of its own: this may run inside (and
            // would block) the test's runtime.
            let schema = self.0.schema_name().to_owned();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    let store = PostgresStore::options(&url())
                        .schema(schema)
                        .migrate(false)
                        .connect()
                        .await
                        .map_err(std::io::Error::other)?;
                    store.drop_schema().await.map_err(std::io::Error::other)
                })
            })
            .join();
        }
    }

    #[async_trait::async_trait]
    impl dagforge::store::RunLog for TempSchema {
        async fn create_run(
            &self,
            run: &RunRecord,
            lease: &Lease,
            ttl: Duration,
        ) -> Result<(), StoreError> {
            Store::create_run(&self.0, run, lease, ttl).await
        }

        async fn append(
            &self,
            run: RunId,
            lease: &Lease,
            events: &[Event],
        ) -> Result<(), StoreError> {
            Store::append(&self.0, run, lease, events).await
        }

        async fn renew(&self, run: RunId, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
            Store::renew(&self.0, run, lease, ttl).await
        }

        async fn release(&self, run: RunId, lease: &Lease) -> Result<(), StoreError> {
            Store::release(&self.0, run, lease).await
        }

        async fn claim_run(
            &self,
            run: RunId,
            owner: &str,
            ttl: Duration,
        ) -> Result<Option<dagforge::store::Claimed>, StoreError> {
            Store::claim_run(&self.0, run, owner, ttl).await
        }

        async fn claim_workflows(
            &self,
            owner: &str,
            ttl: Duration,
            limit: usize,
            workflows: &[String],
            except: &[RunId],
        ) -> Result<Vec<dagforge::store::Claimed>, StoreError> {
            Store::claim_workflows(&self.0, owner, ttl, limit, workflows, except).await
        }

        async fn request_cancel(&self, run: RunId) -> Result<bool, StoreError> {
            Store::request_cancel(&self.0, run).await
        }

        async fn cancel_requests(&self, owner: &str) -> Result<Vec<RunId>, StoreError> {
            Store::cancel_requests(&self.0, owner).await
        }

        async fn claim(
            &self,
            owner: &str,
            ttl: Duration,
            limit: usize,
        ) -> Result<Vec<dagforge::store::Claimed>, StoreError> {
            Store::claim(&self.0, owner, ttl, limit).await
        }
    }

    #[async_trait::async_trait]
    impl dagforge::store::RunQueries for TempSchema {
        async fn get_run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
            Store::get_run(&self.0, run).await
        }

        async fn list_runs(&self, query: &RunQuery) -> Result<Page<RunRecord>, StoreError> {
            Store::list_runs(&self.0, query).await
        }

        async fn executions(&self, run: RunId) -> Result<Vec<ExecutionRecord>, StoreError> {
            Store::executions(&self.0, run).await
        }

        async fn events(
            &self,
            run: RunId,
            after: u64,
            limit: usize,
        ) -> Result<Vec<Event>, StoreError> {
            Store::events(&self.0, run, after, limit).await
        }

        async fn count_runs(
            &self,
            query: &RunQuery,
        ) -> Result<dagforge::store::RunCounts, StoreError> {
            Store::count_runs(&self.0, query).await
        }

        async fn executions_page(
            &self,
            run: RunId,
            query: &dagforge::store::ExecutionQuery,
        ) -> Result<dagforge::store::ExecutionPage, StoreError> {
            Store::executions_page(&self.0, run, query).await
        }

        async fn count_executions(
            &self,
            run: RunId,
            query: &dagforge::store::ExecutionQuery,
        ) -> Result<u64, StoreError> {
            Store::count_executions(&self.0, run, query).await
        }

        async fn logs(
            &self,
            run: RunId,
            query: &dagforge::store::LogQuery,
        ) -> Result<Vec<dagforge::store::LogLine>, StoreError> {
            Store::logs(&self.0, run, query).await
        }

        async fn node_summaries(
            &self,
            run: RunId,
            query: &dagforge::store::SummaryQuery,
        ) -> Result<Vec<dagforge::store::NodeSummary>, StoreError> {
            Store::node_summaries(&self.0, run, query).await
        }
    }

    #[async_trait::async_trait]
    impl dagforge::store::QueueAdmin for TempSchema {
        async fn set_queue_limit(
            &self,
            queue: &str,
            max_running: Option<u32>,
        ) -> Result<(), StoreError> {
            Store::set_queue_limit(&self.0, queue, max_running).await
        }

        async fn queue_limits(&self) -> Result<Vec<(String, u32)>, StoreError> {
            Store::queue_limits(&self.0).await
        }

        async fn release_key(&self, key: &str, holder: RunId) -> Result<(), StoreError> {
            Store::release_key(&self.0, key, holder).await
        }
    }

    #[async_trait::async_trait]
    impl dagforge::store::ScheduleStore for TempSchema {
        async fn put_schedule(
            &self,
            schedule: &dagforge::store::ScheduleRecord,
        ) -> Result<(), StoreError> {
            Store::put_schedule(&self.0, schedule).await
        }

        async fn get_schedule(
            &self,
            id: &str,
        ) -> Result<Option<dagforge::store::ScheduleRecord>, StoreError> {
            Store::get_schedule(&self.0, id).await
        }

        async fn list_schedules(&self) -> Result<Vec<dagforge::store::ScheduleRecord>, StoreError> {
            Store::list_schedules(&self.0).await
        }

        async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
            Store::delete_schedule(&self.0, id).await
        }

        async fn set_schedule_enabled(
            &self,
            id: &str,
            enabled: bool,
            next_fire: Option<std::time::SystemTime>,
        ) -> Result<bool, StoreError> {
            Store::set_schedule_enabled(&self.0, id, enabled, next_fire).await
        }

        async fn due_schedules(
            &self,
            now: std::time::SystemTime,
            limit: usize,
        ) -> Result<Vec<dagforge::store::ScheduleRecord>, StoreError> {
            Store::due_schedules(&self.0, now, limit).await
        }

        async fn next_schedule_fire(
            &self,
            after: std::time::SystemTime,
        ) -> Result<Option<std::time::SystemTime>, StoreError> {
            Store::next_schedule_fire(&self.0, after).await
        }

        async fn advance_schedule(
            &self,
            id: &str,
            expected: Option<std::time::SystemTime>,
            advance: &dagforge::store::ScheduleAdvance,
        ) -> Result<bool, StoreError> {
            Store::advance_schedule(&self.0, id, expected, advance).await
        }
    }

    #[async_trait::async_trait]
    impl dagforge::store::Watch for TempSchema {
        async fn next_start(&self) -> Result<Option<std::time::SystemTime>, StoreError> {
            Store::next_start(&self.0).await
        }
    }

    #[async_trait::async_trait]
    impl dagforge::store::EngineRegistry for TempSchema {
        async fn beat(&self, engine: &dagforge::store::EngineRecord) -> Result<(), StoreError> {
            Store::beat(&self.0, engine).await
        }

        async fn engines(&self) -> Result<Vec<dagforge::store::EngineRecord>, StoreError> {
            Store::engines(&self.0).await
        }

        async fn forget_engine(&self, id: &str) -> Result<bool, StoreError> {
            Store::forget_engine(&self.0, id).await
        }

        async fn forget_engines_before(
            &self,
            before: std::time::SystemTime,
        ) -> Result<u64, StoreError> {
            Store::forget_engines_before(&self.0, before).await
        }
    }

    #[async_trait::async_trait]
    impl dagforge::store::EventFeed for TempSchema {
        async fn events_since(
            &self,
            after: dagforge::store::FeedCursor,
            limit: usize,
            workflow: Option<&str>,
        ) -> Result<dagforge::store::FeedPage, StoreError> {
            Store::events_since(&self.0, after, limit, workflow).await
        }

        async fn feed_head(&self) -> Result<dagforge::store::FeedCursor, StoreError> {
            Store::feed_head(&self.0).await
        }
    }
}

#[cfg(feature = "postgres")]
conformance!(
    postgres,
    std::sync::Arc::new(crate::store::pg::TempSchema::new().await)
);

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifies_creates_appends_and_releases() {
    use dagforge::store::NotificationKind;
    let store = pg::TempSchema::with(|o| o.notify_appends(true)).await;
    let mut sub = store.0.subscribe().await.unwrap();
    let (rec, lease) = started(&store, "wf").await;
    store.release(rec.id, &lease).await.unwrap();
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let n = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("a notification")
            .unwrap();
        assert_eq!(n.run, rec.id);
        kinds.push(n.kind);
    }
    assert_eq!(
        kinds,
        [
            NotificationKind::Created,
            NotificationKind::Appended,
            NotificationKind::Released
        ]
    );

    // Without `notify_appends`, appends are silent.
    let store = pg::TempSchema::new().await;
    let mut sub = store.0.subscribe().await.unwrap();
    let (rec, lease) = started(&store, "wf").await;
    store.release(rec.id, &lease).await.unwrap();
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let n = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("a notification")
            .unwrap();
        kinds.push(n.kind);
    }
    assert_eq!(
        kinds,
        [NotificationKind::Created, NotificationKind::Released]
    );
}

/// Several processes (here: stores) opening one new file at once all get a migrated
/// store: the losers of the migration race try again instead of failing.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_opened_by_many_at_once() {
    let path = sqlite_path();
    let url = path.to_string_lossy().into_owned();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            dagforge::store::SqliteStore::open(&url).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("opened and migrated");
    }
}

/// A store written outside the crate can build every record its capabilities return.
#[test]
fn records_have_public_constructors() {
    use dagforge::store::{Claimed, ExecutionRecord, Page};
    let (run, lease) = (record("outside"), Lease::new("engine-a", 3));
    let claimed = Claimed::new(run.clone(), lease.clone(), 7, 2);
    assert_eq!(
        (
            &claimed.run,
            &claimed.lease,
            claimed.events,
            claimed.stalled_claims
        ),
        (&run, &lease, 7, 2)
    );
    let at = SystemTime::now();
    let mut exec = ExecutionRecord::new("a", Some(1), 2, NodeState::Running, at);
    exec.started_at = Some(at);
    assert_eq!(
        (exec.node.as_str(), exec.item, exec.attempt, exec.state),
        ("a", Some(1), 2, NodeState::Running)
    );
    assert_eq!((exec.output, exec.error, exec.reason), (None, None, None));
    assert_eq!((exec.started_at, exec.updated_at), (Some(at), at));
    let page = Page::new(vec![run.clone()], Some(run.id));
    assert_eq!(
        (page.items, page.next, page.bad.len()),
        (vec![run.clone()], Some(run.id), 0)
    );
}
