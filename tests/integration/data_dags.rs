//! Workflows built from data: nodes and edges read at run time (issue 18).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use dagforge::prelude::*;
use dagforge::workflow::{DagEdge, DagError, DagNode, DataItem, ValidationError};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Input of [`Step`]: its own seed and its parents' outputs by node id.
#[derive(Serialize, Deserialize)]
struct StepIn {
    seed: u64,
    #[serde(default)]
    up: BTreeMap<String, u64>,
}

/// `seed * 31 + Σ parent outputs * (1 + position of the parent's id)`, wrapping: an
/// output that depends on every parent's value *and* its key.
struct Step;
impl Job for Step {
    type Input = StepIn;
    type Output = u64;
    const NAME: &'static str = "step";
    async fn run(&self, _: &JobContext, i: StepIn) -> Result<u64, JobError> {
        Ok(expected(i.seed, &i.up))
    }
}

const SEED: Field<StepIn, u64> = Field::new("seed");
const UP: Field<StepIn, BTreeMap<String, u64>> = Field::new("up");

fn expected(seed: u64, up: &BTreeMap<String, u64>) -> u64 {
    up.iter()
        .enumerate()
        .fold(seed.wrapping_mul(31), |acc, (k, (_, v))| {
            acc.wrapping_add(v.wrapping_mul(k as u64 + 1))
        })
}

/// Takes any input and returns it.
struct Echo;
impl Job for Echo {
    type Input = Value;
    type Output = Value;
    const NAME: &'static str = "echo";
    async fn run(&self, _: &JobContext, v: Value) -> Result<Value, JobError> {
        Ok(v)
    }
}

/// Always fails, without retries.
struct Fail;
impl Job for Fail {
    type Input = Value;
    type Output = Value;
    const NAME: &'static str = "fail";
    fn spec(&self) -> JobSpec {
        JobSpec::default().retries(0)
    }
    async fn run(&self, _: &JobContext, _: Value) -> Result<Value, JobError> {
        Err(JobError::msg("on purpose"))
    }
}

fn jobs() -> Registry {
    let mut r = Registry::new();
    r.register(Step).unwrap();
    r.register(Echo).unwrap();
    r.register(Fail).unwrap();
    r
}

/// A random DAG of `n` nodes: node `i`'s parents are up to 3 earlier nodes.
fn random_parents(n: usize, mut seed: u64) -> Vec<Vec<usize>> {
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    (0..n)
        .map(|i| {
            let mut ps: Vec<usize> = (0..next() % 4)
                .filter(|_| i > 0)
                .map(|_| next() % i)
                .collect();
            ps.sort_unstable();
            ps.dedup();
            ps
        })
        .collect()
}

