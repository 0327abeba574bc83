//! The execution queue: attempts a driving engine hands to a fleet of worker processes
//! through the store ([`ExecutionQueue`]), the workers' heartbeats ([`WorkerRecord`])
//! and what workers report back ([`Report`]).
//!
//! The flow of one attempt: the engine [`push`](ExecutionQueue::push)es it (state
//! `queued`); a worker whose lanes, tags and free capacity fit
//! [claims](ExecutionQueue::claim_attempts) it under a lease with a new fencing token
//! (`claimed`); the worker [renews](ExecutionQueue::renew_claims) its claims and
//! [reports](ExecutionQueue::report) logs, progress and finally the outcome (`done`),
//! each report accepted only under the claim's current token; the engine reads its
//! reports ([`reports`](ExecutionQueue::reports)) when
//! [woken](ExecutionQueue::watch_queue), and [acknowledges](ExecutionQueue::acknowledge)
//! what it has read. Reports are deleted once read rather than read past a cursor: two
//! workers' commits may land out of the order of their numbers. A claim whose lease lapsed is [expired](ExecutionQueue::expire_claims)
//! by its engine (`lost`): the worker's later reports are refused.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorInfo;
use crate::ids::RunId;
use crate::job::JobSpec;
use crate::log_level::LogLevel;

use super::{StoreError, Wakeups};

pub use super::capacity::{Capacity, CapacityError};

/// An attempt's row in the execution queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueId(pub i64);

impl std::fmt::Display for QueueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The lane of attempts whose job names none.
pub const DEFAULT_LANE: &str = "default";

/// One attempt as the driving engine hands it to the queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueuedAttempt {
    /// The engine that waits for the outcome (its reports go to this owner).
    pub owner: String,
    /// The run.
    pub run: RunId,
    /// The node.
    pub node: String,
    /// The fan-out item, if any.
    pub item: Option<u32>,
    /// The attempt number (from 1).
    pub attempt: u32,
    /// The registered job's name: the worker looks it up in its registry.
    pub job: String,
    /// The assembled input.
    pub input: Value,
    /// The job's spec as the engine sees it.
    pub spec: JobSpec,
    /// The lane: only workers serving it take the attempt.
    pub lane: String,
    /// Tags a worker must carry (`key = value`) to take the attempt.
    pub requires: BTreeMap<String, String>,
    /// What the attempt takes of a worker's capacity while it runs.
    pub demand: Capacity,
    /// Higher first.
    pub priority: i32,
    /// The attempt's timeout (enforced by the worker).
    pub timeout: Option<Duration>,
}

impl QueuedAttempt {
    /// Attempt `attempt` of `node` (item `item`) of `run`, for `owner`: job `job` with
    /// `input` under `spec`, in the default lane, one slot, no tags required,
    /// priority and timeout from the spec.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        owner: impl Into<String>,
        run: RunId,
        node: impl Into<String>,
        item: Option<u32>,
        attempt: u32,
        job: impl Into<String>,
        input: Value,
        spec: JobSpec,
    ) -> Self {
        QueuedAttempt {
            owner: owner.into(),
            run,
            node: node.into(),
            item,
            attempt,
            job: job.into(),
            input,
            priority: spec.priority,
            timeout: spec.timeout,
            lane: spec
                .queue
                .clone()
                .unwrap_or_else(|| DEFAULT_LANE.to_owned()),
            spec,
            requires: BTreeMap::new(),
            demand: Capacity::ONE_SLOT,
        }
    }

    /// The same attempt in lane `lane`.
    pub fn lane(mut self, lane: impl Into<String>) -> Self {
        self.lane = lane.into();
        self
    }

    /// The same attempt, requiring tag `key = value` of its worker.
    pub fn require(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.requires.insert(key.into(), value.into());
        self
    }

    /// The same attempt, taking `demand` of a worker's capacity.
    pub fn demand(mut self, demand: Capacity) -> Self {
        self.demand = demand;
        self
    }

    /// The same attempt at priority `priority`.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Whether a worker carrying `tags` meets the attempt's requirements.
    pub fn tags_met(&self, tags: &BTreeMap<String, String>) -> bool {
        self.requires.iter().all(|(k, v)| tags.get(k) == Some(v))
    }
}

/// An attempt a worker claimed: run it, then report under `fence`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ClaimedAttempt {
    /// Its row.
    pub id: QueueId,
    /// The claim's fencing token: reports under an older one are refused.
    pub fence: u64,
    /// The attempt.
    pub attempt: QueuedAttempt,
    /// When it was pushed.
    pub enqueued_at: SystemTime,
}

