//! The typed event stream: lifecycle, log and progress events of every run.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::ErrorInfo;
use crate::ids::RunId;
use crate::log_level::LogLevel;
use crate::state::{NodeState, RunState};

/// One event of a run. `seq` numbers a run's events from 1 without gaps, so a reader
/// can resume after the last one it saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// The run.
    pub run: RunId,
    /// Position in the run's event log, from 1.
    pub seq: u64,
    /// When it happened.
    pub at: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// An event (for store implementations and their tests; the engine makes its own).
    pub fn new(run: RunId, seq: u64, at: SystemTime, kind: EventKind) -> Self {
        Event { run, seq, at, kind }
    }
}

impl NodeEvent {
    /// A node (or item, with `item`) moving `from` → `to` in `attempt`.
    pub fn new(
        node: impl Into<Arc<str>>,
        item: Option<u32>,
        attempt: u32,
        from: NodeState,
        to: NodeState,
    ) -> Self {
        NodeEvent {
            node: node.into(),
            item,
            attempt,
            from,
            to,
            output: None,
            error: None,
            reason: None,
        }
    }

    /// With an output.
    pub fn with_output(mut self, output: Value) -> Self {
        self.output = Some(Arc::new(output));
        self
    }

    /// With an error.
    pub fn with_error(mut self, error: ErrorInfo) -> Self {
        self.error = Some(Box::new(error));
        self
    }

    /// With a reason.
    pub fn with_reason(mut self, reason: impl Into<Arc<str>>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
#[non_exhaustive]
pub enum EventKind {
    /// The run changed state.
    Run {
        /// Previous state.
        from: RunState,
        /// New state.
        to: RunState,
    },
    /// A node, or one item of a fan-out node, changed state.
    Node(NodeEvent),
    /// A job logged a line.
    Log {
        /// Node id.
        node: Arc<str>,
        /// Fan-out item.
        item: Option<u32>,
        /// Attempt number.
        attempt: u32,
        /// Severity.
        level: LogLevel,
        /// The line.
        message: String,
    },
    /// A job reported progress.
    Progress {
        /// Node id.
        node: Arc<str>,
        /// Fan-out item.
        item: Option<u32>,
        /// Attempt number.
        attempt: u32,
        /// 0–100.
        percent: u8,
        /// What it is doing.
        message: String,
    },
}

/// A node state change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeEvent {
    /// Node id.
    pub node: Arc<str>,
    /// Fan-out item index; `None` for the node itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// Attempt number (0 before the first attempt, and for a fan-out node itself).
    pub attempt: u32,
    /// Previous state.
    pub from: NodeState,
    /// New state.
    pub to: NodeState,
    /// The output, when `to` is Succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Arc<Value>>,
    /// The error, when an attempt failed (`to` is Retrying, Failed or TimedOut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<ErrorInfo>>,
    /// Why a node was skipped or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Arc<str>>,
}

/// A subscription to the engine's events (all runs), from the moment it was created.
///
/// A subscriber that falls more than the channel capacity behind misses events; it
/// is told how many through [`missed`](EventStream::missed). The store keeps every
/// event, so a reader that must see all of them reads the store by sequence number.
#[derive(Debug)]
pub struct EventStream {
    rx: broadcast::Receiver<Event>,
    missed: u64,
}

impl EventStream {
    pub(crate) fn new(rx: broadcast::Receiver<Event>) -> Self {
        EventStream { rx, missed: 0 }
    }

    /// The next event; `None` once the engine is dropped.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => self.missed += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Events dropped because this subscriber was too slow.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}
