//! The store's capabilities, one trait each: what a store outside this crate
//! implements. [`Store`](super::Store) is their union, implemented for every type that
//! has all of them (with [`EngineRegistry`](super::EngineRegistry) and
//! [`EventFeed`](super::EventFeed), in their own files).

use std::time::{Duration, SystemTime};

use crate::events::Event;
use crate::ids::RunId;

use super::{
    Claimed, ExecutionCursor, ExecutionPage, ExecutionQuery, ExecutionRecord, Lease, LogLine,
    LogQuery, MAX_PAGE, NodeSummary, Page, RunCounts, RunQuery, RunRecord, ScheduleAdvance,
    ScheduleRecord, StoreError, SummaryQuery, Wakeups,
};

/// The run log: creating runs, appending their events under a lease, renewing and
/// giving the lease back, claiming runs whose lease lapsed, and cancellation
/// requests. Implementations must apply each `append` atomically and in order.
#[async_trait::async_trait]
pub trait RunLog: Send + Sync + std::fmt::Debug + 'static {
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
    /// means "use [`append`](RunLog::append)" (and `events` must be left untouched). The
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
    /// whatever its lane's cap: for acting on that run alone (cancelling it). A run
    /// queued for later (`not_before` still ahead) is taken only once its cancellation
    /// was requested ([`request_cancel`](RunLog::request_cancel)), so that it ends at
    /// once rather than when due; a run an engine holds is never taken before its
    /// lease expires.
    async fn claim_run(
        &self,
        run: RunId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Claimed>, StoreError>;

    /// [`claim`](RunLog::claim), taking only runs of the named workflows: what a
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

    /// Asks whichever engine drives `run` (now, or after claiming it) to cancel it.
    /// Returns `false` if the run finished already (or does not exist). Engines see
    /// the request through [`cancel_requests`](RunLog::cancel_requests) (and on
    /// PostgreSQL are woken by a notification).
    async fn request_cancel(&self, run: RunId) -> Result<bool, StoreError>;

    /// Unfinished runs leased by `owner` whose cancellation was requested.
    async fn cancel_requests(&self, owner: &str) -> Result<Vec<RunId>, StoreError>;
}

