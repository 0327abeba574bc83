//! Each behaviour of the Kubernetes executor against the fake cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dagforge::prelude::*;
use dagforge::store::{MemoryStore, Store};
use dagforge::{
    ErrorKind, KubernetesExecutor, KubernetesExecutorBuilder, Resources, RunId, RunResult,
};
use serde_json::{Value, json};

#[path = "../../bin/worker_jobs.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod jobs;

use jobs::{Echo, Environ, Print, Sleep};

use super::{Fake, executor};

async fn run_one<J: Job>(exec: KubernetesExecutor, job: J, input: Value, retries: u32) -> RunResult
where
    J::Input: serde::Serialize,
{
    let engine = Engine::builder().executor(exec).build();
    let mut wf = Workflow::builder("k8s");
    wf.add("step", job)
        .input(serde_json::from_value::<J::Input>(input).expect("an input"))
        .retries(retries)
        .backoff(Backoff::none());
    engine
        .run(&wf.build().expect("a workflow"), ())
        .await
        .expect("a run")
}

fn error(r: &RunResult) -> dagforge::ErrorInfo {
    let node = r.node("step").expect("the node");
    node.error
        .clone()
        .unwrap_or_else(|| panic!("no error: {}", r.table()))
}

async fn clean(fake: &Fake) {
    let ok = fake
        .until(10, |st| st.jobs.is_empty() && st.pods.is_empty())
        .await;
    assert!(
        ok,
        "left: jobs {:?}, pods {:?}",
        fake.job_names(),
        fake.pod_names()
    );
}

