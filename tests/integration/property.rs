//! Property tests: random DAGs run every node once, after all of its dependencies.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use dagforge::prelude::*;
use proptest::prelude::*;

/// Records a global completion counter value per node.
#[derive(Clone)]
struct Stamp {
    clock: Arc<AtomicU32>,
    started: Arc<[AtomicU32]>,
    finished: Arc<[AtomicU32]>,
    runs: Arc<Mutex<Vec<u32>>>,
}

impl Job for Stamp {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "stamp";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<(), JobError> {
        let i: usize = ctx.node_id()[1..].parse().map_err(JobError::from)?;
        self.started[i].store(
            self.clock.fetch_add(1, Ordering::SeqCst) + 1,
            Ordering::SeqCst,
        );
        if i.is_multiple_of(7) {
            tokio::task::yield_now().await;
        }
        self.finished[i].store(
            self.clock.fetch_add(1, Ordering::SeqCst) + 1,
            Ordering::SeqCst,
        );
        self.runs.lock().unwrap().push(i as u32);
        Ok(())
    }
}

fn check(n: usize, parents: &[Vec<usize>]) -> Result<(), TestCaseError> {
    let stamp = Stamp {
        clock: Arc::default(),
        started: (0..n).map(|_| AtomicU32::new(0)).collect(),
        finished: (0..n).map(|_| AtomicU32::new(0)).collect(),
        runs: Arc::default(),
    };
    let mut wf = Workflow::builder("random");
    let mut handles = Vec::with_capacity(n);
    for (i, ps) in parents.iter().enumerate() {
        let mut node = wf.add(format!("n{i}"), stamp.clone());
        for &p in ps {
            node = node.after(&handles[p]);
        }
        handles.push(node.handle());
    }
    let wf = wf.build().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(Engine::builder().concurrency(64).build().run(&wf, ()))
        .unwrap();
    prop_assert!(r.is_success());
    let mut runs = stamp.runs.lock().unwrap().clone();
    prop_assert_eq!(runs.len(), n, "every node ran");
    runs.sort_unstable();
    runs.dedup();
    prop_assert_eq!(runs.len(), n, "no node ran twice");
    for (i, ps) in parents.iter().enumerate() {
        let start = stamp.started[i].load(Ordering::SeqCst);
        for &p in ps {
            let parent_end = stamp.finished[p].load(Ordering::SeqCst);
            prop_assert!(
                parent_end < start,
                "n{} started before its parent n{} finished",
                i,
                p
            );
        }
    }
    Ok(())
}

