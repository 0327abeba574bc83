//! A run's nodes summed up by the store ([`RunQueries::node_summaries`]): per node, its
//! own latest execution and its fan-out items counted by the state of their latest
//! attempt, without reading every execution of the run back.
//!
//! [`RunQueries::node_summaries`]: super::RunQueries::node_summaries

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::state::NodeState;

use super::query::bad_query;
use super::{ExecutionRecord, StoreError};

/// The longest node id a summary query may name.
const MAX_NODE: usize = 1024;

/// What [`RunQueries::node_summaries`](super::RunQueries::node_summaries) sums up.
///
/// ```
/// # use dagforge::store::SummaryQuery;
/// let one = SummaryQuery::new().node("fetch").with_latest();
/// # let _ = one;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SummaryQuery {
    /// Only this node (else every node that has executions).
    pub node: Option<String>,
    /// Fill [`NodeSummary::latest`] with the node's own latest execution, output and
    /// error included (else only its state, attempt and times are summed up).
    pub latest: bool,
}

impl SummaryQuery {
    /// Every node, without their latest executions.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only node `node`.
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }
    /// With each node's own latest execution.
    pub fn with_latest(mut self) -> Self {
        self.latest = true;
        self
    }

    /// Checks the filter ([`StoreError::BadQuery`] for a node id over 1,024 bytes).
    pub fn check(&self) -> Result<(), StoreError> {
        if let Some(n) = &self.node
            && n.len() > MAX_NODE
        {
            return Err(bad_query("node filter", n, "longer than 1,024 bytes"));
        }
        Ok(())
    }
}

/// One node of a run, summed up from its executions. "Latest" is the highest attempt
/// (attempts count up; a node's own row before its first attempt is attempt 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeSummary {
    /// The node's id.
    pub node: String,
    /// The state of the node's own latest execution (`None`: it has only item rows).
    pub state: Option<NodeState>,
    /// The attempt of the node's own latest execution (0 without one).
    pub attempt: u32,
    /// How many executions of its own the node has (its attempts, with attempt 0).
    pub own_executions: u64,
    /// The node's own latest execution, whole, when the query asked for it
    /// ([`SummaryQuery::with_latest`]).
    pub latest: Option<ExecutionRecord>,
    /// How many fan-out items have executions.
    pub items: u64,
    /// The items by the state of their latest attempt (states without items left out),
    /// in the order of [`NodeState`]'s first appearance in the rows.
    pub item_states: Vec<(NodeState, u64)>,
    /// How many executions the items have (every attempt of every item).
    pub item_executions: u64,
    /// The highest attempt any item reached (0 without items).
    pub max_item_attempt: u32,
    /// The earliest start of any of the node's executions (its own or its items').
    pub started_at: Option<SystemTime>,
    /// The latest change of any of the node's executions.
    pub updated_at: Option<SystemTime>,
}

impl NodeSummary {
    /// Node `node` with nothing summed up yet (a store outside this crate builds its
    /// summaries from here, with [`count_items`](NodeSummary::count_items) and
    /// [`add_times`](NodeSummary::add_times) and the public fields).
    pub fn new(node: impl Into<String>) -> Self {
        NodeSummary {
            node: node.into(),
            state: None,
            attempt: 0,
            own_executions: 0,
            latest: None,
            items: 0,
            item_states: Vec::new(),
            item_executions: 0,
            max_item_attempt: 0,
            started_at: None,
            updated_at: None,
        }
    }

    /// How many items are in `state`.
    pub fn items_in(&self, state: NodeState) -> u64 {
        self.item_states
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }

    /// Counts `n` more items in `state`.
    pub fn count_items(&mut self, state: NodeState, n: u64) {
        match self.item_states.iter_mut().find(|(s, _)| *s == state) {
            Some((_, c)) => *c += n,
            None => self.item_states.push((state, n)),
        }
        self.items += n;
    }

    /// Adds the times of an execution (earliest start, latest change).
    pub fn add_times(&mut self, started_at: Option<SystemTime>, updated_at: SystemTime) {
        if let Some(s) = started_at {
            self.started_at = Some(self.started_at.map_or(s, |t| t.min(s)));
        }
        self.updated_at = Some(self.updated_at.map_or(updated_at, |t| t.max(updated_at)));
    }

