//! The execution queue's conformance suite on every store.

use std::sync::Arc;

use dagforge::store::ExecutionQueue;
use dagforge::store::conformance::run_queue_all;

use super::stores;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_conformance_memory() {
    run_queue_all(|| async { stores::memory() as Arc<dyn ExecutionQueue> }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_conformance_sqlite() {
    run_queue_all(|| async { stores::sqlite("conformance").await.0 as Arc<dyn ExecutionQueue> })
        .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_conformance_postgres() {
    let made = Arc::new(std::sync::Mutex::new(Vec::new()));
    run_queue_all(|| {
        let made = Arc::clone(&made);
        async move {
            let (s, _) = stores::postgres().await;
            made.lock().unwrap().push(Arc::clone(&s));
            s as Arc<dyn ExecutionQueue>
        }
    })
    .await;
    let made: Vec<_> = made.lock().unwrap().drain(..).collect();
    for s in made {
        s.drop_schema().await.unwrap();
    }
}
