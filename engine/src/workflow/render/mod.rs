//! Graph export: a workflow's DAG as DOT, Mermaid, JSON or a self-contained SVG.
//!
//! Everything renders from a [`WorkflowSpec`], so a stored run (whose spec comes from
//! the store) draws exactly like a built [`Workflow`](super::Workflow). The SVG can
//! colour nodes by state, for a run:
//!
//! ```
//! use std::collections::HashMap;
//! # use dagforge::prelude::*;
//! # struct A;
//! # impl Job for A {
//! #     type Input = ();
//! #     type Output = u32;
//! #     const NAME: &'static str = "a";
//! #     async fn run(&self, _: &JobContext, _: ()) -> Result<u32, JobError> { Ok(1) }
//! # }
//! # struct B;
//! # impl Job for B {
//! #     type Input = u32;
//! #     type Output = u32;
//! #     const NAME: &'static str = "b";
//! #     async fn run(&self, _: &JobContext, x: u32) -> Result<u32, JobError> { Ok(x) }
//! # }
//! let mut wf = Workflow::builder("demo");
//! let a = wf.add("a", A).handle();
//! wf.add("b", B).input_from(a);
//! let wf = wf.build()?;
//!
//! assert!(wf.to_dot().contains("\"a\" -> \"b\""));
//! let states = HashMap::from([("a", NodeState::Succeeded), ("b", NodeState::Running)]);
//! let svg = dagforge::workflow::render::svg(&wf.spec(), Some(&states));
//! assert!(svg.starts_with("<?xml"));
//! # Ok::<(), dagforge::Error>(())
//! ```

mod dot;
pub mod grouped;
mod layout;
mod mermaid;
mod svg;

use std::collections::HashMap;

use serde::Serialize;

use super::{BindingSpec, TriggerRule, WorkflowSpec};
use crate::state::NodeState;

pub use dot::dot;
pub use mermaid::mermaid;
pub use svg::svg;

/// A workflow's graph, ready to draw: nodes, typed edges and a layered layout.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Graph {
    /// Workflow name.
    pub name: String,
    /// Workflow version.
    pub version: String,
    /// Nodes, in the workflow's insertion order.
    pub nodes: Vec<GraphNode>,
    /// Edges, upstream → downstream.
    pub edges: Vec<GraphEdge>,
}

/// A node of a [`Graph`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct GraphNode {
    /// Node id.
    pub id: String,
    /// What drawings show instead of the id, if set ([`NodeSpec::label`](super::NodeSpec::label)).
    pub label: Option<String>,
    /// The job it runs.
    pub job: String,
    /// Its layer: 0 for nodes without dependencies, otherwise one more than its
    /// deepest dependency (the longest path from a root).
    pub layer: usize,
    /// Its position within the layer, left to right, after crossing reduction.
    pub order: usize,
    /// Whether it fans out (one execution per item).
    pub fan_out: bool,
    /// Its trigger rule.
    pub trigger: TriggerRule,
    /// Its conditions on all upstream outputs together (predicates that must hold for
    /// it to run); a condition on one upstream node labels that edge instead.
    pub conditions: Vec<String>,
}

/// How a downstream node depends on an upstream one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EdgeKind {
    /// The downstream node reads the upstream output (input, field, fan-out items or a
    /// condition).
    Data,
    /// Order only (`after`): no value flows.
    Order,
}

/// An edge of a [`Graph`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct GraphEdge {
    /// Upstream node id.
    pub from: String,
    /// Downstream node id.
    pub to: String,
    /// Data or order-only.
    pub kind: EdgeKind,
    /// The downstream node fans out over items taken from the upstream output.
    pub fan_out: bool,
    /// What flows or what is tested: fields, paths, `each …`, `when …`; empty when the
    /// whole output flows.
    pub label: String,
}

