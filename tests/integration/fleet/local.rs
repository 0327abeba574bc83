//! The queue executor and workers in one process: the catalog workflow gives the same
//! outputs, states and attempts as in-process; logs come back; a worker that dies
//! loses its claims and the retry policy runs the attempt again.

use std::sync::Arc;
use std::time::Duration;

use dagforge::fleet::{QueueWorker, WorkerStats};
use dagforge::prelude::*;
use dagforge::store::{Capacity, ExecutionQueue, Store};
use dagforge::{QueueExecutor, RunResult};
use tokio::sync::oneshot;

use super::stores;

/// A worker task over `queue` running the jobs of `wf`; stop it with the sender.
pub(crate) fn spawn_worker(
    queue: Arc<dyn ExecutionQueue>,
    wf: &Workflow,
    slots: u32,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<WorkerStats, dagforge::store::StoreError>>,
) {
    let jobs = Engine::builder().workflow(wf).build().jobs();
    let worker = QueueWorker::with_jobs(queue, jobs)
        .capacity(Capacity::slots(slots))
        .lease(Duration::from_secs(2))
        .build();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

/// The table of a run: node, state, attempts, output.
pub(crate) fn table(r: &RunResult) -> Vec<(String, NodeState, u32, serde_json::Value)> {
    let mut t: Vec<_> = r
        .nodes
        .iter()
        .map(|n| {
            (
                n.id.to_string(),
                n.state,
                if n.items.is_empty() {
                    n.attempts
                } else {
                    n.items.iter().map(|i| i.attempts).sum::<u32>()
                },
                // The run's own id appears in outputs (artifact keys): not compared.
                serde_json::from_str(
                    &n.output
                        .clone()
                        .unwrap_or_default()
                        .to_string()
                        .replace(&r.id.to_string(), "<run>"),
                )
                .unwrap(),
            )
        })
        .collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

async fn catalog_through_queue(store: Arc<dyn Store>, queue: Arc<dyn ExecutionQueue>) {
    let wf = examples::catalog::builder::catalog().unwrap();
    let inputs = serde_json::json!({});
    let local = Engine::new().run(&wf, inputs.clone()).await.unwrap();
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(spawn_worker(Arc::clone(&queue), &wf, 4));
    }
    let engine = Engine::builder()
        .shared_store(store)
        .executor(QueueExecutor::new(Arc::clone(&queue)))
        .build();
    let remote = tokio::time::timeout(Duration::from_secs(60), engine.run(&wf, inputs))
        .await
        .expect("the run ends")
        .unwrap();
    assert_eq!(
        table(&remote),
        table(&local),
        "same outputs, states and attempts"
    );
    let mut claimed = 0;
    for (stop, task) in workers {
        let _ = stop.send(());
        claimed += task.await.unwrap().unwrap().claimed;
    }
    let attempts: u32 = table(&local).iter().map(|r| r.2).sum();
    assert!(
        u64::from(attempts) <= claimed,
        "{attempts} attempts, {claimed} claimed"
    );
    assert!(
        queue.workers().await.unwrap().is_empty(),
        "stopped workers forget themselves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_through_the_queue_in_process_memory() {
    let s = stores::memory();
    catalog_through_queue(s.clone(), s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_through_the_queue_in_process_sqlite() {
    let (s, _) = stores::sqlite("local").await;
    catalog_through_queue(s.clone(), s).await;
}
