use std::collections::HashMap;

use serde_json::json;

use super::*;
use crate::workflow::WorkflowSpec;

/// A node as the spec stores it, with only what the renderers read filled in.
fn node(id: &str, job: &str, deps: &[&str], extra: &serde_json::Value) -> serde_json::Value {
    let mut n = json!({
        "id": id, "job": job, "depends_on": deps, "input": null, "fields": [],
        "fan_out": null, "conditions": [], "trigger": "all_success", "retries": 0,
        "backoff": {"fixed": {"delay_ms": 0}}, "timeout_ms": null, "priority": 0,
        "concurrency": null
    });
    if let (Some(n), Some(extra)) = (n.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            n.insert(k.clone(), v.clone());
        }
    }
    n
}

fn spec(nodes: Vec<serde_json::Value>) -> WorkflowSpec {
    let backoff = serde_json::to_value(crate::job::Backoff::default()).unwrap();
    let nodes: Vec<_> = nodes
        .into_iter()
        .map(|mut n| {
            n["backoff"] = backoff.clone();
            n
        })
        .collect();
    serde_json::from_value(json!({"name": "demo", "version": "1", "params": [], "nodes": nodes}))
        .unwrap()
}

/// a → b (data, whole), a → c (fan-out over `.items`), b → d (order only),
/// c → d (condition), d runs when all are done.
fn small() -> WorkflowSpec {
    spec(vec![
        node("a", "load", &[], &json!({})),
        node(
            "b",
            "check",
            &["a"],
            &json!({"input": {"from": "output", "node": "a", "field": null, "path": null}}),
        ),
        node(
            "c",
            "work",
            &["a"],
            &json!({"fan_out": {"field": null, "items": {"from": "output", "node": "a", "field": "items", "path": null}}}),
        ),
        node(
            "d",
            "report",
            &["b", "c"],
            &json!({"conditions": [{"on": "c", "predicate": "$.ok == true"}], "trigger": "all_done"}),
        ),
    ])
}

/// Parses `doc` as XML, failing on any error (mismatched tags, bad entities, bad
/// characters), and returns the number of elements.
fn check_xml(doc: &str) -> usize {
    let mut reader = quick_xml::Reader::from_str(doc);
    let mut elements = 0;
    let mut depth = 0i32;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Start(e)) => {
                elements += 1;
                depth += 1;
                for a in e.attributes() {
                    let a = a.unwrap_or_else(|err| panic!("bad attribute: {err}\n{doc}"));
                    a.unescape_value()
                        .unwrap_or_else(|err| panic!("bad attribute value: {err}\n{doc}"));
                }
            }
            Ok(quick_xml::events::Event::Empty(e)) => {
                elements += 1;
                for a in e.attributes() {
                    let a = a.unwrap_or_else(|err| panic!("bad attribute: {err}\n{doc}"));
                    a.unescape_value()
                        .unwrap_or_else(|err| panic!("bad attribute value: {err}\n{doc}"));
                }
            }
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Text(t)) => {
                t.decode()
                    .unwrap_or_else(|err| panic!("bad text: {err}\n{doc}"));
                let raw = String::from_utf8_lossy(&t);
                quick_xml::escape::unescape(&raw)
                    .unwrap_or_else(|err| panic!("bad text escape: {err}\n{doc}"));
            }
            Ok(_) => {}
            Err(e) => panic!("invalid XML at {}: {e}\n{doc}", reader.buffer_position()),
        }
    }
    assert_eq!(depth, 0, "unclosed elements\n{doc}");
    elements
}

#[test]
fn edges_are_classified() {
    let g = Graph::from_spec(&small());
    let e = |from: &str, to: &str| {
        g.edges
            .iter()
            .find(|e| e.from == from && e.to == to)
            .unwrap()
            .clone()
    };
    assert_eq!(e("a", "b").kind, EdgeKind::Data);
    assert_eq!(e("a", "b").label, "");
    assert!(e("a", "c").fan_out);
    assert_eq!(e("a", "c").label, "each .items");
    assert_eq!(e("b", "d").kind, EdgeKind::Order);
    assert_eq!(e("c", "d").kind, EdgeKind::Data);
    assert_eq!(e("c", "d").label, "when $.ok == true");
}

