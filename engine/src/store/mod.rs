//! Durable state: runs, node executions and the event log, behind the [`Store`] trait.
//!
//! The orchestrator writes every event of a run to the store *before* acting on it
//! (dispatching, notifying subscribers). The [`MemoryStore`] is always available; the
//! SQLite and PostgreSQL stores implement the same traits.
//!
//! A store is seven capabilities: the run log ([`RunLog`]), reading runs back
//! ([`RunQueries`]: runs, counts, executions and logs in keyset pages), queue
//! administration ([`QueueAdmin`]), recurring schedules ([`ScheduleStore`]), change
//! watching ([`Watch`]), engine heartbeats ([`EngineRegistry`]) and the global event
//! feed ([`EventFeed`]). [`Store`] is their union, implemented for every type that has
//! all seven: a store written outside this crate implements the seven traits (the last
//! two, and `RunQueries`' paged reads, have defaults), building its records with their
//! constructors ([`RunRecord::new`], [`Lease::new`], [`Claimed::new`],
//! [`ExecutionRecord::new`], [`Page::new`], [`ScheduleRecord::new`], [`BadRow::new`],
//! [`EngineRecord::new`], [`FeedEvent::new`]…), and hands the engine an
//! `Arc<dyn Store>`.

mod capability;
mod capacity;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod combine;
#[cfg(feature = "test-util")]
pub mod conformance;
mod detail;
mod engines;
mod feed;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod query;
mod queue;
mod schedules;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod summary;
mod union;

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorInfo;
pub use crate::error::store::{BadRow, StoreError};
use crate::ids::RunId;
use crate::state::{NodeState, RunState};
use crate::workflow::WorkflowSnapshot;

pub use capability::{QueueAdmin, RunLog, RunQueries, ScheduleStore, Watch};
pub use detail::{ExecutionCursor, ExecutionPage, ExecutionQuery, LogLine, LogQuery};
pub use engines::{EngineRecord, EngineRegistry};
pub use feed::{EventFeed, FeedCursor, FeedEvent, FeedPage};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{
    Durability, Notification, NotificationKind, Notifications, PostgresOptions, PostgresStore,
    UnknownDurability,
};
pub use query::{DEFAULT_PAGE, IdText, MAX_PAGE, Page, RunCounts, RunCursor, RunQuery};
pub use queue::{
    Cancelled, Capacity, CapacityError, ClaimedAttempt, DEFAULT_LANE, ExecutionQueue, OwnerReport,
    QueueId, QueueTopic, QueuedAttempt, Renewed, Report, WorkerOffer, WorkerRecord, WorkerReport,
};
pub use schedules::{ScheduleAdvance, ScheduleRecord};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqliteStore};
pub use summary::{NodeSummary, SummaryQuery};
pub use union::Store;

/// A run as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunRecord {
    /// Run id.
    pub id: RunId,
    /// Workflow name.
    pub workflow: String,
    /// Workflow version.
    pub version: String,
    /// The workflow the run was started from.
    pub spec: WorkflowSnapshot,
    /// The run's parameters.
    pub inputs: Value,
    /// Current state.
    pub state: RunState,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it started running.
    pub started_at: Option<SystemTime>,
    /// When it finished.
    pub finished_at: Option<SystemTime>,
    /// Its priority: when capacity is short, higher runs are claimed first.
    pub priority: i32,
    /// When it may start, if it was enqueued for later.
    pub not_before: Option<SystemTime>,
    /// The key it was enqueued with: a store holds one run per key.
    pub idempotency_key: Option<String>,
    /// The lane it waits in (see [`Store::set_queue_limit`]).
    pub queue: Option<String>,
}

impl RunRecord {
    /// A new record in the Pending state.
    pub fn new(
        id: RunId,
        workflow: String,
        version: String,
        spec: WorkflowSnapshot,
        inputs: Value,
    ) -> Self {
        RunRecord {
            id,
            workflow,
            version,
            spec,
            inputs,
            state: RunState::Pending,
            created_at: SystemTime::now(),
            started_at: None,
            finished_at: None,
            priority: 0,
            not_before: None,
            idempotency_key: None,
            queue: None,
        }
    }
}

