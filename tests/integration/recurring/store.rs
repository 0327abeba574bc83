//! Schedule conformance: every `Store` keeps recurring schedules the same way, and of
//! several engines advancing one fire at once exactly one wins.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dagforge::RunId;
use dagforge::store::{ScheduleAdvance, ScheduleRecord, Store};
use serde_json::json;

/// Whole seconds since the epoch: what every store keeps exactly (µs precision).
fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn schedule(id: &str, next: Option<SystemTime>) -> ScheduleRecord {
    let mut s = ScheduleRecord::new(id, "wf", "*/5 * * * *", "Europe/Paris", next);
    s.inputs = json!({"n": 1});
    s.options = json!({"overlap": "queue"});
    s
}

pub(crate) async fn put_get_list_delete(store: Arc<dyn Store>) {
    assert!(store.get_schedule("b").await.unwrap().is_none());
    store
        .put_schedule(&schedule("b", Some(t(10))))
        .await
        .unwrap();
    store.put_schedule(&schedule("a", None)).await.unwrap();
    let b = store.get_schedule("b").await.unwrap().unwrap();
    assert_eq!(
        (b.workflow.as_str(), b.cron.as_str(), b.time_zone.as_str()),
        ("wf", "*/5 * * * *", "Europe/Paris")
    );
    assert_eq!(b.inputs, json!({"n": 1}));
    assert_eq!(b.options, json!({"overlap": "queue"}));
    assert!(b.enabled);
    assert_eq!(b.next_fire, Some(t(10)));
    assert_eq!(
        (b.last_fire, b.last_run, b.note.as_deref()),
        (None, None, None)
    );
    let ids: Vec<String> = store
        .list_schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["a", "b"]);

    // Put again: every field replaced.
    let run = RunId::new();
    let mut changed = schedule("b", Some(t(20)));
    changed.cron = "0 * * * *".to_owned();
    changed.enabled = false;
    changed.last_fire = Some(t(5));
    changed.last_run = Some(run);
    changed.note = Some("hello".to_owned());
    store.put_schedule(&changed).await.unwrap();
    let b = store.get_schedule("b").await.unwrap().unwrap();
    assert_eq!(b.cron, "0 * * * *");
    assert!(!b.enabled);
    assert_eq!(
        (b.next_fire, b.last_fire, b.last_run, b.note.as_deref()),
        (Some(t(20)), Some(t(5)), Some(run), Some("hello"))
    );
    assert_eq!(store.list_schedules().await.unwrap().len(), 2);

    assert!(store.delete_schedule("b").await.unwrap());
    assert!(!store.delete_schedule("b").await.unwrap());
    assert!(store.get_schedule("b").await.unwrap().is_none());
    assert_eq!(store.list_schedules().await.unwrap().len(), 1);
}

pub(crate) async fn due_next_and_enabled(store: Arc<dyn Store>) {
    store
        .put_schedule(&schedule("late", Some(t(5))))
        .await
        .unwrap();
    store
        .put_schedule(&schedule("now", Some(t(10))))
        .await
        .unwrap();
    store
        .put_schedule(&schedule("soon", Some(t(30))))
        .await
        .unwrap();
    store
        .put_schedule(&schedule("later", Some(t(60))))
        .await
        .unwrap();
    store.put_schedule(&schedule("never", None)).await.unwrap();
    let ids = |v: Vec<ScheduleRecord>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.due_schedules(t(10), 10).await.unwrap()),
        ["late", "now"]
    );
    assert_eq!(ids(store.due_schedules(t(10), 1).await.unwrap()), ["late"]);
    assert!(store.due_schedules(t(4), 10).await.unwrap().is_empty());
    assert_eq!(store.next_schedule_fire(t(10)).await.unwrap(), Some(t(30)));
    assert_eq!(store.next_schedule_fire(t(60)).await.unwrap(), None);

    // Disabled schedules are neither due nor next.
    assert!(
        store
            .set_schedule_enabled("soon", false, Some(t(30)))
            .await
            .unwrap()
    );
    assert_eq!(store.next_schedule_fire(t(10)).await.unwrap(), Some(t(60)));
    assert!(
        store
            .set_schedule_enabled("late", false, None)
            .await
            .unwrap()
    );
    assert_eq!(ids(store.due_schedules(t(10), 10).await.unwrap()), ["now"]);
    let late = store.get_schedule("late").await.unwrap().unwrap();
    assert!(!late.enabled);
    assert_eq!(late.next_fire, None);
    // Enabled again with a new next fire.
    assert!(
        store
            .set_schedule_enabled("late", true, Some(t(8)))
            .await
            .unwrap()
    );
    assert_eq!(
        ids(store.due_schedules(t(10), 10).await.unwrap()),
        ["late", "now"]
    );
    assert!(
        !store
            .set_schedule_enabled("nope", true, None)
            .await
            .unwrap()
    );
}

