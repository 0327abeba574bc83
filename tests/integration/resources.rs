//! Shared resources injected into jobs, in every executor (issue 19): built once per
//! process however many attempts use them (in process and in worker processes), a
//! missing one refused before anything runs (or by the worker, terminal), a failing
//! factory named and retried, settings with secrets kept out of outputs and logs,
//! closing at shutdown.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dagforge::prelude::*;
use dagforge::resource::{ResourceError, ResourceKey, Secret, Settings};
use dagforge::{ErrorKind, ProcessExecutor};

const APP: &str = env!("CARGO_BIN_EXE_dagforge-resource-app");

/// The shared client: which build of it this is.
#[derive(Debug)]
struct Client {
    build: u32,
}

/// Fails its first attempt of each item; returns the build of the client it used.
#[job(retries = 2, backoff = fixed(1ms))]
async fn call(ctx: &JobContext, #[resource] client: &Client, n: u32) -> Result<u32, JobError> {
    if ctx.attempt() == 1 {
        return Err(JobError::msg(format!("item {n}: transient")));
    }
    Ok(client.build)
}

#[job]
async fn items() -> Result<Vec<u32>, JobError> {
    Ok((0..20).collect())
}

/// A hand-written job that takes the client through the context and declares it.
struct Manual;

impl Job for Manual {
    type Input = ();
    type Output = u32;
    const NAME: &'static str = "manual";
    const USES: &'static [ResourceKey] = &[ResourceKey::of::<Client>()];

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<u32, JobError> {
        Ok(ctx.resource::<Client>().await?.build)
    }
}

/// A hand-written job that takes the client without declaring it.
struct Undeclared;

impl Job for Undeclared {
    type Input = ();
    type Output = u32;
    const NAME: &'static str = "undeclared";

    fn spec(&self) -> JobSpec {
        JobSpec::new().retries(3).backoff(Backoff::none())
    }

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<u32, JobError> {
        Ok(ctx.resource::<Client>().await?.build)
    }
}

fn fan_out() -> Workflow {
    let mut wf = Workflow::builder("fan");
    let items = wf.add("items", Items).handle();
    wf.add("call", Call).each(CallInput::N, items);
    wf.add("manual", Manual);
    wf.build().unwrap()
}

/// A factory counting its calls, failing the first `failures` of them.
fn counting(calls: &Arc<AtomicU32>, failures: u32) -> dagforge::EngineBuilder {
    let calls = Arc::clone(calls);
    Engine::builder().resource_with(move |_: Settings| {
        let build = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if build <= failures {
                return Err(std::io::Error::other("connection refused"));
            }
            Ok(Client { build })
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_a_factory_runs_once_across_many_attempts() {
    let calls = Arc::new(AtomicU32::new(0));
    let engine = counting(&calls, 0).build();
    let run = engine.run(&fan_out(), ()).await.unwrap();
    assert!(run.is_success(), "{}", run.table());
    let call = run.node("call").unwrap();
    assert_eq!(call.items.len(), 20);
    assert!(
        call.items.iter().all(|i| i.attempts == 2),
        "every item retried once"
    );
    assert_eq!(run.output::<Vec<u32>>("call").unwrap(), vec![1; 20]);
    assert_eq!(run.output::<u32>("manual").unwrap(), 1);
    // 41 attempts, one build; a second run of the same engine builds nothing more.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(engine.run(&fan_out(), ()).await.unwrap().is_success());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_missing_resource_is_refused_before_the_run_starts() {
    let engine = Engine::new();
    let e = engine.start(&fan_out(), ()).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            &e,
            dagforge::Error::Resource(ResourceError::Missing { job: Some(_), .. })
        ),
        "{e:?}"
    );
    assert!(text.contains("Client") && text.contains("`call`"), "{text}");
    assert!(
        engine
            .store()
            .list_runs(&dagforge::store::RunQuery::new())
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing recorded"
    );
    let e = Engine::builder()
        .workflow(&fan_out())
        .try_build()
        .unwrap_err();
    assert!(e.to_string().contains("Client"), "{e}");
}

#[tokio::test]
async fn an_undeclared_missing_resource_fails_the_attempt_for_good() {
    let mut wf = Workflow::builder("undeclared");
    wf.add("u", Undeclared);
    let run = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    let node = run.node("u").unwrap();
    assert_eq!(node.state, NodeState::Failed);
    assert_eq!(node.attempts, 1, "terminal: not retried");
    let error = node.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::Terminal);
    assert!(error.message.contains("Client"), "{}", error.message);
}

