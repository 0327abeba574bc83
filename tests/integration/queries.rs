//! Store queries for the HTTP API (filters, keyset pages, counts by state, logs, the
//! all-runs event feed) and engine heartbeats, on every store: what the exported
//! conformance suite cannot do with one store instance (a serving engine's heartbeat,
//! several processes' writers racing on one database, a run's logs through the
//! engine).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dagforge::prelude::*;
use dagforge::store::{FeedCursor, Lease, LogQuery, Store};
use dagforge::{Event, EventKind, LogLevel, RunId};

use dagforge::store::conformance::{TTL, record};

/// A job that logs three lines at three levels.
struct Chatty;

impl Job for Chatty {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "chatty";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<(), JobError> {
        ctx.log(LogLevel::Debug, "warming up");
        ctx.log(LogLevel::Info, "working <b>hard</b>");
        ctx.log(LogLevel::Error, "almost failed");
        Ok(())
    }
}

/// A serving engine records its heartbeat at start and every lease-renewal interval,
/// counts the runs it holds, and removes its record when serving stops.
async fn serving_engines_beat_and_leave(store: Arc<dyn Store>) {
    let mut wf = Workflow::builder("beating");
    wf.add("a", crate::common::Noop);
    let wf = wf.build().unwrap();
    let engine = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id("engine-hb")
        .lease_ttl(Duration::from_secs(1))
        .workflow(&wf)
        .build();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = engine.clone();
    let task = tokio::spawn(async move {
        server
            .serve(Duration::from_millis(50), async {
                let _ = stopped.await;
            })
            .await
    });
    let first = loop {
        if let Some(e) = store
            .engines()
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.id == "engine-hb")
        {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(first.pid, std::process::id());
    assert_eq!(first.version.split('.').count(), 3, "dagforge's version");
    assert!(!first.host.is_empty());
    // A third of the lease TTL later, a newer beat.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let later = store.engines().await.unwrap();
    let later = later.iter().find(|e| e.id == "engine-hb").unwrap();
    assert!(
        later.last_beat > first.last_beat,
        "{later:?} after {first:?}"
    );
    assert_eq!(later.started_at, first.started_at);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    assert!(
        store.engines().await.unwrap().is_empty(),
        "removed on a clean stop"
    );
}

/// A run's log lines, written through the engine, read back by node, level and tail.
async fn logs_through_the_engine(store: Arc<dyn Store>) {
    let mut wf = Workflow::builder("chatty");
    wf.add("talk", Chatty);
    let wf = wf.build().unwrap();
    let engine = Engine::builder().shared_store(Arc::clone(&store)).build();
    let run = engine.start(&wf, ()).await.unwrap();
    let id = run.id();
    run.wait().await.unwrap();
    let all = store.logs(id, &LogQuery::new().node("talk")).await.unwrap();
    let lines: Vec<_> = all.iter().map(|l| (l.level, l.message.as_str())).collect();
    assert_eq!(
        lines,
        [
            (LogLevel::Debug, "warming up"),
            (LogLevel::Info, "working <b>hard</b>"),
            (LogLevel::Error, "almost failed")
        ]
    );
    assert!(all.iter().all(|l| l.attempt == 1 && l.item.is_none()));
    let warn = store
        .logs(id, &LogQuery::new().min_level(LogLevel::Warn))
        .await
        .unwrap();
    assert_eq!(warn.len(), 1);
    let tail = store.logs(id, &LogQuery::new().tail(2)).await.unwrap();
    assert_eq!(tail, all[1..]);
}

/// Writers on several store instances (as several engine processes) append at once
/// while a reader on yet another polls the feed: it sees every event once, in order
/// per run.
async fn the_feed_across_instances(writers: Vec<Arc<dyn Store>>, reader: Arc<dyn Store>) {
    const RUNS_PER_WRITER: usize = 4;
    const BATCHES: u64 = 25;
    let start = reader.feed_head().await.unwrap();
    let mut tasks = Vec::new();
    for (w, store) in writers.iter().enumerate() {
        for _ in 0..RUNS_PER_WRITER {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                let rec = record("across");
                let lease = Lease::new(format!("engine-{w}"), 1);
                store.create_run(&rec, &lease, TTL).await.unwrap();
                for b in 0..BATCHES {
                    let batch: Vec<Event> = (1..=3)
                        .map(|k| {
                            Event::new(
                                rec.id,
                                3 * b + k,
                                SystemTime::now(),
                                EventKind::Log {
                                    node: "a".into(),
                                    item: None,
                                    attempt: 1,
                                    level: LogLevel::Info,
                                    message: format!("{b}.{k}"),
                                },
                            )
                        })
                        .collect();
                    store.append(rec.id, &lease, &batch).await.unwrap();
                }
            }));
        }
    }
    let want = (writers.len() * RUNS_PER_WRITER) as u64 * BATCHES * 3;
    let mut seen: HashMap<RunId, u64> = HashMap::new();
    let mut at = start;
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{got} of {want} seen"
        );
        let page = reader.events_since(at, 50, Some("across")).await.unwrap();
        for e in &page.events {
            assert!(e.cursor > at);
            let prev = seen.insert(e.event.run, e.event.seq).unwrap_or(0);
            assert_eq!(e.event.seq, prev + 1, "once and in order");
            got += 1;
        }
        at = page.next;
        if page.events.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rest = reader.events_since(at, 100, None).await.unwrap();
    assert!(rest.events.is_empty(), "nothing twice: {:?}", rest.events);
    assert_ne!(at, FeedCursor::START);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_engines_beat_and_leave() {
    serving_engines_beat_and_leave(Arc::new(dagforge::store::MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_logs_through_the_engine() {
    logs_through_the_engine(Arc::new(dagforge::store::MemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use dagforge::store::SqliteStore;

    async fn open(path: &std::path::Path) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&path.to_string_lossy()).await.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn engines_beat_and_leave() {
        serving_engines_beat_and_leave(open(&crate::store::sqlite_path()).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logs_through_the_engine() {
        super::logs_through_the_engine(open(&crate::store::sqlite_path()).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_feed_across_instances() {
        let path = crate::store::sqlite_path();
        let writers = vec![open(&path).await, open(&path).await];
        super::the_feed_across_instances(writers, open(&path).await).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::store::pg::{TempSchema, url};
    use dagforge::store::PostgresStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn engines_beat_and_leave() {
        serving_engines_beat_and_leave(Arc::new(TempSchema::new().await)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logs_through_the_engine() {
        super::logs_through_the_engine(Arc::new(TempSchema::new().await)).await;
    }

    /// Three connections pools on one schema: two writers' transactions interleave
    /// and commit out of the order they began in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_feed_across_instances() {
        let owner = TempSchema::new().await;
        let schema = owner.0.schema_name().to_owned();
        let same = || async {
            Arc::new(
                PostgresStore::options(&url())
                    .schema(schema.clone())
                    .connect()
                    .await
                    .unwrap(),
            ) as Arc<dyn Store>
        };
        let writers = vec![same().await, same().await];
        super::the_feed_across_instances(writers, same().await).await;
        drop(owner);
    }
}