#[test]
fn layers_are_longest_paths() {
    // a → b → c and a → c: c sits below b, not beside it.
    let s = spec(vec![
        node("a", "j", &[], &json!({})),
        node("b", "j", &["a"], &json!({})),
        node("c", "j", &["a", "b"], &json!({})),
        node("x", "j", &[], &json!({})),
    ]);
    let g = Graph::from_spec(&s);
    let layer: HashMap<&str, usize> = g.nodes.iter().map(|n| (&*n.id, n.layer)).collect();
    assert_eq!(layer["a"], 0);
    assert_eq!(layer["b"], 1);
    assert_eq!(layer["c"], 2);
    assert_eq!(layer["x"], 0);
}

#[test]
fn barycenter_ordering_removes_avoidable_crossings() {
    // Insertion order puts the children crosswise: a1→b2, a2→b1 (one crossing);
    // ordering by barycenters uncrosses them.
    let s = spec(vec![
        node("a1", "j", &[], &json!({})),
        node("a2", "j", &[], &json!({})),
        node("b1", "j", &["a2"], &json!({})),
        node("b2", "j", &["a1"], &json!({})),
        node("c1", "j", &["b2", "a2"], &json!({})),
        node("c2", "j", &["b1", "a1"], &json!({})),
    ]);
    let g = Graph::from_spec(&s);
    let order: HashMap<&str, usize> = g.nodes.iter().map(|n| (&*n.id, n.order)).collect();
    assert!(order["b2"] < order["b1"], "{order:?}");
    // The two long edges force one crossing; insertion order has more.
    assert_eq!(g.crossings(), 1);
    let edges = [(3, 0), (2, 1), (4, 3), (4, 1), (5, 2), (5, 0)].map(|(c, p)| (p, c));
    assert!(layout::Layers::unordered(6, &edges).crossings() > 1);
    let simple = spec(vec![
        node("a1", "j", &[], &json!({})),
        node("a2", "j", &[], &json!({})),
        node("b1", "j", &["a2"], &json!({})),
        node("b2", "j", &["a1"], &json!({})),
    ]);
    assert_eq!(Graph::from_spec(&simple).crossings(), 0);
}

#[test]
fn crossing_count_counts_inversions() {
    // In insertion order 0→3 and 1→2 cross once; after reduction they do not.
    assert_eq!(
        layout::Layers::unordered(4, &[(0, 3), (1, 2)]).crossings(),
        1
    );
    assert_eq!(layout::Layers::build(4, &[(0, 3), (1, 2)]).crossings(), 0);
    // K(2,2): a complete bipartite graph between two pairs always has one crossing.
    let k = layout::Layers::build(4, &[(0, 2), (0, 3), (1, 2), (1, 3)]);
    assert_eq!(k.crossings(), 1);
}

#[test]
fn long_edges_get_dummy_vertices() {
    let l = layout::Layers::build(4, &[(0, 1), (1, 2), (2, 3), (0, 3)]);
    // 0 → 3 spans layers 0..3: two dummies.
    assert_eq!(l.chains[3].len(), 4);
    assert_eq!(l.rows.len(), 4);
}

#[test]
fn dot_golden() {
    assert_eq!(
        dot(&small()),
        r#"digraph "demo" {
  graph [rankdir=TB, label="demo v1", labelloc=t];
  node [shape=box, style=rounded, fontname="Helvetica"];
  edge [fontname="Helvetica", fontsize=10];
  "a" [label="a\nload"];
  "b" [label="b\ncheck"];
  "c" [label="c\nwork", peripheries=2];
  "d" [label="d\nreport\ntrigger: all_done"];
  "a" -> "b";
  "a" -> "c" [style=bold, label="each .items"];
  "b" -> "d" [style=dashed];
  "c" -> "d" [label="when $.ok == true"];
}
"#
    );
}

#[test]
fn mermaid_golden() {
    assert_eq!(
        mermaid(&small()),
        r#"flowchart TD
  n0["<b>a</b><br/>load"]
  n1["<b>b</b><br/>check"]
  n2[["<b>c</b><br/>work"]]
  n3["<b>d</b><br/>report<br/><i>trigger: all_done</i>"]
  n0 --> n1
  n0 ==>|"each .items"| n2
  n1 -.-> n3
  n2 -->|"when $.ok == true"| n3
"#
    );
}

#[test]
fn json_lists_nodes_and_edges() {
    let v: serde_json::Value = serde_json::from_str(&Graph::from_spec(&small()).to_json()).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(v["nodes"][3]["layer"], 2);
    assert_eq!(v["edges"][1]["fan_out"], true);
    assert_eq!(v["edges"][2]["kind"], "order");
}

