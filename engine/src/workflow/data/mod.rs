//! Workflows whose shape is known only at run time: a [`DagSpec`] of nodes and edges,
//! read from JSON (or any serde format) and built against a [`Registry`] of jobs.

mod build;
mod error;
mod lines;
mod pairs;

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{BindingSpec, ConditionSpec, FanOutSpec, TriggerRule, Workflow};
use crate::registry::Registry;

pub use error::{DagError, DagProblem, DataItem};
use lines::Lines;

/// A workflow as data: nodes naming registered jobs, their inputs and bindings, and
/// edges. Read it with [`DagSpec::from_json`] or [`DagSpec::from_file`] (bounded by
/// [`DagLimits`]), or deserialize it from any serde format; then
/// [`build`](DagSpec::build) it against the [`Registry`] holding its jobs.
///
/// ```
/// use dagforge::prelude::*;
///
/// #[job]
/// async fn count(word: String) -> Result<usize, JobError> {
///     Ok(word.len())
/// }
///
/// #[job]
/// async fn total(counts: std::collections::BTreeMap<String, usize>) -> Result<usize, JobError> {
///     Ok(counts.values().sum())
/// }
///
/// let spec = DagSpec::from_json(r#"{
///   "name": "words",
///   "nodes": [
///     {"id": "a", "job": "count", "input": {"word": "dag"}, "label": "count `dag`"},
///     {"id": "b", "job": "count", "input": {"word": "forge"}},
///     {"id": "sum", "job": "total", "bind": {"counts": {"from": "parents"}}}
///   ],
///   "edges": [{"from": "a", "to": "sum"}, {"from": "b", "to": "sum"}]
/// }"#)?;
/// let mut jobs = Registry::new();
/// jobs.register(Count)?.register(Total)?;
/// let wf = spec.build(&jobs)?;
/// assert!(wf.to_dot().contains("count `dag`"));
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let run = Engine::new().run(&wf, ()).await?;
/// assert_eq!(run.output::<usize>("sum")?, 8);
/// # Ok::<_, dagforge::Error>(())
/// # })?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DagSpec {
    /// The workflow's name.
    pub name: String,
    /// Its version (default `"1"`).
    #[serde(default = "first_version")]
    pub version: String,
    /// Run parameters, which bindings may read (`{"from": "param", "name": …}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<DagParam>,
    /// The nodes.
    pub nodes: Vec<DagNode>,
    /// Order-only edges by node id, besides each node's `after`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<DagEdge>,
    /// Where its nodes and edges start, when read from JSON.
    #[serde(skip)]
    lines: Lines,
    /// The limits it was read with (the chain length is checked by `build`).
    #[serde(skip)]
    limits: DagLimits,
}

fn first_version() -> String {
    "1".to_owned()
}

impl PartialEq for DagSpec {
    /// Compares the data (not where it was read from).
    fn eq(&self, other: &Self) -> bool {
        (
            &self.name,
            &self.version,
            &self.params,
            &self.nodes,
            &self.edges,
        ) == (
            &other.name,
            &other.version,
            &other.params,
            &other.nodes,
            &other.edges,
        )
    }
}

/// A run parameter of a [`DagSpec`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DagParam {
    /// Its name.
    pub name: String,
    /// Its default; without one (or with `null`) the parameter is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// A node of a [`DagSpec`]. Its input is assembled by the rules documented on
/// [`DynNode`](super::DynNode): `input` (or `input_from`) is the base, each `bind`
/// entry writes one field, the fan-out item comes last, and a field written twice is
/// an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DagNode {
    /// Its id: letters, digits, `-`, `_`, `.`.
    pub id: String,
    /// The name of the registered job it runs.
    pub job: String,
    /// What drawings show instead of the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The whole input, a constant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// The whole input, from a binding (instead of `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_from: Option<BindingSpec>,
    /// Input fields and where each comes from, in order (a JSON object).
    #[serde(default, with = "pairs", skip_serializing_if = "Vec::is_empty")]
    pub bind: Vec<(String, BindingSpec)>,
    /// Ids of the nodes it waits for (order only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// A fan-out: one execution per item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<FanOutSpec>,
    /// Conditions, all of which must hold for it to run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<ConditionSpec>,
    /// Its trigger rule (default: all upstream nodes succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerRule>,
    /// Retries after the first attempt (default: the job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Per-attempt timeout in milliseconds (default: the job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Priority (default: the job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Fan-out concurrency cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

impl DagNode {
    /// A node `id` running the job named `job`, nothing bound.
    pub fn new(id: impl Into<String>, job: impl Into<String>) -> Self {
        DagNode {
            id: id.into(),
            job: job.into(),
            label: None,
            input: None,
            input_from: None,
            bind: Vec::new(),
            after: Vec::new(),
            each: None,
            when: Vec::new(),
            trigger: None,
            retries: None,
            timeout_ms: None,
            priority: None,
            concurrency: None,
        }
    }
}

/// An order-only edge of a [`DagSpec`]: `to` waits for `from`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DagEdge {
    /// The upstream node's id.
    pub from: String,
    /// The downstream node's id.
    pub to: String,
}

impl DagEdge {
    /// An edge `from` → `to`.
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> Self {
        DagEdge {
            from: from.into(),
            to: to.into(),
        }
    }
}