impl Graph {
    /// The graph of `spec`, with its layers and crossing-reduced order computed.
    pub fn from_spec(spec: &WorkflowSpec) -> Self {
        let mut nodes: Vec<GraphNode> = spec
            .nodes
            .iter()
            .map(|n| GraphNode {
                id: n.id.clone(),
                label: n.label.clone(),
                job: n.job.clone(),
                layer: 0,
                order: 0,
                fan_out: n.fan_out.is_some(),
                trigger: n.trigger,
                conditions: n
                    .conditions
                    .iter()
                    .filter(|c| c.on.is_none())
                    .map(|c| c.predicate.clone())
                    .collect(),
            })
            .collect();
        let mut edges = Vec::new();
        for n in &spec.nodes {
            for dep in &n.depends_on {
                edges.push(edge(n, dep));
            }
        }
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let pairs: Vec<(usize, usize)> = edges
            .iter()
            .filter_map(|e| Some((*index.get(e.from.as_str())?, *index.get(e.to.as_str())?)))
            .collect();
        let placed = layout::order(nodes.len(), &pairs);
        for (n, (layer, order)) in nodes.iter_mut().zip(placed) {
            n.layer = layer;
            n.order = order;
        }
        Graph {
            name: spec.name.clone(),
            version: spec.version.clone(),
            nodes,
            edges,
        }
    }

    /// The graph as pretty-printed JSON (`{name, version, nodes, edges}`).
    pub fn to_json(&self) -> String {
        // A graph of strings, numbers and unit enums always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Number of edge crossings in the layered drawing (long edges counted along their
    /// whole length).
    pub fn crossings(&self) -> usize {
        let index: HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let pairs: Vec<(usize, usize)> = self
            .edges
            .iter()
            .filter_map(|e| Some((*index.get(e.from.as_str())?, *index.get(e.to.as_str())?)))
            .collect();
        layout::Layers::build(self.nodes.len(), &pairs).crossings()
    }
}

/// Classifies the edge `dep → n` from what `n` reads of `dep`.
fn edge(n: &super::NodeSpec, dep: &str) -> GraphEdge {
    let mut labels: Vec<String> = Vec::new();
    let mut data = false;
    let mut fan_out = false;
    let narrow = |field: &Option<String>, path: &Option<String>| match (field, path) {
        (Some(f), _) => Some(format!(".{f}")),
        (None, Some(p)) => Some(p.clone()),
        (None, None) => None,
    };
    if let Some(BindingSpec::Output { node, field, path }) = &n.input
        && node == dep
    {
        data = true;
        labels.extend(narrow(field, path));
    }
    // Every upstream output flows into a binding of all of them.
    data |= matches!(n.input, Some(BindingSpec::Parents));
    for (name, b) in &n.fields {
        if matches!(b, BindingSpec::Parents) {
            data = true;
            labels.push(format!("→ {name}"));
        }
        if let BindingSpec::Output { node, field, path } = b
            && node == dep
        {
            data = true;
            match narrow(field, path) {
                Some(from) if from.trim_start_matches('.') != name => {
                    labels.push(format!("{from} → {name}"));
                }
                Some(from) => labels.push(from),
                None => labels.push(format!("→ {name}")),
            }
        }
    }
    if let Some(f) = &n.fan_out
        && let BindingSpec::Output { node, field, path } = &f.items
        && node == dep
    {
        data = true;
        fan_out = true;
        let over = narrow(field, path).unwrap_or_default();
        labels.push(format!(
            "each{}{over}",
            if over.is_empty() { "" } else { " " }
        ));
    }
    for c in &n.conditions {
        if c.on.as_deref() == Some(dep) {
            data = true;
            labels.push(format!("when {}", c.predicate));
        }
    }
    GraphEdge {
        from: dep.to_owned(),
        to: n.id.clone(),
        kind: if data {
            EdgeKind::Data
        } else {
            EdgeKind::Order
        },
        fan_out,
        label: labels.join(", "),
    }
}

/// The trigger rule's name, or `None` for the default (all succeeded).
fn trigger_label(t: TriggerRule) -> Option<&'static str> {
    match t {
        TriggerRule::AllSuccess => None,
        TriggerRule::AllDone => Some("all_done"),
        TriggerRule::OneFailed => Some("one_failed"),
        TriggerRule::NoneFailed => Some("none_failed"),
    }
}

/// What a node's drawing says besides its id and job: trigger rule and conditions
/// not tied to one upstream node.
fn node_notes(spec_node: &GraphNode) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(t) = trigger_label(spec_node.trigger) {
        notes.push(format!("trigger: {t}"));
    }
    notes
}

/// A run's node states by node id, for colouring a drawing.
pub type States<'a> = HashMap<&'a str, NodeState>;

#[cfg(test)]
mod tests;