/// Parents of node i are drawn from nodes < i, so the graph is a DAG; the order nodes
/// are added in is shuffled relative to the edges by the random choice of parents.
fn dag(n: usize, max_parents: usize) -> impl Strategy<Value = Vec<Vec<usize>>> {
    (0..n)
        .map(|i| {
            if i == 0 {
                Just(Vec::new()).boxed()
            } else {
                proptest::collection::vec(0..i, 0..=max_parents.min(i))
                    .prop_map(|mut v| {
                        v.sort_unstable();
                        v.dedup();
                        v
                    })
                    .boxed()
            }
        })
        .collect::<Vec<_>>()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn ten_thousand_node_random_dag_respects_every_edge(parents in dag(10_000, 4)) {
        check(10_000, &parents)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn small_random_dags_respect_every_edge(n in 1usize..60, seed in any::<u64>()) {
        let mut rng = seed;
        let mut next = move || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
        let parents: Vec<Vec<usize>> = (0..n)
            .map(|i| {
                let k = if i == 0 { 0 } else { (next() % 4) as usize };
                let mut ps: Vec<usize> = (0..k).map(|_| (next() % i as u64) as usize).collect();
                ps.sort_unstable();
                ps.dedup();
                ps
            })
            .collect();
        check(n, &parents)?;
    }
}

// ----- the run and event decoders ----------------------------------------------------
//
// What a store reads back is decoded from JSON text that another program, an older
// dagforge or a damaged disk may have written. Whatever the text, decoding gives a
// value or a typed error: no panic, no stack overflow.

use dagforge::bounds::{self, MAX_DEPTH};
use dagforge::store::{ExecutionRecord, RunQuery, RunRecord, Store, StoreError};
use dagforge::{NodeEvent, RunId};
use serde_json::{Value, json};

/// A valid event's JSON, to mutate.
fn sample_event() -> String {
    let e = Event::new(
        RunId::new(),
        3,
        std::time::SystemTime::UNIX_EPOCH,
        EventKind::Node(
            NodeEvent::new(
                "fetch",
                Some(2),
                1,
                NodeState::Running,
                NodeState::Succeeded,
            )
            .with_output(json!({"rows": [1, 2, {"x": null}]})),
        ),
    );
    serde_json::to_string(&e).unwrap()
}

/// JSON text nested `n` levels deep (arrays and objects alternating).
fn deep_text(n: usize) -> String {
    let mut s = String::with_capacity(n * 6);
    for i in 0..n {
        s.push_str(if i % 2 == 0 { "[" } else { "{\"a\":" });
    }
    s.push('1');
    for i in (0..n).rev() {
        s.push(if i % 2 == 0 { ']' } else { '}' });
    }
    s
}

/// Decodes `bytes` as every record type read back from a store; only checks that
/// each gives a value or an error.
fn decode_all(bytes: &[u8]) {
    let _ = serde_json::from_slice::<Event>(bytes);
    let _ = serde_json::from_slice::<EventKind>(bytes);
    let _ = serde_json::from_slice::<RunRecord>(bytes);
    let _ = serde_json::from_slice::<ExecutionRecord>(bytes);
    let _ = serde_json::from_slice::<dagforge::ErrorInfo>(bytes);
    let _ = serde_json::from_slice::<Value>(bytes);
}

fn small_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 64, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `v` wrapped in arrays up to `extra` more levels, without passing MAX_DEPTH.
fn deepen(v: Value, extra: usize) -> Value {
    let room = MAX_DEPTH.saturating_sub(bounds::depth(&v));
    let mut v = v;
    for _ in 0..extra.min(room) {
        v = Value::Array(vec![v]);
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decoders_take_random_bytes_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn decoders_take_mutated_events_without_panicking(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)
    ) {
        let mut bytes = sample_event().into_bytes();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        decode_all(&bytes);
    }

    #[test]
    fn deep_nesting_is_a_decode_error_not_an_overflow(n in 128usize..200_000) {
        let deep = deep_text(n);
        prop_assert!(serde_json::from_str::<Value>(&deep).is_err());
        let event = sample_event().replace(r#"{"rows":[1,2,{"x":null}]}"#, &deep);
        prop_assert!(serde_json::from_str::<Event>(&event).is_err());
        prop_assert!(serde_json::from_str::<ExecutionRecord>(&deep).is_err());
    }

    /// What the engine accepts (an output or an input at most MAX_DEPTH deep) reads back
    /// inside an event, as stored.
    #[test]
    fn accepted_values_read_back_inside_events(v in small_value(), extra in 0usize..64) {
        let v = deepen(v, extra);
        prop_assert!(bounds::check(&v, MAX_DEPTH).is_ok());
        let e = Event::new(
            RunId::new(),
            1,
            std::time::SystemTime::UNIX_EPOCH,
            EventKind::Node(
                NodeEvent::new("n", None, 1, NodeState::Running, NodeState::Succeeded)
                    .with_output(v),
            ),
        );
        let text = serde_json::to_string(&e).unwrap();
        prop_assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
    }
}

/// Damage to write into a column: random text, JSON of the wrong shape, deep nesting.
fn damage() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,64}",
        small_value().prop_map(|v| v.to_string()),
        (128usize..5_000).prop_map(deep_text),
        Just(String::new()),
    ]
}

/// An SQL string literal (as hex, so that any text survives the `sqlite3` tool).
#[cfg(feature = "sqlite")]
fn sql_text(s: &str) -> String {
    let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
    format!("CAST(X'{hex}' AS TEXT)")
}

