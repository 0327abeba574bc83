//! Retrying finished runs: from the failures (a new run seeded with the old history)
//! or afresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dagforge::prelude::*;
use dagforge::store::SqliteStore;
use dagforge::{Error, RetryMode, RunId};

/// Shared by the jobs of one test: invocations per node (and item), and whether the
/// failing parts fail.
#[derive(Clone, Default)]
pub(crate) struct Switch {
    pub(crate) fail: Arc<AtomicBool>,
    pub(crate) calls: Arc<Mutex<HashMap<String, u32>>>,
}

impl Switch {
    pub(crate) fn failing() -> Self {
        let s = Switch::default();
        s.fail.store(true, Ordering::SeqCst);
        s
    }
    fn count(&self, ctx: &JobContext) {
        let key = match ctx.item() {
            Some(i) => format!("{}[{i}]", ctx.node_id()),
            None => ctx.node_id().to_owned(),
        };
        *self.calls.lock().unwrap().entry(key).or_default() += 1;
    }
    pub(crate) fn calls(&self, key: &str) -> u32 {
        self.calls.lock().unwrap().get(key).copied().unwrap_or(0)
    }
    pub(crate) fn heal(&self) {
        self.fail.store(false, Ordering::SeqCst);
    }
}

/// The items to fan out over, from the run parameter.
pub(crate) struct Source(pub(crate) Switch);
impl Job for Source {
    type Input = u32;
    type Output = Vec<u32>;
    const NAME: &'static str = "retry-source";
    async fn run(&self, ctx: &JobContext, n: u32) -> Result<Vec<u32>, JobError> {
        self.0.count(ctx);
        Ok((1..=n).collect())
    }
}

/// Fails while the switch says so.
pub(crate) struct Flaky(pub(crate) Switch);
impl Job for Flaky {
    type Input = Vec<u32>;
    type Output = u32;
    const NAME: &'static str = "retry-flaky";
    async fn run(&self, ctx: &JobContext, items: Vec<u32>) -> Result<u32, JobError> {
        self.0.count(ctx);
        if self.0.fail.load(Ordering::SeqCst) {
            return Err(JobError::msg("flaky is down"));
        }
        Ok(items.iter().sum())
    }
}

/// Per item; item 2 fails while the switch says so.
pub(crate) struct Item(pub(crate) Switch);
impl Job for Item {
    type Input = u32;
    type Output = u32;
    const NAME: &'static str = "retry-item";
    async fn run(&self, ctx: &JobContext, x: u32) -> Result<u32, JobError> {
        self.0.count(ctx);
        if x == 2 && self.0.fail.load(Ordering::SeqCst) {
            return Err(JobError::msg("item 2 is down"));
        }
        Ok(x * 10)
    }
}

/// Adds one.
pub(crate) struct Inc(pub(crate) Switch);
impl Job for Inc {
    type Input = u32;
    type Output = u32;
    const NAME: &'static str = "retry-inc";
    async fn run(&self, ctx: &JobContext, x: u32) -> Result<u32, JobError> {
        self.0.count(ctx);
        Ok(x + 1)
    }
}

/// Runs whatever happened upstream.
pub(crate) struct Cleanup(pub(crate) Switch);
impl Job for Cleanup {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "retry-cleanup";
    async fn run(&self, ctx: &JobContext, _: ()) -> Result<(), JobError> {
        self.0.count(ctx);
        Ok(())
    }
}

/// `source` → `flaky` → `after`; `source` → `items` (fan-out, item 2 fails) →
/// `total`; `source` → `side`; `cleanup` after `flaky`, whatever happened.
pub(crate) fn workflow(s: &Switch) -> Workflow {
    let mut wf = Workflow::builder("retry-demo");
    let n = wf.param::<u32>("n");
    let source = wf.add("source", Source(s.clone())).input_from(n).handle();
    let flaky = wf
        .add("flaky", Flaky(s.clone()))
        .input_from(source)
        .handle();
    wf.add("after", Inc(s.clone())).input_from(flaky);
    let items = wf.add("items", Item(s.clone())).each_input(source).handle();
    wf.add("total", Flaky(s.clone())).input_from(items);
    wf.add("side", Flaky(s.clone()))
        .input_from(source)
        .retries(0);
    wf.add("cleanup", Cleanup(s.clone()))
        .after(&flaky)
        .trigger(TriggerRule::AllDone);
    wf.build().unwrap()
}