impl ClaimedAttempt {
    /// Attempt `attempt` in row `id`, claimed with token `fence`, pushed at
    /// `enqueued_at`.
    pub fn new(id: QueueId, fence: u64, attempt: QueuedAttempt, enqueued_at: SystemTime) -> Self {
        ClaimedAttempt {
            id,
            fence,
            attempt,
            enqueued_at,
        }
    }
}

/// What a worker asks the queue for: attempts of its lanes whose tag requirements its
/// tags meet and whose demands fit `free`, highest priority first (then oldest), at
/// most `limit`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WorkerOffer {
    /// The worker's id (the owner of its claims).
    pub worker: String,
    /// The lanes it serves.
    pub lanes: Vec<String>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Its capacity not in use.
    pub free: Capacity,
    /// At most this many attempts.
    pub limit: usize,
}

impl WorkerOffer {
    /// Worker `worker` serving `lanes`, carrying `tags`, with `free` capacity left.
    pub fn new(
        worker: impl Into<String>,
        lanes: Vec<String>,
        tags: BTreeMap<String, String>,
        free: Capacity,
    ) -> Self {
        WorkerOffer {
            worker: worker.into(),
            lanes,
            tags,
            limit: usize::try_from(free.slots).unwrap_or(usize::MAX),
            free,
        }
    }

    /// The tags as `key=value` strings (how the SQL stores match them).
    pub(crate) fn tag_pairs(&self) -> Vec<String> {
        self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// Picks from `candidates` (in priority order, each fitting `free` on its own and
    /// meeting the tags) those that fit together, greedily, up to `limit`.
    pub(crate) fn pack<T>(&self, candidates: impl IntoIterator<Item = (T, Capacity)>) -> Vec<T> {
        let mut free = self.free;
        let mut out = Vec::new();
        for (c, demand) in candidates {
            if out.len() >= self.limit {
                break;
            }
            if demand.fits_in(&free) {
                free = free.minus(&demand);
                out.push(c);
            }
        }
        out
    }
}

/// What a worker reports about an attempt it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Report {
    /// A log line.
    Log {
        /// Its level.
        level: LogLevel,
        /// The line.
        message: String,
    },
    /// Progress.
    Progress {
        /// 0–100.
        percent: u8,
        /// What it is doing.
        message: String,
    },
    /// The outcome: the attempt is over.
    Outcome(Result<Value, ErrorInfo>),
}

/// Reports about one claimed attempt, in order, under the claim's token.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// The attempt's row.
    pub id: QueueId,
    /// The claim's token.
    pub fence: u64,
    /// What happened, in order (an `Outcome` last, if any).
    pub reports: Vec<Report>,
}

impl WorkerReport {
    /// `reports` about attempt `id`, claimed with token `fence`.
    pub fn new(id: QueueId, fence: u64, reports: Vec<Report>) -> Self {
        WorkerReport { id, fence, reports }
    }
}

/// A report as its engine reads it back, numbered (to acknowledge it).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OwnerReport {
    /// Its number (for [`ExecutionQueue::acknowledge`]).
    pub seq: u64,
    /// The attempt's row.
    pub id: QueueId,
    /// The report.
    pub report: Report,
}

impl OwnerReport {
    /// Report `report` about `id`, number `seq`.
    pub fn new(seq: u64, id: QueueId, report: Report) -> Self {
        OwnerReport { seq, id, report }
    }
}

/// What [`ExecutionQueue::renew_claims`] found about a worker's claims.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Renewed {
    /// Held attempts whose engine asked for them to be cancelled.
    pub cancel: Vec<QueueId>,
    /// How many attempts the worker still holds.
    pub held: u64,
}

/// What [`ExecutionQueue::cancel_attempt`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancelled {
    /// No worker had claimed it: it is gone from the queue.
    Withdrawn,
    /// A worker holds it: it is told (notified) and reports the outcome.
    Asked,
    /// It was over (or unknown) already.
    Over,
}

/// Who a queue watch wakes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueTopic {
    /// A worker: attempts pushed, cancellations of its claims.
    Worker(String),
    /// An engine: reports about its attempts.
    Owner(String),
}

/// One worker process of the fleet, as its last heartbeat recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerRecord {
    /// Its id (the owner of its claims).
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The lanes it serves.
    pub lanes: Vec<String>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Its whole capacity.
    pub capacity: Capacity,
    /// The capacity its live claims take, counted when read.
    pub used: Capacity,
    /// How many attempts it holds, counted when read.
    pub running: u64,
    /// When it started.
    pub started_at: SystemTime,
    /// Its last heartbeat.
    pub last_beat: SystemTime,
    /// Whether it is draining (claims nothing more).
    pub draining: bool,
}

