//! What reading and building a workflow from data reports, located in the data.

use std::fmt;
use std::path::PathBuf;

use crate::error::validation::ValidationError;

/// Why a workflow could not be read from data or built from it. Every problem names
/// the node or edge, and for data read from JSON its line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DagError {
    /// The file could not be read.
    #[error("cannot read `{}`: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The data is larger than [`DagLimits::max_bytes`](super::DagLimits::max_bytes).
    #[error("the data is {}{size} bytes, more than the limit of {limit}", if *.at_least { "at least " } else { "" })]
    TooLarge {
        /// Its size (or how much was read before stopping, with `at_least`).
        size: u64,
        /// Whether reading stopped at `size`.
        at_least: bool,
        /// The limit.
        limit: usize,
    },
    /// The data is not JSON, or not the shape of a [`DagSpec`](super::DagSpec)
    /// (a missing or unknown field, a value of the wrong type).
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// The line (1-based).
        line: usize,
        /// The column (1-based).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// More nodes or edges than the limits allow.
    #[error("the data has more than {limit} {what} (the limit; {seen} seen)")]
    TooMany {
        /// `nodes` or `edges`.
        what: &'static str,
        /// How many were counted before stopping.
        seen: usize,
        /// The limit.
        limit: usize,
    },
    /// A chain of dependencies longer than [`DagLimits::max_depth`](super::DagLimits::max_depth).
    #[error("a chain of {depth} dependent nodes ends at node `{node}`{}, more than the limit of {limit}", on_line(.line))]
    TooDeep {
        /// The chain's length in nodes (its first node found past the limit).
        depth: usize,
        /// The node that ends it.
        node: String,
        /// The node's line, for data read from JSON.
        line: Option<usize>,
        /// The limit.
        limit: usize,
    },
    /// The graph is invalid: every problem found, each located in the data.
    #[error("{}", Problems { workflow, problems })]
    Invalid {
        /// The workflow's name.
        workflow: String,
        /// The problems, in the order they were found.
        problems: Vec<DagProblem>,
    },
}

/// One problem of a workflow built from data, and where the data has it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DagProblem {
    /// The problem, as [`WorkflowBuilder::build`](crate::WorkflowBuilder::build)
    /// reports it: it names the node, field or edge.
    pub error: ValidationError,
    /// The node or edge of the data it is about, if one.
    pub item: Option<DataItem>,
}

/// A node or an edge of a [`DagSpec`](super::DagSpec), by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataItem {
    /// `nodes[index]`.
    Node {
        /// Its index in `nodes`.
        index: usize,
        /// The line it starts on, for data read from JSON.
        line: Option<usize>,
    },
    /// `edges[index]`.
    Edge {
        /// Its index in `edges`.
        index: usize,
        /// The line it starts on, for data read from JSON.
        line: Option<usize>,
    },
}

impl DataItem {
    /// The line it starts on, for data read from JSON.
    pub fn line(&self) -> Option<usize> {
        match self {
            DataItem::Node { line, .. } | DataItem::Edge { line, .. } => *line,
        }
    }
}

impl fmt::Display for DataItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (list, index, line) = match self {
            DataItem::Node { index, line } => ("nodes", index, line),
            DataItem::Edge { index, line } => ("edges", index, line),
        };
        match line {
            Some(l) => write!(f, "line {l} ({list}[{index}])"),
            None => write!(f, "{list}[{index}]"),
        }
    }
}

impl fmt::Display for DagProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.item {
            Some(item) => write!(f, "{item}: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

/// ` (line N)`, or nothing without a line.
fn on_line(line: &Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

struct Problems<'a> {
    workflow: &'a str,
    problems: &'a [DagProblem],
}

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "workflow `{}` is invalid ({n} problem{}):",
            self.workflow,
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl DagError {
    /// The problems of an [`Invalid`](DagError::Invalid) graph (empty otherwise).
    pub fn problems(&self) -> &[DagProblem] {
        match self {
            DagError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}