/// The DAG as JSON text, one node per line; half the dependencies as `after`, half
/// as `edges`.
fn dag_json(parents: &[Vec<usize>]) -> String {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for (i, ps) in parents.iter().enumerate() {
        let mut after = Vec::new();
        for (k, p) in ps.iter().enumerate() {
            if k % 2 == 0 {
                after.push(format!("t{p:04}"));
            } else {
                edges.push(json!({"from": format!("t{p:04}"), "to": format!("t{i:04}")}));
            }
        }
        nodes.push(json!({
            "id": format!("t{i:04}"), "job": "step", "label": format!("task {i}"),
            "input": {"seed": i}, "bind": {"up": {"from": "parents"}}, "after": after,
        }));
    }
    let mut text = String::from("{\n\"name\": \"big\",\n\"nodes\": [\n");
    for (i, n) in nodes.iter().enumerate() {
        let sep = if i + 1 < nodes.len() { "," } else { "" };
        let _ = writeln!(text, "{n}{sep}");
    }
    text.push_str("],\n\"edges\": [\n");
    for (i, e) in edges.iter().enumerate() {
        let sep = if i + 1 < edges.len() { "," } else { "" };
        let _ = writeln!(text, "{e}{sep}");
    }
    text.push_str("]\n}\n");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_nodes_from_json_run_like_the_hand_built_workflow() {
    let parents = random_parents(1000, 7);
    let spec = DagSpec::from_json(&dag_json(&parents)).unwrap();
    let from_data = spec.build(&jobs()).unwrap();

    let mut wf = Workflow::builder("big");
    for (i, ps) in parents.iter().enumerate() {
        let mut node = wf
            .add(format!("t{i:04}"), Step)
            .set(SEED, i as u64)
            .bind(UP, Source::parents());
        for p in ps {
            node = node.after_named(&format!("t{p:04}"));
        }
    }
    let by_hand = wf.build().unwrap();
    assert_eq!(from_data.len(), 1000);
    assert_eq!(from_data.edge_count(), by_hand.edge_count());

    let engine = Engine::new();
    let a = engine.run(&from_data, ()).await.unwrap();
    let b = engine.run(&by_hand, ()).await.unwrap();
    assert_eq!(
        (a.state, b.state),
        (RunState::Succeeded, RunState::Succeeded)
    );
    let mut want: Vec<u64> = Vec::with_capacity(1000);
    for (i, ps) in parents.iter().enumerate() {
        let up = ps.iter().map(|&p| (format!("t{p:04}"), want[p])).collect();
        want.push(expected(i as u64, &up));
        let id = format!("t{i:04}");
        assert_eq!(a.output::<u64>(&id).unwrap(), want[i], "{id} from data");
        assert_eq!(b.output::<u64>(&id).unwrap(), want[i], "{id} by hand");
    }
}

#[tokio::test]
async fn the_parents_binding_maps_every_upstream_output_by_id() {
    let spec = DagSpec::from_json(
        r#"{"name": "fan-in", "nodes": [
            {"id": "a", "job": "echo", "input": 1},
            {"id": "b", "job": "echo", "input": {"x": [2]}},
            {"id": "bad", "job": "fail"},
            {"id": "join", "job": "echo", "trigger": "all_done",
             "input": {"threshold": 0.5}, "bind": {"inputs": {"from": "parents"}},
             "after": ["a", "b"]},
            {"id": "whole", "job": "echo", "input_from": {"from": "parents"}, "after": ["a"]}
        ], "edges": [{"from": "bad", "to": "join"}]}"#,
    )
    .unwrap();
    let wf = spec.build(&jobs()).unwrap();
    let run = Engine::new().run(&wf, ()).await.unwrap();
    assert_eq!(
        run.output::<Value>("join").unwrap(),
        json!({"threshold": 0.5, "inputs": {"a": 1, "b": {"x": [2]}, "bad": null}})
    );
    assert_eq!(run.output::<Value>("whole").unwrap(), json!({"a": 1}));
    // The spec names the binding, for the dashboard and stored runs.
    let join = wf
        .spec()
        .nodes
        .into_iter()
        .find(|n| n.id == "join")
        .unwrap();
    assert_eq!(
        serde_json::to_value(&join.fields).unwrap(),
        json!([["inputs", {"from": "parents"}]])
    );
}

fn problems(text: &str) -> Vec<(ValidationError, Option<DataItem>)> {
    let spec = DagSpec::from_json(text).unwrap();
    let err = spec.build(&jobs()).expect_err("must be invalid");
    assert!(matches!(err, DagError::Invalid { .. }), "{err}");
    err.problems()
        .iter()
        .map(|p| (p.error.clone(), p.item))
        .collect()
}

