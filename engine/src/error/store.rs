//! What can go wrong in a store: plain data that every layer may name.
//!
//! The types are public as [`crate::store::StoreError`] and [`crate::store::BadRow`].

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::ids::RunId;

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A run with this id already exists.
    #[error("run {0} already exists")]
    RunExists(RunId),
    /// No run with this id exists.
    #[error("run {0} does not exist")]
    UnknownRun(RunId),
    /// A run with this idempotency key exists already.
    #[error("run {run} holds idempotency key `{key}` already")]
    KeyExists {
        /// The key.
        key: String,
        /// The run holding it.
        run: RunId,
        /// When that run was created.
        created_at: SystemTime,
    },
    /// A batch's sequence numbers do not continue the run's log: its writer's view of
    /// the run is not the store's (which a valid lease rules out). Nothing was written.
    #[error(
        "append to run {run} out of sequence: the log ends at event {log_end}, the batch \
         starts at {first}"
    )]
    OutOfSequence {
        /// The run.
        run: RunId,
        /// The sequence number of the run's last recorded event.
        log_end: u64,
        /// The sequence number of the batch's first event.
        first: u64,
    },
    /// The caller's lease on the run is no longer valid: another engine claimed the run
    /// (or it finished). Whatever the caller wanted to record was not recorded.
    #[error("lease on run {run} lost: fence {fence} of `{owner}` is stale")]
    Fenced {
        /// The run.
        run: RunId,
        /// The stale lease's owner.
        owner: String,
        /// The stale lease's fencing token.
        fence: u64,
    },
    /// The database cannot be reached or opened: no server at the address, no such
    /// directory, permission denied, a connection timeout.
    #[error("{message}")]
    Unreachable {
        /// What was being done.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// The database file is not a database, or is damaged.
    #[error("{message}")]
    Corrupt {
        /// What was being done.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// Another process holds the database locked (longer than the busy timeout).
    #[error("{message}")]
    Locked {
        /// What was being done.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// The database was written by a newer dagforge: its schema version is higher than
    /// this build understands. Nothing was changed; upgrade dagforge.
    #[error("store schema version {found} is newer than the {supported} this dagforge supports")]
    SchemaTooNew {
        /// The database's schema version.
        found: i64,
        /// The newest version this build supports.
        supported: i64,
    },
    /// The database has no dagforge schema, or an older one, and migrations were turned
    /// off.
    #[error(
        "store schema version {} found, {supported} needed, and migrations are off",
        found.map_or_else(|| "none".to_owned(), |v| v.to_string())
    )]
    SchemaOutdated {
        /// The database's schema version, if it has one.
        found: Option<i64>,
        /// The version this build needs.
        supported: i64,
    },
    /// The database holds another application's tables and no dagforge schema: it was
    /// left untouched. Name a file of its own, or ask for it to be initialised
    /// (`SqliteOptions::initialize_foreign`).
    #[error("{message}")]
    Foreign {
        /// Which database, and what it holds.
        message: String,
    },
    /// A query the store cannot run: a malformed cursor, a filter out of range. Nothing
    /// was read; the error names the culprit.
    #[error("bad {what} `{value}`: {reason}")]
    BadQuery {
        /// What was wrong: `run cursor`, `run id prefix`…
        what: &'static str,
        /// The value given (cut to 80 characters).
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The store does not have this capability (its capability trait's default).
    #[error("this store does not support {what}")]
    Unsupported {
        /// The capability: `the global event feed`…
        what: &'static str,
    },
    /// A stored row does not decode; the error names the run and what it holds.
    #[error(transparent)]
    BadRow(#[from] BadRow),
    /// The backend failed (possibly for a moment: a lost connection, a busy database).
    #[error("{message}")]
    Backend {
        /// What was being done.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

/// A stored row that does not decode: written by another program or an older
/// dagforge, or damaged. Reads that return many runs list the others and report it
/// ([`Page::bad`](crate::store::Page::bad)); reads of the run itself fail with [`StoreError::BadRow`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "{}the stored {what} cannot be decoded: {detail}",
    run.as_ref().map(|r| format!("run {r}: ")).unwrap_or_default()
)]
#[non_exhaustive]
pub struct BadRow {
    /// The run the row belongs to (its id as stored), when known.
    pub run: Option<String>,
    /// What the row holds: `run inputs`, `workflow spec`, `event 12`, `execution output
    /// of node `fetch``…
    pub what: String,
    /// Why it does not decode.
    pub detail: String,
}

impl BadRow {
    /// A row holding `what` that does not decode, for `detail`.
    pub fn new(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        BadRow {
            run: None,
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    /// Names the run the row belongs to (if no run is named yet).
    pub fn in_run(mut self, run: impl std::fmt::Display) -> Self {
        if self.run.is_none() {
            self.run = Some(run.to_string());
        }
        self
    }
}

impl StoreError {
    /// Names the run a [`BadRow`] belongs to; other errors are returned as they are.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(dead_code, reason = "only the SQL stores decode rows")
    )]
    pub(crate) fn in_run(self, run: impl std::fmt::Display) -> Self {
        match self {
            StoreError::BadRow(b) => StoreError::BadRow(b.in_run(run)),
            other => other,
        }
    }
}
