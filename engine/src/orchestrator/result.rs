//! What a finished run reports.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorInfo};
use crate::ids::RunId;
use crate::state::{NodeState, RunState};

/// The outcome of a run: its state and every node's state, attempts, duration and
/// output or error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunResult {
    /// The run.
    pub id: RunId,
    /// The workflow's name.
    pub workflow: String,
    /// Final state.
    pub state: RunState,
    /// Wall time from start to finish.
    pub duration: Duration,
    /// Every node, in the workflow's insertion order.
    pub nodes: Vec<NodeReport>,
}

impl RunResult {
    /// Whether the run succeeded.
    pub fn is_success(&self) -> bool {
        self.state == RunState::Succeeded
    }

    /// The report of node `id`.
    pub fn node(&self, id: &str) -> Option<&NodeReport> {
        self.nodes.iter().find(|n| &*n.id == id)
    }

    /// The output of node `id`, decoded as `T`.
    pub fn output<T: DeserializeOwned>(&self, id: &str) -> Result<T, Error> {
        let node = self
            .node(id)
            .ok_or_else(|| Error::NodeNotFound(id.to_owned()))?;
        let value = node.output.clone().unwrap_or(Value::Null);
        serde_json::from_value(value).map_err(|source| Error::Output {
            node: id.to_owned(),
            ty: std::any::type_name::<T>(),
            source,
        })
    }

    /// A plain-text table: node, state, attempts, duration.
    pub fn table(&self) -> String {
        let w = self
            .nodes
            .iter()
            .map(|n| n.id.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut s = format!(
            "{:<w$}  {:<10}  {:>14}  {:>10}\n",
            "node", "state", "attempts", "duration"
        );
        for n in &self.nodes {
            let dur = n
                .duration
                .map_or_else(|| "-".to_owned(), |d| format!("{d:.1?}"));
            let attempts = if n.items.is_empty() {
                n.attempts.to_string()
            } else {
                format!("{} ({} items)", n.attempts, n.items.len())
            };
            s.push_str(&format!(
                "{:<w$}  {:<10}  {:>14}  {:>10}\n",
                n.id, n.state, attempts, dur
            ));
        }
        s.push_str(&format!(
            "run {} {} in {:.1?}",
            self.id, self.state, self.duration
        ));
        s
    }
}

/// One node of a finished run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeReport {
    /// Node id.
    pub id: Arc<str>,
    /// Job name.
    pub job: Arc<str>,
    /// Final state.
    pub state: NodeState,
    /// Attempts made (for a fan-out node: over all items).
    pub attempts: u32,
    /// From the first attempt's start to the node's end.
    pub duration: Option<Duration>,
    /// Output (for a fan-out node: the items' outputs, in item order).
    pub output: Option<Value>,
    /// The error of the last failed attempt.
    pub error: Option<ErrorInfo>,
    /// Why the node was skipped or cancelled.
    pub reason: Option<String>,
    /// Per-item reports, for a fan-out node.
    pub items: Vec<ItemReport>,
}

/// One item of a fan-out node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ItemReport {
    /// Item index.
    pub index: u32,
    /// Final state.
    pub state: NodeState,
    /// Attempts made.
    pub attempts: u32,
    /// From the first attempt's start to the item's end.
    pub duration: Option<Duration>,
    /// The error of the last failed attempt.
    pub error: Option<ErrorInfo>,
}
