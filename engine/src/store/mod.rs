//! Durable state: runs, node executions and the event log, behind the [`Store`] trait.
//!
//! The orchestrator writes every event of a run to the store *before* acting on it
//! (dispatching, notifying subscribers). The [`MemoryStore`] is always available; the
//! SQLite and PostgreSQL stores implement the same trait.

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

/// Where runs and their events live. Implementations must be safe to share between
/// tasks and must apply each `append` atomically and in order.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Records a new run, leased to `lease.owner` (with `lease.fence`) for `ttl`.
    async fn create_run(
        &self,
        run: &RunRecord,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Appends a batch of events to a run's log, in order, and applies them (run state,
    /// node executions). The batch is written atomically — all of it or none — and only
    /// if `lease` is still the run's current lease ([`StoreError::Fenced`] otherwise).
    /// An event that ends the run also releases its lease.
    ///
    /// The events' sequence numbers are dense and must continue the log (the first is
    /// one past the run's last recorded event; [`StoreError::OutOfSequence`]
    /// otherwise). Appending again, under the same lease, the batch that was written
    /// last is accepted and changes nothing: a writer that lost the reply to a write
    /// that did commit (a connection cut at the wrong moment) retries without
    /// duplicating anything.
    async fn append(&self, run: RunId, lease: &Lease, events: &[Event]) -> Result<(), StoreError>;

    /// Appends without waiting, when the store can (an in-memory store can; a database
    /// cannot), and may take the events out of `events` instead of copying them. `None`
    /// means "use [`append`](Store::append)" (and `events` must be left untouched). The
    /// orchestrator calls this first on its hot path to skip the boxed future of the
    /// async call and the copy.
    fn append_now(
        &self,
        run: RunId,
        lease: &Lease,
        events: &mut Vec<Event>,
    ) -> Option<Result<(), StoreError>> {
        let _ = (run, lease, events);
        None
    }

    /// Extends `lease` on `run` to `ttl` from now ([`StoreError::Fenced`] if it was
    /// lost).
    async fn renew(&self, run: RunId, lease: &Lease, ttl: Duration) -> Result<(), StoreError>;

    /// Gives `lease` up at once, so another engine may claim the run. A claim given
    /// back this way does not count in [`Claimed::stalled_claims`].
    async fn release(&self, run: RunId, lease: &Lease) -> Result<(), StoreError>;

    /// Asks whichever engine drives `run` (now, or after claiming it) to cancel it.
    /// Returns `false` if the run finished already (or does not exist). Engines see
    /// the request through [`cancel_requests`](Store::cancel_requests) (and on
    /// PostgreSQL are woken by a notification).
    async fn request_cancel(&self, run: RunId) -> Result<bool, StoreError>;

    /// Unfinished runs leased by `owner` whose cancellation was requested.
    async fn cancel_requests(&self, owner: &str) -> Result<Vec<RunId>, StoreError>;

    /// Caps how many runs of lane `queue` may be claimed (held by a live lease) at
    /// once, across every engine on the store; `None` lifts the cap. Claims fill a
    /// capped lane only up to its cap, so runs past it wait in the store.
    async fn set_queue_limit(
        &self,
        queue: &str,
        max_running: Option<u32>,
    ) -> Result<(), StoreError>;

    /// The capped lanes and their caps, by name.
    async fn queue_limits(&self) -> Result<Vec<(String, u32)>, StoreError>;

    /// Frees idempotency key `key` if run `holder` still holds it (its retention is
    /// over), so that a new run may take it. The run itself is kept.
    async fn release_key(&self, key: &str, holder: RunId) -> Result<(), StoreError>;

    /// Claims up to `limit` unfinished runs whose lease expired (their engine stopped
    /// or lost touch), for `owner`, for `ttl`. Each claim gets a new fencing token.
    /// Two engines never claim the same run with the same token.
    async fn claim(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Claims run `run` if its lease expired (it is queued, or its engine died),
    /// whatever its lane's cap: for acting on that run alone (cancelling it).
    async fn claim_run(
        &self,
        run: RunId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Claimed>, StoreError>;

    /// [`claim`](Store::claim), taking only runs of the named workflows: what a
    /// serving engine can drive. Runs of other workflows are left to engines that
    /// know them, and the runs in `except` (those the engine drives already, whose
    /// lease lapsed while the store was out of reach) are left alone.
    async fn claim_workflows(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
        workflows: &[String],
        except: &[RunId],
    ) -> Result<Vec<Claimed>, StoreError>;

    /// When the earliest run enqueued for later ([`Enqueue::at`](crate::Enqueue::at),
    /// [`delay`](crate::Enqueue::delay)) may start, if one waits: serving engines
    /// wake then instead of at their next poll. `None` (the default) when the store
    /// cannot tell.
    async fn next_start(&self) -> Result<Option<SystemTime>, StoreError> {
        Ok(None)
    }

    /// Wake-up hints for engines serving this store ([`Wakeups`]); `None` when the
    /// store cannot notify, and the engine polls instead.
    async fn watch(&self) -> Result<Option<Wakeups>, StoreError> {
        Ok(None)
    }

    /// One run.
    async fn get_run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError>;

    /// Runs, newest first, filtered and paged.
    async fn list_runs(&self, query: &RunQuery) -> Result<Page<RunRecord>, StoreError>;

    /// Every attempt of every node of a run, in the order they were first seen.
    async fn executions(&self, run: RunId) -> Result<Vec<ExecutionRecord>, StoreError>;

    /// Up to `limit` events with `seq > after`, in order.
    async fn events(&self, run: RunId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;

    // Recurring schedules (see `Engine::add_or_update_recurring`).

    /// Creates the schedule `schedule.id`, or replaces every field of it.
    async fn put_schedule(&self, schedule: &ScheduleRecord) -> Result<(), StoreError>;

    /// One schedule.
    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError>;

    /// Every schedule, by id.
    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError>;

    /// Deletes a schedule; whether it existed.
    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError>;

    /// Turns a schedule on or off and sets its next fire; whether it exists.
    async fn set_schedule_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_fire: Option<SystemTime>,
    ) -> Result<bool, StoreError>;

    /// Up to `limit` enabled schedules whose next fire is at or before `now`, earliest
    /// first.
    async fn due_schedules(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError>;

    /// The earliest next fire after `after` of the enabled schedules.
    async fn next_schedule_fire(&self, after: SystemTime)
    -> Result<Option<SystemTime>, StoreError>;

    /// Applies `advance` to schedule `id` only if its next fire is still `expected`
    /// (compare-and-set, `IS NOT DISTINCT FROM`); whether this caller won. Of several
    /// engines advancing the same fire at once, exactly one wins.
    async fn advance_schedule(
        &self,
        id: &str,
        expected: Option<SystemTime>,
        advance: &ScheduleAdvance,
    ) -> Result<bool, StoreError>;
}