#[test]
fn collisions_in_an_input_are_build_errors_naming_node_and_field() {
    // A parent bound by its name into a field of the constant input.
    let text = r#"{"name": "c", "nodes": [
        {"id": "threshold", "job": "echo"},
        {"id": "n", "job": "echo", "input": {"threshold": 0.5},
         "bind": {"threshold": {"from": "output", "node": "threshold"}}}
    ]}"#;
    let found = problems(text);
    assert_eq!(
        found,
        vec![(
            ValidationError::InputCollision {
                node: "n".into(),
                field: "threshold".into(),
                first: "the constant input".into(),
                second: "the output of `threshold`".into(),
            },
            Some(DataItem::Node {
                index: 1,
                line: Some(3)
            })
        )]
    );
    assert_eq!(
        found[0].0.to_string(),
        "node `n`: input field `threshold` is set by both the constant input and the output of `threshold`"
    );

    // One field bound twice (a duplicate key is not dropped by the parser), the fan-out
    // item into a bound field, fields into a constant that is not an object.
    let text = r#"{"name": "c", "nodes": [
        {"id": "a", "job": "echo", "input": [1]},
        {"id": "twice", "job": "echo", "bind": {"x": {"from": "parents"}, "x": {"from": "const", "value": 1}}, "after": ["a"]},
        {"id": "item", "job": "echo", "bind": {"x": {"from": "const", "value": 1}},
         "each": {"field": "x", "items": {"from": "output", "node": "a"}}},
        {"id": "scalar", "job": "echo", "input": 3, "bind": {"y": {"from": "const", "value": 1}}}
    ]}"#;
    let found: Vec<String> = problems(text).iter().map(|(e, _)| e.to_string()).collect();
    assert_eq!(
        found,
        [
            "node `twice`: input field `x` is set by both the upstream outputs and a constant",
            "node `item`: input field `x` is set by both a constant and the fan-out item",
            "node `scalar`: the constant input is a number, so input field `y` cannot be bound into it",
        ]
    );

    // The same rules hold for the typed builder.
    let mut wf = Workflow::builder("typed");
    wf.add("s", Step).set(SEED, 1).set(SEED, 2);
    let errs = wf.build().unwrap_err();
    assert!(
        matches!(errs.errors(), [ValidationError::InputCollision { node, field, .. }] if node == "s" && field == "seed"),
        "{errs}"
    );
}

#[test]
fn labels_show_in_every_export() {
    let spec = DagSpec::from_json(
        r#"{"name": "l", "nodes": [
            {"id": "a", "job": "echo", "label": "Align sample 7"},
            {"id": "b", "job": "echo", "label": "Call variants", "after": ["a"]},
            {"id": "c", "job": "echo", "after": ["b"]}
        ]}"#,
    )
    .unwrap();
    let wf = spec.build(&jobs()).unwrap();
    for (format, text) in [
        ("dot", wf.to_dot()),
        ("mermaid", wf.to_mermaid()),
        ("json", wf.to_json()),
    ] {
        assert!(text.contains("Align sample 7"), "{format}: {text}");
        assert!(text.contains("Call variants"), "{format}: {text}");
    }
    let graph: Value = serde_json::from_str(&wf.to_json()).unwrap();
    let labels: Vec<&Value> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["label"])
        .collect();
    assert_eq!(
        labels,
        [
            &json!("Align sample 7"),
            &json!("Call variants"),
            &Value::Null
        ]
    );
    assert_eq!(wf.spec().nodes[0].label.as_deref(), Some("Align sample 7"));
    // A typed node takes a label too.
    let mut typed = Workflow::builder("typed");
    typed.add("only", Echo).label("The only one");
    assert!(typed.build().unwrap().to_dot().contains("The only one"));
}