async fn sqlite(name: &str) -> (SqliteStore, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "dagforge-retry-{name}-{}-{:08x}",
        std::process::id(),
        fastrand_u32()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("runs.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    (store, path)
}

fn fastrand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_failed_reruns_only_the_failures_and_keeps_history() {
    let s = Switch::failing();
    let wf = workflow(&s);
    let (store, _path) = sqlite("from-failed").await;
    let engine = Engine::builder().store(store).workflow(&wf).build();
    // `side` fails too while the switch is on; see below.
    let first = engine
        .run(&wf, serde_json::json!({ "n": 3 }))
        .await
        .unwrap();
    assert_eq!(first.state, RunState::Failed);
    let state = |r: &RunResult, n: &str| r.node(n).unwrap().state;
    assert_eq!(state(&first, "flaky"), NodeState::Failed);
    assert_eq!(state(&first, "after"), NodeState::Skipped);
    assert_eq!(state(&first, "items"), NodeState::Failed);
    assert_eq!(state(&first, "total"), NodeState::Skipped);
    assert_eq!(state(&first, "cleanup"), NodeState::Succeeded);
    assert_eq!(s.calls("source"), 1);
    assert_eq!(s.calls("items[1]"), 1);

    s.heal();
    let second = engine
        .retry(first.id, RetryMode::FromFailed)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_ne!(second.id, first.id, "a retry is a new run");
    assert_eq!(second.state, RunState::Succeeded, "{}", second.table());
    // Succeeded nodes and items did not run again; the failures and what they
    // skipped did, once.
    assert_eq!(s.calls("source"), 1);
    assert_eq!(s.calls("cleanup"), 1);
    assert_eq!(s.calls("flaky"), 2);
    assert_eq!(s.calls("after"), 1);
    assert_eq!(s.calls("items[0]"), 1);
    assert_eq!(s.calls("items[1]"), 2);
    assert_eq!(s.calls("items[2]"), 1);
    assert_eq!(s.calls("total"), 1);
    assert_eq!(s.calls("side"), 2);
    // Outputs: carried over (source) and new (after, total).
    assert_eq!(second.output::<Vec<u32>>("source").unwrap(), vec![1, 2, 3]);
    assert_eq!(second.output::<u32>("after").unwrap(), 7);
    assert_eq!(
        second.output::<Vec<u32>>("items").unwrap(),
        vec![10, 20, 30]
    );
    assert_eq!(second.output::<u32>("total").unwrap(), 60);
    // Attempt numbers continue, and the failed attempt is on record in the new run.
    let execs = engine.store().executions(second.id).await.unwrap();
    let flaky: Vec<_> = execs
        .iter()
        .filter(|e| e.node == "flaky" && e.attempt > 0)
        .map(|e| (e.attempt, e.state))
        .collect();
    assert_eq!(
        flaky,
        vec![(1, NodeState::Failed), (2, NodeState::Succeeded)]
    );
    assert_eq!(second.node("flaky").unwrap().attempts, 2);
    // The old run is untouched.
    let old = engine.store().get_run(first.id).await.unwrap().unwrap();
    assert_eq!(old.state, RunState::Failed);
    let old_execs = engine.store().executions(first.id).await.unwrap();
    assert!(
        old_execs
            .iter()
            .any(|e| e.node == "flaky" && e.attempt == 1 && e.state == NodeState::Failed)
    );
    assert!(
        !old_execs
            .iter()
            .any(|e| e.node == "flaky" && e.attempt == 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_retry_runs_everything_with_the_same_inputs() {
    let s = Switch::failing();
    let wf = workflow(&s);
    let engine = Engine::builder().workflow(&wf).build();
    let first = engine
        .run(&wf, serde_json::json!({ "n": 2 }))
        .await
        .unwrap();
    assert_eq!(first.state, RunState::Failed);
    s.heal();
    let second = engine
        .retry(first.id, RetryMode::Fresh)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(second.state, RunState::Succeeded);
    assert_eq!(s.calls("source"), 2);
    assert_eq!(s.calls("cleanup"), 2);
    assert_eq!(second.output::<Vec<u32>>("source").unwrap(), vec![1, 2]);
    let rec = engine.store().get_run(second.id).await.unwrap().unwrap();
    assert_eq!(rec.inputs, serde_json::json!({ "n": 2 }));
    let execs = engine.store().executions(second.id).await.unwrap();
    assert!(
        !execs
            .iter()
            .any(|e| e.node == "flaky" && e.state == NodeState::Failed),
        "a fresh run carries no history"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueued_retry_is_driven_by_a_serving_engine() {
    let s = Switch::failing();
    let wf = workflow(&s);
    let (store, path) = sqlite("enqueued").await;
    let a = Engine::builder().store(store).workflow(&wf).build();
    let first = a.run(&wf, serde_json::json!({ "n": 3 })).await.unwrap();
    s.heal();
    let id = a
        .enqueue_retry(first.id, RetryMode::FromFailed)
        .await
        .unwrap();
    // Another engine on the same database claims it.
    let store_b = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let b = Engine::builder().store(store_b).workflow(&wf).build();
    let handles = b.resume().await.unwrap();
    assert_eq!(handles.len(), 1);
    assert_eq!(handles[0].id(), id);
    let result = handles.into_iter().next().unwrap().wait().await.unwrap();
    assert_eq!(result.state, RunState::Succeeded, "{}", result.table());
    assert_eq!(s.calls("source"), 1);
    assert_eq!(s.calls("flaky"), 2);
}

#[tokio::test]
async fn retry_refuses_what_it_cannot_retry() {
    let s = Switch::default();
    let wf = workflow(&s);
    let engine = Engine::builder().workflow(&wf).build();
    let missing = RunId::new();
    assert!(matches!(
        engine.retry(missing, RetryMode::FromFailed).await,
        Err(Error::RunNotFound(id)) if id == missing
    ));
    // Nothing failed.
    let ok = engine
        .run(&wf, serde_json::json!({ "n": 1 }))
        .await
        .unwrap();
    assert_eq!(ok.state, RunState::Succeeded);
    let e = engine
        .retry(ok.id, RetryMode::FromFailed)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NothingToRetry(id) if id == ok.id), "{e}");
    // Not finished: enqueued and never served.
    let queued = engine
        .enqueue(&wf, serde_json::json!({ "n": 1 }))
        .await
        .unwrap();
    let e = engine.retry(queued, RetryMode::Fresh).await.unwrap_err();
    assert!(matches!(e, Error::RunNotFinished { .. }), "{e}");
    assert!(e.to_string().contains("pending"));
    // A workflow this engine does not know.
    let other = Engine::builder()
        .shared_store(engine.store().clone())
        .build();
    let e = other.retry(ok.id, RetryMode::Fresh).await.unwrap_err();
    assert!(matches!(e, Error::UnknownWorkflow { .. }), "{e}");
    assert!(e.to_string().contains("retry-demo"), "{e}");
}

#[tokio::test]
async fn cancel_recorded_cancels_a_queued_run() {
    let s = Switch::default();
    let wf = workflow(&s);
    let engine = Engine::builder().workflow(&wf).build();
    let queued = engine
        .enqueue(&wf, serde_json::json!({ "n": 1 }))
        .await
        .unwrap();
    let state = engine.cancel_recorded(queued).await.unwrap();
    assert_eq!(state, RunState::Cancelled);
    let rec = engine.store().get_run(queued).await.unwrap().unwrap();
    assert_eq!(rec.state, RunState::Cancelled);
    // Cancelled nodes can then be retried from there.
    let again = engine
        .retry(queued, RetryMode::FromFailed)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(again.state, RunState::Succeeded, "{}", again.table());
    // A finished run stays as it is.
    assert_eq!(
        engine.cancel_recorded(again.id).await.unwrap(),
        RunState::Succeeded
    );
}

/// `source` → `flaky` (retries 2) and `source` → `items` (fan-out, item 1 fails,
/// retries 2); `late` (fan-out like `items`) runs after `flaky` whatever happened.
fn budget_workflow(s: &Switch) -> Workflow {
    let mut wf = Workflow::builder("retry-budget");
    let n = wf.param::<u32>("n");
    let source = wf.add("source", Source(s.clone())).input_from(n).handle();
    let flaky = wf
        .add("flaky", Flaky(s.clone()))
        .input_from(source)
        .retries(2)
        .backoff(Backoff::none())
        .handle();
    wf.add("items", Item(s.clone()))
        .each_input(source)
        .retries(2)
        .backoff(Backoff::none());
    wf.add("late", Item(s.clone()))
        .each_input(source)
        .after(&flaky)
        .trigger(TriggerRule::AllDone)
        .retries(2)
        .backoff(Backoff::none());
    wf.build().unwrap()
}

/// The recorded attempts `(attempt, state)` of `node` (item `item`) in run `run`.
async fn attempts(
    engine: &Engine,
    run: RunId,
    node: &str,
    item: Option<u32>,
) -> Vec<(u32, NodeState)> {
    let mut v: Vec<_> = engine
        .store()
        .executions(run)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.node == node && e.item == item && e.attempt > 0)
        .map(|e| (e.attempt, e.state))
        .collect();
    v.sort_by_key(|(a, _)| *a);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_from_failed_retry_gives_re_run_nodes_and_items_a_fresh_budget() {
    use NodeState::{Failed, Retrying, Succeeded};
    let s = Switch::failing();
    let wf = budget_workflow(&s);
    let (store, _path) = sqlite("budget").await;
    let engine = Engine::builder().store(store).workflow(&wf).build();
    let first = engine
        .run(&wf, serde_json::json!({ "n": 3 }))
        .await
        .unwrap();
    assert_eq!(first.state, RunState::Failed);
    // Retries 2: three attempts each.
    assert_eq!(s.calls("flaky"), 3);
    assert_eq!(s.calls("items[1]"), 3);
    assert_eq!(s.calls("late[1]"), 3);

    // Retried by hand while still broken: each re-run node and item gets its three
    // attempts again, numbered on from the history.
    let second = engine
        .retry(first.id, RetryMode::FromFailed)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(second.state, RunState::Failed, "{}", second.table());
    assert_eq!(s.calls("flaky"), 6);
    assert_eq!(s.calls("items[0]"), 1, "a succeeded item is not re-run");
    assert_eq!(s.calls("items[1]"), 6);
    assert_eq!(s.calls("items[2]"), 1);
    let whole = vec![
        (1, Retrying),
        (2, Retrying),
        (3, Failed),
        (4, Retrying),
        (5, Retrying),
        (6, Failed),
    ];
    assert_eq!(attempts(&engine, second.id, "flaky", None).await, whole);
    assert_eq!(second.node("flaky").unwrap().attempts, 6);
    // (An item's attempt that is retried is recorded in the state of its retry,
    // Ready.)
    let numbers = |v: Vec<(u32, NodeState)>| -> (Vec<u32>, Option<NodeState>) {
        (
            v.iter().map(|(n, _)| *n).collect(),
            v.last().map(|(_, s)| *s),
        )
    };
    let six = (vec![1, 2, 3, 4, 5, 6], Some(Failed));
    assert_eq!(
        numbers(attempts(&engine, second.id, "items", Some(1)).await),
        six,
        "an item's budget is fresh too"
    );
    let items = &second.node("items").unwrap().items;
    assert_eq!(items[1].attempts, 6);
    assert!(items[0].error.is_none() && items[1].error.is_some());
    // `late` ran after a failed parent, so it is re-run whole: every item expands
    // again; the attempt numbers of its items go on too (none is overwritten).
    assert_eq!(s.calls("late[0]"), 2);
    assert_eq!(s.calls("late[1]"), 6);
    assert_eq!(
        numbers(attempts(&engine, second.id, "late", Some(1)).await),
        six
    );
    assert_eq!(
        attempts(&engine, second.id, "late", Some(0)).await,
        vec![(1, Succeeded), (2, Succeeded)]
    );
    // The old run keeps its three attempts.
    assert_eq!(
        attempts(&engine, first.id, "flaky", None).await,
        whole[..3].to_vec()
    );

    // A retry of the retry: fresh again, and now it works at the first try.
    s.heal();
    let third = engine
        .retry(second.id, RetryMode::FromFailed)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(third.state, RunState::Succeeded, "{}", third.table());
    assert_eq!(s.calls("flaky"), 7);
    let mut all = whole.clone();
    all.push((7, Succeeded));
    assert_eq!(attempts(&engine, third.id, "flaky", None).await, all);
    assert_eq!(third.output::<Vec<u32>>("items").unwrap(), vec![10, 20, 30]);
}

/// Fails every attempt, except that the attempt numbered `hang_at` hangs.
#[derive(Clone, Default)]
struct Stubborn {
    hang_at: Arc<std::sync::atomic::AtomicU32>,
    calls: Arc<std::sync::atomic::AtomicU32>,
}

impl Job for Stubborn {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "retry-stubborn";
    async fn run(&self, ctx: &JobContext, _: ()) -> Result<(), JobError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if ctx.attempt() == self.hang_at.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
        Err(JobError::msg("still broken"))
    }
}

#[tokio::test(start_paused = true)]
async fn resuming_a_retried_run_after_a_crash_does_not_reset_the_budget_again() {
    use std::time::Duration;

    use NodeState::{Failed, Retrying};
    use dagforge::ErrorKind;
    use dagforge::store::Store;

    let job = Stubborn::default();
    let mut wf = Workflow::builder("retry-resume");
    wf.add("stubborn", job.clone())
        .retries(2)
        .backoff(Backoff::none());
    let wf = wf.build().unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let a = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id("engine-a")
        .lease_ttl(Duration::from_secs(10))
        .workflow(&wf)
        .build();
    let first = a.run(&wf, ()).await.unwrap();
    assert_eq!(first.state, RunState::Failed);
    assert_eq!(job.calls.load(Ordering::SeqCst), 3);

    // The retry's second attempt (number 5) hangs, and engine A stops dead.
    job.hang_at.store(5, Ordering::SeqCst);
    let retried = a.retry(first.id, RetryMode::FromFailed).await.unwrap();
    let id = retried.id();
    for _ in 0..1_000 {
        if job.calls.load(Ordering::SeqCst) >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        job.calls.load(Ordering::SeqCst),
        5,
        "the retry got a second attempt (number 5)"
    );
    retried.abandon();
    drop(a);

    let b = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id("engine-b")
        .workflow(&wf)
        .build();
    tokio::time::sleep(Duration::from_secs(11)).await;
    let handles = b.resume().await.unwrap();
    assert_eq!(handles.len(), 1);
    let r = handles.into_iter().next().unwrap().wait().await.unwrap();
    assert_eq!(r.id, id);
    assert_eq!(r.state, RunState::Failed, "{}", r.table());
    // The interrupted attempt runs again (as always after a crash), and the budget
    // the retry gave (attempts 4–6) is not given a second time: 6 is the last.
    assert_eq!(job.calls.load(Ordering::SeqCst), 6);
    assert_eq!(r.node("stubborn").unwrap().attempts, 6);
    let execs = store.executions(id).await.unwrap();
    let mut seen: Vec<_> = execs
        .iter()
        .filter(|e| e.node == "stubborn" && e.attempt > 0)
        .map(|e| (e.attempt, e.state))
        .collect();
    seen.sort_by_key(|(n, _)| *n);
    assert_eq!(
        seen,
        vec![
            (1, Retrying),
            (2, Retrying),
            (3, Failed),
            (4, Retrying),
            (5, Retrying),
            (6, Failed),
        ]
    );
    let interrupted = execs
        .iter()
        .find(|e| e.node == "stubborn" && e.attempt == 5)
        .unwrap();
    assert_eq!(
        interrupted.error.as_ref().unwrap().kind,
        ErrorKind::Interrupted
    );
}
