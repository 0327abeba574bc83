//! The run state of nodes, fan-out items and the ready queue.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::Value;
use tokio::time::Instant;

use crate::error::ErrorInfo;
use crate::state::NodeState;

#[derive(Debug, Default)]
pub(super) struct ItemRt {
    pub(super) state: Option<NodeState>,
    pub(super) attempts: u32,
    /// Attempts made before a from-failure retry put the item back (see
    /// [`NodeRt::base`]).
    pub(super) base: u32,
    pub(super) start: Option<Instant>,
    pub(super) end: Option<Instant>,
    pub(super) output: Option<Arc<Value>>,
    pub(super) error: Option<ErrorInfo>,
}

impl ItemRt {
    #[inline]
    pub(super) fn state(&self) -> NodeState {
        self.state.unwrap_or(NodeState::Ready)
    }
}

#[derive(Debug)]
pub(super) struct FanRt {
    pub(super) base: Value,
    pub(super) items: Vec<Value>,
    pub(super) st: Vec<ItemRt>,
    pub(super) next: u32,
    pub(super) retry: VecDeque<u32>,
    pub(super) running: u32,
    pub(super) settled: u32,
    pub(super) failed: u32,
    pub(super) cancelled: u32,
}

impl FanRt {
    /// A fan-out whose items have not started.
    pub(super) fn new(base: Value, items: Vec<Value>) -> Self {
        let st = std::iter::repeat_with(ItemRt::default)
            .take(items.len())
            .collect();
        FanRt {
            base,
            items,
            st,
            next: 0,
            retry: VecDeque::new(),
            running: 0,
            settled: 0,
            failed: 0,
            cancelled: 0,
        }
    }

    #[inline]
    pub(super) fn has_work(&self) -> bool {
        !self.retry.is_empty() || (self.next as usize) < self.items.len()
    }
}

#[derive(Debug)]
pub(super) struct NodeRt {
    pub(super) state: NodeState,
    pub(super) waiting: u32,
    pub(super) attempts: u32,
    /// Attempts made before a from-failure retry of the run put the node back to
    /// Pending: its retry budget counts only the attempts after them (attempt numbers
    /// go on from `attempts`). Zero otherwise.
    pub(super) base: u32,
    /// For a fan-out node a from-failure retry put back to Pending after its items
    /// ran: each item's last recorded attempt, so that the items, expanded again,
    /// number their attempts on from there (and get a fresh budget).
    pub(super) item_floor: Option<Box<[u32]>>,
    pub(super) queued: bool,
    pub(super) start: Option<Instant>,
    pub(super) end: Option<Instant>,
    pub(super) output: Option<Arc<Value>>,
    pub(super) error: Option<Box<ErrorInfo>>,
    pub(super) reason: Option<Arc<str>>,
    pub(super) fan: Option<Box<FanRt>>,
}

/// Ready nodes, highest priority first and FIFO within a priority. Few distinct
/// priorities are in use at once, so levels are a short sorted list: push and pop are
/// O(levels), not O(log n) as with a heap of thousands of ready nodes.
#[derive(Debug, Default)]
pub(super) struct ReadyQueue {
    levels: Vec<(i32, VecDeque<u32>)>,
    len: usize,
}

impl ReadyQueue {
    #[inline]
    pub(super) fn push(&mut self, priority: i32, node: u32) {
        let at = self.levels.partition_point(|(p, _)| *p > priority);
        match self.levels.get_mut(at) {
            Some((p, q)) if *p == priority => q.push_back(node),
            _ => self.levels.insert(at, (priority, VecDeque::from([node]))),
        }
        self.len += 1;
    }

    #[inline]
    pub(super) fn pop(&mut self) -> Option<u32> {
        let n = self.levels.iter_mut().find_map(|(_, q)| q.pop_front())?;
        self.len -= 1;
        Some(n)
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn clear(&mut self) {
        self.levels.clear();
        self.len = 0;
    }
}

/// A recorded item transition: item, attempt, new state, output, error, and whether
/// a from-failure retry put the item back.
pub(super) type ItemEvent = (
    u32,
    u32,
    NodeState,
    Option<Arc<Value>>,
    Option<Box<ErrorInfo>>,
    bool,
);

/// Wraps an output for sharing; the common `null` output shares one allocation.
pub(super) fn shared_output(v: Value) -> Arc<Value> {
    static NULL: std::sync::LazyLock<Arc<Value>> =
        std::sync::LazyLock::new(|| Arc::new(Value::Null));
    if v.is_null() {
        Arc::clone(&NULL)
    } else {
        Arc::new(v)
    }
}

/// Changes attached to a node transition.
#[derive(Default)]
pub(super) struct Detail {
    pub(super) output: Option<Arc<Value>>,
    pub(super) error: Option<ErrorInfo>,
    pub(super) reason: Option<Arc<str>>,
}

impl Detail {
    pub(super) fn error(e: ErrorInfo) -> Self {
        Detail {
            error: Some(e),
            ..Detail::default()
        }
    }
    pub(super) fn reason(r: impl Into<Arc<str>>) -> Self {
        Detail {
            reason: Some(r.into()),
            ..Detail::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReadyQueue;

    #[test]
    fn ready_queue_is_priority_then_fifo() {
        let mut q = ReadyQueue::default();
        for (p, n) in [(0, 1), (5, 2), (0, 3), (-1, 4), (5, 5), (9, 6)] {
            q.push(p, n);
        }
        let mut out = Vec::new();
        while let Some(n) = q.pop() {
            out.push(n);
        }
        assert_eq!(out, vec![6, 2, 5, 1, 3, 4]);
        assert!(q.is_empty());
    }
}
