//! A [`DagSpec`] to a [`Workflow`]: through the builder's by-name API, then every
//! problem located in the data, then the chain length bounded.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::{DagError, DagProblem, DagSpec, DataItem};
use crate::bounds;
use crate::error::validation::ValidationError;
use crate::registry::Registry;
use crate::workflow::builder::Source;
use crate::workflow::draft::{SelDef, SourceDef, Target};
use crate::workflow::{BindingSpec, Workflow};

/// The source a binding of the data names, or why it cannot be one.
fn source(b: &BindingSpec) -> Result<Source<Value>, String> {
    Ok(Source::new(match b {
        BindingSpec::Output { node, field, path } => SourceDef::Output {
            node: Target::Name(node.clone()),
            sel: match (field, path) {
                (None, None) => SelDef::Whole,
                (Some(f), None) => SelDef::Field(f.clone()),
                (None, Some(p)) => SelDef::Path(p.clone()),
                (Some(_), Some(_)) => {
                    return Err("give `field` or `path`, not both".to_owned());
                }
            },
        },
        BindingSpec::Param { name } => SourceDef::Param(name.clone()),
        BindingSpec::Const { value } => SourceDef::Const(Ok(value.clone())),
        BindingSpec::Parents => SourceDef::Parents,
    }))
}

/// A constant nested deeper than a run accepts, as the problem to report.
fn too_deep(node: &str, what: &str, v: &Value) -> Option<ValidationError> {
    let depth = bounds::depth(v);
    (depth > bounds::MAX_DEPTH).then(|| ValidationError::InvalidValue {
        node: node.to_owned(),
        what: what.to_owned(),
        reason: format!(
            "nested {depth} levels deep, more than the limit of {}",
            bounds::MAX_DEPTH
        ),
    })
}

pub(super) fn build(spec: &DagSpec, jobs: &Registry) -> Result<Workflow, DagError> {
    let mut wf = Workflow::builder(spec.name.as_str());
    wf.version(spec.version.as_str());
    for p in &spec.params {
        match &p.default {
            Some(v) => drop(wf.param_or::<Value>(&p.name, v.clone())),
            None => drop(wf.param::<Value>(&p.name)),
        }
    }
    let mut found: Vec<ValidationError> = Vec::new();
    for n in &spec.nodes {
        let id = n.id.as_str();
        let mut node = wf.node_named(id, &n.job, jobs);
        if let Some(l) = &n.label {
            node.label(l.as_str());
        }
        if let Some(v) = &n.input {
            found.extend(too_deep(id, "input", v));
            node.input(v.clone());
        }
        if let Some(b) = &n.input_from {
            if n.input.is_some() {
                found.push(ValidationError::InvalidValue {
                    node: id.to_owned(),
                    what: "input".to_owned(),
                    reason: "give `input` or `input_from`, not both".to_owned(),
                });
            }
            match source(b) {
                Ok(s) => drop(node.input_from(s)),
                Err(reason) => found.push(invalid(id, "input_from", reason)),
            }
        }
        for (field, b) in &n.bind {
            let what = format!("input field `{field}`");
            if let BindingSpec::Const { value } = b {
                found.extend(too_deep(id, &what, value));
            }
            match source(b) {
                Ok(s) => drop(node.bind(field, s)),
                Err(reason) => found.push(invalid(id, &what, reason)),
            }
        }
        node.after_all(&n.after);
        if let Some(f) = &n.each {
            match source(&f.items) {
                Ok(s) => drop(node.each(f.field.as_deref(), s)),
                Err(reason) => found.push(invalid(id, "fan-out", reason)),
            }
        }
        for c in &n.when {
            match &c.on {
                Some(on) => node.when(on, &c.predicate),
                None => node.when_all(&c.predicate),
            };
        }
        if let Some(t) = n.trigger {
            node.trigger(t);
        }
        if let Some(r) = n.retries {
            node.retries(r);
        }
        if let Some(ms) = n.timeout_ms {
            node.timeout(Duration::from_millis(ms));
        }
        if let Some(p) = n.priority {
            node.priority(p);
        }
        if let Some(c) = n.concurrency {
            node.concurrency(c);
        }
    }
    for e in &spec.edges {
        wf.edge(e.from.as_str(), e.to.as_str());
    }
    wf.errors.extend(found);
    let workflow = wf.build().map_err(|errs| DagError::Invalid {
        workflow: errs.workflow().to_owned(),
        problems: locate(spec, errs.errors()),
    })?;
    check_depth(spec, &workflow)?;
    Ok(workflow)
}

fn invalid(node: &str, what: &str, reason: String) -> ValidationError {
    ValidationError::InvalidValue {
        node: node.to_owned(),
        what: what.to_owned(),
        reason,
    }
}

/// Each problem with the node or edge of the data it is about.
fn locate(spec: &DagSpec, errors: &[ValidationError]) -> Vec<DagProblem> {
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(spec.nodes.len());
    for (i, n) in spec.nodes.iter().enumerate() {
        first.entry(n.id.as_str()).or_insert(i);
    }
    let node = |id: &str| first.get(id).map(|&i| spec.item(true, i));
    errors
        .iter()
        .map(|e| {
            use ValidationError as V;
            let item = match e {
                // The second node with the id is the one to fix.
                V::DuplicateNode { node: id } => first.get(id.as_str()).and_then(|&f| {
                    let again = spec.nodes.iter().skip(f + 1).position(|n| &n.id == id)?;
                    Some(spec.item(true, f + 1 + again))
                }),
                V::DanglingEdge { from, to, .. } => spec
                    .edges
                    .iter()
                    .position(|x| &x.from == from && &x.to == to)
                    .map(|i| spec.item(false, i)),
                V::Cycle { path } => path.first().and_then(|id| node(id)),
                V::InvalidNodeId { node: id, .. }
                | V::UnknownDependency { node: id, .. }
                | V::MissingSource { node: id, .. }
                | V::ForeignHandle { node: id, .. }
                | V::InvalidPath { node: id, .. }
                | V::InvalidCondition { node: id, .. }
                | V::InvalidValue { node: id, .. }
                | V::MultipleFanOuts { node: id, .. }
                | V::UnknownParam { node: id, .. }
                | V::UnknownJob { node: id, .. }
                | V::InputCollision { node: id, .. }
                | V::InputNotObject { node: id, .. } => node(id),
                _ => None,
            };
            DagProblem {
                error: e.clone(),
                item,
            }
        })
        .collect()
}

/// Refuses a chain of dependent nodes longer than the limit (Kahn's order over the
/// compiled graph, no recursion).
fn check_depth(spec: &DagSpec, wf: &Workflow) -> Result<(), DagError> {
    let plan = &wf.plan;
    let n = plan.nodes.len();
    let limit = spec.limits.max_depth;
    if n <= limit {
        return Ok(());
    }
    let mut depth = vec![1usize; n];
    let mut waiting: Vec<usize> = (0..n as u32).map(|i| plan.parents(i).len()).collect();
    let mut ready: Vec<u32> = plan.roots.clone();
    while let Some(u) = ready.pop() {
        let d = depth[u as usize];
        if d > limit {
            let item = spec.item(true, u as usize);
            return Err(DagError::TooDeep {
                depth: d,
                node: plan.nodes[u as usize].id.to_string(),
                line: match item {
                    DataItem::Node { line, .. } => line,
                    DataItem::Edge { .. } => None,
                },
                limit,
            });
        }
        for &c in plan.children(u) {
            let c = c as usize;
            depth[c] = depth[c].max(d + 1);
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push(c as u32);
            }
        }
    }
    Ok(())
}