/// Reading runs back: one run, pages of runs (newest first, keyset-paged by run id),
/// a run's executions and its events.
#[async_trait::async_trait]
pub trait RunQueries: Send + Sync + std::fmt::Debug + 'static {
    /// One run.
    async fn get_run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError>;

    /// Runs, newest first, filtered and paged.
    async fn list_runs(&self, query: &RunQuery) -> Result<Page<RunRecord>, StoreError>;

    /// Every attempt of every node of a run, in the order they were first seen.
    async fn executions(&self, run: RunId) -> Result<Vec<ExecutionRecord>, StoreError>;

    /// Up to `limit` events with `seq > after`, in order.
    async fn events(&self, run: RunId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// How many runs are in each state under `query`'s filters (its cursor and limit
    /// ignored). The default pages through [`list_runs`](RunQueries::list_runs); the
    /// crate's stores count with their indexes.
    async fn count_runs(&self, query: &RunQuery) -> Result<RunCounts, StoreError> {
        query.check()?;
        let mut q = query.clone();
        q.limit = MAX_PAGE;
        q.before = None;
        q.cursor = None;
        let mut counts = RunCounts::default();
        loop {
            let page = self.list_runs(&q).await?;
            for r in &page.items {
                counts.add(r.state, 1);
            }
            match (page.cursor, page.next) {
                (Some(c), _) => q.cursor = Some(c),
                (None, Some(n)) => q.before = Some(n),
                (None, None) => return Ok(counts),
            }
        }
    }

    /// A page of a run's executions ordered by node, item (the node's own row first),
    /// attempt, filtered by `query` ([`StoreError::UnknownRun`] for no such run). The
    /// default reads every execution; the crate's stores read only the page.
    async fn executions_page(
        &self,
        run: RunId,
        query: &ExecutionQuery,
    ) -> Result<ExecutionPage, StoreError> {
        query.check()?;
        let mut rows: Vec<ExecutionRecord> = self
            .executions(run)
            .await?
            .into_iter()
            .filter(|e| query.matches(e))
            .filter(|e| {
                query.after.as_ref().is_none_or(|c| {
                    (e.node.as_str(), e.item.map_or(-1, i64::from), e.attempt) > c.key()
                })
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.node, a.item.map_or(-1, i64::from), a.attempt).cmp(&(
                &b.node,
                b.item.map_or(-1, i64::from),
                b.attempt,
            ))
        });
        let size = query.size();
        let next = (rows.len() > size).then(|| ExecutionCursor::after(&rows[size - 1]));
        rows.truncate(size);
        Ok(ExecutionPage::new(rows, next))
    }

    /// How many of a run's executions pass `query`'s filters (its cursor and limit
    /// ignored).
    async fn count_executions(
        &self,
        run: RunId,
        query: &ExecutionQuery,
    ) -> Result<u64, StoreError> {
        query.check()?;
        let rows = self.executions(run).await?;
        Ok(rows.iter().filter(|e| query.matches(e)).count() as u64)
    }

    /// The nodes of a run that have executions, each summed up ([`NodeSummary`]: its
    /// own latest execution, its fan-out items counted by the state of their latest
    /// attempt, attempts and times), by node id; only `query.node` if given
    /// ([`StoreError::UnknownRun`] for no such run). What a run's or a node's detail
    /// shows, without reading every execution back. The default pages through
    /// [`executions_page`](RunQueries::executions_page), keeping only the sums; the
    /// crate's stores sum up in the database.
    async fn node_summaries(
        &self,
        run: RunId,
        query: &SummaryQuery,
    ) -> Result<Vec<NodeSummary>, StoreError> {
        query.check()?;
        let mut q = ExecutionQuery::new().limit(MAX_PAGE);
        if let Some(n) = &query.node {
            q = q.node(n.clone());
        }
        let mut sums = super::summary::Summer::new(query);
        loop {
            let page = self.executions_page(run, &q).await?;
            for e in &page.items {
                sums.add(e);
            }
            match page.next {
                Some(c) => q = q.after(c),
                None => return Ok(sums.finish()),
            }
        }
    }

    /// A run's log lines passing `query`'s filters, in sequence order: the first
    /// `limit` after `query.after`, or with `query.tail` the last `limit` of those
    /// ([`StoreError::UnknownRun`] for no such run). The default reads the events;
    /// the crate's stores read only the lines.
    async fn logs(&self, run: RunId, query: &LogQuery) -> Result<Vec<LogLine>, StoreError> {
        query.check()?;
        let size = query.size();
        let mut out = std::collections::VecDeque::new();
        let mut after = query.after;
        loop {
            let page = self.events(run, after, MAX_PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(out.into());
            };
            after = last.seq;
            for e in &page {
                if let Some(line) = query.line(e) {
                    if out.len() == size {
                        if !query.tail {
                            return Ok(out.into());
                        }
                        out.pop_front();
                    }
                    out.push_back(line);
                }
            }
        }
    }
}

/// Queue administration: lanes' caps and idempotency keys.
#[async_trait::async_trait]
pub trait QueueAdmin: Send + Sync + std::fmt::Debug + 'static {
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
}

/// Recurring schedules (see [`Engine::schedules`](crate::Engine)): their records and the
/// compare-and-set advance that lets exactly one engine fire each.
#[async_trait::async_trait]
pub trait ScheduleStore: Send + Sync + std::fmt::Debug + 'static {
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

/// Change watching: when a serving engine should look again for work. Both methods
/// have defaults (the store cannot tell; the engine polls).
#[async_trait::async_trait]
pub trait Watch: Send + Sync + std::fmt::Debug + 'static {
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
}
