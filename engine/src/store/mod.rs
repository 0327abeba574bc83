//! Durable state: runs, node executions and the event log, behind the [`Store`] trait.
//!
//! The orchestrator writes every event of a run to the store *before* acting on it
//! (dispatching, notifying subscribers). The [`MemoryStore`] is always available; the
//! SQLite and PostgreSQL stores implement the same trait.

mod capability;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod combine;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod schedules;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorInfo;
pub use crate::error::store::{BadRow, StoreError};
use crate::events::Event;
use crate::ids::RunId;
use crate::state::{NodeState, RunState};
use crate::workflow::WorkflowSnapshot;

pub use capability::{QueueAdmin, RunLog, RunQueries, Schedules, Watch};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{Notification, NotificationKind, Notifications, PostgresOptions, PostgresStore};
pub use schedules::{ScheduleAdvance, ScheduleRecord};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqliteStore};

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

/// Filters and paging for [`Store::list_runs`]. Runs come newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunQuery {
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs in this state.
    pub state: Option<RunState>,
    /// Page size (0 means 50).
    pub limit: usize,
    /// Continue after this run id (the previous page's `next`).
    pub before: Option<RunId>,
}

impl RunQuery {
    /// All runs, first page of 50.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only runs of `workflow`.
    pub fn workflow(mut self, workflow: impl Into<String>) -> Self {
        self.workflow = Some(workflow.into());
        self
    }
    /// Only runs in `state`.
    pub fn state(mut self, state: RunState) -> Self {
        self.state = Some(state);
        self
    }
    /// Page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    /// Continue after `run`.
    pub fn before(mut self, run: RunId) -> Self {
        self.before = Some(run);
        self
    }
}

/// One page of results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `before` to get the next page; `None` on the last page.
    pub next: Option<RunId>,
    /// Rows of this page that do not decode, left out of `items` (each names its run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad: Vec<BadRow>,
}

/// Hints that there may be runs to claim (a run was enqueued, a lease released). A
/// hint can be spurious or lost; the engine re-reads the store either way.
pub type Wakeups = std::pin::Pin<Box<dyn futures_util::Stream<Item = ()> + Send + 'static>>;