#[tokio::test]
async fn a_failing_factory_is_named_and_runs_again_on_the_next_attempt() {
    let calls = Arc::new(AtomicU32::new(0));
    let engine = counting(&calls, 1).build();
    let mut wf = Workflow::builder("one");
    wf.add("call", Call).input(CallInput { n: 0 }).retries(3);
    let mut events = engine.subscribe();
    let run = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(run.is_success(), "{}", run.table());
    assert_eq!(run.output::<u32>("call").unwrap(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let mut messages = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), events.next()).await {
        if let EventKind::Node(n) = e.kind
            && let Some(error) = n.error
        {
            messages.push(error.to_string());
        }
    }
    let first = messages.first().expect("the first attempt failed");
    assert!(
        first.contains("Client") && first.contains("connection refused"),
        "{messages:?}"
    );

    // Checked eagerly: the error names the resource.
    let engine = counting(&Arc::new(AtomicU32::new(0)), 5).build();
    let e = engine.check_resources().await.unwrap_err();
    assert!(e.is_retryable());
    assert!(e.to_string().contains("Client"), "{e}");
}

#[tokio::test]
async fn shutdown_closes_what_was_built_once() {
    let closed = Arc::new(AtomicU32::new(0));
    let calls = Arc::new(AtomicU32::new(0));
    let closing = |closed: &Arc<AtomicU32>| {
        let closed = Arc::clone(closed);
        move |client: Arc<Client>| {
            let closed = Arc::clone(&closed);
            async move {
                closed.fetch_add(100 + client.build, Ordering::SeqCst);
            }
        }
    };
    let engine = counting(&calls, 0).on_close(closing(&closed)).build();
    engine.close_resources().await;
    assert_eq!(
        closed.load(Ordering::SeqCst),
        0,
        "never built: nothing to close"
    );

    let engine = counting(&calls, 0).on_close(closing(&closed)).build();
    let mut wf = Workflow::builder("manual");
    wf.add("manual", Manual);
    assert!(
        engine
            .run(&wf.build().unwrap(), ())
            .await
            .unwrap()
            .is_success()
    );
    assert_eq!(closed.load(Ordering::SeqCst), 0, "open while the engine is");
    engine.close_resources().await;
    engine.close_resources().await;
    assert_eq!(
        closed.load(Ordering::SeqCst),
        101,
        "closed once, the one built"
    );
}

/// Settings with a secret: jobs take them, and the secret shows nowhere.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct AppSettings {
    region: String,
    token: Secret<String>,
}

#[job]
async fn show(ctx: &JobContext, #[resource] s: &AppSettings) -> Result<AppSettings, JobError> {
    ctx.info(format!("settings: {s:?}"));
    assert_eq!(s.token.expose(), "hunter2");
    Ok(AppSettings {
        region: s.region.clone(),
        token: s.token.clone(),
    })
}

#[tokio::test]
async fn settings_reach_jobs_and_their_secrets_stay_out_of_outputs_and_logs() {
    let engine = Engine::builder()
        .settings(AppSettings {
            region: "eu".into(),
            token: Secret::new("hunter2".into()),
        })
        .build();
    let mut events = engine.subscribe();
    let mut wf = Workflow::builder("settings");
    wf.add("show", Show);
    let run = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(run.is_success(), "{}", run.table());
    let out = run.node("show").unwrap().output.clone().unwrap();
    assert_eq!(out["region"], "eu");
    assert!(!out.to_string().contains("hunter2"), "{out}");
    let mut logged = String::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), events.next()).await {
        if let EventKind::Log { message, .. } = e.kind {
            logged.push_str(&message);
        }
    }
    assert!(
        logged.contains("eu") && !logged.contains("hunter2"),
        "{logged}"
    );
}

