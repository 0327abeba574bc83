//! A run's detail in pages: its executions (by node, item, attempt) and its log lines
//! (by sequence number), for runs of any size.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::events::{Event, EventKind};
use crate::log_level::LogLevel;

use super::query::{bad_query, page_size};
use super::{BadRow, ExecutionRecord, StoreError};

/// The longest node id a filter or cursor may name.
const MAX_NODE: usize = 1024;

/// Where a page of executions ends: (node, item, attempt) of its last row. Rows come
/// ordered by node id, then item (the node's own row first), then attempt.
///
/// Its text form is `<item or ->.<attempt>.<node>`; a malformed one is
/// [`StoreError::BadQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExecutionCursor {
    /// Node id.
    pub node: String,
    /// Fan-out item.
    pub item: Option<u32>,
    /// Attempt.
    pub attempt: u32,
}

impl ExecutionCursor {
    /// The cursor after `e`.
    pub fn after(e: &ExecutionRecord) -> Self {
        ExecutionCursor {
            node: e.node.clone(),
            item: e.item,
            attempt: e.attempt,
        }
    }

    /// The order key: (node, item with the node's own row first, attempt).
    pub(crate) fn key(&self) -> (&str, i64, u32) {
        (&self.node, self.item.map_or(-1, i64::from), self.attempt)
    }
}

impl fmt::Display for ExecutionCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            Some(i) => write!(f, "{i}.{}.{}", self.attempt, self.node),
            None => write!(f, "-.{}.{}", self.attempt, self.node),
        }
    }
}

impl FromStr for ExecutionCursor {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        let bad = |reason: &str| bad_query("execution cursor", s, reason);
        let mut parts = s.splitn(3, '.');
        let (Some(item), Some(attempt), Some(node)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected `<item or ->.<attempt>.<node>`"));
        };
        let item = match item {
            "-" => None,
            i => Some(i.parse().map_err(|_| bad("the item is not a number"))?),
        };
        let attempt = attempt
            .parse()
            .map_err(|_| bad("the attempt is not a number"))?;
        if node.is_empty() || node.len() > MAX_NODE {
            return Err(bad("the node id is empty or too long"));
        }
        Ok(ExecutionCursor {
            node: node.to_owned(),
            item,
            attempt,
        })
    }
}

/// Filters and paging for
/// [`RunQueries::executions_page`](super::RunQueries::executions_page) and
/// [`count_executions`](super::RunQueries::count_executions).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecutionQuery {
    /// Only this node's rows.
    pub node: Option<String>,
    /// Only this fan-out item's rows.
    pub item: Option<u32>,
    /// Only rows of fan-out items (not the nodes' own rows).
    pub items_only: bool,
    /// Page size (0 means [`DEFAULT_PAGE`](super::DEFAULT_PAGE); at most
    /// [`MAX_PAGE`](super::MAX_PAGE)).
    pub limit: usize,
    /// Continue after this row.
    pub after: Option<ExecutionCursor>,
}

impl ExecutionQuery {
    /// Every row, first page.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only node `node`'s rows.
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }
    /// Only fan-out item `item`'s rows.
    pub fn item(mut self, item: u32) -> Self {
        self.item = Some(item);
        self
    }
    /// The fan-out items of node `node` (not its own row).
    pub fn items_of(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self.items_only = true;
        self
    }
    /// Page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    /// Continue after `cursor`.
    pub fn after(mut self, cursor: ExecutionCursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// The page size asked for.
    pub(crate) fn size(&self) -> usize {
        page_size(self.limit)
    }

    /// Checks the filters ([`StoreError::BadQuery`] for a node id over 1,024 bytes).
    pub fn check(&self) -> Result<(), StoreError> {
        if let Some(n) = &self.node
            && n.len() > MAX_NODE
        {
            return Err(bad_query("node filter", n, "longer than 1,024 bytes"));
        }
        Ok(())
    }

    /// Whether `e` passes the filters (not the cursor).
    pub fn matches(&self, e: &ExecutionRecord) -> bool {
        self.node.as_ref().is_none_or(|n| *n == e.node)
            && self.item.is_none_or(|i| e.item == Some(i))
            && (!self.items_only || e.item.is_some())
    }
}

/// One page of a run's executions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecutionPage {
    /// The rows, by node, item, attempt.
    pub items: Vec<ExecutionRecord>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next: Option<ExecutionCursor>,
    /// Rows that do not decode, left out of `items`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad: Vec<BadRow>,
}