#[test]
fn svg_is_valid_xml() {
    let svg = svg(&small(), None);
    assert!(svg.starts_with("<?xml"));
    // 4 nodes + 4 edges at least, plus the stacked cards of the fan-out node.
    assert!(check_xml(&svg) > 20);
    assert_eq!(svg.matches("<path class=\"edge").count(), 4);
    assert!(svg.contains("marker-end=\"url(#df-arrow)\""));
    assert!(svg.contains("stroke-dasharray"));
}

#[test]
fn svg_escapes_ids_jobs_and_labels() {
    let nasty = "a<b>&\"c'\u{1}";
    let s = spec(vec![
        node(nasty, "job<&>", &[], &json!({})),
        node(
            "z",
            "j",
            &[nasty],
            &json!({"conditions": [{"on": nasty, "predicate": "$.x < 3 && $.y > \"q\""}]}),
        ),
    ]);
    let out = svg(&s, None);
    check_xml(&out);
    assert!(out.contains("a&lt;b&gt;&amp;&quot;c&apos;"));
    assert!(!out.contains('\u{1}'));
    // DOT and Mermaid quote them too.
    let d = dot(&s);
    assert!(d.contains(r#""a<b>&\"c'"#), "{d}");
    let m = mermaid(&s);
    assert!(m.contains("a#lt;b#gt;#amp;#quot;c'"), "{m}");
}

#[test]
fn svg_colours_node_states() {
    let states = HashMap::from([
        ("a", crate::NodeState::Succeeded),
        ("b", crate::NodeState::Failed),
        ("c", crate::NodeState::Running),
    ]);
    let out = svg(&small(), Some(&states));
    check_xml(&out);
    assert!(out.contains("data-state=\"failed\""));
    assert!(out.contains("#ffcdd2"));
    // A legend lists the states present, and only them.
    assert!(out.contains("class=\"legend\""));
    assert!(!out.contains(">timed_out<"));
}

#[test]
fn svg_of_an_empty_graph_is_valid() {
    check_xml(&svg(&spec(vec![]), None));
}

/// `root` → `width` nodes of job `work` (+ `odd` nodes of a job each) → `sink`.
fn fan(width: usize, odd: usize) -> WorkflowSpec {
    let mut nodes = vec![node("root", "start", &[], &json!({}))];
    let mut mids = Vec::new();
    for i in 0..width {
        let id = format!("work-{i}");
        nodes.push(node(
            &id,
            "work",
            &["root"],
            &json!({"input": {"from": "output", "node": "root", "field": null, "path": null}}),
        ));
        mids.push(id);
    }
    for i in 0..odd {
        // A job of its own: never grouped.
        let id = format!("odd-{i}");
        nodes.push(node(&id, &format!("other-{i}"), &["root"], &json!({})));
        mids.push(id);
    }
    let mids: Vec<&str> = mids.iter().map(String::as_str).collect();
    nodes.push(node("sink", "end", &mids, &json!({})));
    let mut s = spec(nodes);
    s.name = format!("fan-{width}-{odd}");
    s
}

#[test]
fn siblings_of_one_job_are_one_group_and_the_rest_stay_apart() {
    use grouped::GROUP_MIN;
    let l = grouped::layout(&fan(1000, GROUP_MIN - 1));
    // root, the group, GROUP_MIN - 1 single nodes, sink.
    assert_eq!(l.boxes.len(), 2 + 1 + GROUP_MIN - 1);
    let group = &l.boxes[l.node_box[1]];
    assert_eq!(group.members.len(), 1000);
    assert_eq!(group.label, "work-… × 1000");
    assert!(l.node_box[1..=1000].iter().all(|&b| b == l.node_box[1]));
    // Edges between boxes, each once: root → each box of the layer → sink.
    assert_eq!(l.edges.len(), 2 * GROUP_MIN);
    let into_group = l.edges.iter().find(|e| e.to == l.node_box[1]).unwrap();
    assert_eq!((into_group.count, into_group.kind), (1000, EdgeKind::Data));
    let out_of_group = l.edges.iter().find(|e| e.from == l.node_box[1]).unwrap();
    assert_eq!(
        (out_of_group.count, out_of_group.kind),
        (1000, EdgeKind::Order)
    );
}

#[test]
fn wide_layers_wrap_and_layouts_are_cached() {
    use grouped::WRAP;
    let s = fan(0, 30);
    let l = grouped::layout(&s);
    let rows: std::collections::BTreeSet<u64> = l.boxes[1..31].iter().map(|b| b.y as u64).collect();
    assert_eq!(
        rows.len(),
        30_usize.div_ceil(WRAP),
        "30 boxes in rows of {WRAP}"
    );
    assert!(
        std::sync::Arc::ptr_eq(&l, &grouped::layout(&s)),
        "computed once per version"
    );
    let other = fan(0, 31);
    assert!(!std::sync::Arc::ptr_eq(&l, &grouped::layout(&other)));
}

#[test]
fn groups_show_the_state_that_matters() {
    use grouped::{aggregate, common_prefix, counters};
    assert_eq!(aggregate(["succeeded", "failed"].into_iter()), "failed");
    assert_eq!(aggregate(["succeeded", "pending"].into_iter()), "running");
    assert_eq!(aggregate(["pending", "pending"].into_iter()), "pending");
    assert_eq!(aggregate(["succeeded", "skipped"].into_iter()), "succeeded");
    assert_eq!(aggregate(["skipped"].into_iter()), "skipped");
    assert_eq!(
        aggregate(["cancelled", "succeeded"].into_iter()),
        "cancelled"
    );
    let c = HashMap::from([("succeeded", 3), ("running", 2), ("timed_out", 1)]);
    assert_eq!(counters(&c), "✓ 3 ✗ 1 ▶ 2 · 6");
    assert_eq!(common_prefix(["s1-a", "s1-b"].into_iter()), "s1-");
    assert_eq!(common_prefix(["é1", "é2"].into_iter()), "é");
}

/// The `width` and `height` attributes of an SVG document.
fn size(doc: &str) -> (f64, f64) {
    let attr = |name: &str| -> f64 {
        let at = doc.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        doc[at..at + doc[at..].find('"').unwrap()].parse().unwrap()
    };
    (attr("width"), attr("height"))
}

#[test]
fn svg_draws_the_dashboards_layout() {
    // The boxes of the standalone SVG are the dashboard's: same places, same groups.
    let s = fan(40, 3);
    let l = grouped::layout(&s);
    let out = svg(&s, None);
    check_xml(&out);
    let boxes = out.matches("<g class=\"node\"").count() + out.matches("<g class=\"node ").count();
    assert_eq!(boxes, l.boxes.len());
    assert_eq!(out.matches("<path class=\"edge").count(), l.edges.len());
    let group = &l.boxes[l.node_box[1]];
    assert!(out.contains(&format!(
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"176.0\"",
        group.x, group.y
    )));
    assert!(out.contains("data-group=\"work\" data-nodes=\"40\""));
    assert!(out.contains("work-… × 40"));
    // A run's states: the group counts its members by state.
    let mut states: HashMap<&str, crate::NodeState> = HashMap::new();
    let ids: Vec<String> = (0..40).map(|i| format!("work-{i}")).collect();
    states.insert("root", crate::NodeState::Succeeded);
    for (i, id) in ids.iter().enumerate() {
        let st = if i < 30 {
            crate::NodeState::Succeeded
        } else {
            crate::NodeState::Running
        };
        states.insert(id, st);
    }
    let out = svg(&s, Some(&states));
    check_xml(&out);
    assert!(out.contains("✓ 30 ✗ 0 ▶ 10 · 40"), "{out}");
    assert!(out.contains("data-nodes=\"40\" data-state=\"running\""));
}

#[test]
fn svg_of_a_large_workflow_stays_readable() {
    // 2,000 nodes: a 1,000-wide layer of distinct jobs (nothing to group) and 998
    // siblings of one job. One row per layer would be ~200,000 px wide.
    let mut nodes = vec![node("src", "load", &[], &json!({}))];
    let wide: Vec<String> = (0..1000).map(|i| format!("step-<{i}>\"")).collect();
    for (i, id) in wide.iter().enumerate() {
        nodes.push(node(id, &format!("job-{i}"), &["src"], &json!({})));
    }
    for i in 0..998 {
        let dep = wide[i % wide.len()].as_str();
        nodes.push(node(&format!("map-{i}"), "map", &[dep], &json!({})));
    }
    nodes.push(node("end", "report", &["map-0", "map-1"], &json!({})));
    let s = spec(nodes);
    let out = svg(&s, None);
    let elements = check_xml(&out);
    let (w, h) = size(&out);
    let row = grouped::WRAP as f64 * (grouped::BOX_W + 22.0) + 40.0;
    assert!(w <= row, "{w} px wide");
    // 1,000 boxes in rows of 12 (84 rows), one group box, the ends.
    assert!(h < 90.0 * 68.0 + 400.0, "{h} px tall");
    assert_eq!(out.matches("<g class=\"node group").count(), 1);
    assert!(elements < 12_000, "{elements} elements");
    assert!(out.contains("step-&lt;0&gt;&quot;"));
    assert!(!out.contains("step-<0>"));
}