#[test]
fn bad_data_is_reported_naming_the_culprit_and_its_line() {
    let text = r#"{
  "name": "bad",
  "nodes": [
    {"id": "a", "job": "echo", "after": ["c"]},
    {"id": "b", "job": "algn"},
    {"id": "c", "job": "echo", "after": ["a"]},
    {"id": "b", "job": "echo"}
  ],
  "edges": [
    {"from": "a", "to": "b"},
    {"from": "a", "to": "ghost"}
  ]
}"#;
    let err = DagSpec::from_json(text)
        .unwrap()
        .build(&jobs())
        .unwrap_err();
    let shown = err.to_string();
    for line in [
        "line 5 (nodes[1]): node `b` runs unknown job `algn`",
        "line 7 (nodes[3]): duplicate node id `b`",
        "line 11 (edges[1]): edge `a` → `ghost`: there is no node `ghost`",
        "line 4 (nodes[0]): cycle: a → c → a",
    ] {
        assert!(shown.contains(line), "missing {line:?} in:\n{shown}");
    }
    assert_eq!(err.problems().len(), 4, "{shown}");

    // Not the shape of a spec: the parser's line and column.
    let typo = "{\"name\": \"t\",\n \"nodes\": [{\"id\": \"a\", \"jbo\": \"echo\"}]}";
    match DagSpec::from_json(typo).unwrap_err() {
        DagError::Syntax { line, message, .. } => {
            assert_eq!(line, 2);
            assert!(message.contains("unknown field `jbo`"), "{message}");
        }
        other => panic!("{other}"),
    }
    // A dependency on a missing node names the node that has it.
    let found =
        problems(r#"{"name": "d", "nodes": [{"id": "x", "job": "echo", "after": ["nope"]}]}"#);
    assert_eq!(
        found,
        vec![(
            ValidationError::UnknownDependency {
                node: "x".into(),
                dependency: "nope".into()
            },
            Some(DataItem::Node {
                index: 0,
                line: Some(1)
            })
        )]
    );
}