/// Runs the resource app with `args` and the settings' ledger in `dir`.
fn app(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(APP);
    cmd.args(args)
        .current_dir(dir)
        .env("DAGFORGE_SETTING_LEDGER", dir.join("ledger"))
        .env("DAGFORGE_STORE", "memory://");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ledger(dir: &std::path::Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(dir.join("ledger"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let what = w.next().unwrap_or_default().to_owned();
            (what, w.next().and_then(|p| p.parse().ok()).unwrap_or(0))
        })
        .collect()
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dagforge-resources-{name}-{}-{}",
        std::process::id(),
        fastrand_like()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fastrand_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn pids(entries: &[(String, u32)], what: &str) -> Vec<u32> {
    entries
        .iter()
        .filter(|(w, _)| w == what)
        .map(|(_, p)| *p)
        .collect()
}

#[test]
fn in_one_app_process_the_factory_runs_once_and_closes_at_the_end() {
    let dir = tempdir("inproc");
    let out = app(&dir, &["run", "res-fan", "--wait"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = ledger(&dir);
    let builds = pids(&entries, "build");
    assert_eq!(builds.len(), 1, "{entries:?}");
    assert_eq!(pids(&entries, "use").len(), 4, "{entries:?}");
    assert_eq!(pids(&entries, "close"), builds, "{entries:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn worker_processes_build_their_own_once_each_and_close_it() {
    let dir = tempdir("process");
    let out = app(
        &dir,
        &["run", "res-fan", "--wait", "--executor", "process"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = ledger(&dir);
    let builds = pids(&entries, "build");
    let uses = pids(&entries, "use");
    // One worker process per attempt, each building the resource once, on first use:
    // the engine's process (which runs no job) builds nothing.
    assert_eq!(uses.len(), 4, "{entries:?}");
    assert_eq!(builds.len(), 4, "{entries:?}");
    let distinct: BTreeSet<u32> = builds.iter().copied().collect();
    assert_eq!(distinct.len(), 4, "one build per process: {entries:?}");
    assert_eq!(distinct, uses.iter().copied().collect(), "{entries:?}");
    let closes: BTreeSet<u32> = pids(&entries, "close").into_iter().collect();
    assert_eq!(closes, distinct, "each worker closed its own: {entries:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_app_refuses_a_job_whose_resource_nobody_registers() {
    let dir = tempdir("missing");
    let out = app(
        &dir,
        &["run", "res-fan", "--wait"],
        &[("RESOURCE_APP_MISSING", "1")],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Unregistered") && stderr.contains("`lost`"),
        "{stderr}"
    );
    assert!(ledger(&dir).is_empty(), "nothing ran");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_check_resources_stops_on_a_failing_factory_naming_it() {
    let dir = tempdir("check");
    let out = app(
        &dir,
        &["serve", "--check-resources"],
        &[("DAGFORGE_SETTING_FAIL", "true")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Ledger") && stderr.contains("closed for the day"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_worker_without_the_resource_refuses_the_attempt_naming_it() {
    let dir = tempdir("bare");
    let executor = ProcessExecutor::builder()
        .program(APP)
        .args(Vec::<String>::new())
        .env("RESOURCE_APP_BARE", "1")
        .build();
    let engine = Engine::builder().executor(executor).build();
    let mut wf = Workflow::builder("bare");
    wf.add("touch", Touch).input(TouchInput { n: 1 }).retries(2);
    let run = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    let node = run.node("touch").unwrap();
    assert_eq!(node.state, NodeState::Failed, "{}", run.table());
    assert_eq!(node.attempts, 1, "terminal: not retried");
    let error = node.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::Terminal);
    assert!(error.message.contains("Ledger"), "{}", error.message);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The app binary's `touch` job, declared here the same way (name, input, resources)
/// so that a workflow of this test process can name it.
#[derive(Debug)]
struct Ledger;

#[job(name = "touch")]
async fn touch(#[resource] ledger: &Ledger, n: u32) -> Result<u32, JobError> {
    Ok(n + u32::from(format!("{ledger:?}").is_empty()))
}
