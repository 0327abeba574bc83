//! The store capabilities both SQL stores implement alike: the
//! shared statements of [`Sql`](super::Sql), the group write and the claims. A
//! backend writes only its own methods (creating a run, leases, watching, cancel
//! requests), inside [`sql_store!`].

/// The seven capabilities of store `$store` ([`RunLog`](crate::store::RunLog), …):
/// its own methods of the run log (`run_log { … }`) and of change watching
/// (`watch { … }`), and the methods every SQL store shares. The
/// store has `sql()` (its [`Sql`](super::Sql) view), a `writer` (the group write),
/// `claim_of` and a `claim` module with `claim_rows` and `Pick`.
macro_rules! sql_store {
    ($store:ty { run_log { $($log:tt)* } watch { $($watch:tt)* } }) => {
        #[async_trait::async_trait]
        impl $crate::store::RunLog for $store {
            $($log)*

            async fn append(&self, run: $crate::ids::RunId, lease: &$crate::store::Lease, events: &[$crate::events::Event]) -> Result<(), $crate::store::StoreError> {
                // Encoded here, written by the store's writer with whatever else is queued.
                let batch = $crate::store::sql::Batch::encode(events, 1)?;
                let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
                let first = events
                    .first()
                    .map_or(0, |e| i64::try_from(e.seq).unwrap_or(i64::MAX));
                self.writer
                    .append($crate::store::combine::Append {
                        run,
                        lease: lease.clone(),
                        batch,
                        n,
                        first,
                    })
                    .await
            }

            async fn claim(
                &self,
                owner: &str,
                ttl: ::std::time::Duration,
                limit: usize,
            ) -> Result<Vec<$crate::store::Claimed>, $crate::store::StoreError> {
                self.claim_of(owner, ttl, limit, None, &[]).await
            }

            async fn claim_run(
                &self,
                run: $crate::ids::RunId,
                owner: &str,
                ttl: ::std::time::Duration,
            ) -> Result<Option<$crate::store::Claimed>, $crate::store::StoreError> {
                let rows =
                    claim::claim_rows(&self.pool, owner, ttl, 1, claim::Pick::Run(run), None, &[]).await?;
                Ok(self.sql().claimed(owner, rows).await?.pop())
            }

            async fn claim_workflows(
                &self,
                owner: &str,
                ttl: ::std::time::Duration,
                limit: usize,
                workflows: &[String],
                except: &[$crate::ids::RunId],
            ) -> Result<Vec<$crate::store::Claimed>, $crate::store::StoreError> {
                self.claim_of(owner, ttl, limit, Some(workflows), except)
                    .await
            }

            async fn cancel_requests(&self, owner: &str) -> Result<Vec<$crate::ids::RunId>, $crate::store::StoreError> {
                self.sql().cancel_requests(owner).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::RunQueries for $store {
            async fn get_run(&self, run: $crate::ids::RunId) -> Result<Option<$crate::store::RunRecord>, $crate::store::StoreError> {
                self.sql().get_run(run).await
            }

            async fn list_runs(&self, query: &$crate::store::RunQuery) -> Result<$crate::store::Page<$crate::store::RunRecord>, $crate::store::StoreError> {
                self.sql().list_runs(query).await
            }

            async fn executions(&self, run: $crate::ids::RunId) -> Result<Vec<$crate::store::ExecutionRecord>, $crate::store::StoreError> {
                self.sql().executions(run).await
            }

            async fn events(&self, run: $crate::ids::RunId, after: u64, limit: usize) -> Result<Vec<$crate::events::Event>, $crate::store::StoreError> {
                self.sql().events(run, after, limit).await
            }

            async fn count_runs(&self, query: &$crate::store::RunQuery) -> Result<$crate::store::RunCounts, $crate::store::StoreError> {
                self.sql().count_runs(query).await
            }

            async fn executions_page(&self, run: $crate::ids::RunId, query: &$crate::store::ExecutionQuery) -> Result<$crate::store::ExecutionPage, $crate::store::StoreError> {
                self.sql().executions_page(run, query).await
            }

            async fn count_executions(&self, run: $crate::ids::RunId, query: &$crate::store::ExecutionQuery) -> Result<u64, $crate::store::StoreError> {
                self.sql().count_executions(run, query).await
            }

            async fn logs(&self, run: $crate::ids::RunId, query: &$crate::store::LogQuery) -> Result<Vec<$crate::store::LogLine>, $crate::store::StoreError> {
                self.sql().logs(run, query).await
            }

            async fn node_summaries(&self, run: $crate::ids::RunId, query: &$crate::store::SummaryQuery) -> Result<Vec<$crate::store::NodeSummary>, $crate::store::StoreError> {
                self.sql().node_summaries(run, query).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::EngineRegistry for $store {
            async fn beat(&self, engine: &$crate::store::EngineRecord) -> Result<(), $crate::store::StoreError> {
                self.sql().beat(engine).await
            }

            async fn engines(&self) -> Result<Vec<$crate::store::EngineRecord>, $crate::store::StoreError> {
                self.sql().engines().await
            }

            async fn forget_engine(&self, id: &str) -> Result<bool, $crate::store::StoreError> {
                self.sql().forget_engine(id).await
            }

            async fn forget_engines_before(&self, before: ::std::time::SystemTime) -> Result<u64, $crate::store::StoreError> {
                self.sql().forget_engines_before(before).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::EventFeed for $store {
            async fn events_since(
                &self,
                after: $crate::store::FeedCursor,
                limit: usize,
                workflow: Option<&str>,
            ) -> Result<$crate::store::FeedPage, $crate::store::StoreError> {
                self.sql().events_since(after, limit, workflow).await
            }

            async fn feed_head(&self) -> Result<$crate::store::FeedCursor, $crate::store::StoreError> {
                self.sql().feed_head().await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::QueueAdmin for $store {
            async fn release_key(&self, key: &str, holder: $crate::ids::RunId) -> Result<(), $crate::store::StoreError> {
                self.sql().release_key(key, holder).await
            }

            async fn set_queue_limit(
                &self,
                queue: &str,
                max_running: Option<u32>,
            ) -> Result<(), $crate::store::StoreError> {
                self.sql().set_queue_limit(queue, max_running).await
            }

            async fn queue_limits(&self) -> Result<Vec<(String, u32)>, $crate::store::StoreError> {
                self.sql().queue_limits().await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ScheduleStore for $store {
            async fn put_schedule(&self, schedule: &$crate::store::ScheduleRecord) -> Result<(), $crate::store::StoreError> {
                self.sql().put_schedule(schedule).await
            }

            async fn get_schedule(&self, id: &str) -> Result<Option<$crate::store::ScheduleRecord>, $crate::store::StoreError> {
                self.sql().get_schedule(id).await
            }

            async fn list_schedules(&self) -> Result<Vec<$crate::store::ScheduleRecord>, $crate::store::StoreError> {
                self.sql().list_schedules().await
            }

            async fn delete_schedule(&self, id: &str) -> Result<bool, $crate::store::StoreError> {
                self.sql().delete_schedule(id).await
            }

            async fn set_schedule_enabled(
                &self,
                id: &str,
                enabled: bool,
                next_fire: Option<::std::time::SystemTime>,
            ) -> Result<bool, $crate::store::StoreError> {
                self.sql()
                    .set_schedule_enabled(id, enabled, next_fire)
                    .await
            }

            async fn due_schedules(
                &self,
                now: ::std::time::SystemTime,
                limit: usize,
            ) -> Result<Vec<$crate::store::ScheduleRecord>, $crate::store::StoreError> {
                self.sql().due_schedules(now, limit).await
            }

            async fn next_schedule_fire(
                &self,
                after: ::std::time::SystemTime,
            ) -> Result<Option<::std::time::SystemTime>, $crate::store::StoreError> {
                self.sql().next_schedule_fire(after).await
            }

            async fn advance_schedule(
                &self,
                id: &str,
                expected: Option<::std::time::SystemTime>,
                advance: &$crate::store::ScheduleAdvance,
            ) -> Result<bool, $crate::store::StoreError> {
                self.sql().advance_schedule(id, expected, advance).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Watch for $store {
            $($watch)*


        }
    };
}

pub(in crate::store) use sql_store;
