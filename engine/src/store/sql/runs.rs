//! The run statements both SQL stores share: reading runs, executions and events
//! back, cancellation requests, lanes' caps and idempotency keys.

use std::sync::Arc;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use crate::events::Event;
use crate::ids::RunId;
use crate::workflow::{WorkflowSnapshot, WorkflowSpec};

use super::super::{Claimed, ExecutionRecord, RunRecord, StoreError};
use super::dialect::{Dialect, Sql};
use super::{
    ClaimHead, ExecOut, backend, bad_row, decode_execution, from_json, from_micros, parse_run_id,
    parse_state,
};

/// A run row, as [`run_columns`] reads it.
pub(in crate::store) type RunRow = (
    String,
    i64,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    i32,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// The columns of a run row, in [`RunRow`] order, each prefixed with `prefix` (a
/// table alias and its dot, or nothing).
pub(super) fn run_columns<DB: Dialect>(prefix: &str) -> String {
    let t = DB::TEXT;
    let p = prefix;
    format!(
        "{p}id{t}, {p}workflow_id, {p}workflow, {p}version, {p}inputs{t}, {p}state, \
         {p}created_at, {p}started_at, {p}finished_at, {p}priority, {p}not_before, \
         {p}idempotency_key, {p}queue"
    )
}

impl<DB: Dialect> Sql<'_, DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The row key of `run` ([`StoreError::UnknownRun`] if there is none).
    pub(in crate::store) async fn run_pk(&self, run: RunId) -> Result<i64, StoreError> {
        sqlx::query_scalar(&format!("SELECT pk FROM runs WHERE id = $1{}", DB::UUID))
            .bind(run.to_uuid_string())
            .fetch_optional(self.pool)
            .await
            .map_err(|e| backend("reading a run", e))?
            .ok_or(StoreError::UnknownRun(run))
    }

    /// Run records from rows, with their specs (cached, else read).
    pub(in crate::store) async fn records(
        &self,
        rows: Vec<RunRow>,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (id, wf, workflow, version, inputs, state, created, started, finished) = (
                row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8,
            );
            let spec = match self.specs.spec(wf) {
                Some(s) => s,
                None => {
                    let json: String =
                        sqlx::query_scalar("SELECT spec FROM workflows WHERE id = $1")
                            .bind(wf)
                            .fetch_one(self.pool)
                            .await
                            .map_err(|e| backend("reading a workflow spec", e))?;
                    let spec: Arc<WorkflowSpec> = Arc::new(from_json("workflow spec", &json)?);
                    self.specs.remember(&spec, wf);
                    spec
                }
            };
            out.push(RunRecord {
                id: parse_run_id(&id)?,
                workflow,
                version,
                spec: WorkflowSnapshot::stored(spec),
                inputs: from_json("run inputs", &inputs)?,
                state: parse_state("run state", &state)?,
                created_at: from_micros(created),
                started_at: started.map(from_micros),
                finished_at: finished.map(from_micros),
                priority: row.9,
                not_before: row.10.map(from_micros),
                idempotency_key: row.11,
                queue: row.12,
            });
        }
        Ok(out)
    }

    /// Claims from claimed rows (fence, event count, stalled claims, run row).
    pub(in crate::store) async fn claimed(
        &self,
        owner: &str,
        rows: Vec<(ClaimHead, RunRow)>,
    ) -> Result<Vec<Claimed>, StoreError> {
        let owner: Arc<str> = owner.into();
        let heads: Vec<ClaimHead> = rows.iter().map(|r| r.0).collect();
        let records = self
            .records(rows.into_iter().map(|(_, row)| row).collect())
            .await?;
        Ok(records
            .into_iter()
            .zip(heads)
            .map(|(run, head)| head.claimed(run, &owner))
            .collect())
    }

    /// Why `run` could not be inserted: its idempotency key or its id is taken.
    pub(in crate::store) async fn conflict(&self, run: &RunRecord) -> StoreError {
        if let Some(key) = &run.idempotency_key {
            let holder: Result<Option<(String, i64)>, _> = sqlx::query_as(&format!(
                "SELECT id{}, created_at FROM runs WHERE idempotency_key = $1",
                DB::TEXT
            ))
            .bind(key.as_str())
            .fetch_optional(self.pool)
            .await;
            match holder {
                Ok(Some((id, created))) => {
                    return match parse_run_id(&id) {
                        Ok(holder) => StoreError::KeyExists {
                            key: key.clone(),
                            run: holder,
                            created_at: from_micros(created),
                        },
                        Err(e) => e,
                    };
                }
                Ok(None) => {}
                Err(e) => return backend("creating a run", e),
            }
        }
        StoreError::RunExists(run.id)
    }

    /// [`Store::get_run`](super::super::Store::get_run).
    pub(in crate::store) async fn get_run(
        &self,
        run: RunId,
    ) -> Result<Option<RunRecord>, StoreError> {
        let row: Option<RunRow> = sqlx::query_as(&format!(
            "SELECT {} FROM runs WHERE id = $1{}",
            run_columns::<DB>(""),
            DB::UUID
        ))
        .bind(run.to_uuid_string())
        .fetch_optional(self.pool)
        .await
        .map_err(|e| backend("reading a run", e))?;
        Ok(self
            .records(row.into_iter().collect())
            .await
            .map_err(|e| e.in_run(run))?
            .pop())
    }

    /// [`Store::executions`](super::super::Store::executions).
    pub(in crate::store) async fn executions(
        &self,
        run: RunId,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let pk = self.run_pk(run).await?;
        let t = DB::TEXT;
        let rows: Vec<ExecOut> = sqlx::query_as(&format!(
            "SELECT node, item, attempt, state, output{t}, error{t}, reason, started_at, \
             updated_at FROM executions WHERE run_pk = $1 ORDER BY first_seq"
        ))
        .bind(pk)
        .fetch_all(self.pool)
        .await
        .map_err(|e| backend("reading executions", e))?;
        rows.into_iter()
            .map(|row| decode_execution(row).map_err(|e| e.in_run(run)))
            .collect()
    }

    /// [`Store::events`](super::super::Store::events).
    pub(in crate::store) async fn events(
        &self,
        run: RunId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let pk = self.run_pk(run).await?;
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(&format!(
            "SELECT seq, at, kind{} FROM events WHERE run_pk = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
            DB::TEXT
        ))
        .bind(pk)
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool)
        .await
        .map_err(|e| backend("reading events", e))?;
        rows.into_iter()
            .map(|(seq, at, kind)| {
                Ok(Event::new(
                    run,
                    u64::try_from(seq).unwrap_or(0),
                    from_micros(at),
                    serde_json::from_str(&kind)
                        .map_err(|e| bad_row(&format!("event {seq}"), e).in_run(run))?,
                ))
            })
            .collect()
    }

    /// [`Store::cancel_requests`](super::super::Store::cancel_requests).
    pub(in crate::store) async fn cancel_requests(
        &self,
        owner: &str,
    ) -> Result<Vec<RunId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT id{} FROM runs WHERE lease_owner = $1 AND cancel_requested IS NOT NULL",
            DB::TEXT
        ))
        .bind(owner)
        .fetch_all(self.pool)
        .await
        .map_err(|e| backend("reading cancellation requests", e))?;
        ids.iter().map(|id| parse_run_id(id)).collect()
    }

    /// [`Store::release_key`](super::super::Store::release_key).
    pub(in crate::store) async fn release_key(
        &self,
        key: &str,
        holder: RunId,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "UPDATE runs SET idempotency_key = NULL WHERE idempotency_key = $1 AND id = $2{}",
            DB::UUID
        ))
        .bind(key)
        .bind(holder.to_uuid_string())
        .execute(self.pool)
        .await
        .map_err(|e| backend("releasing an idempotency key", e))?;
        Ok(())
    }

    /// [`Store::set_queue_limit`](super::super::Store::set_queue_limit). A cap past
    /// `i32::MAX` is stored as `i32::MAX` (no store holds that many runs).
    pub(in crate::store) async fn set_queue_limit(
        &self,
        queue: &str,
        max_running: Option<u32>,
    ) -> Result<(), StoreError> {
        let q = match max_running {
            Some(max) => sqlx::query(
                "INSERT INTO queues (name, max_running) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running",
            )
            .bind(queue)
            .bind(i32::try_from(max).unwrap_or(i32::MAX)),
            None => sqlx::query("DELETE FROM queues WHERE name = $1").bind(queue),
        };
        q.execute(self.pool)
            .await
            .map_err(|e| backend("setting a queue limit", e))?;
        Ok(())
    }

    /// [`Store::queue_limits`](super::super::Store::queue_limits).
    pub(in crate::store) async fn queue_limits(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let rows: Vec<(String, i32)> =
            sqlx::query_as("SELECT name, max_running FROM queues ORDER BY name")
                .fetch_all(self.pool)
                .await
                .map_err(|e| backend("reading queue limits", e))?;
        Ok(rows
            .into_iter()
            .map(|(n, m)| (n, u32::try_from(m).unwrap_or(0)))
            .collect())
    }
}
