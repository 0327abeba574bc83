use super::*;
use proptest::prelude::*;
use serde_json::json;

/// A value `n` arrays deep, built (and, through `dispose`, dropped) without recursion.
fn nested(n: usize) -> Value {
    let mut v = Value::Null;
    for _ in 0..n {
        v = Value::Array(vec![v]);
    }
    v
}

fn reference_depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(reference_depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(reference_depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[test]
fn depth_counts_arrays_and_objects() {
    assert_eq!(depth(&json!(1)), 0);
    assert_eq!(depth(&json!([])), 1);
    assert_eq!(depth(&json!({})), 1);
    assert_eq!(depth(&json!([{"a": [1, {"b": 2}]}, 3])), 4);
}

#[test]
fn a_hundred_thousand_levels_are_measured_refused_and_dropped_without_overflow() {
    let v = nested(100_000);
    assert_eq!(depth(&v), 100_000);
    let e = admit(v, MAX_DEPTH).unwrap_err();
    assert_eq!(
        e.to_string(),
        "nested 100000 levels deep, more than the limit of 64 levels"
    );
}

#[test]
fn the_limit_itself_is_accepted_and_readable_back() {
    let v = admit(nested(MAX_DEPTH), MAX_DEPTH).unwrap();
    let text = serde_json::to_string(&v).unwrap();
    // Wrapped twice more (an event, the worker protocol), it still parses.
    let wrapped = format!("{{\"a\":{{\"b\":{text}}}}}");
    serde_json::from_str::<Value>(&wrapped).unwrap();
    assert!(admit(nested(MAX_DEPTH + 1), MAX_DEPTH).is_err());
}

#[test]
fn to_value_stops_at_the_limit_instead_of_overflowing() {
    let v = nested(100_000);
    match to_value(&v, MAX_DEPTH) {
        Err(EncodeError::TooDeep(e)) => {
            assert!(e.at_least);
            assert_eq!(e.depth, MAX_DEPTH + 1);
        }
        other => panic!("expected TooDeep, got {other:?}"),
    }
    dispose(v);
}

#[derive(serde::Serialize)]
enum Tree {
    Leaf,
    Node(Box<Tree>, u8),
    Named { child: Box<Tree> },
    Wrap(Box<Tree>),
}

#[test]
fn to_value_counts_levels_as_serde_json_lays_them_out() {
    // {"Node": [{"Named": {"child": {"Wrap": "Leaf"}}}, 1]}: 2 + 2 + 1 levels.
    let t = Tree::Node(
        Box::new(Tree::Named {
            child: Box::new(Tree::Wrap(Box::new(Tree::Leaf))),
        }),
        1,
    );
    let v = to_value(&t, 5).unwrap();
    assert_eq!(depth(&v), 5);
    assert_eq!(v, serde_json::to_value(&t).unwrap());
    assert!(matches!(to_value(&t, 4), Err(EncodeError::TooDeep(_))));
}

#[test]
fn to_value_names_the_top_level_field_too_deep() {
    #[derive(serde::Serialize)]
    struct Inputs {
        shallow: Vec<u8>,
        deep: Value,
    }
    let deep = Inputs {
        shallow: vec![1],
        deep: nested(10),
    };
    match to_value(&deep, 5) {
        Err(EncodeError::TooDeep(e)) => assert_eq!(e.field.as_deref(), Some("deep")),
        other => panic!("expected TooDeep, got {other:?}"),
    }
    let map = json!({"a": 1, "b": nested(10), "c": [1]});
    match to_value(&map, 5) {
        Err(EncodeError::TooDeep(e)) => assert_eq!(e.field.as_deref(), Some("b")),
        other => panic!("expected TooDeep, got {other:?}"),
    }
    // A value nested in a top-level array has no field to name.
    match to_value(&nested(10), 5) {
        Err(EncodeError::TooDeep(e)) => assert_eq!(e.field, None),
        other => panic!("expected TooDeep, got {other:?}"),
    }
}

#[test]
fn to_value_keeps_json_errors() {
    let mut m = std::collections::BTreeMap::new();
    m.insert(vec![1u8], 1);
    assert!(matches!(to_value(&m, MAX_DEPTH), Err(EncodeError::Json(_))));
}

fn small_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(12, 96, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,3}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn depth_matches_a_recursive_reference(v in small_value()) {
        prop_assert_eq!(depth(&v), reference_depth(&v));
    }

    #[test]
    fn check_agrees_with_a_recursive_reference(v in small_value(), limit in 0usize..14) {
        let d = reference_depth(&v);
        match check(&v, limit) {
            Ok(()) => prop_assert!(d <= limit),
            Err(e) => {
                prop_assert!(d > limit);
                prop_assert_eq!(e.depth, d);
            }
        }
    }

    #[test]
    fn to_value_agrees_with_serde_json_and_depth(v in small_value(), limit in 0usize..14) {
        let d = reference_depth(&v);
        match to_value(&v, limit) {
            Ok(out) => {
                prop_assert!(d <= limit);
                prop_assert_eq!(out, v);
            }
            Err(EncodeError::TooDeep(_)) => prop_assert!(d > limit),
            Err(EncodeError::Json(e)) => prop_assert!(false, "{}", e),
        }
    }
}
