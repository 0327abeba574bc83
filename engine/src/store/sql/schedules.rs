//! Recurring schedules in the SQL stores: the `schedules` table, one statement text
//! for both databases.

use std::time::SystemTime;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use super::super::{ScheduleAdvance, ScheduleRecord, StoreError};
use super::dialect::{Dialect, Sql};
use super::{backend, from_json, from_micros, micros, parse_run_id, to_json};

/// The columns of a schedule row as written (and, cast to text on PostgreSQL, as read:
/// [`read_columns`]).
const COLUMNS: &str = "id, workflow, cron, time_zone, inputs, options, enabled, next_fire, \
                       last_fire, last_run, note, updated_at";

/// The columns of a schedule row to read, in [`Row`] order.
fn read_columns<DB: Dialect>() -> String {
    let t = DB::TEXT;
    format!(
        "id, workflow, cron, time_zone, inputs{t}, options{t}, enabled, next_fire, \
         last_fire, last_run{t}, note, updated_at"
    )
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    bool,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    i64,
);

fn decode(row: Row) -> Result<ScheduleRecord, StoreError> {
    let (id, workflow, cron, time_zone, inputs, options, enabled, next, last, run, note, at) = row;
    Ok(ScheduleRecord {
        inputs: from_json("schedule inputs", &inputs)?,
        options: from_json("schedule options", &options)?,
        enabled,
        next_fire: next.map(from_micros),
        last_fire: last.map(from_micros),
        last_run: run.as_deref().map(parse_run_id).transpose()?,
        note,
        updated_at: from_micros(at),
        id,
        workflow,
        cron,
        time_zone,
    })
}

impl<DB: Dialect> Sql<'_, DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// [`Store::put_schedule`](super::super::Store::put_schedule).
    pub(in crate::store) async fn put_schedule(
        &self,
        s: &ScheduleRecord,
    ) -> Result<(), StoreError> {
        let (j, u) = (DB::JSON, DB::UUID);
        sqlx::query(&format!(
            "INSERT INTO schedules ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5{j}, $6{j}, $7, $8, $9, $10{u}, $11, $12) \
             ON CONFLICT (id) DO UPDATE SET workflow = excluded.workflow, cron = excluded.cron, \
             time_zone = excluded.time_zone, inputs = excluded.inputs, \
             options = excluded.options, enabled = excluded.enabled, \
             next_fire = excluded.next_fire, last_fire = excluded.last_fire, \
             last_run = excluded.last_run, note = excluded.note, \
             updated_at = excluded.updated_at"
        ))
        .bind(&s.id)
        .bind(&s.workflow)
        .bind(&s.cron)
        .bind(&s.time_zone)
        .bind(to_json("encoding schedule inputs", &s.inputs)?)
        .bind(to_json("encoding schedule options", &s.options)?)
        .bind(s.enabled)
        .bind(s.next_fire.map(micros))
        .bind(s.last_fire.map(micros))
        .bind(s.last_run.map(|r| r.to_uuid_string()))
        .bind(&s.note)
        .bind(micros(SystemTime::now()))
        .execute(self.pool)
        .await
        .map_err(|e| backend("writing a schedule", e))?;
        Ok(())
    }

    /// [`Store::get_schedule`](super::super::Store::get_schedule).
    pub(in crate::store) async fn get_schedule(
        &self,
        id: &str,
    ) -> Result<Option<ScheduleRecord>, StoreError> {
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {} FROM schedules WHERE id = $1",
            read_columns::<DB>()
        ))
        .bind(id)
        .fetch_optional(self.pool)
        .await
        .map_err(|e| backend("reading a schedule", e))?;
        row.map(decode).transpose()
    }

    /// [`Store::list_schedules`](super::super::Store::list_schedules).
    pub(in crate::store) async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {} FROM schedules ORDER BY id",
            read_columns::<DB>()
        ))
        .fetch_all(self.pool)
        .await
        .map_err(|e| backend("listing schedules", e))?;
        rows.into_iter().map(decode).collect()
    }

    /// [`Store::delete_schedule`](super::super::Store::delete_schedule).
    pub(in crate::store) async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM schedules WHERE id = $1")
            .bind(id)
            .execute(self.pool)
            .await
            .map_err(|e| backend("deleting a schedule", e))?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// [`Store::set_schedule_enabled`](super::super::Store::set_schedule_enabled).
    pub(in crate::store) async fn set_schedule_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_fire: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE schedules SET enabled = $1, next_fire = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(enabled)
        .bind(next_fire.map(micros))
        .bind(micros(SystemTime::now()))
        .bind(id)
        .execute(self.pool)
        .await
        .map_err(|e| backend("enabling a schedule", e))?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// [`Store::due_schedules`](super::super::Store::due_schedules).
    pub(in crate::store) async fn due_schedules(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {} FROM schedules WHERE enabled AND next_fire <= $1 \
             ORDER BY next_fire, id LIMIT $2",
            read_columns::<DB>()
        ))
        .bind(micros(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool)
        .await
        .map_err(|e| backend("reading due schedules", e))?;
        rows.into_iter().map(decode).collect()
    }

    /// [`Store::next_schedule_fire`](super::super::Store::next_schedule_fire).
    pub(in crate::store) async fn next_schedule_fire(
        &self,
        after: SystemTime,
    ) -> Result<Option<SystemTime>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_fire) FROM schedules WHERE enabled AND next_fire > $1",
        )
        .bind(micros(after))
        .fetch_one(self.pool)
        .await
        .map_err(|e| backend("reading the next schedule fire", e))?;
        Ok(next.map(from_micros))
    }

    /// [`Store::advance_schedule`](super::super::Store::advance_schedule): one row,
    /// compared and set in one statement (`IS NOT DISTINCT FROM`, null-safe equality
    /// in both dialects). On PostgreSQL the row lock orders concurrent advances from
    /// the same `expected`: the first to commit wins and the others match nothing; on
    /// SQLite the write lock does.
    pub(in crate::store) async fn advance_schedule(
        &self,
        id: &str,
        expected: Option<SystemTime>,
        a: &ScheduleAdvance,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE schedules SET next_fire = $1, last_fire = COALESCE($2, last_fire), \
             last_run = COALESCE($3{}, last_run), note = $4, updated_at = $5 \
             WHERE id = $6 AND next_fire IS NOT DISTINCT FROM $7",
            DB::UUID
        ))
        .bind(a.next_fire.map(micros))
        .bind(a.last_fire.map(micros))
        .bind(a.last_run.map(|r| r.to_uuid_string()))
        .bind(&a.note)
        .bind(micros(SystemTime::now()))
        .bind(id)
        .bind(expected.map(micros))
        .execute(self.pool)
        .await
        .map_err(|e| backend("advancing a schedule", e))?;
        Ok(DB::rows_affected(&done) == 1)
    }
}