#[test]
fn data_read_from_a_file_is_bounded() {
    let dir = std::env::temp_dir().join(format!("dagforge-data-dags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chain.json");
    // A chain of 50 nodes.
    let nodes: Vec<Value> = (0..50)
        .map(|i| {
            let after: Vec<String> = (i > 0).then(|| format!("n{}", i - 1)).into_iter().collect();
            json!({"id": format!("n{i}"), "job": "echo", "after": after})
        })
        .collect();
    std::fs::write(&path, json!({"name": "chain", "nodes": nodes}).to_string()).unwrap();

    assert_eq!(
        DagSpec::from_file(&path)
            .unwrap()
            .build(&jobs())
            .unwrap()
            .len(),
        50
    );
    let small = DagLimits::default().max_bytes(100).read(&path).unwrap_err();
    assert!(
        matches!(
            small,
            DagError::TooLarge {
                at_least: true,
                limit: 100,
                ..
            }
        ),
        "{small}"
    );
    let few = DagLimits::default().max_nodes(49).read(&path).unwrap_err();
    assert!(
        matches!(
            few,
            DagError::TooMany {
                what: "nodes",
                limit: 49,
                ..
            }
        ),
        "{few}"
    );
    let shallow = DagLimits::default()
        .max_depth(10)
        .read(&path)
        .unwrap()
        .build(&jobs())
        .unwrap_err();
    match &shallow {
        DagError::TooDeep {
            depth, node, limit, ..
        } => {
            assert_eq!((*depth, node.as_str(), *limit), (11, "n10", 10));
        }
        other => panic!("{other}"),
    }
    let missing = DagSpec::from_file(dir.join("missing.json")).unwrap_err();
    assert!(missing.to_string().contains("missing.json"), "{missing}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_spec_round_trips_through_serde() {
    let mut spec = DagSpec::new("rt");
    let mut a = DagNode::new("a", "echo");
    a.label = Some("first".into());
    a.input = Some(json!({"k": 1}));
    let mut b = DagNode::new("b", "echo");
    b.bind
        .push(("all".into(), dagforge::workflow::BindingSpec::Parents));
    spec.nodes = vec![a, b];
    spec.edges.push(DagEdge::new("a", "b"));
    let text = serde_json::to_string(&spec).unwrap();
    let back = DagSpec::from_json(&text).unwrap();
    assert_eq!(back, spec);
    assert_eq!(
        back.build(&jobs()).unwrap().dependencies("b"),
        Some(vec!["a"])
    );
}

/// Random DAG data: ids (sometimes repeated), jobs (sometimes unknown), edges by
/// index (sometimes past the end, sometimes backwards, so cycles happen).
#[derive(Debug, Clone)]
struct Data {
    ids: Vec<usize>,
    known: Vec<bool>,
    edges: Vec<(usize, usize)>,
}

fn data() -> impl Strategy<Value = Data> {
    (1usize..10).prop_flat_map(|n| {
        (
            proptest::collection::vec(prop_oneof![9 => Just(None), 1 => (0..n).prop_map(Some)], n),
            proptest::collection::vec(prop_oneof![12 => Just(true), 1 => Just(false)], n),
            proptest::collection::vec((0..n + 1, 0..n + 1), 0..2 * n),
        )
            .prop_map(move |(dups, known, edges)| Data {
                // A node either has its own id or repeats another's.
                ids: dups
                    .iter()
                    .enumerate()
                    .map(|(i, d)| d.unwrap_or(i))
                    .collect(),
                known,
                edges,
            })
    })
}

/// Whether the resolved edges (by id) form a cycle.
fn cyclic(n: usize, edges: &[(usize, usize)]) -> bool {
    let mut indeg = vec![0usize; n];
    for &(_, t) in edges {
        indeg[t] += 1;
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut seen = 0;
    while let Some(u) = ready.pop() {
        seen += 1;
        for &(f, t) in edges {
            if f == u {
                indeg[t] -= 1;
                if indeg[t] == 0 {
                    ready.push(t);
                }
            }
        }
    }
    seen < n
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn build_succeeds_iff_acyclic_with_known_jobs_and_resolving_edges(d in data()) {
        let n = d.ids.len();
        let mut spec = DagSpec::new("prop");
        for (i, id) in d.ids.iter().enumerate() {
            spec.nodes.push(DagNode::new(format!("n{id}"), if d.known[i] { "echo" } else { "nope" }));
        }
        for &(f, t) in &d.edges {
            spec.edges.push(DagEdge::new(format!("n{f}"), format!("n{t}")));
        }
        let distinct: HashSet<usize> = d.ids.iter().copied().collect();
        let unique = distinct.len() == n;
        let all_known = d.known.iter().all(|k| *k);
        let resolve = |id: usize| distinct.contains(&id);
        let resolving = d.edges.iter().all(|&(f, t)| resolve(f) && resolve(t));
        // Nodes by id (the first with each id), for the cycle check.
        let index: HashMap<usize, usize> = d.ids.iter().enumerate().rev().map(|(i, id)| (*id, i)).collect();
        let resolved: Vec<(usize, usize)> = d.edges.iter()
            .filter(|&&(f, t)| resolve(f) && resolve(t))
            .map(|&(f, t)| (index[&f], index[&t]))
            .collect();
        let acyclic = !cyclic(n, &resolved);
        let built = spec.build(&jobs());
        prop_assert_eq!(built.is_ok(), unique && all_known && resolving && acyclic, "{:?}", built.err());
        if let Err(e) = built {
            // Every problem is located in the data, and each culprit is named.
            prop_assert!(e.problems().iter().all(|p| p.item.is_some()), "{}", e);
            for (i, k) in d.known.iter().enumerate() {
                if !k && index[&d.ids[i]] == i {
                    let culprit = format!("node `n{}` runs unknown job `nope`", d.ids[i]);
                    prop_assert!(e.to_string().contains(&culprit), "{}", e);
                }
            }
            for &(f, t) in &d.edges {
                if !resolve(t) {
                    let culprit = format!("there is no node `n{t}`");
                    prop_assert!(e.to_string().contains(&culprit), "{} (edge {} → {})", e, f, t);
                }
            }
        }
    }
}