/// How a batch of `n` events numbered from `first` meets a run's log of `log_end`
/// events: the rule every store applies on append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sequence {
    /// It continues the log.
    Continues,
    /// It is the log's last batch, written already (a retried write).
    Written,
    /// Neither.
    Conflicts,
}

impl Sequence {
    pub(crate) fn of(log_end: u64, first: u64, n: u64) -> Sequence {
        if n == 0 || first == log_end + 1 {
            Sequence::Continues
        } else if first >= 1 && first + n - 1 == log_end {
            Sequence::Written
        } else {
            Sequence::Conflicts
        }
    }
}

/// The right to drive a run, held by one engine at a time.
///
/// Every claim of a run increments its fencing token; the store accepts writes only
/// from the holder of the current token, so an engine that lost its lease (paused, cut
/// off, presumed dead) can never record anything after another engine took over.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// The engine holding the lease.
    pub owner: Arc<str>,
    /// The fencing token, from 1.
    pub fence: u64,
}

impl Lease {
    /// A lease held by `owner` with token `fence`.
    pub fn new(owner: impl Into<Arc<str>>, fence: u64) -> Self {
        Lease {
            owner: owner.into(),
            fence,
        }
    }
}

/// A run an engine claimed to resume.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Claimed {
    /// The run.
    pub run: RunRecord,
    /// The new lease on it.
    pub lease: Lease,
    /// How many events the run has recorded (0 for a run enqueued and never started:
    /// there is no log to read back).
    pub events: u64,
    /// How many times the run was claimed since it last made progress (a node or an
    /// item settled), this claim included; a claim given back with
    /// [`release`](Store::release) does not count. A run whose engines keep dying
    /// while driving it (a *poison* run) climbs; the engine fails it past its
    /// [`max_stalled_claims`](crate::EngineBuilder::max_stalled_claims).
    pub stalled_claims: u32,
}

impl Claimed {
    /// The claim of `run` under `lease`, the run having recorded `events` events and
    /// been claimed `stalled_claims` times since it last made progress (this claim
    /// included).
    pub fn new(run: RunRecord, lease: Lease, events: u64, stalled_claims: u32) -> Self {
        Claimed {
            run,
            lease,
            events,
            stalled_claims,
        }
    }
}

/// One attempt of one node (or fan-out item), as derived from the event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecutionRecord {
    /// Node id.
    pub node: String,
    /// Fan-out item index.
    pub item: Option<u32>,
    /// Attempt number (0 = the node itself before/without an attempt).
    pub attempt: u32,
    /// Latest state.
    pub state: NodeState,
    /// Output, when succeeded.
    pub output: Option<Value>,
    /// Error, when the attempt failed.
    pub error: Option<ErrorInfo>,
    /// Why it was skipped or cancelled.
    pub reason: Option<String>,
    /// When the attempt started running.
    pub started_at: Option<SystemTime>,
    /// When it reached its last state.
    pub updated_at: SystemTime,
}

impl ExecutionRecord {
    /// Attempt `attempt` of `node` (fan-out item `item`, if any) in `state`, last
    /// changed at `updated_at`, with no output, error, reason or start time yet (set
    /// the fields for those).
    pub fn new(
        node: impl Into<String>,
        item: Option<u32>,
        attempt: u32,
        state: NodeState,
        updated_at: SystemTime,
    ) -> Self {
        ExecutionRecord {
            node: node.into(),
            item,
            attempt,
            state,
            output: None,
            error: None,
            reason: None,
            started_at: None,
            updated_at,
        }
    }
}

/// Hints that there may be runs to claim (a run was enqueued, a lease released). A
/// hint can be spurious or lost; the engine re-reads the store either way.
pub type Wakeups = std::pin::Pin<Box<dyn futures_util::Stream<Item = ()> + Send + 'static>>;
