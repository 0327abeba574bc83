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

/// Serves with a poll interval far longer than the test: only a notification can
/// explain a quick pickup.
async fn pickup(enqueuer: &Engine, server: Engine, store: &dyn Store) {
    let wf = workflow();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        server
            .serve(Duration::from_secs(3600), async {
                let _ = stopped.await;
            })
            .await
    });
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
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
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
