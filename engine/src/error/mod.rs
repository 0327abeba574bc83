//! Error types: what a job returns, what the engine returns, and what gets recorded.

pub(crate) mod schedule;
pub(crate) mod store;
pub(crate) mod validation;

use std::fmt;

use serde::{Deserialize, Serialize};

use validation::ValidationErrors;

/// Result type of the engine's API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error returned by the engine's API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The workflow definition is invalid; every problem is listed.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The inputs given to a run do not match the workflow's parameters.
    #[error("run input `{name}`: {reason}")]
    Input {
        /// The parameter concerned.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// No run with this id exists.
    #[error("run {0} not found")]
    RunNotFound(crate::RunId),
    /// No node with this id exists in the run.
    #[error("node `{0}` not found in the run")]
    NodeNotFound(String),
    /// A node's output could not be converted to the requested type.
    #[error("output of node `{node}` is not a `{ty}`")]
    Output {
        /// The node.
        node: String,
        /// The requested type.
        ty: &'static str,
        /// The deserialization error.
        #[source]
        source: serde_json::Error,
    },
    /// No job with this name is registered.
    #[error("no job named `{0}` is registered")]
    UnknownJob(String),
    /// Another job type is already registered under this name.
    #[error("a different job is already registered as `{0}`")]
    DuplicateJob(String),
    /// The store failed. Shown as `store: ` and the store's message (which most store
    /// errors begin with `store: ` already: it is not doubled).
    #[error("{}", store_message(.0))]
    Store(#[from] store::StoreError),
    /// A state machine rule was broken.
    #[error(transparent)]
    Transition(#[from] crate::state::InvalidTransition),
    /// No workflow with this name (and version) is known here.
    #[error("no workflow named `{name}`{} is registered{}", version.as_deref().map(|v| format!(" (version {v})")).unwrap_or_default(), if known.is_empty() { String::new() } else { format!(" (known: {})", known.join(", ")) })]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
        /// The version asked for, if one was.
        version: Option<String>,
        /// The names that are registered.
        known: Vec<String>,
    },
    /// The run has not finished, so it cannot be retried.
    #[error("run {run} is {state}, not finished: only a finished run can be retried")]
    RunNotFinished {
        /// The run.
        run: crate::RunId,
        /// Its state.
        state: crate::RunState,
    },
    /// A from-failure retry found nothing to re-run: no node failed, timed out, was
    /// cancelled or was skipped because of one.
    #[error("run {0} has no failed, timed-out, cancelled or skipped-by-failure node to re-run")]
    NothingToRetry(crate::RunId),
    /// Another engine is driving the run (its lease is live), so it cannot be taken
    /// over from here.
    #[error(
        "run {0} is being driven by another engine; cancel it there, or wait until its lease expires"
    )]
    RunBusy(crate::RunId),
    /// The engine stopped before the run finished.
    #[error("the run's orchestrator stopped unexpectedly: {0}")]
    Orchestrator(String),
    /// A recurring schedule's cron expression or time zone is invalid, or it never
    /// fires again.
    #[error("schedule `{id}`: {source}")]
    Schedule {
        /// The schedule's id.
        id: String,
        /// What is wrong, naming the field.
        #[source]
        source: schedule::ScheduleError,
    },
    /// No recurring schedule has this id.
    #[error("no recurring schedule `{0}`")]
    UnknownSchedule(String),
    /// A shared resource is missing (a job of the run takes a type nobody
    /// registered) or its factory failed (see [`resource`](crate::resource)).
    #[error(transparent)]
    Resource(#[from] crate::resource::ResourceError),
}

/// `store: ` and `e`'s message, without doubling a `store: ` it begins with.
fn store_message(e: &store::StoreError) -> String {
    let text = e.to_string();
    if text.starts_with("store: ") {
        text
    } else {
        format!("store: {text}")
    }
}

/// The error a job returns from an attempt.
///
/// Any `std::error::Error` converts into it with `?`; the error's source chain is kept
/// in the message that gets recorded. An error is *retryable* unless it was built with
/// [`JobError::terminal`]: a terminal error fails the node at once, whatever retries
/// are left.
///
/// ```
/// # use dagforge::JobError;
/// fn parse(s: &str) -> Result<u32, JobError> {
///     let n: u32 = s.parse()?; // ParseIntError → retryable JobError
///     if n == 0 {
///         return Err(JobError::terminal("zero is not a market id"));
///     }
///     Ok(n)
/// }
/// assert!(parse("x").unwrap_err().is_retryable());
/// assert!(!parse("0").unwrap_err().is_retryable());
/// ```
pub struct JobError {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl JobError {
    /// A retryable error with a message.
    pub fn msg(message: impl Into<String>) -> Self {
        JobError {
            kind: ErrorKind::Failed,
            message: message.into(),
            source: None,
        }
    }

