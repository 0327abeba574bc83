//! [`Store`]: the union of the store's capabilities, what the engine takes.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use crate::events::Event;
use crate::ids::RunId;

use super::{
    Claimed, EngineRecord, EngineRegistry, EventFeed, ExecutionPage, ExecutionQuery,
    ExecutionRecord, FeedCursor, FeedPage, Lease, LogLine, LogQuery, NodeSummary, Page, QueueAdmin,
    RunCounts, RunLog, RunQueries, RunQuery, RunRecord, ScheduleAdvance, ScheduleRecord,
    ScheduleStore, StoreError, SummaryQuery, Wakeups, Watch,
};

/// Where runs and their events live: the union of the store's capabilities
/// ([`RunLog`], [`RunQueries`], [`QueueAdmin`], [`ScheduleStore`], [`Watch`],
/// [`EngineRegistry`], [`EventFeed`]), implemented for every type that has all seven.
/// The engine takes an `Arc<dyn Store>`; a store implements the seven traits (see
/// their docs for each method's contract), and
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

    /// [`ScheduleStore::put_schedule`].
    async fn put_schedule(&self, schedule: &ScheduleRecord) -> Result<(), StoreError>;

    /// [`ScheduleStore::get_schedule`].
    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError>;

    /// [`ScheduleStore::list_schedules`].
    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError>;

    /// [`ScheduleStore::delete_schedule`].
    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError>;

    /// [`ScheduleStore::set_schedule_enabled`].
    async fn set_schedule_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_fire: Option<SystemTime>,
    ) -> Result<bool, StoreError>;

    /// [`ScheduleStore::due_schedules`].
    async fn due_schedules(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError>;

    /// [`ScheduleStore::next_schedule_fire`].
    async fn next_schedule_fire(&self, after: SystemTime)
    -> Result<Option<SystemTime>, StoreError>;

    /// [`ScheduleStore::advance_schedule`].
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

    /// [`RunQueries::count_runs`].
    async fn count_runs(&self, query: &RunQuery) -> Result<RunCounts, StoreError>;

    /// [`RunQueries::executions_page`].
    async fn executions_page(
        &self,
        run: RunId,
        query: &ExecutionQuery,
    ) -> Result<ExecutionPage, StoreError>;

    /// [`RunQueries::count_executions`].
    async fn count_executions(&self, run: RunId, query: &ExecutionQuery)
    -> Result<u64, StoreError>;

    /// [`RunQueries::logs`].
    async fn logs(&self, run: RunId, query: &LogQuery) -> Result<Vec<LogLine>, StoreError>;

    /// [`RunQueries::node_summaries`].
    async fn node_summaries(
        &self,
        run: RunId,
        query: &SummaryQuery,
    ) -> Result<Vec<NodeSummary>, StoreError>;

    /// [`EngineRegistry::beat`].
    async fn beat(&self, engine: &EngineRecord) -> Result<(), StoreError>;

    /// [`EngineRegistry::engines`].
    async fn engines(&self) -> Result<Vec<EngineRecord>, StoreError>;

    /// [`EngineRegistry::forget_engine`].
    async fn forget_engine(&self, id: &str) -> Result<bool, StoreError>;

    /// [`EngineRegistry::forget_engines_before`].
    async fn forget_engines_before(&self, before: SystemTime) -> Result<u64, StoreError>;

    /// [`EventFeed::events_since`].
    async fn events_since(
        &self,
        after: FeedCursor,
        limit: usize,
        workflow: Option<&str>,
    ) -> Result<FeedPage, StoreError>;

    /// [`EventFeed::feed_head`].
    async fn feed_head(&self) -> Result<FeedCursor, StoreError>;
}

#[async_trait::async_trait]
impl<T> Store for T
where
    T: RunLog + RunQueries + QueueAdmin + ScheduleStore + Watch + EngineRegistry + EventFeed,
{
    async fn create_run(
        &self,
        run: &RunRecord,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        RunLog::create_run(self, run, lease, ttl).await
    }

    // The hot path of the SQL stores: the capability's boxed future as it is, not
    // boxed again.
    fn append<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        run: RunId,
        lease: &'life1 Lease,
        events: &'life2 [Event],
    ) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        RunLog::append(self, run, lease, events)
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
        ScheduleStore::put_schedule(self, schedule).await
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        ScheduleStore::get_schedule(self, id).await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        ScheduleStore::list_schedules(self).await
    }

    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        ScheduleStore::delete_schedule(self, id).await
    }

    async fn set_schedule_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_fire: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        ScheduleStore::set_schedule_enabled(self, id, enabled, next_fire).await
    }

    async fn due_schedules(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        ScheduleStore::due_schedules(self, now, limit).await
    }

    async fn next_schedule_fire(
        &self,
        after: SystemTime,
    ) -> Result<Option<SystemTime>, StoreError> {
        ScheduleStore::next_schedule_fire(self, after).await
    }

    async fn advance_schedule(
        &self,
        id: &str,
        expected: Option<SystemTime>,
        advance: &ScheduleAdvance,
    ) -> Result<bool, StoreError> {
        ScheduleStore::advance_schedule(self, id, expected, advance).await
    }

    async fn next_start(&self) -> Result<Option<SystemTime>, StoreError> {
        Watch::next_start(self).await
    }

    async fn watch(&self) -> Result<Option<Wakeups>, StoreError> {
        Watch::watch(self).await
    }

    async fn count_runs(&self, query: &RunQuery) -> Result<RunCounts, StoreError> {
        RunQueries::count_runs(self, query).await
    }

    async fn executions_page(
        &self,
        run: RunId,
        query: &ExecutionQuery,
    ) -> Result<ExecutionPage, StoreError> {
        RunQueries::executions_page(self, run, query).await
    }

    async fn count_executions(
        &self,
        run: RunId,
        query: &ExecutionQuery,
    ) -> Result<u64, StoreError> {
        RunQueries::count_executions(self, run, query).await
    }

    async fn logs(&self, run: RunId, query: &LogQuery) -> Result<Vec<LogLine>, StoreError> {
        RunQueries::logs(self, run, query).await
    }

    async fn node_summaries(
        &self,
        run: RunId,
        query: &SummaryQuery,
    ) -> Result<Vec<NodeSummary>, StoreError> {
        RunQueries::node_summaries(self, run, query).await
    }

    async fn beat(&self, engine: &EngineRecord) -> Result<(), StoreError> {
        EngineRegistry::beat(self, engine).await
    }

    async fn engines(&self) -> Result<Vec<EngineRecord>, StoreError> {
        EngineRegistry::engines(self).await
    }

    async fn forget_engine(&self, id: &str) -> Result<bool, StoreError> {
        EngineRegistry::forget_engine(self, id).await
    }

    async fn forget_engines_before(&self, before: SystemTime) -> Result<u64, StoreError> {
        EngineRegistry::forget_engines_before(self, before).await
    }

    async fn events_since(
        &self,
        after: FeedCursor,
        limit: usize,
        workflow: Option<&str>,
    ) -> Result<FeedPage, StoreError> {
        EventFeed::events_since(self, after, limit, workflow).await
    }

    async fn feed_head(&self) -> Result<FeedCursor, StoreError> {
        EventFeed::feed_head(self).await
    }
}
