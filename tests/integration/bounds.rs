//! Bounded inputs and outputs: nesting depth and size where values enter, readable records.
//!
//! A value nested 100,000 levels deep overflowed the stack (serializing, cloning or
//! dropping a `serde_json::Value` recurses per level) and aborted the process. The
//! tests that could abort run in a child process of this test binary (see
//! [`in_child`]), so that a regression fails one test instead of ending the suite.

use std::process::Command;
use std::sync::Arc;

use dagforge::RunId;
use dagforge::bounds::{self, MAX_DEPTH};
use dagforge::prelude::*;
use dagforge::store::{RunQuery, Store};
use dagforge::{Error, ErrorKind, Execution, ExecutionHandle, Executor};
use serde_json::{Value, json};

/// A value `n` arrays deep, built without recursion (drop it with [`bounds::dispose`]).
fn nested(n: usize) -> Value {
    let mut v = Value::Null;
    for _ in 0..n {
        v = Value::Array(vec![v]);
    }
    v
}

/// Runs the ignored test `name` of this module alone, in a child process of this test
/// binary, and asserts that it passed (a stack overflow aborts the child, not us).
fn in_child(name: &str) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([
            "--exact",
            &format!("bounds::{name}"),
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in a child process ended with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

/// Returns a `Value` nested as deep as its input says.
struct Deep;

impl Job for Deep {
    type Input = usize;
    type Output = Value;
    const NAME: &'static str = "deep";

    async fn run(&self, _: &JobContext, depth: usize) -> Result<Value, JobError> {
        Ok(nested(depth))
    }
}

/// A typed output holding a deep value.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wrapped {
    data: Value,
}

struct DeepTyped;

impl Job for DeepTyped {
    type Input = usize;
    type Output = Wrapped;
    const NAME: &'static str = "deep-typed";

    async fn run(&self, _: &JobContext, depth: usize) -> Result<Wrapped, JobError> {
        Ok(Wrapped {
            data: nested(depth),
        })
    }
}

struct Ok1;

impl Job for Ok1 {
    type Input = ();
    type Output = u32;
    const NAME: &'static str = "ok1";

    async fn run(&self, _: &JobContext, _: ()) -> Result<u32, JobError> {
        Ok(1)
    }
}

/// `deep` (nesting `depth`, with retries) → `after` (runs when all are done), and an
/// independent `sibling`.
fn deep_workflow(depth: usize, typed: bool) -> Workflow {
    let mut wf = Workflow::builder("deep");
    if typed {
        wf.add("deep", DeepTyped).input(depth).retries(3);
    } else {
        wf.add("deep", Deep).input(depth).retries(3);
    }
    wf.add("after", Ok1)
        .after_named("deep")
        .trigger(TriggerRule::AllDone);
    wf.add("sibling", Ok1);
    wf.build().unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The node failed once (not retried) with an output error saying `says`; the rest of
/// the run went on by its trigger rules.
fn assert_refused(r: &RunResult, says: &str) {
    let deep = r.node("deep").unwrap();
    assert_eq!(deep.state, NodeState::Failed);
    assert_eq!(deep.attempts, 1, "an output error is not retried");
    let e = deep.error.as_ref().unwrap();
    assert_eq!(e.kind, ErrorKind::Output);
    assert!(e.message.contains(says), "{}", e.message);
    assert!(e.message.contains("limit of 64 levels"), "{}", e.message);
    assert_eq!(r.node("after").unwrap().state, NodeState::Succeeded);
    assert_eq!(r.node("sibling").unwrap().state, NodeState::Succeeded);
    assert_eq!(r.state, RunState::Failed);
}

#[test]
fn a_job_output_nested_100000_levels_fails_its_node_not_the_process() {
    in_child("child_value_output_100000_levels");
}

#[test]
#[ignore = "run in a child process by a_job_output_nested_100000_levels_fails_its_node_not_the_process"]
fn child_value_output_100000_levels() {
    let r = rt()
        .block_on(Engine::new().run(&deep_workflow(100_000, false), ()))
        .unwrap();
    assert_refused(&r, "is nested 100000 levels deep");
}

#[test]
fn a_typed_job_output_nested_100000_levels_fails_its_node_not_the_process() {
    in_child("child_typed_output_100000_levels");
}

#[test]
#[ignore = "run in a child process by a_typed_job_output_nested_100000_levels_fails_its_node_not_the_process"]
fn child_typed_output_100000_levels() {
    let r = rt()
        .block_on(Engine::new().run(&deep_workflow(100_000, true), ()))
        .unwrap();
    assert_refused(&r, "nested at least 65 levels deep");
}

/// Completes every attempt with a deep output, as any executor (the process
/// executor's worker, a remote one) might report it.
#[derive(Debug)]
struct DeepExecutor(usize);

impl Executor for DeepExecutor {
    fn start(&self, execution: Execution) -> ExecutionHandle {
        let out = if execution.context().node_id() == "deep" {
            nested(self.0)
        } else {
            json!(1)
        };
        execution.complete(Ok(out));
        ExecutionHandle::detached()
    }
}

#[test]
fn an_executor_reporting_an_output_nested_100000_levels_fails_the_node_not_the_process() {
    in_child("child_executor_output_100000_levels");
}

#[test]
#[ignore = "run in a child process by an_executor_reporting_an_output_nested_100000_levels_fails_the_node_not_the_process"]
fn child_executor_output_100000_levels() {
    let engine = Engine::builder().executor(DeepExecutor(100_000)).build();
    let r = rt()
        .block_on(engine.run(&deep_workflow(0, false), ()))
        .unwrap();
    assert_refused(&r, "the output of node `deep` is nested 100000 levels deep");
}

/// Measures its input's depth.
struct Measure;

impl Job for Measure {
    type Input = Value;
    type Output = usize;
    const NAME: &'static str = "measure";

    async fn run(&self, _: &JobContext, v: Value) -> Result<usize, JobError> {
        Ok(bounds::depth(&v))
    }
}

fn param_workflow() -> Workflow {
    let mut wf = Workflow::builder("takes-a-value");
    let v = wf.param::<Value>("v");
    wf.add("measure", Measure).input_from(v);
    wf.build().unwrap()
}

#[test]
fn run_inputs_nested_100000_levels_are_refused_before_anything_is_recorded() {
    in_child("child_inputs_100000_levels");
}

#[test]
#[ignore = "run in a child process by run_inputs_nested_100000_levels_are_refused_before_anything_is_recorded"]
fn child_inputs_100000_levels() {
    rt().block_on(async {
        let engine = Engine::new();
        let wf = param_workflow();
        let mut inputs = serde_json::Map::new();
        inputs.insert("v".to_owned(), nested(100_000));
        let inputs = Value::Object(inputs);
        for e in [
            engine
                .start(&wf, &inputs)
                .await
                .map(|h| h.id())
                .unwrap_err(),
            engine.enqueue(&wf, &inputs).await.unwrap_err(),
        ] {
            match e {
                Error::Input { name, reason } => {
                    assert_eq!(name, "v");
                    assert!(reason.contains("limit of 64 levels"), "{reason}");
                }
                other => panic!("expected an input error, got {other}"),
            }
        }
        let page = engine.store().list_runs(&RunQuery::new()).await.unwrap();
        assert!(page.items.is_empty(), "nothing is recorded");
        bounds::dispose(inputs);
    });
}

#[tokio::test]
async fn run_inputs_deeper_than_the_limit_or_larger_than_the_cap_are_refused_by_name() {
    let engine = Engine::builder().max_input_bytes(200).build();
    let wf = param_workflow();
    let deep = json!({ "v": nested(MAX_DEPTH + 1) });
    let err = engine.enqueue(&wf, &deep).await.unwrap_err();
    assert!(
        matches!(&err, Error::Input { name, reason } if name == "v" && reason.contains("limit of 64 levels")),
        "{err}"
    );
    let big = json!({ "v": "x".repeat(300) });
    let err = engine.start(&wf, &big).await.map(|h| h.id()).unwrap_err();
    assert!(
        matches!(&err, Error::Input { name, reason } if name == "v" && reason.contains("200-byte limit")),
        "{err}"
    );
    assert!(
        engine
            .store()
            .list_runs(&RunQuery::new())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // At the limit: accepted.
    let ok = json!({ "v": nested(MAX_DEPTH) });
    let r = engine.run(&wf, &ok).await.unwrap();
    assert_eq!(r.output::<usize>("measure").unwrap(), MAX_DEPTH);
}

/// An output 200 levels deep was stored, and then every read of the run failed
/// (serde_json reads at most 127 levels): `runs show` could not show it. Now the
/// output is refused, and everything recorded reads back; at the limit it is kept.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn what_is_accepted_reads_back_from_sqlite() {
    let dir = std::env::temp_dir().join(format!("dagforge-bounds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("readable.db");
    let _ = std::fs::remove_file(&path);
    let store: Arc<dyn Store> = Arc::new(
        dagforge::store::SqliteStore::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap(),
    );
    let engine = Engine::builder().shared_store(Arc::clone(&store)).build();
    for (depth, ok) in [(200, false), (MAX_DEPTH, true)] {
        let r = engine.run(&deep_workflow(depth, false), ()).await.unwrap();
        assert_eq!(r.node("deep").unwrap().state.is_failure(), !ok, "{depth}");
        let execs = store.executions(r.id).await.unwrap();
        let out = execs
            .iter()
            .find_map(|e| e.output.as_ref().filter(|_| e.node == "deep"));
        assert_eq!(out.map(bounds::depth), ok.then_some(depth), "{depth}");
        let events = store.events(r.id, 0, 10_000).await.unwrap();
        assert!(!events.is_empty());
        store.get_run(r.id).await.unwrap().unwrap();
    }
    assert_eq!(
        store.list_runs(&RunQuery::new()).await.unwrap().items.len(),
        2
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `sql` on the SQLite file at `path` with the `sqlite3` tool (to damage rows as
/// another program, or an older dagforge, might have written them).
#[cfg(feature = "sqlite")]
fn sqlite3(path: &std::path::Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg(sql)
        .output()
        .expect("the sqlite3 tool is installed");
    assert!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CLI test app on `store`: exit code, stdout, stderr.
fn cli(store: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dagforge-cli-app"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DAGFORGE_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.args(args).args(["--store", store]).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One run whose inputs do not decode made `runs list` (and `Store::list_runs`) fail
/// for every run; a bad event or execution row made the whole run unreadable with a
/// message naming neither. Now the list names the bad run and lists the others, and
/// reading a bad run fails with a typed error naming the run and the column.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_bad_row_is_reported_by_run_id_and_the_others_are_listed() {
    use dagforge::store::{SqliteStore, StoreError};

    let dir = std::env::temp_dir().join(format!("dagforge-bounds-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.db");
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::open(&url).await.unwrap();
    let engine = Engine::builder().store(store).build();
    let wf = param_workflow();
    let mut ids = Vec::new();
    for i in 0..4 {
        let r = engine.run(&wf, json!({ "v": [i] })).await.unwrap();
        assert!(r.is_success());
        ids.push(r.id);
    }
    drop(engine);
    // A row whose id is not a run id, with a terminal escape sequence in it.
    let bad_id = ids.pop().unwrap();
    sqlite3(
        &path,
        &format!(
            "UPDATE runs SET id = 'x' || char(27) || '[2J' WHERE id = '{}';",
            bad_id.to_uuid_string()
        ),
    );
    let (good, bad_inputs, bad_output) = (ids[0], ids[1], ids[2]);
    let pk = |id: RunId| format!("(SELECT pk FROM runs WHERE id = '{}')", id.to_uuid_string());
    sqlite3(
        &path,
        &format!(
            "UPDATE runs SET inputs = '{{\"v\": [' WHERE id = '{}'; \
             UPDATE executions SET output = '[[[' WHERE run_pk = {} AND node = 'measure' AND output IS NOT NULL; \
             UPDATE events SET kind = 'not json' WHERE run_pk = {} AND seq = 2;",
            bad_inputs.to_uuid_string(),
            pk(bad_output),
            pk(bad_output)
        ),
    );

    let store = SqliteStore::open(&url).await.unwrap();
    let page = store.list_runs(&RunQuery::new()).await.unwrap();
    let listed: Vec<RunId> = page.items.iter().map(|r| r.id).collect();
    assert_eq!(listed, vec![bad_output, good]);
    assert_eq!(page.bad.len(), 2);
    assert_eq!(page.bad[0].run.as_deref(), Some("x\u{1b}[2J"));
    assert_eq!(page.bad[0].what, "run id");
    let bad = &page.bad[1];
    assert_eq!(bad.run.as_deref(), Some(&*bad_inputs.to_uuid_string()));
    assert_eq!(bad.what, "run inputs");

    let named = |e: StoreError, run: RunId, what: &str| match e {
        StoreError::BadRow(b) => {
            assert_eq!(b.run, Some(run.to_string()));
            assert!(b.what.contains(what), "{}", b.what);
        }
        other => panic!("expected a bad row, got {other}"),
    };
    named(
        store.get_run(bad_inputs).await.unwrap_err(),
        bad_inputs,
        "run inputs",
    );
    named(
        store.executions(bad_output).await.unwrap_err(),
        bad_output,
        "execution output of node `measure` attempt 1",
    );
    named(
        store.events(bad_output, 0, 100).await.unwrap_err(),
        bad_output,
        "event 2",
    );
    store.get_run(bad_output).await.unwrap().unwrap();
    assert_eq!(store.executions(good).await.unwrap().len(), 2);
    store.close().await;

    // The CLI: the list names the bad run and lists the others.
    let (code, out, err) = cli(&url, &["runs", "list"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&good.to_string()) && out.contains(&bad_output.to_string()),
        "{out}"
    );
    assert!(!out.contains(&bad_inputs.to_string()), "{out}");
    // Printed escaped: the stored id cannot clear the terminal.
    assert!(
        err.contains("warning: run x\\u{1b}[2J: the stored run id"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(
        err.contains(&format!(
            "warning: run {}: the stored run inputs cannot be decoded",
            bad_inputs.to_uuid_string()
        )),
        "{err}"
    );
    // Showing a bad run names it and what does not decode.
    let (code, _, err) = cli(&url, &["runs", "show", &bad_inputs.to_string()]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&bad_inputs.to_string()) && err.contains("run inputs"),
        "{err}"
    );
    let (code, _, err) = cli(&url, &["runs", "show", &bad_output.to_string()]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&bad_output.to_string()) && err.contains("execution output of node `measure`"),
        "{err}"
    );
    let (code, out, err) = cli(&url, &["runs", "show", &good.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("succeeded"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// PostgreSQL's JSON columns take any valid JSON, however deep: an output nested 200
/// levels (as the engine stored before outputs were bounded) or an event of an unknown
/// kind is stored, and reading it back failed for the whole list. Now the list names
/// the run whose row does not decode and lists the others; reads of that run fail
/// with a typed error naming it.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_bad_postgres_row_is_reported_by_run_id_and_the_others_are_listed() {
    use dagforge::store::StoreError;

    let store = crate::store::pg::TempSchema::new().await;
    let schema = store.0.schema_name().to_owned();
    let engine = Engine::builder().store(store).build();
    let wf = param_workflow();
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = engine.run(&wf, json!({ "v": [i] })).await.unwrap();
        assert!(r.is_success());
        ids.push(r.id);
    }
    let (good, deep_inputs, bad_event) = (ids[0], ids[1], ids[2]);
    let deep = serde_json::to_string(&nested(200)).unwrap();
    let sql = format!(
        "UPDATE {schema}.runs SET inputs = '{{\"v\": {deep}}}' WHERE id = '{deep_inputs}'; \
         UPDATE {schema}.events SET kind = '{{\"type\": \"nope\"}}' \
         WHERE run_pk = (SELECT pk FROM {schema}.runs WHERE id = '{bad_event}') AND seq = 2;"
    );
    let out = Command::new("psql")
        .args([
            &crate::store::pg::url(),
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &sql,
        ])
        .output()
        .expect("psql is installed");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let store = engine.store();
    let page = store.list_runs(&RunQuery::new()).await.unwrap();
    let listed: Vec<RunId> = page.items.iter().map(|r| r.id).collect();
    assert_eq!(listed, vec![bad_event, good]);
    assert_eq!(page.bad.len(), 1, "{:?}", page.bad);
    assert_eq!(page.bad[0].run, Some(deep_inputs.to_string()));
    assert_eq!(page.bad[0].what, "run inputs");
    assert!(
        page.bad[0].detail.contains("recursion limit"),
        "{}",
        page.bad[0]
    );
    match store.get_run(deep_inputs).await.unwrap_err() {
        StoreError::BadRow(b) => assert_eq!(b.run, Some(deep_inputs.to_string())),
        other => panic!("expected a bad row, got {other}"),
    }
    match store.events(bad_event, 0, 100).await.unwrap_err() {
        StoreError::BadRow(b) => {
            assert_eq!(b.run, Some(bad_event.to_string()));
            assert_eq!(b.what, "event 2");
        }
        other => panic!("expected a bad row, got {other}"),
    }
    store.executions(bad_event).await.unwrap();
    store.events(good, 0, 100).await.unwrap();
}

/// A recurring schedule's inputs are run inputs: too deep or too large, the schedule
/// is refused, naming the parameter, and nothing is stored.
#[tokio::test]
async fn recurring_schedule_inputs_are_bounded_too() {
    let wf = param_workflow();
    let engine = Engine::builder().max_input_bytes(200).workflow(&wf).build();
    let deep = json!({ "v": nested(MAX_DEPTH + 1) });
    let err = engine
        .schedules()
        .add_or_update(
            "deep",
            &wf,
            "0 * * * *",
            dagforge::Recurring::new().inputs(&deep),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Input { reason, .. } if reason.contains("more than the limit of")),
        "{err}"
    );
    let big = json!({ "v": "x".repeat(300) });
    let err = engine
        .schedules()
        .add_or_update(
            "big",
            &wf,
            "0 * * * *",
            dagforge::Recurring::new().inputs(&big),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Input { name, reason } if name == "v" && reason.contains("200-byte limit")),
        "{err}"
    );
    assert!(engine.schedules().list().await.unwrap().is_empty());
}

/// Each fan-out item's output is bounded on its own: the item too deep fails (not
/// retried), the others succeed.
#[tokio::test]
async fn a_fan_out_item_with_an_output_too_deep_fails_that_item_only() {
    let mut wf = Workflow::builder("deep-items");
    wf.add("deep", Deep)
        .each_input(Source::value(vec![1usize, 100, MAX_DEPTH]))
        .retries(2);
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    let node = r.node("deep").unwrap();
    assert_eq!(node.state, NodeState::Failed);
    let states: Vec<NodeState> = node.items.iter().map(|i| i.state).collect();
    assert_eq!(
        states,
        [
            NodeState::Succeeded,
            NodeState::Failed,
            NodeState::Succeeded
        ]
    );
    let item = &node.items[1];
    assert_eq!(item.attempts, 1, "an output error is not retried");
    let e = item.error.as_ref().unwrap();
    assert_eq!(e.kind, ErrorKind::Output);
    assert!(
        e.message
            .contains("nested 100 levels deep, more than the limit of 64 levels"),
        "{}",
        e.message
    );
}