pub(crate) async fn advance_is_compare_and_set(store: Arc<dyn Store>) {
    store
        .put_schedule(&schedule("s", Some(t(10))))
        .await
        .unwrap();
    let run = RunId::new();
    // A stale expectation changes nothing.
    let step = ScheduleAdvance::to(Some(t(20))).fired(t(10)).run(run);
    assert!(
        !store
            .advance_schedule("s", Some(t(5)), &step)
            .await
            .unwrap()
    );
    assert!(!store.advance_schedule("s", None, &step).await.unwrap());
    assert!(
        !store
            .advance_schedule("nope", Some(t(10)), &step)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_schedule("s").await.unwrap().unwrap().next_fire,
        Some(t(10))
    );

    assert!(
        store
            .advance_schedule("s", Some(t(10)), &step)
            .await
            .unwrap()
    );
    // The same step again lost: next_fire moved on.
    assert!(
        !store
            .advance_schedule("s", Some(t(10)), &step)
            .await
            .unwrap()
    );
    let s = store.get_schedule("s").await.unwrap().unwrap();
    assert_eq!(
        (s.next_fire, s.last_fire, s.last_run),
        (Some(t(20)), Some(t(10)), Some(run))
    );

    // A skip: a note, last_run kept; then the schedule ends (next fire NULL).
    let skip = ScheduleAdvance::to(None).fired(t(20)).note("skipped");
    assert!(
        store
            .advance_schedule("s", Some(t(20)), &skip)
            .await
            .unwrap()
    );
    let s = store.get_schedule("s").await.unwrap().unwrap();
    assert_eq!(
        (s.next_fire, s.last_fire, s.last_run, s.note.as_deref()),
        (None, Some(t(20)), Some(run), Some("skipped"))
    );
    // From NULL (null-safe equality), and the note cleared.
    assert!(
        store
            .advance_schedule("s", None, &ScheduleAdvance::to(Some(t(30))))
            .await
            .unwrap()
    );
    let s = store.get_schedule("s").await.unwrap().unwrap();
    assert_eq!((s.next_fire, s.note), (Some(t(30)), None));
}

pub(crate) async fn concurrent_advances_have_one_winner(store: Arc<dyn Store>) {
    for round in 0..5u64 {
        let id = format!("s{round}");
        store
            .put_schedule(&schedule(&id, Some(t(round))))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..16u64 {
            let (store, id) = (Arc::clone(&store), id.clone());
            tasks.push(tokio::spawn(async move {
                let step = ScheduleAdvance::to(Some(t(100 + i))).fired(t(round));
                store
                    .advance_schedule(&id, Some(t(round)), &step)
                    .await
                    .unwrap()
            }));
        }
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.unwrap());
        }
        assert_eq!(winners, 1, "round {round}");
        let next = store
            .get_schedule(&id)
            .await
            .unwrap()
            .unwrap()
            .next_fire
            .unwrap();
        assert!(next >= t(100) && next < t(116));
    }
}

/// Generates the schedule conformance tests for one store.
macro_rules! schedule_conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            async fn make() -> std::sync::Arc<dyn dagforge::store::Store> {
                $make
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn put_get_list_delete() {
                super::put_get_list_delete(make().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn due_next_and_enabled() {
                super::due_next_and_enabled(make().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn advance_is_compare_and_set() {
                super::advance_is_compare_and_set(make().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_advances_have_one_winner() {
                super::concurrent_advances_have_one_winner(make().await).await;
            }
        }
    };
}

schedule_conformance!(
    memory,
    std::sync::Arc::new(dagforge::store::MemoryStore::new())
);

#[cfg(feature = "sqlite")]
schedule_conformance!(
    sqlite,
    std::sync::Arc::new(
        dagforge::store::SqliteStore::open(&crate::store::sqlite_path().to_string_lossy())
            .await
            .unwrap()
    )
);

#[cfg(feature = "sqlite")]
schedule_conformance!(
    sqlite_memory,
    std::sync::Arc::new(dagforge::store::SqliteStore::open_memory().await.unwrap())
);

#[cfg(feature = "postgres")]
schedule_conformance!(
    postgres,
    std::sync::Arc::new(crate::store::pg::TempSchema::new().await)
);
