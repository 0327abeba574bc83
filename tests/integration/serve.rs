//! Enqueued runs are picked up by engines serving the store, woken by notifications.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dagforge::RunId;
use dagforge::prelude::*;
use dagforge::store::Store;

use crate::common::*;

fn workflow() -> Workflow {
    let mut wf = Workflow::builder("served");
    let a = wf.add("a", Noop).handle();
    wf.add("b", Noop).after(&a);
    wf.build().unwrap()
}

async fn finished(store: &dyn Store, id: RunId, limit: Duration) -> RunState {
    let t = Instant::now();
    loop {
        let state = store.get_run(id).await.unwrap().unwrap().state;
        if state.is_terminal() || t.elapsed() > limit {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// An engine serving the store with an hour-long poll (so that only a wake-up can
/// explain a quick pickup), until stopped.
struct Serving {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<dagforge::Result<()>>,
}

impl Serving {
    fn start(server: Engine) -> Serving {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(Duration::from_secs(3600), async {
                    let _ = stopped.await;
                })
                .await
        });
        Serving { stop, task }
    }

    /// Stops serving; serving must have ended well.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Serves with a poll interval far longer than the test: only a notification can
/// explain a quick pickup.
async fn pickup(enqueuer: &Engine, server: Engine, store: &dyn Store) {
    let wf = workflow();
    let serving = Serving::start(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut waits = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let id = enqueuer.enqueue(&wf, ()).await.unwrap();
        assert_eq!(
            finished(store, id, Duration::from_secs(10)).await,
            RunState::Succeeded
        );
        waits.push(t.elapsed());
    }
    println!("enqueue → finished: {waits:?}");
    assert!(waits.iter().all(|w| *w < Duration::from_secs(5)));
    serving.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_wakes_its_server() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let wf = workflow();
    let engine = Engine::builder()
        .shared_store(Arc::clone(&store))
        .workflow(&wf)
        .build();
    pickup(&engine.clone(), engine, &*store).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifications_wake_another_engine() {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("serve_{}", RunId::new().to_uuid_string().replace('-', ""));
    let open = || async {
        dagforge::store::PostgresStore::options(&base)
            .schema(&schema)
            .connect()
            .await
            .unwrap()
    };
    let a = Arc::new(open().await);
    let b = Arc::new(open().await);
    let wf = workflow();
    let enqueuer = Engine::builder()
        .shared_store(a.clone())
        .id("enqueuer")
        .build();
    let server = Engine::builder()
        .shared_store(b.clone())
        .id("server")
        .workflow(&wf)
        .build();
    pickup(&enqueuer, server, &*a).await;
    a.drop_schema().await.unwrap();
}

/// `cancel_recorded` from an engine that does not drive the run: the request goes
/// through the store, and the serving engine that drives it cancels it — woken by the
/// store, since its poll interval is far longer than the test.
async fn cancel_from_elsewhere(asker: Engine, server: Engine, store: &dyn Store) {
    let mut wf = Workflow::builder("long");
    wf.add(
        "sleep",
        Sleep {
            cooperative: true,
            ..Sleep::default()
        },
    )
    .input(60_000u64);
    let wf = wf.build().unwrap();
    let server = Engine::builder()
        .shared_store(Arc::clone(server.store()))
        .id("server")
        .workflow(&wf)
        .build();
    let serving = Serving::start(server);
    let id = asker.enqueue(&wf, ()).await.unwrap();
    // Wait until the server drives it.
    let t = Instant::now();
    while store.get_run(id).await.unwrap().unwrap().state != RunState::Running {
        assert!(t.elapsed() < Duration::from_secs(10), "never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let asked = Instant::now();
    let state = asker.cancel_recorded(id).await.unwrap();
    assert_eq!(state, RunState::Running, "requested, not yet done");
    assert_eq!(
        finished(store, id, Duration::from_secs(10)).await,
        RunState::Cancelled
    );
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "cancelled in {:?}",
        asked.elapsed()
    );
    serving.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_cancel_reaches_the_driving_engine() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let asker = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id("asker")
        .build();
    let server = Engine::builder().shared_store(Arc::clone(&store)).build();
    cancel_from_elsewhere(asker, server, &*store).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cancel_reaches_another_process() {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("cancel_{}", RunId::new().to_uuid_string().replace('-', ""));
    let open = || async {
        dagforge::store::PostgresStore::options(&base)
            .schema(&schema)
            .connect()
            .await
            .unwrap()
    };
    let a = Arc::new(open().await);
    let b = Arc::new(open().await);
    let asker = Engine::builder()
        .shared_store(a.clone())
        .id("asker")
        .build();
    let server = Engine::builder().shared_store(b.clone()).build();
    cancel_from_elsewhere(asker, server, &*a).await;
    a.drop_schema().await.unwrap();
}

/// Two stores on one SQLite file, as two processes would have: the serving engine
/// notices the other's enqueue through the file (well within its hour-long poll).
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_engines_notice_each_other() {
    let path = crate::store::sqlite_path();
    let url = path.to_string_lossy().into_owned();
    let a: Arc<dyn Store> = Arc::new(dagforge::store::SqliteStore::open(&url).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(dagforge::store::SqliteStore::open(&url).await.unwrap());
    let wf = workflow();
    let enqueuer = Engine::builder()
        .shared_store(Arc::clone(&a))
        .id("enqueuer")
        .build();
    let server = Engine::builder()
        .shared_store(Arc::clone(&b))
        .id("server")
        .workflow(&wf)
        .build();
    pickup(&enqueuer, server, &*a).await;
}

/// An engine that serves the store but does not know a run's workflow leaves the run
/// to one that does (after holding it for at most a couple of seconds), and does not
/// spin claiming it back meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_an_unknown_workflow_goes_to_an_engine_that_knows_it() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let wf = workflow();
    let stranger = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id("stranger")
        .build();
    let knower = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id("knower")
        .workflow(&wf)
        .build();
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let serve = |engine: Engine| {
        let mut stopped = stop.subscribe();
        tokio::spawn(async move {
            engine
                .serve(Duration::from_millis(20), async move {
                    let _ = stopped.recv().await;
                })
                .await
        })
    };
    let id = stranger.enqueue(&wf, ()).await.unwrap();
    let s = serve(stranger);
    // The stranger alone: it holds the run, it cannot run it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.get_run(id).await.unwrap().unwrap().state,
        RunState::Pending
    );
    let k = serve(knower);
    let t = Instant::now();
    assert_eq!(
        finished(&*store, id, Duration::from_secs(10)).await,
        RunState::Succeeded
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let _ = stop.send(());
    s.await.unwrap().unwrap();
    k.await.unwrap().unwrap();
}

/// A delayed run starts at its time, not at the serving engine's next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_run_starts_on_time() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let wf = workflow();
    let engine = Engine::builder()
        .shared_store(Arc::clone(&store))
        .workflow(&wf)
        .build();
    let server = engine.clone();
    let serving = Serving::start(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = Instant::now();
    let id = engine
        .enqueue_with(
            &wf,
            (),
            dagforge::Enqueue::new().delay(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    assert_eq!(
        finished(&*store, id, Duration::from_secs(10)).await,
        RunState::Succeeded
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    serving.stop().await;
}

/// No lost wake-ups: 200 runs enqueued one after the other, each as soon as the last
/// finished, with an hour-long poll — a single missed notification would stall it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_never_loses_a_wake_up() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let wf = workflow();
    let engine = Engine::builder()
        .shared_store(Arc::clone(&store))
        .workflow(&wf)
        .build();
    let server = engine.clone();
    let serving = Serving::start(server);
    let mut slowest = Duration::ZERO;
    for _ in 0..200 {
        let t = Instant::now();
        let id = engine.enqueue(&wf, ()).await.unwrap();
        assert_eq!(
            finished(&*store, id, Duration::from_secs(10)).await,
            RunState::Succeeded
        );
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(1),
        "slowest pickup {slowest:?}"
    );
    serving.stop().await;
}
