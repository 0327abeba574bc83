//! The collisions `build()` reports in how a node's input is assembled: one field
//! written twice, or fields bound into a constant that is not an object (the rules are
//! documented on [`DynNode`](super::DynNode)).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::draft::{NodeDef, SelDef, SourceDef, Target};
use super::plan::kind;
use crate::error::validation::ValidationError;

/// Fields per node from which duplicates are found with a set rather than by pairs.
const PAIRWISE: usize = 16;

/// Checks the input of `n`, adding what collides to `errors`. `ids` names the nodes
/// behind typed handles. Allocates nothing unless something collides (or the node has
/// more than [`PAIRWISE`] fields).
pub(crate) fn check(n: &NodeDef, ids: &[Arc<str>], errors: &mut Vec<ValidationError>) {
    let fan_field = n.fan_outs.first().and_then(|f| f.field.as_deref());
    let constant = match &n.whole {
        Some(SourceDef::Const(Ok(v))) => Some(v),
        _ => None,
    };
    if n.fields.is_empty() && (fan_field.is_none() || constant.is_none()) {
        return; // the common case: nothing that could collide
    }
    let fan = n.fields.len();
    // Writer `i`: field binding `i`, or the fan-out item for `i == fan`.
    let field = |i: usize| {
        if i < fan {
            Some(n.fields[i].0.as_str())
        } else {
            fan_field
        }
    };
    let what = |i: usize| {
        if i < fan {
            describe(&n.fields[i].1, ids)
        } else {
            "the fan-out item".to_owned()
        }
    };
    let mut report = |field: &str, first: String, second: String| {
        errors.push(ValidationError::InputCollision {
            node: n.id.clone(),
            field: field.to_owned(),
            first,
            second,
        });
    };
    let keys = match constant {
        Some(Value::Object(m)) => Some(m),
        Some(Value::Null) | None => None,
        Some(other) => {
            if let Some(f) = (0..=fan).find_map(field) {
                errors.push(ValidationError::InputNotObject {
                    node: n.id.clone(),
                    kind: kind(other),
                    field: f.to_owned(),
                });
            }
            return;
        }
    };
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    for i in 0..=fan {
        let Some(f) = field(i) else { continue };
        if keys.is_some_and(|m| m.contains_key(f)) {
            report(f, "the constant input".to_owned(), what(i));
            continue;
        }
        let earlier = if fan < PAIRWISE {
            (0..i).find(|&j| field(j) == Some(f))
        } else {
            let e = first_of.get(f).copied();
            first_of.entry(f).or_insert(i);
            e
        };
        if let Some(j) = earlier {
            report(f, what(j), what(i));
        }
    }
}

/// What a source is, for a collision's message.
fn describe(s: &SourceDef, ids: &[Arc<str>]) -> String {
    match s {
        SourceDef::Const(_) => "a constant".to_owned(),
        SourceDef::Param(p) => format!("parameter `{p}`"),
        SourceDef::Parents => "the upstream outputs".to_owned(),
        SourceDef::Output { node, sel } => {
            let node = match node {
                Target::Name(n) => format!("`{n}`"),
                Target::Handle { idx, .. } => ids
                    .get(*idx as usize)
                    .map_or_else(|| "an upstream node".to_owned(), |id| format!("`{id}`")),
            };
            match sel {
                SelDef::Whole => format!("the output of {node}"),
                SelDef::Field(f) => format!("field `{f}` of {node}"),
                SelDef::Path(p) => format!("{node} at `{p}`"),
            }
        }
    }
}
