//! `build()` rejects bad graphs and reports every problem at once, naming nodes.

use dagforge::prelude::*;
use dagforge::workflow::ValidationError;

use crate::common::*;

fn errors(b: dagforge::WorkflowBuilder) -> Vec<ValidationError> {
    b.build().expect_err("must be invalid").errors().to_vec()
}

#[test]
fn cycle_reports_its_path() {
    let mut wf = Workflow::builder("cyclic");
    wf.add("a", Noop).after_named("c");
    wf.add("b", Noop).after_named("a");
    wf.add("c", Noop).after_named("b");
    wf.add("d", Noop).after_named("a");
    let errs = errors(wf);
    assert_eq!(
        errs,
        vec![ValidationError::Cycle {
            path: vec!["a".into(), "b".into(), "c".into(), "a".into()]
        }]
    );
    assert_eq!(errs[0].to_string(), "cycle: a → b → c → a");
}

#[test]
fn self_dependency_is_a_cycle() {
    let mut wf = Workflow::builder("selfish");
    wf.add("a", Noop).after_named("a");
    assert_eq!(
        errors(wf),
        vec![ValidationError::Cycle {
            path: vec!["a".into(), "a".into()]
        }]
    );
}

#[test]
fn two_disjoint_cycles_are_both_reported() {
    let mut wf = Workflow::builder("two");
    wf.add("a", Noop).after_named("b");
    wf.add("b", Noop).after_named("a");
    wf.add("x", Noop).after_named("y");
    wf.add("y", Noop).after_named("x");
    let errs = errors(wf);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter()
            .all(|e| matches!(e, ValidationError::Cycle { .. }))
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut wf = Workflow::builder("broken");
    let a = wf.add("a", Range(3)).handle();
    wf.add("a", Noop); // duplicate id
    wf.add("b", Noop).after_named("ghost"); // unknown dependency
    wf.add("c", Echo).bind_output("x", "nowhere", None); // binding to a missing node
    wf.add("d", Square).each_input(a.each_at::<u32>("$[")); // bad JSONPath
    wf.add("e", Noop).when_named("a", "$.count >"); // bad condition
    wf.add("bad id!", Noop);
    let err = wf.build().unwrap_err();
    let errs = err.errors();
    assert!(
        errs.contains(&ValidationError::DuplicateNode { node: "a".into() }),
        "{err}"
    );
    assert!(errs.contains(&ValidationError::UnknownDependency {
        node: "b".into(),
        dependency: "ghost".into()
    }));
    assert!(errs.contains(&ValidationError::MissingSource {
        node: "c".into(),
        what: "input field `x`".into(),
        source_node: "nowhere".into()
    }));
    assert!(errs.iter().any(|e| matches!(e, ValidationError::InvalidPath { node, path, .. } if node == "d" && path == "$[")));
    assert!(
        errs.iter()
            .any(|e| matches!(e, ValidationError::InvalidCondition { node, .. } if node == "e"))
    );
    assert!(
        errs.iter()
            .any(|e| matches!(e, ValidationError::InvalidNodeId { node, .. } if node == "bad id!"))
    );
    assert_eq!(errs.len(), 6, "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("workflow `broken` is invalid (6 problems):"),
        "{text}"
    );
    assert!(
        text.contains("node `b` depends on unknown node `ghost`"),
        "{text}"
    );
}

#[test]
fn handles_from_another_builder_are_rejected() {
    let mut other = Workflow::builder("other");
    let foreign = other.add("x", Noop).handle();
    let mut wf = Workflow::builder("mine");
    wf.add("a", Noop).after(&foreign);
    assert!(matches!(
        &errors(wf)[..],
        [ValidationError::ForeignHandle { node, .. }] if node == "a"
    ));
}

#[test]
fn one_fan_out_per_node() {
    let mut wf = Workflow::builder("fans");
    let r = wf.add("r", Range(2)).handle();
    wf.add("s", Square).each_input(r).each_input(r);
    assert_eq!(
        errors(wf),
        vec![ValidationError::MultipleFanOuts {
            node: "s".into(),
            count: 2
        }]
    );
}

#[test]
fn empty_workflow_is_rejected() {
    assert_eq!(
        errors(Workflow::builder("empty")),
        vec![ValidationError::Empty]
    );
}

#[test]
fn valid_graph_exposes_structure() {
    let mut wf = Workflow::builder("ok");
    let a = wf.add("a", Noop).handle();
    let b = wf.add("b", Noop).after(&a).handle();
    wf.add("c", Noop).after(&a).after(&b).after(&b);
    let wf = wf.build().unwrap();
    assert_eq!(wf.len(), 3);
    assert_eq!(wf.edge_count(), 3, "duplicate edges are merged");
    assert_eq!(wf.dependencies("c").unwrap(), vec!["a", "b"]);
    assert_eq!(wf.topological_order(), vec!["a", "b", "c"]);
    let spec = wf.spec();
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        json["nodes"][2]["depends_on"],
        serde_json::json!(["a", "b"])
    );
}

#[test]
fn very_long_cycle_is_found_without_overflowing_the_stack() {
    let n = 50_000;
    let mut wf = Workflow::builder("long-cycle");
    for i in 0..n {
        wf.add(format!("n{i}"), Noop)
            .after_named(&format!("n{}", (i + 1) % n));
    }
    let errs = errors(wf);
    match &errs[..] {
        [ValidationError::Cycle { path }] => {
            assert_eq!(path.len(), n + 1);
            assert_eq!(path.first(), path.last());
        }
        other => panic!("{other:?}"),
    }
}