async fn pending_case(
    f: impl FnOnce(KubernetesExecutorBuilder) -> KubernetesExecutorBuilder,
    want: &str,
) {
    let fake = Fake::start().await;
    let exec = executor(&fake, |b| f(b.pending_timeout(Duration::from_millis(800)))).await;
    let started = Instant::now();
    let r = run_one(exec, Sleep, json!([10, true]), 1).await;
    let e = error(&r);
    assert_eq!(e.kind, ErrorKind::Executor, "{e}");
    assert!(
        e.message.contains(want) && e.message.contains("pending timeout"),
        "{e}"
    );
    assert_eq!(
        r.node("step").unwrap().attempts,
        2,
        "the retry policy applies"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.created().len(), 2, "one Job per attempt");
    clean(&fake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_fails_within_the_pending_timeout() {
    pending_case(
        |b| b.image("registry.example.com/missing:1"),
        "ImagePullBackOff",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unschedulable_pod_fails_with_the_reason() {
    pending_case(
        |b| b.node_selector("fake/unschedulable", "yes"),
        "Unschedulable",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_fails_and_a_present_one_reaches_the_job() {
    pending_case(
        |b| b.env_from_secret("API_TOKEN", "api", "token"),
        "CreateContainerConfigError",
    )
    .await;
    let fake = Fake::start().await;
    fake.secret("api", "token", "s3cr3t-value");
    let exec = executor(&fake, |b| b.env_from_secret("API_TOKEN", "api", "token")).await;
    let r = run_one(exec, Environ, json!("API_TOKEN"), 0).await;
    let out = r
        .node("step")
        .unwrap()
        .output
        .clone()
        .unwrap_or_else(|| panic!("{}", r.table()));
    assert_eq!(out[1], "s3cr3t-value");
    assert_eq!(out[2]["node"], "step");
    clean(&fake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_kill_is_a_crashed_attempt_named_so() {
    let fake = Fake::start().await;
    // The fake kubelet OOM-kills a container whose memory limit is 1Ki once it logs.
    let exec = executor(&fake, |b| {
        b.resources("sleep", Resources::new().memory_limit("1Ki"))
    })
    .await;
    let r = run_one(exec, Sleep, json!([5000, true]), 0).await;
    let e = error(&r);
    assert_eq!(e.kind, ErrorKind::Crashed, "{e}");
    assert!(e.message.starts_with("OOMKilled"), "{e}");
    assert!(e.message.contains("[jobs.sleep.resources]"), "{e}");
    clean(&fake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_pod_or_a_lost_node_is_interrupted_and_retried() {
    for evict in [true, false] {
        let fake = Fake::start().await;
        let exec = executor(&fake, |b| b).await;
        let f2 = fake.clone();
        let killer = tokio::spawn(async move {
            f2.until(10, |st| st.pods.values().any(|p| !p.log.is_empty()))
                .await;
            let pod = f2.pod_names().remove(0);
            if evict {
                f2.evict(&pod);
            } else {
                f2.lose_node(&pod);
            }
        });
        let r = run_one(exec, Sleep, json!([1500, true]), 1).await;
        killer.await.unwrap();
        let node = r.node("step").unwrap();
        assert_eq!(node.state, NodeState::Succeeded, "{}", r.table());
        assert_eq!(node.attempts, 2);
        assert_eq!(fake.created().len(), 2);
        clean(&fake).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_deletes_the_job_in_the_foreground_and_the_worker_gets_sigterm() {
    let fake = Fake::start().await;
    let exec = executor(&fake, |b| b).await;
    let engine = Engine::builder().executor(exec).build();
    let mut wf = Workflow::builder("k8s");
    wf.add("step", Sleep).input((30_000, true));
    let handle = engine.start(&wf.build().unwrap(), ()).await.unwrap();
    assert!(
        fake.until(10, |st| st.pods.values().any(|p| !p.log.is_empty()))
            .await
    );
    let pod = fake.pod_names().remove(0);
    handle.cancel();
    let r = handle.wait().await.unwrap();
    let e = r.node("step").unwrap().error.clone().unwrap();
    assert_eq!(e.kind, ErrorKind::Cancelled, "{e}");
    assert!(e.message.contains("cancel"), "{e}");
    let log = fake.log(&pod).join("\n");
    assert!(
        log.contains("SIGTERM received"),
        "the worker heard SIGTERM:\n{log}"
    );
    let requests = fake.lock().requests.clone();
    assert!(
        requests
            .iter()
            .any(|(m, p)| m == "DELETE" && p.ends_with("?Foreground")),
        "{requests:?}"
    );
    clean(&fake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_survives_dropped_connections_and_too_old_watches() {
    let fake = Fake::start().await;
    fake.switches(|s| {
        s.drop_logs_after = Some(Duration::from_millis(150));
        s.drop_watches_after = Some(2);
    });
    let f2 = fake.clone();
    let compactor = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            f2.compact();
        }
    });
    let exec = executor(&fake, |b| b).await;
    let engine = Engine::builder()
        .executor(exec)
        .event_capacity(1 << 16)
        .build();
    let mut events = engine.subscribe();
    let collector = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(e) = events.next().await {
            match &e.kind {
                EventKind::Log { message, .. } => {
                    if let Some(n) = message.strip_prefix("[stdout] ") {
                        seen.push(n.chars().take(10).collect::<String>());
                    }
                }
                EventKind::Run { to, .. } if to.is_terminal() => break,
                _ => {}
            }
        }
        (seen, events.missed())
    });
    let mut wf = Workflow::builder("k8s");
    // 2,000 numbered console lines, then 1.2 s of heartbeats.
    wf.add("print", Print).input((2000, 40, false));
    wf.add("sleep", Sleep).input((1200, true));
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    compactor.await.unwrap();
    assert_eq!(r.state, RunState::Succeeded, "{}", r.table());
    let (seen, missed) = collector.await.unwrap();
    assert_eq!(missed, 0);
    let want: Vec<String> = (0..2000).map(|i| format!("{i:010}")).collect();
    assert_eq!(seen, want, "every console line once, in order");
    let opened = fake
        .lock()
        .requests
        .iter()
        .filter(|(_, p)| p.starts_with("log/"))
        .count();
    assert!(opened > 2, "the log streams were cut and resumed: {opened}");
    clean(&fake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_input_goes_through_the_artifact_store() {
    let big = json!({"blob": "x".repeat(20_000)});
    // In memory, pods cannot read it: a clear input error.
    let fake = Fake::start().await;
    let exec = executor(&fake, |b| b.max_env_input_bytes(1024)).await;
    let engine = Engine::builder()
        .executor(exec)
        .artifacts(dagforge::artifact::ArtifactStore::memory())
        .build();
    let mut wf = Workflow::builder("k8s");
    wf.add("step", Echo).input(big.clone());
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    let e = error(&r);
    assert_eq!(e.kind, ErrorKind::Input, "{e}");
    assert!(e.message.contains("max_env_input_bytes"), "{e}");
    // With a store the pod can reach, it goes through it.
    let dir = std::env::temp_dir().join(format!("dagforge-k8s-{}", RunId::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let artifacts =
        dagforge::artifact::ArtifactStore::from_url(&format!("file://{}", dir.display())).unwrap();
    let exec = executor(&fake, |b| b.max_env_input_bytes(1024)).await;
    let engine = Engine::builder()
        .executor(exec)
        .artifacts(artifacts)
        .build();
    let mut wf = Workflow::builder("k8s");
    wf.add("step", Echo).input(big.clone());
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    assert_eq!(
        r.node("step").unwrap().output.as_ref(),
        Some(&big),
        "{}",
        r.table()
    );
    let _ = std::fs::remove_dir_all(&dir);
    clean(&fake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answered_409_follows_the_job_it_made() {
    let fake = Fake::start().await;
    fake.switches(|s| s.conflict_on_create = true);
    let exec = executor(&fake, |b| b).await;
    let r = run_one(exec, Echo, json!({"a": 1}), 0).await;
    assert_eq!(
        r.node("step").unwrap().output,
        Some(json!({"a": 1})),
        "{}",
        r.table()
    );
    assert_eq!(fake.created().len(), 1);
    clean(&fake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_create_names_the_missing_permission() {
    let fake = Fake::start().await;
    fake.switches(|s| s.forbid_create = true);
    let exec = executor(&fake, |b| b).await;
    let r = run_one(exec, Echo, json!({"a": 1}), 0).await;
    let e = error(&r);
    assert_eq!(e.kind, ErrorKind::Executor, "{e}");
    assert!(
        e.message
            .contains("may not `create` `jobs` in namespace `jobs`")
            && e.message.contains("k8s manifests")
            && e.message.contains("cannot create Job `df-step-"),
        "{e}"
    );
    assert!(fake.created().is_empty());
}

/// Engine A starts a long attempt and dies (its runtime is dropped without cleaning
/// up); engine B resumes the run and follows A's Job instead of starting another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_adopts_the_running_job_and_reaps_what_is_over() {
    let fake = Fake::start().await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut wf = Workflow::builder("adopt");
    wf.add("step", Sleep).input((3000, true));
    let wf = wf.build().unwrap();
    let (f2, s2, w2) = (fake.clone(), Arc::clone(&store), wf.clone());
    let crashed = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let id = rt.block_on(async {
            let exec = executor(&f2, |b| b.engine_id("engine-a")).await;
            let engine = Engine::builder()
                .shared_store(s2)
                .executor(exec)
                .lease_ttl(Duration::from_secs(1))
                .build();
            let handle = engine.start(&w2, ()).await.unwrap();
            let id = handle.id();
            f2.until(10, |st| st.pods.values().any(|p| !p.log.is_empty()))
                .await;
            // A crash: nothing of engine A gets to clean up.
            #[allow(clippy::mem_forget)]
            {
                std::mem::forget(handle);
                std::mem::forget(engine);
            }
            id
        });
        rt.shutdown_background();
        id
    });
    let id = tokio::task::spawn_blocking(move || crashed.join().unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let exec = executor(&fake, |b| b.engine_id("engine-b")).await;
    let engine = Engine::builder()
        .shared_store(Arc::clone(&store))
        .executor(exec.clone())
        .workflow(&wf)
        .build();
    let handles = engine.resume().await.unwrap();
    assert_eq!(handles.len(), 1);
    assert_eq!(handles[0].id(), id);
    let r = handles.into_iter().next().unwrap().wait().await.unwrap();
    let node = r.node("step").unwrap();
    assert_eq!(node.state, NodeState::Succeeded, "{}", r.table());
    assert_eq!(node.output, Some(json!(3000)));
    assert_eq!(
        fake.created().len(),
        1,
        "no second execution: {:?}",
        fake.created()
    );
    clean(&fake).await;

    // Reaping: a Job of a run the store does not know goes; one of a live run stays.
    let orphan = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "df-orphan",
        "labels": {"app.kubernetes.io/managed-by": "dagforge", "dagforge.io/run": RunId::new().to_string(),
            "dagforge.io/engine": "gone"}},
        "spec": {"template": {"spec": {"containers": [{"name": "worker", "image": "x", "command": ["/bin/true"]}]}}}});
    let client = reqwest::Client::new();
    let url = format!("{}/apis/batch/v1/namespaces/jobs/jobs", fake.url);
    assert!(
        client
            .post(&url)
            .json(&orphan)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let other = executor(&fake, |b| b.engine_id("engine-c")).await;
    let live = Engine::builder()
        .shared_store(Arc::clone(&store))
        .executor(other)
        .build();
    let mut wf = Workflow::builder("live");
    wf.add("step", Sleep).input((3000, true));
    let handle = live.start(&wf.build().unwrap(), ()).await.unwrap();
    assert!(fake.until(10, |st| st.jobs.len() == 2).await);
    let reaped = exec.reap(store.as_ref()).await.unwrap();
    assert_eq!(reaped.deleted, ["df-orphan"]);
    assert_eq!(reaped.kept, 1);
    handle.cancel();
    handle.wait().await.unwrap();
    clean(&fake).await;
}

/// Jobs created per second and the executor's overhead per attempt against the fake
/// API server (printed; the bound only catches a gross regression).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overhead_per_attempt() {
    let fake = Fake::start().await;
    let exec = executor(&fake, |b| b).await;
    let engine = Engine::builder().executor(exec).concurrency(16).build();
    let n = 40;
    let mut wf = Workflow::builder("many");
    for i in 0..n {
        wf.add(format!("n{i}"), Echo).input(json!(i));
    }
    let wf = wf.build().unwrap();
    let started = Instant::now();
    let r = engine.run(&wf, ()).await.unwrap();
    let all = started.elapsed();
    assert_eq!(r.state, RunState::Succeeded, "{}", r.table());
    let mut chain = Workflow::builder("one");
    chain.add("one", Echo).input(json!(1));
    let chain = chain.build().unwrap();
    let started = Instant::now();
    let rounds = 10;
    for _ in 0..rounds {
        engine.run(&chain, ()).await.unwrap();
    }
    let each = started.elapsed() / rounds;
    eprintln!(
        "kubernetes executor against the fake API server: {n} Jobs in {all:?} ({:.0} Jobs/s at \
         concurrency 16); one attempt end to end (create, pod start, worker process, log, \
         delete) {each:?}",
        f64::from(n) / all.as_secs_f64()
    );
    assert!(each < Duration::from_secs(3), "{each:?}");
    clean(&fake).await;
}