impl ExecutionPage {
    /// A page of `items`, the next starting after `next`.
    pub fn new(items: Vec<ExecutionRecord>, next: Option<ExecutionCursor>) -> Self {
        ExecutionPage {
            items,
            next,
            bad: Vec::new(),
        }
    }
}

/// Filters and paging for [`RunQueries::logs`](super::RunQueries::logs): a run's log
/// lines in sequence order, forward from `after`, or the last `tail` of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogQuery {
    /// Only this node's lines.
    pub node: Option<String>,
    /// Only this fan-out item's lines.
    pub item: Option<u32>,
    /// Only this attempt's lines.
    pub attempt: Option<u32>,
    /// Only lines at this level or above.
    pub min_level: Option<LogLevel>,
    /// Only lines after this sequence number (of the run's events).
    pub after: u64,
    /// Page size (0 means [`DEFAULT_PAGE`](super::DEFAULT_PAGE); at most
    /// [`MAX_PAGE`](super::MAX_PAGE)).
    pub limit: usize,
    /// The last `limit` matching lines instead of the first (still in order).
    pub tail: bool,
}

impl LogQuery {
    /// Every line, first page.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only node `node`'s lines.
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }
    /// Only fan-out item `item`'s lines.
    pub fn item(mut self, item: u32) -> Self {
        self.item = Some(item);
        self
    }
    /// Only attempt `attempt`'s lines.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }
    /// Only lines at `level` or above.
    pub fn min_level(mut self, level: LogLevel) -> Self {
        self.min_level = Some(level);
        self
    }
    /// Lines after sequence number `seq` (the last line of the previous page).
    pub fn after(mut self, seq: u64) -> Self {
        self.after = seq;
        self
    }
    /// Page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    /// The last `n` matching lines, in order.
    pub fn tail(mut self, n: usize) -> Self {
        self.tail = true;
        self.limit = n;
        self
    }

    /// The page size asked for.
    pub(crate) fn size(&self) -> usize {
        page_size(self.limit)
    }

    /// Checks the filters ([`StoreError::BadQuery`] for a node id over 1,024 bytes).
    pub fn check(&self) -> Result<(), StoreError> {
        if let Some(n) = &self.node
            && n.len() > MAX_NODE
        {
            return Err(bad_query("node filter", n, "longer than 1,024 bytes"));
        }
        Ok(())
    }

    /// The log line of event `e`, if it is one and passes the filters (not `after`).
    pub fn line(&self, e: &Event) -> Option<LogLine> {
        self.line_of(e.seq, e.at, &e.kind)
    }

    /// [`line`](LogQuery::line) of the event `seq` at `at` of kind `kind`.
    pub(crate) fn line_of(&self, seq: u64, at: SystemTime, kind: &EventKind) -> Option<LogLine> {
        let EventKind::Log {
            node,
            item,
            attempt,
            level,
            message,
        } = kind
        else {
            return None;
        };
        let passes = self.node.as_deref().is_none_or(|n| n == &**node)
            && self.item.is_none_or(|i| *item == Some(i))
            && self.attempt.is_none_or(|a| *attempt == a)
            && self.min_level.is_none_or(|l| *level >= l);
        passes.then(|| LogLine {
            seq,
            at,
            node: node.to_string(),
            item: *item,
            attempt: *attempt,
            level: *level,
            message: message.clone(),
        })
    }
}

/// One line of a run's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogLine {
    /// The sequence number of its event in the run's log (pass the last as `after`).
    pub seq: u64,
    /// When it was logged.
    pub at: SystemTime,
    /// Node id.
    pub node: String,
    /// Fan-out item.
    pub item: Option<u32>,
    /// Attempt.
    pub attempt: u32,
    /// Severity.
    pub level: LogLevel,
    /// The line.
    pub message: String,
}

/// A level's rank, as the SQL stores keep it (trace 0 … error 4).
pub(crate) fn level_rank(level: LogLevel) -> i16 {
    match level {
        LogLevel::Trace => 0,
        LogLevel::Debug => 1,
        LogLevel::Info => 2,
        LogLevel::Warn => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_cursors_round_trip() {
        for c in [
            ExecutionCursor {
                node: "a.b".into(),
                item: Some(7),
                attempt: 2,
            },
            ExecutionCursor {
                node: "x".into(),
                item: None,
                attempt: 0,
            },
        ] {
            assert_eq!(c.to_string().parse::<ExecutionCursor>().unwrap(), c);
        }
        for bad in ["", "1.2", "x.1.a", "1.y.a", "1.1."] {
            assert!(
                matches!(
                    bad.parse::<ExecutionCursor>(),
                    Err(StoreError::BadQuery { .. })
                ),
                "{bad}"
            );
        }
    }
}