/// Where runs and their events live: the union of the store's capabilities
/// ([`RunLog`], [`RunQueries`], [`QueueAdmin`], [`Schedules`], [`Watch`]), implemented
/// for every type that has all five. The engine takes an `Arc<dyn Store>`; a store
/// implements the five traits (see their docs for each method's contract), and
/// callers that import `Store` alone call every method through it.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// [`RunLog::create_run`].
    async fn create_run(
        &self,
        run: &RunRecord,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// [`RunLog::append`].
    async fn append(&self, run: RunId, lease: &Lease, events: &[Event]) -> Result<(), StoreError>;

    /// [`RunLog::append_now`].
    fn append_now(
        &self,
        run: RunId,
        lease: &Lease,
        events: &mut Vec<Event>,
    ) -> Option<Result<(), StoreError>>;

    /// [`RunLog::renew`].
    async fn renew(&self, run: RunId, lease: &Lease, ttl: Duration) -> Result<(), StoreError>;

    /// [`RunLog::release`].
    async fn release(&self, run: RunId, lease: &Lease) -> Result<(), StoreError>;

    /// [`RunLog::claim`].
    async fn claim(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// [`RunLog::claim_run`].
    async fn claim_run(
        &self,
        run: RunId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Claimed>, StoreError>;

    /// [`RunLog::claim_workflows`].
    async fn claim_workflows(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
        workflows: &[String],
        except: &[RunId],
    ) -> Result<Vec<Claimed>, StoreError>;

    /// [`RunLog::request_cancel`].
    async fn request_cancel(&self, run: RunId) -> Result<bool, StoreError>;

    /// [`RunLog::cancel_requests`].
    async fn cancel_requests(&self, owner: &str) -> Result<Vec<RunId>, StoreError>;

    /// [`RunQueries::get_run`].
    async fn get_run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError>;

    /// [`RunQueries::list_runs`].
    async fn list_runs(&self, query: &RunQuery) -> Result<Page<RunRecord>, StoreError>;

    /// [`RunQueries::executions`].
    async fn executions(&self, run: RunId) -> Result<Vec<ExecutionRecord>, StoreError>;

    /// [`RunQueries::events`].
    async fn events(&self, run: RunId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// [`QueueAdmin::set_queue_limit`].
    async fn set_queue_limit(
        &self,
        queue: &str,
        max_running: Option<u32>,
    ) -> Result<(), StoreError>;

    /// [`QueueAdmin::queue_limits`].
    async fn queue_limits(&self) -> Result<Vec<(String, u32)>, StoreError>;

    /// [`QueueAdmin::release_key`].
    async fn release_key(&self, key: &str, holder: RunId) -> Result<(), StoreError>;

    /// [`Schedules::put_schedule`].
    async fn put_schedule(&self, schedule: &ScheduleRecord) -> Result<(), StoreError>;

    /// [`Schedules::get_schedule`].
    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError>;

    /// [`Schedules::list_schedules`].
    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError>;

    /// [`Schedules::delete_schedule`].
    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError>;

    /// [`Schedules::set_schedule_enabled`].
    async fn set_schedule_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_fire: Option<SystemTime>,
    ) -> Result<bool, StoreError>;

    /// [`Schedules::due_schedules`].
    async fn due_schedules(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError>;

    /// [`Schedules::next_schedule_fire`].
    async fn next_schedule_fire(&self, after: SystemTime)
    -> Result<Option<SystemTime>, StoreError>;

    /// [`Schedules::advance_schedule`].
    async fn advance_schedule(
        &self,
        id: &str,
        expected: Option<SystemTime>,
        advance: &ScheduleAdvance,
    ) -> Result<bool, StoreError>;

    /// [`Watch::next_start`].
    async fn next_start(&self) -> Result<Option<SystemTime>, StoreError>;

    /// [`Watch::watch`].
    async fn watch(&self) -> Result<Option<Wakeups>, StoreError>;
}

#[async_trait::async_trait]
impl<T> Store for T
where
    T: RunLog + RunQueries + QueueAdmin + Schedules + Watch,
{
    async fn create_run(
        &self,
        run: &RunRecord,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        RunLog::create_run(self, run, lease, ttl).await
    }

    async fn append(&self, run: RunId, lease: &Lease, events: &[Event]) -> Result<(), StoreError> {
        RunLog::append(self, run, lease, events).await
    }

    fn append_now(
        &self,
        run: RunId,
        lease: &Lease,
        events: &mut Vec<Event>,
    ) -> Option<Result<(), StoreError>> {
        RunLog::append_now(self, run, lease, events)
    }

    async fn renew(&self, run: RunId, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        RunLog::renew(self, run, lease, ttl).await
    }

    async fn release(&self, run: RunId, lease: &Lease) -> Result<(), StoreError> {
        RunLog::release(self, run, lease).await
    }

    async fn claim(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        RunLog::claim(self, owner, ttl, limit).await
    }

    async fn claim_run(
        &self,
        run: RunId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        RunLog::claim_run(self, run, owner, ttl).await
    }

    async fn claim_workflows(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
        workflows: &[String],
        except: &[RunId],
    ) -> Result<Vec<Claimed>, StoreError> {
        RunLog::claim_workflows(self, owner, ttl, limit, workflows, except).await
    }

    async fn request_cancel(&self, run: RunId) -> Result<bool, StoreError> {
        RunLog::request_cancel(self, run).await
    }

    async fn cancel_requests(&self, owner: &str) -> Result<Vec<RunId>, StoreError> {
        RunLog::cancel_requests(self, owner).await
    }

    async fn get_run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        RunQueries::get_run(self, run).await
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Page<RunRecord>, StoreError> {
        RunQueries::list_runs(self, query).await
    }

    async fn executions(&self, run: RunId) -> Result<Vec<ExecutionRecord>, StoreError> {
        RunQueries::executions(self, run).await
    }

    async fn events(&self, run: RunId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        RunQueries::events(self, run, after, limit).await
    }

    async fn set_queue_limit(
        &self,
        queue: &str,
        max_running: Option<u32>,
    ) -> Result<(), StoreError> {
        QueueAdmin::set_queue_limit(self, queue, max_running).await
    }

    async fn queue_limits(&self) -> Result<Vec<(String, u32)>, StoreError> {
        QueueAdmin::queue_limits(self).await
    }

    async fn release_key(&self, key: &str, holder: RunId) -> Result<(), StoreError> {
        QueueAdmin::release_key(self, key, holder).await
    }

    async fn put_schedule(&self, schedule: &ScheduleRecord) -> Result<(), StoreError> {
        Schedules::put_schedule(self, schedule).await
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        Schedules::get_schedule(self, id).await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        Schedules::list_schedules(self).await
    }

    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        Schedules::delete_schedule(self, id).await
    }

    async fn set_schedule_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_fire: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        Schedules::set_schedule_enabled(self, id, enabled, next_fire).await
    }

    async fn due_schedules(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        Schedules::due_schedules(self, now, limit).await
    }

    async fn next_schedule_fire(
        &self,
        after: SystemTime,
    ) -> Result<Option<SystemTime>, StoreError> {
        Schedules::next_schedule_fire(self, after).await
    }

    async fn advance_schedule(
        &self,
        id: &str,
        expected: Option<SystemTime>,
        advance: &ScheduleAdvance,
    ) -> Result<bool, StoreError> {
        Schedules::advance_schedule(self, id, expected, advance).await
    }

    async fn next_start(&self) -> Result<Option<SystemTime>, StoreError> {
        Watch::next_start(self).await
    }

    async fn watch(&self) -> Result<Option<Wakeups>, StoreError> {
        Watch::watch(self).await
    }
}