/// Writes random damage into the stored runs (inputs), events (kind) and executions
/// (state, output, error) of three runs in an SQLite file; every read then gives the
/// record or `StoreError::BadRow` naming the run, and the list names each damaged run
/// and lists the others.
#[cfg(feature = "sqlite")]
fn damaged_sqlite(case: u32, targets: &[(u8, usize, String)]) -> Result<(), TestCaseError> {
    use dagforge::store::SqliteStore;

    struct Answer;
    impl Job for Answer {
        type Input = Value;
        type Output = Value;
        const NAME: &'static str = "answer";
        async fn run(&self, _: &JobContext, _: Value) -> Result<Value, JobError> {
            Ok(json!({"answer": [42]}))
        }
    }

    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "decoders-{}-{case}.db",
        RunId::new().to_uuid_string()
    ));
    let url = format!("sqlite://{}", path.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut wf = Workflow::builder("damaged");
    let p = wf.param_or::<Value>("p", json!(null));
    wf.add("a", Answer).input_from(p);
    let wf = wf.build().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let ids: Vec<RunId> = rt.block_on(async {
        let store = SqliteStore::open(&url).await.unwrap();
        let engine = Engine::builder().store(store).build();
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(engine.run(&wf, json!({ "p": i })).await.unwrap().id);
        }
        ids
    });
    let mut sql = String::new();
    // The text each run's inputs column was last overwritten with.
    let mut damaged = std::collections::BTreeMap::new();
    for (column, run, text) in targets {
        let id = ids[run % ids.len()];
        let pk = format!("(SELECT pk FROM runs WHERE id = '{}')", id.to_uuid_string());
        let value = sql_text(text);
        sql.push_str(&match column % 5 {
            0 => format!(
                "UPDATE runs SET inputs = {value} WHERE id = '{}';",
                id.to_uuid_string()
            ),
            1 => format!("UPDATE events SET kind = {value} WHERE run_pk = {pk} AND seq = 1;"),
            2 => format!(
                "UPDATE executions SET output = {value} WHERE run_pk = {pk} AND output IS NOT NULL;"
            ),
            3 => format!("UPDATE executions SET error = {value} WHERE run_pk = {pk};"),
            _ => format!("UPDATE executions SET state = {value} WHERE run_pk = {pk};"),
        });
        if column % 5 == 0 {
            damaged.insert(id, text.clone());
        }
    }
    let out = std::process::Command::new("sqlite3")
        .arg(&path)
        .arg(&sql)
        .output()
        .expect("the sqlite3 tool is installed");
    prop_assert!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    rt.block_on(async {
        let store = SqliteStore::open(&url).await.unwrap();
        let typed = |r: Result<(), StoreError>, id: RunId| -> Result<(), TestCaseError> {
            match r {
                Ok(()) => Ok(()),
                Err(StoreError::BadRow(b)) => {
                    prop_assert_eq!(b.run, Some(id.to_string()));
                    Ok(())
                }
                Err(e) => Err(TestCaseError::fail(format!("untyped error: {e}"))),
            }
        };
        let page = store.list_runs(&RunQuery::new()).await.unwrap();
        prop_assert_eq!(page.items.len() + page.bad.len(), 3);
        let bad: std::collections::BTreeSet<String> =
            page.bad.iter().filter_map(|b| b.run.clone()).collect();
        for id in &ids {
            // Inputs that are not JSON make the run a bad row; any JSON still reads.
            let unreadable = damaged
                .get(id)
                .is_some_and(|t| serde_json::from_str::<Value>(t).is_err());
            prop_assert_eq!(bad.contains(&id.to_string()), unreadable, "{}", id);
            typed(store.get_run(*id).await.map(drop), *id)?;
            typed(store.events(*id, 0, 1_000).await.map(drop), *id)?;
            typed(store.executions(*id).await.map(drop), *id)?;
        }
        store.close().await;
        Ok(())
    })?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}

#[cfg(feature = "sqlite")]
proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn damaged_sqlite_rows_read_as_typed_errors_by_run(
        case in any::<u32>(),
        targets in proptest::collection::vec((any::<u8>(), any::<usize>(), damage()), 1..6),
    ) {
        damaged_sqlite(case, &targets)?;
    }
}
