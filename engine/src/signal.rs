//! The channel from running executions back to their run's orchestrator.

use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use crate::error::ErrorInfo;
use crate::log_level::LogLevel;

/// What an execution reports. Delivered in order per execution.
#[derive(Debug)]
pub(crate) enum Signal {
    Log {
        level: LogLevel,
        message: String,
    },
    Progress {
        percent: u8,
        message: String,
    },
    Done(Result<Value, ErrorInfo>),
    /// A retry's backoff elapsed (sent by the orchestrator's own timers).
    Retry {
        node: u32,
        item: Option<u32>,
    },
    /// The run was asked to cancel.
    Cancel,
}

/// The key of signals that do not come from an execution.
pub(crate) const CONTROL: u32 = u32::MAX;

/// Sends signals for one execution (identified by its key in the orchestrator).
#[derive(Clone, Debug)]
pub(crate) struct SignalSender {
    tx: UnboundedSender<(u32, Signal)>,
    key: u32,
}

impl SignalSender {
    pub(crate) fn new(tx: UnboundedSender<(u32, Signal)>, key: u32) -> Self {
        SignalSender { tx, key }
    }

    /// Sends a signal; if the run is gone the signal is dropped (nobody can use it).
    pub(crate) fn send(&self, signal: Signal) {
        let _ = self.tx.send((self.key, signal));
    }
}