impl WorkerRecord {
    /// Worker `id` on `host` (process `pid`) serving `lanes` with `tags` and
    /// `capacity`, started and beating now.
    pub fn new(
        id: impl Into<String>,
        host: impl Into<String>,
        pid: u32,
        lanes: Vec<String>,
        tags: BTreeMap<String, String>,
        capacity: Capacity,
    ) -> Self {
        let now = SystemTime::now();
        WorkerRecord {
            id: id.into(),
            host: host.into(),
            pid,
            lanes,
            tags,
            capacity,
            used: Capacity::ZERO,
            running: 0,
            started_at: now,
            last_beat: now,
            draining: false,
        }
    }

    /// The same record with `used` capacity and `running` attempts (what a store
    /// counts when read).
    pub fn with_load(mut self, used: Capacity, running: u64) -> Self {
        self.used = used;
        self.running = running;
        self
    }
}

/// The execution queue of a store: attempts handed to remote workers, their claims,
/// leases and reports, and the workers' heartbeats. The memory, SQLite and PostgreSQL
/// stores implement it; the conformance suite (feature `test-util`) states the
/// contract as tests.
#[async_trait::async_trait]
pub trait ExecutionQueue: Send + Sync + std::fmt::Debug + 'static {
    /// Queues `attempts` (state `queued`) and wakes the workers; their rows, in order.
    async fn push(&self, attempts: &[QueuedAttempt]) -> Result<Vec<QueueId>, StoreError>;

    /// Claims for `offer.worker`, under a lease of `ttl`, queued attempts of its lanes
    /// whose tag requirements its tags meet and whose demands fit its free capacity
    /// together, highest priority first, then oldest; each claim gets a new fencing
    /// token. Two workers never claim the same attempt.
    async fn claim_attempts(
        &self,
        offer: &WorkerOffer,
        ttl: Duration,
    ) -> Result<Vec<ClaimedAttempt>, StoreError>;

    /// Extends the leases of every attempt `worker` holds to `ttl` from now; which of
    /// them its engines asked to cancel.
    async fn renew_claims(&self, worker: &str, ttl: Duration) -> Result<Renewed, StoreError>;

    /// Records `reports` of `worker`, each only if the worker still holds the attempt
    /// under the report's token (an outcome also ends the claim, and wakes the
    /// engine); whether each was accepted.
    async fn report(&self, worker: &str, reports: &[WorkerReport])
    -> Result<Vec<bool>, StoreError>;

    /// Gives the attempts `ids` that `worker` holds back to the queue (a draining
    /// worker's leftovers): another worker may claim them, under a new token.
    async fn release_claims(&self, worker: &str, ids: &[QueueId]) -> Result<u64, StoreError>;

    /// Up to `limit` of the reports about `owner`'s attempts not yet
    /// [acknowledged](ExecutionQueue::acknowledge), in the order accepted (per attempt,
    /// always in the order its worker reported).
    async fn reports(&self, owner: &str, limit: usize) -> Result<Vec<OwnerReport>, StoreError>;

    /// Deletes `owner`'s reports numbered `reports` (read) and its attempts `attempts`
    /// (their outcomes were read, or they were lost or withdrawn).
    async fn acknowledge(
        &self,
        owner: &str,
        reports: &[u64],
        attempts: &[QueueId],
    ) -> Result<(), StoreError>;

    /// Ends the claims on `owner`'s attempts whose lease lapsed (their worker died or
    /// stalled): they are lost, and their worker's later reports refused. Which.
    async fn expire_claims(&self, owner: &str) -> Result<Vec<QueueId>, StoreError>;

    /// Cancels attempt `id`: withdrawn if still queued, else its worker is asked.
    async fn cancel_attempt(&self, id: QueueId) -> Result<Cancelled, StoreError>;

    /// Wake-ups for `topic`: a stream that yields after changes that may concern it.
    /// Wake-ups are hints (re-read the queue); they may be merged or spurious.
    async fn watch_queue(&self, topic: QueueTopic) -> Result<Wakeups, StoreError>;

    /// Records worker `worker.id`'s heartbeat (inserts or replaces its record; its
    /// `used` and `running` are not stored but counted when read).
    async fn worker_beat(&self, worker: &WorkerRecord) -> Result<(), StoreError>;

    /// Every recorded worker, by id, with its live load.
    async fn workers(&self) -> Result<Vec<WorkerRecord>, StoreError>;

    /// Removes worker `id`'s record (a clean stop); whether there was one.
    async fn forget_worker(&self, id: &str) -> Result<bool, StoreError>;
}