    /// Adds one of the node's own executions (keeping it whole as `latest` when
    /// `keep` and it is the highest attempt so far). Item rows are summed up by
    /// [`Summer`].
    fn add_own(&mut self, e: &ExecutionRecord, keep: bool) {
        self.own_executions += 1;
        self.add_times(e.started_at, e.updated_at);
        if self.state.is_none() || e.attempt >= self.attempt {
            self.state = Some(e.state);
            self.attempt = e.attempt;
            if keep {
                self.latest = Some(e.clone());
            }
        }
    }
}

/// Sums up executions given in the paging order (node, item with the node's own row
/// first, attempt), one row at a time: the default of
/// [`RunQueries::node_summaries`](super::RunQueries::node_summaries) and the memory
/// store's.
#[derive(Debug)]
pub(crate) struct Summer {
    keep: bool,
    out: Vec<NodeSummary>,
    /// The item being read and the state of its latest row so far.
    item: Option<(u32, NodeState)>,
}

impl Summer {
    pub(crate) fn new(query: &SummaryQuery) -> Self {
        Summer {
            keep: query.latest,
            out: Vec::new(),
            item: None,
        }
    }

    fn close_item(&mut self) {
        if let (Some((_, state)), Some(s)) = (self.item.take(), self.out.last_mut()) {
            s.count_items(state, 1);
        }
    }

    /// Adds `e`, which comes after every row added so far in the paging order.
    pub(crate) fn add(&mut self, e: &ExecutionRecord) {
        if self.out.last().is_none_or(|s| s.node != e.node) {
            self.close_item();
            self.out.push(NodeSummary::new(e.node.clone()));
        }
        let keep = self.keep;
        match e.item {
            None => {
                if let Some(s) = self.out.last_mut() {
                    s.add_own(e, keep);
                }
            }
            Some(i) => {
                if self.item.is_some_and(|(cur, _)| cur != i) {
                    self.close_item();
                }
                self.item = Some((i, e.state));
                if let Some(s) = self.out.last_mut() {
                    s.item_executions += 1;
                    s.max_item_attempt = s.max_item_attempt.max(e.attempt);
                    s.add_times(e.started_at, e.updated_at);
                }
            }
        }
    }

    /// The summaries, by node id.
    pub(crate) fn finish(mut self) -> Vec<NodeSummary> {
        self.close_item();
        self.out
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn row(node: &str, item: Option<u32>, attempt: u32, state: NodeState) -> ExecutionRecord {
        let at = UNIX_EPOCH + Duration::from_secs(u64::from(attempt) + 10);
        let mut e = ExecutionRecord::new(node, item, attempt, state, at);
        e.started_at = Some(at - Duration::from_secs(1));
        e
    }

    #[test]
    fn rows_in_paging_order_sum_up_per_node() {
        use NodeState::*;
        let rows = [
            row("a", None, 0, Running),
            row("a", Some(0), 1, Failed),
            row("a", Some(0), 2, Succeeded),
            row("a", Some(1), 1, Running),
            row("a", Some(2), 1, Succeeded),
            row("b", None, 1, Failed),
            row("b", None, 2, Succeeded),
        ];
        let mut s = Summer::new(&SummaryQuery::new().with_latest());
        for r in &rows {
            s.add(r);
        }
        let out = s.finish();
        assert_eq!(out.len(), 2);
        let a = &out[0];
        assert_eq!(
            (a.state, a.attempt, a.own_executions),
            (Some(Running), 0, 1)
        );
        assert_eq!((a.items, a.item_executions, a.max_item_attempt), (3, 4, 2));
        assert_eq!((a.items_in(Succeeded), a.items_in(Running)), (2, 1));
        assert_eq!(a.items_in(Failed), 0);
        let b = &out[1];
        assert_eq!(
            (b.state, b.attempt, b.own_executions),
            (Some(Succeeded), 2, 2)
        );
        assert_eq!(b.latest.as_ref().map(|l| l.attempt), Some(2));
        assert_eq!(b.items, 0);
        assert_eq!(b.started_at, Some(UNIX_EPOCH + Duration::from_secs(10)));
        assert_eq!(b.updated_at, Some(UNIX_EPOCH + Duration::from_secs(12)));
    }

    #[test]
    fn a_long_node_id_is_a_bad_query() {
        let q = SummaryQuery::new().node("x".repeat(1025));
        assert!(matches!(q.check(), Err(StoreError::BadQuery { .. })));
        assert!(SummaryQuery::new().node("x").check().is_ok());
    }
}
