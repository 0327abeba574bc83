//! Node and run states, and the one place their transitions are checked.
//!
//! ```text
//!            ┌──────────── Skipped (trigger rule or condition)
//! Pending ───┤
//!            └─> Ready ──> Running ──> Succeeded
//!                  ▲  │         ├──────> Failed
//!                  │  └─────────┼──────> Failed (input could not be assembled)
//!                  │            ├──────> TimedOut
//!                  └─ Retrying <┘ (failed or timed-out attempt with retries left)
//! Pending / Ready / Running / Retrying ──> Cancelled
//! ```
//!
//! A run goes `Pending → Running → Succeeded | Failed | Cancelled`.

use serde::{Deserialize, Serialize};

/// The state of one node (or one fan-out item) of a workflow run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeState {
    /// Waiting for its upstream nodes to settle.
    Pending,
    /// Its dependencies are satisfied; waiting for capacity to be dispatched.
    Ready,
    /// An attempt is executing.
    Running,
    /// Finished with an output.
    Succeeded,
    /// The last attempt failed and no retries are left.
    Failed,
    /// An attempt failed; the next one starts after the backoff delay.
    Retrying,
    /// Not executed: its trigger rule or condition ruled it out.
    Skipped,
    /// Stopped because the run was cancelled.
    Cancelled,
    /// The last attempt exceeded its timeout and no retries are left.
    TimedOut,
}

impl NodeState {
    /// All states, in declaration order.
    pub const ALL: [NodeState; 9] = [
        NodeState::Pending,
        NodeState::Ready,
        NodeState::Running,
        NodeState::Succeeded,
        NodeState::Failed,
        NodeState::Retrying,
        NodeState::Skipped,
        NodeState::Cancelled,
        NodeState::TimedOut,
    ];

    /// True for states a node never leaves.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            NodeState::Succeeded
                | NodeState::Failed
                | NodeState::Skipped
                | NodeState::Cancelled
                | NodeState::TimedOut
        )
    }

    /// True for a terminal state that counts as a failure of the node.
    pub const fn is_failure(self) -> bool {
        matches!(self, NodeState::Failed | NodeState::TimedOut)
    }

    /// The lower-case name used in APIs and tables.
    pub const fn as_str(self) -> &'static str {
        match self {
            NodeState::Pending => "pending",
            NodeState::Ready => "ready",
            NodeState::Running => "running",
            NodeState::Succeeded => "succeeded",
            NodeState::Failed => "failed",
            NodeState::Retrying => "retrying",
            NodeState::Skipped => "skipped",
            NodeState::Cancelled => "cancelled",
            NodeState::TimedOut => "timed_out",
        }
    }

    /// Whether `self → to` is a legal transition.
    pub const fn can_become(self, to: NodeState) -> bool {
        use NodeState::*;
        matches!(
            (self, to),
            (Pending, Ready | Skipped | Cancelled)
                | (Ready, Running | Failed | Cancelled)
                | (
                    Running,
                    Succeeded | Failed | TimedOut | Retrying | Cancelled
                )
                | (Retrying, Ready | Cancelled)
        )
    }

    /// Checks `self → to`; the only way the orchestrator changes a node's state.
    pub fn transition(self, to: NodeState) -> Result<NodeState, InvalidTransition> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(InvalidTransition {
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The state of a workflow run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunState {
    /// Created, not started yet.
    Pending,
    /// The orchestrator is walking the graph.
    Running,
    /// Every node settled and none failed.
    Succeeded,
    /// Every node settled and at least one failed or timed out.
    Failed,
    /// The run was cancelled.
    Cancelled,
}

impl RunState {
    /// True for states a run never leaves.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        )
    }

    /// The lower-case name used in APIs and tables.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    /// Whether `self → to` is a legal transition.
    pub const fn can_become(self, to: RunState) -> bool {
        use RunState::*;
        matches!(
            (self, to),
            (Pending, Running | Cancelled) | (Running, Succeeded | Failed | Cancelled)
        )
    }

    /// Checks `self → to`.
    pub fn transition(self, to: RunState) -> Result<RunState, InvalidTransition> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(InvalidTransition {
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// An illegal state change was attempted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("illegal state transition {from} → {to}")]
pub struct InvalidTransition {
    /// The state the node or run was in.
    pub from: &'static str,
    /// The state it was asked to enter.
    pub to: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn terminal_states_have_no_exit() {
        for from in NodeState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in NodeState::ALL {
                assert!(
                    from.transition(to).is_err(),
                    "{from} → {to} must be illegal"
                );
            }
        }
    }

    #[test]
    fn happy_path_and_retry_loop_are_legal() {
        use NodeState::*;
        let path = [Pending, Ready, Running, Retrying, Ready, Running, Succeeded];
        for w in path.windows(2) {
            w[0].transition(w[1]).unwrap();
        }
    }

    #[test]
    fn error_names_both_states() {
        let e = NodeState::Succeeded
            .transition(NodeState::Running)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "illegal state transition succeeded → running"
        );
    }

    fn any_state() -> impl Strategy<Value = NodeState> {
        proptest::sample::select(NodeState::ALL.to_vec())
    }

    proptest! {
        // Whatever sequence of requested transitions arrives, applying only the legal
        // ones keeps the node inside the graph: it can always still reach a terminal
        // state, and once terminal it never moves again.
        #[test]
        fn random_walks_stay_legal(steps in proptest::collection::vec(any_state(), 0..64)) {
            let mut s = NodeState::Pending;
            let mut terminal_at = None;
            for (i, to) in steps.into_iter().enumerate() {
                match s.transition(to) {
                    Ok(next) => {
                        prop_assert!(terminal_at.is_none(), "left terminal state at step {i}");
                        s = next;
                        if s.is_terminal() { terminal_at = Some(i); }
                    }
                    Err(_) => prop_assert!(!s.can_become(to)),
                }
            }
            // Cancelled is reachable from every non-terminal state.
            prop_assert!(s.is_terminal() || s.can_become(NodeState::Cancelled));
        }

        #[test]
        fn run_states_monotonic(steps in proptest::collection::vec(0u8..5, 0..16)) {
            let all = [RunState::Pending, RunState::Running, RunState::Succeeded, RunState::Failed, RunState::Cancelled];
            let mut s = RunState::Pending;
            for k in steps {
                let to = all[k as usize];
                if let Ok(n) = s.transition(to) {
                    prop_assert!(!s.is_terminal());
                    s = n;
                }
            }
        }
    }
}
