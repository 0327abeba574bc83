//! What `build()` reports: every graph problem found, at once.

use std::fmt;

/// One problem found by [`WorkflowBuilder::build`](crate::WorkflowBuilder::build).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// Two nodes share an id.
    #[error("duplicate node id `{node}`")]
    DuplicateNode {
        /// The repeated id.
        node: String,
    },
    /// A node id is empty or contains characters other than letters, digits, `-`, `_`, `.`.
    #[error("node id `{node}` is invalid: {reason}")]
    InvalidNodeId {
        /// The id.
        node: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A node depends on a node that does not exist.
    #[error("node `{node}` depends on unknown node `{dependency}`")]
    UnknownDependency {
        /// The dependent node.
        node: String,
        /// The missing dependency.
        dependency: String,
    },
    /// An input binding, fan-out or condition refers to a node that does not exist.
    #[error("node `{node}`: {what} refers to unknown node `{source_node}`")]
    MissingSource {
        /// The node with the binding.
        node: String,
        /// Which binding (`input field \`x\``, `fan-out`, `condition`, `input`).
        what: String,
        /// The missing node.
        source_node: String,
    },
    /// A handle from another workflow builder was used.
    #[error("node `{node}`: {what} uses a node handle from another workflow")]
    ForeignHandle {
        /// The node with the binding.
        node: String,
        /// Which binding.
        what: String,
    },
    /// The dependencies form a cycle; `path` lists it, first node repeated at the end.
    #[error("cycle: {}", path.join(" → "))]
    Cycle {
        /// The nodes of the cycle.
        path: Vec<String>,
    },
    /// A JSONPath does not parse.
    #[error("node `{node}`: {what}: invalid JSONPath `{path}`: {reason}")]
    InvalidPath {
        /// The node.
        node: String,
        /// Which binding.
        what: String,
        /// The path.
        path: String,
        /// The parser's message.
        reason: String,
    },
    /// A condition does not parse.
    #[error("node `{node}`: invalid condition `{condition}`: {reason}")]
    InvalidCondition {
        /// The node.
        node: String,
        /// The condition.
        condition: String,
        /// Why.
        reason: String,
    },
    /// A constant input could not be encoded as JSON.
    #[error("node `{node}`: {what}: value cannot be encoded as JSON: {reason}")]
    InvalidValue {
        /// The node.
        node: String,
        /// Which input.
        what: String,
        /// The encoder's message.
        reason: String,
    },
    /// A node has more than one fan-out.
    #[error("node `{node}` has {count} fan-outs; a node fans out over at most one list")]
    MultipleFanOuts {
        /// The node.
        node: String,
        /// How many were declared.
        count: usize,
    },
    /// A node uses a run parameter that the workflow does not declare.
    #[error("node `{node}` uses undeclared parameter `{param}`")]
    UnknownParam {
        /// The node.
        node: String,
        /// The parameter.
        param: String,
    },
    /// A parameter declaration is wrong.
    #[error("parameter `{name}`: {reason}")]
    Param {
        /// The parameter.
        name: String,
        /// Why.
        reason: String,
    },
    /// The workflow has no nodes.
    #[error("the workflow has no nodes")]
    Empty,
    /// A node names a job that the registry it was built with does not hold.
    #[error("node `{node}` runs unknown job `{job}`")]
    UnknownJob {
        /// The node.
        node: String,
        /// The job name.
        job: String,
    },
    /// An edge added by node ids names a node that does not exist.
    #[error("edge `{from}` → `{to}`: there is no node `{missing}`")]
    DanglingEdge {
        /// The upstream end.
        from: String,
        /// The downstream end.
        to: String,
        /// The end that names no node.
        missing: String,
    },
    /// Two sources write the same input field of a node (see the merge rules in
    /// [`WorkflowBuilder`](crate::WorkflowBuilder)).
    #[error("node `{node}`: input field `{field}` is set by both {first} and {second}")]
    InputCollision {
        /// The node.
        node: String,
        /// The field written twice.
        field: String,
        /// What wrote it first (for example `the constant input`).
        first: String,
        /// What wrote it again.
        second: String,
    },
    /// A node's constant input is not an object (nor `null`) but fields are bound into
    /// it.
    #[error(
        "node `{node}`: the constant input is a {kind}, so input field `{field}` cannot be bound into it"
    )]
    InputNotObject {
        /// The node.
        node: String,
        /// The constant's JSON type (`number`, `array`, …).
        kind: &'static str,
        /// The first field bound into it.
        field: String,
    },
}

/// Every problem found in a workflow definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationErrors {
    pub(crate) workflow: String,
    pub(crate) errors: Vec<ValidationError>,
}

impl ValidationErrors {
    /// The problems, in the order they were found.
    pub fn errors(&self) -> &[ValidationError] {
        &self.errors
    }

    /// The workflow's name.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "workflow `{}` is invalid ({n} problem{}):",
            self.workflow,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}