/// Bounds on a workflow read from data: its size in bytes, its numbers of nodes and
/// edges (checked before the nodes are decoded), and its longest chain of dependent
/// nodes (checked by [`DagSpec::build`]).
///
/// ```
/// # use dagforge::prelude::*;
/// let limits = DagLimits::default().max_nodes(2);
/// let three = r#"{"name": "w", "nodes": [
///     {"id": "a", "job": "j"}, {"id": "b", "job": "j"}, {"id": "c", "job": "j"}]}"#;
/// let refused = limits.parse(three).unwrap_err();
/// assert!(refused.to_string().contains("more than 2 nodes"), "{refused}");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DagLimits {
    max_bytes: usize,
    max_nodes: usize,
    max_edges: usize,
    max_depth: usize,
}

impl Default for DagLimits {
    /// 16 MiB, 100,000 nodes, 1,000,000 edges, chains of 10,000 nodes.
    fn default() -> Self {
        DagLimits {
            max_bytes: 16 << 20,
            max_nodes: 100_000,
            max_edges: 1_000_000,
            max_depth: 10_000,
        }
    }
}

impl DagLimits {
    /// The largest data read, in bytes.
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The most nodes.
    pub fn max_nodes(mut self, nodes: usize) -> Self {
        self.max_nodes = nodes;
        self
    }

    /// The most edges in `edges` (each node's `after` is bounded by the size).
    pub fn max_edges(mut self, edges: usize) -> Self {
        self.max_edges = edges;
        self
    }

    /// The longest chain of dependent nodes (a root alone is 1).
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Reads a [`DagSpec`] from JSON text within these limits.
    ///
    /// # Errors
    ///
    /// [`DagError::TooLarge`], [`DagError::TooMany`], or [`DagError::Syntax`] with
    /// the line and column of what does not parse.
    pub fn parse(&self, text: &str) -> Result<DagSpec, DagError> {
        if text.len() > self.max_bytes {
            return Err(DagError::TooLarge {
                size: text.len() as u64,
                at_least: false,
                limit: self.max_bytes,
            });
        }
        let lines =
            lines::scan(text, self.max_nodes, self.max_edges).map_err(|t| DagError::TooMany {
                what: t.what,
                seen: t.seen,
                limit: if t.what == "nodes" {
                    self.max_nodes
                } else {
                    self.max_edges
                },
            })?;
        let mut spec: DagSpec = serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            DagError::Syntax {
                line: e.line(),
                column: e.column(),
                message: message.strip_suffix(&suffix).unwrap_or(&message).to_owned(),
            }
        })?;
        // Node counts past the scan (text the scan could not follow) still count.
        for (what, count, limit) in [
            ("nodes", spec.nodes.len(), self.max_nodes),
            ("edges", spec.edges.len(), self.max_edges),
        ] {
            if count > limit {
                return Err(DagError::TooMany {
                    what,
                    seen: count,
                    limit,
                });
            }
        }
        if lines.nodes.len() == spec.nodes.len() && lines.edges.len() == spec.edges.len() {
            spec.lines = lines;
        }
        spec.limits = *self;
        Ok(spec)
    }

    /// Reads a [`DagSpec`] from a JSON file within these limits, reading no more than
    /// the size limit allows.
    ///
    /// # Errors
    ///
    /// [`DagError::Read`] naming the file, or what [`parse`](DagLimits::parse)
    /// reports.
    pub fn read(&self, path: impl AsRef<Path>) -> Result<DagSpec, DagError> {
        let path = path.as_ref();
        let failed = |error| DagError::Read {
            path: path.to_owned(),
            error,
        };
        let file = std::fs::File::open(path).map_err(failed)?;
        let mut text = String::new();
        let cap = self.max_bytes as u64 + 1;
        file.take(cap).read_to_string(&mut text).map_err(failed)?;
        if text.len() as u64 >= cap {
            return Err(DagError::TooLarge {
                size: text.len() as u64,
                at_least: true,
                limit: self.max_bytes,
            });
        }
        self.parse(&text)
    }
}

impl DagSpec {
    /// An empty workflow `name` (version `"1"`) to fill in code.
    pub fn new(name: impl Into<String>) -> Self {
        DagSpec {
            name: name.into(),
            version: first_version(),
            params: Vec::new(),
            nodes: Vec::new(),
            edges: Vec::new(),
            lines: Lines::default(),
            limits: DagLimits::default(),
        }
    }

    /// Reads a spec from JSON text within the default [`DagLimits`].
    ///
    /// # Errors
    ///
    /// See [`DagLimits::parse`].
    pub fn from_json(text: &str) -> Result<DagSpec, DagError> {
        DagLimits::default().parse(text)
    }

    /// Reads a spec from a JSON file within the default [`DagLimits`].
    ///
    /// # Errors
    ///
    /// See [`DagLimits::read`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<DagSpec, DagError> {
        DagLimits::default().read(path)
    }

    /// Builds the workflow, its job names looked up in `jobs`.
    ///
    /// # Errors
    ///
    /// [`DagError::Invalid`] with every problem found (unknown jobs, duplicate ids,
    /// edges and bindings naming no node, cycles, collisions in an input, …), each
    /// with the node or edge it is about and, for data read from JSON, its line; or
    /// [`DagError::TooDeep`].
    pub fn build(&self, jobs: &Registry) -> Result<Workflow, DagError> {
        build::build(self, jobs)
    }

    /// Where `nodes[index]` or `edges[index]` starts in the JSON it was read from.
    fn item(&self, node: bool, index: usize) -> DataItem {
        if node {
            DataItem::Node {
                index,
                line: self.lines.nodes.get(index).copied(),
            }
        } else {
            DataItem::Edge {
                index,
                line: self.lines.edges.get(index).copied(),
            }
        }
    }
}