    /// An error that fails the node without further retries.
    pub fn terminal(message: impl Into<String>) -> Self {
        JobError {
            kind: ErrorKind::Terminal,
            message: message.into(),
            source: None,
        }
    }

    /// The error a job returns when it stops because its cancellation token fired.
    pub fn cancelled() -> Self {
        JobError {
            kind: ErrorKind::Cancelled,
            message: "cancelled".into(),
            source: None,
        }
    }

    /// Wraps an error as a terminal one.
    pub fn terminal_from(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        let mut e = JobError::from(err);
        e.kind = ErrorKind::Terminal;
        e
    }

    /// Adds context in front of the message.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Failed
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the source chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The serializable record of this error: message plus every source, joined by `: `.
    pub fn to_info(&self) -> ErrorInfo {
        let mut message = self.message.clone();
        let mut next: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        // The message of a converted error is its Display, which is the first link.
        if let Some(first) = next {
            next = first.source();
        }
        while let Some(e) = next {
            message.push_str(": ");
            message.push_str(&e.to_string());
            next = e.source();
        }
        ErrorInfo {
            kind: self.kind,
            message,
        }
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    /// A retryable error, except for a [`ResourceError`](crate::resource::ResourceError)
    /// that is not ([`Missing`](crate::resource::ResourceError::Missing)): terminal.
    fn from(err: E) -> Self {
        let terminal = (&err as &dyn std::any::Any)
            .downcast_ref::<crate::resource::ResourceError>()
            .is_some_and(|e| !e.is_retryable());
        JobError {
            kind: if terminal {
                ErrorKind::Terminal
            } else {
                ErrorKind::Failed
            },
            message: err.to_string(),
            source: Some(Box::new(err)),
        }
    }
}

/// Why an attempt ended without an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The job returned a retryable error.
    Failed,
    /// The job returned a terminal error; no retry.
    Terminal,
    /// The job panicked (retryable).
    Panicked,
    /// The attempt exceeded its timeout (retryable).
    TimedOut,
    /// The run was cancelled.
    Cancelled,
    /// The node's input could not be built or decoded (terminal).
    Input,
    /// The job's output could not be encoded or is unusable (terminal).
    Output,
    /// A fan-out could not be expanded, or some of its items failed.
    FanOut,
    /// The executor could not run the attempt.
    Executor,
    /// The engine running the attempt stopped (crash, kill, lost lease); the attempt's
    /// outcome is unknown and it runs again.
    Interrupted,
    /// The process (or pod) running the attempt died without reporting an outcome:
    /// killed by a signal, an exit code, out of memory, or silent past its heartbeat
    /// timeout (retryable). The job's own code may never have failed: look at the
    /// message (exit status, last console lines) before blaming it.
    Crashed,
    /// The remote worker holding the attempt (see `dagforge::QueueExecutor`) stopped
    /// renewing its claim: it died, stalled or lost touch with the store, and its lease
    /// lapsed. The attempt's outcome is unknown; whatever that worker reports later is
    /// refused (retryable).
    WorkerLost,
}

impl ErrorKind {
    /// Whether another attempt may succeed after an error of this kind.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Failed
                | ErrorKind::Panicked
                | ErrorKind::TimedOut
                | ErrorKind::Executor
                | ErrorKind::Interrupted
                | ErrorKind::Crashed
                | ErrorKind::WorkerLost
        )
    }
}

/// The recorded form of an attempt's error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorInfo {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The message including the source chain.
    pub message: String,
}

impl ErrorInfo {
    /// Builds an error record.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorInfo {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_is_prefixed_once() {
        let e = Error::from(store::StoreError::Backend {
            message: "store: storing a workflow spec failed".to_owned(),
            source: None,
        });
        assert_eq!(e.to_string(), "store: storing a workflow spec failed");
        let e = Error::from(store::StoreError::UnknownRun(crate::RunId::new()));
        assert!(e.to_string().starts_with("store: run "), "{e}");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn info_includes_the_source_chain_once() {
        let e = JobError::from(Outer(std::io::Error::other("disk full")));
        assert_eq!(e.to_info().message, "outer: disk full");
        assert!(e.is_retryable());
    }

    #[test]
    fn context_and_terminal() {
        let e = JobError::terminal("bad id").context("market 7");
        assert_eq!(e.to_string(), "market 7: bad id");
        assert_eq!(e.to_info().kind, ErrorKind::Terminal);
        assert!(!e.is_retryable());
    }
}
