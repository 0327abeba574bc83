//! Recurring schedules in SQLite: the `schedules` table.

use std::time::SystemTime;

use super::super::sql::{backend, from_json, from_micros, micros, parse_run_id, to_json};
use super::super::{ScheduleAdvance, ScheduleRecord, StoreError};
use super::SqliteStore;

/// Columns of a schedule row, in [`Row`] order.
const COLUMNS: &str = "id, workflow, cron, time_zone, inputs, options, enabled, next_fire, \
                       last_fire, last_run, note, updated_at";

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
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
        enabled: enabled != 0,
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

impl SqliteStore {
    pub(super) async fn schedule_put(&self, s: &ScheduleRecord) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO schedules ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
        .bind(i64::from(s.enabled))
        .bind(s.next_fire.map(micros))
        .bind(s.last_fire.map(micros))
        .bind(s.last_run.map(|r| r.to_uuid_string()))
        .bind(&s.note)
        .bind(micros(SystemTime::now()))
        .execute(&self.pool)
        .await
        .map_err(|e| backend("writing a schedule", e))?;
        Ok(())
    }

    pub(super) async fn schedule_get(
        &self,
        id: &str,
    ) -> Result<Option<ScheduleRecord>, StoreError> {
        let row: Option<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM schedules WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| backend("reading a schedule", e))?;
        row.map(decode).transpose()
    }

    pub(super) async fn schedule_list(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        let rows: Vec<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM schedules ORDER BY id"))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| backend("listing schedules", e))?;
        rows.into_iter().map(decode).collect()
    }

    pub(super) async fn schedule_delete(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM schedules WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| backend("deleting a schedule", e))?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn schedule_enable(
        &self,
        id: &str,
        enabled: bool,
        next_fire: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE schedules SET enabled = ?, next_fire = ?, updated_at = ? WHERE id = ?",
        )
        .bind(i64::from(enabled))
        .bind(next_fire.map(micros))
        .bind(micros(SystemTime::now()))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| backend("enabling a schedule", e))?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn schedule_due(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM schedules WHERE enabled <> 0 AND next_fire <= ? \
             ORDER BY next_fire, id LIMIT ?"
        ))
        .bind(micros(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend("reading due schedules", e))?;
        rows.into_iter().map(decode).collect()
    }

    pub(super) async fn schedule_next_fire(
        &self,
        after: SystemTime,
    ) -> Result<Option<SystemTime>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_fire) FROM schedules WHERE enabled <> 0 AND next_fire > ?",
        )
        .bind(micros(after))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| backend("reading the next schedule fire", e))?;
        Ok(next.map(from_micros))
    }

    pub(super) async fn schedule_advance(
        &self,
        id: &str,
        expected: Option<SystemTime>,
        a: &ScheduleAdvance,
    ) -> Result<bool, StoreError> {
        // `IS` is SQLite's null-safe equality (`IS NOT DISTINCT FROM`).
        let done = sqlx::query(
            "UPDATE schedules SET next_fire = ?, last_fire = COALESCE(?, last_fire), \
             last_run = COALESCE(?, last_run), note = ?, updated_at = ? \
             WHERE id = ? AND next_fire IS ?",
        )
        .bind(a.next_fire.map(micros))
        .bind(a.last_fire.map(micros))
        .bind(a.last_run.map(|r| r.to_uuid_string()))
        .bind(&a.note)
        .bind(micros(SystemTime::now()))
        .bind(id)
        .bind(expected.map(micros))
        .execute(&self.pool)
        .await
        .map_err(|e| backend("advancing a schedule", e))?;
        Ok(done.rows_affected() == 1)
    }
}
