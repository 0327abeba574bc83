//! An engine process killed with SIGKILL mid-run is replaced: the engine that resumes
//! the run adopts the Job the dead one left running, without running the node again.
//!
//! The killed engine is this test binary run again as a child (`child_engine`, ignored
//! unless `DAGFORGE_K8S_CHILD_ENGINE` names a fake cluster), so that no other binary is
//! needed; the fake cluster stays in this process and outlives it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use dagforge::prelude::*;
use dagforge::store::{SqliteStore, Store};
use dagforge::{KubernetesExecutor, RunId};
use serde_json::json;

use super::{Fake, WORKER};
use crate::cli::temp_dir;

#[path = "../../bin/worker_jobs.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod jobs;

/// The child engine's cluster (`<url>`) and store (`<sqlite url>`), `\n`-separated.
const CHILD: &str = "DAGFORGE_K8S_CHILD_ENGINE";

/// How long the node's job sleeps: long enough to kill its engine while it runs and
/// to resume the run before it ends.
const SLEEP_MS: u64 = 4000;

fn workflow() -> Workflow {
    let mut wf = Workflow::builder("k8s-adopt");
    wf.add("step", jobs::Sleep).input((SLEEP_MS, true));
    wf.build().expect("a workflow")
}

async fn engine(url: &str, store: Arc<dyn Store>, id: &str) -> Engine {
    let exec = KubernetesExecutor::builder()
        .api_url(url)
        .namespace("jobs")
        .image("registry.example.com/test-worker:1")
        .command([WORKER])
        .args(Vec::<String>::new())
        .heartbeat_interval(Duration::from_millis(100))
        .heartbeat_timeout(Duration::from_secs(3))
        .grace_period(Duration::from_millis(500))
        .engine_id(id)
        .build()
        .await
        .expect("an executor");
    Engine::builder()
        .shared_store(store)
        .executor(exec)
        .lease_ttl(Duration::from_secs(1))
        .workflow(&workflow())
        .build()
}

/// The engine that gets killed: starts the run, prints its id, drives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of `an_engine_killed_mid_run_is_replaced_and_its_job_adopted`"]
async fn child_engine() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (url, store) = spec.split_once('\n').expect("<url>\\n<store>");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(store).await.expect("the store"));
    let engine = engine(url, store, "engine-killed").await;
    let handle = engine.start(&workflow(), ()).await.expect("a run");
    println!("run {}", handle.id());
    let _ = handle.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_killed_mid_run_is_replaced_and_its_job_adopted() {
    let fake = Fake::start().await;
    let dir = temp_dir("k8s-adopt");
    let store_url = format!("sqlite://{}?mode=rwc", dir.join("runs.db").display());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kubernetes::adopt::child_engine",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, format!("{}\n{store_url}", fake.url))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let id = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // libtest's `test … ... ` may come first on the line.
            .find_map(|l| l.split_once("run ").map(|(_, id)| id.trim().to_owned()))
    })
    .await
    .unwrap()
    .expect("the child engine's run id");
    let id: RunId = id.parse().unwrap();
    // The worker runs in its pod: kill its engine, nothing of it cleans up.
    let started = fake
        .until(20, |st| st.pods.values().any(|p| !p.log.is_empty()))
        .await;
    assert!(started, "no pod started: {:?}", fake.job_names());
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(!status.success());
    assert_eq!(fake.job_names().len(), 1, "the Job outlives its engine");
    let pod = fake.pod_names().remove(0);

    // Another engine resumes the run once the dead one's lease is over.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&store_url).await.unwrap());
    let engine = engine(&fake.url, store, "engine-new").await;
    let handles = engine.resume().await.unwrap();
    assert_eq!(handles.len(), 1);
    assert_eq!(handles[0].id(), id);
    assert!(
        fake.pod_names().contains(&pod),
        "the pod still ran when the run was resumed"
    );
    let r = handles.into_iter().next().unwrap().wait().await.unwrap();
    let node = r.node("step").unwrap();
    assert_eq!(node.state, NodeState::Succeeded, "{}", r.table());
    assert_eq!(node.output, Some(json!(SLEEP_MS)));
    assert_eq!(
        fake.created().len(),
        1,
        "no second Job: {:?}",
        fake.created()
    );
    let pids = fake.log(&pod).iter().filter(|l| l.contains("pid ")).count();
    assert_eq!(pids, 1, "one execution of the job: {:?}", fake.log(&pod));
    let events = engine.store().events(id, 0, 10_000).await.unwrap();
    assert!(
        events.iter().any(|e| matches!(&e.kind,
            EventKind::Log { message, .. } if message.contains("left running by another engine"))),
        "the adoption is in the run's log"
    );
    let clean = fake
        .until(10, |st| st.jobs.is_empty() && st.pods.is_empty())
        .await;
    assert!(clean, "left: {:?} {:?}", fake.job_names(), fake.pod_names());
}
