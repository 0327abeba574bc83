//! The SQLite store's execution queue (see [`ExecutionQueue`]): claims under the
//! write lock, wake-ups from the change watch (`PRAGMA data_version`).

use std::time::{Duration, SystemTime};

use sqlx::Row;

use super::super::queue::{
    Cancelled, Capacity, ClaimedAttempt, ExecutionQueue, OwnerReport, QueueId, QueueTopic,
    QueuedAttempt, Renewed, Report, WorkerOffer, WorkerRecord, WorkerReport,
};
use super::super::sql::queue::{
    CLAIM_COLUMNS, ClaimRow, PUSH_COLUMNS, PUSH_ROWS, WorkerRow, bind_push, decode_report, encode,
    encode_report, encode_worker, push_values, workers_query,
};
use super::super::sql::{backend, micros, millis, to_json};
use super::super::{StoreError, Wakeups};
use super::SqliteStore;

/// How often a queue watcher looks for other connections' commits: pickups within a
/// few milliseconds for two hundred cheap reads a second per watcher.
const QUEUE_WATCH_EVERY: Duration = Duration::from_millis(5);

/// The lease clock: milliseconds of the database's wall clock.
const NOW: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// Candidates read per claim, beyond the claim's limit (some may not fit together).
const WINDOW: usize = 4;

fn json_ids(ids: &[QueueId]) -> String {
    let v: Vec<i64> = ids.iter().map(|i| i.0).collect();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".to_owned())
}

#[async_trait::async_trait]
impl ExecutionQueue for SqliteStore {
    async fn push(&self, attempts: &[QueuedAttempt]) -> Result<Vec<QueueId>, StoreError> {
        let now = micros(SystemTime::now());
        let encoded = attempts
            .iter()
            .map(|a| encode(a, now))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| backend("queueing attempts", e))?;
        let mut ids = Vec::with_capacity(attempts.len());
        for chunk in encoded.chunks(PUSH_ROWS) {
            let sql = format!(
                "INSERT INTO queue_attempts ({PUSH_COLUMNS}) VALUES {} RETURNING id",
                push_values(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = bind_push(q, e);
            }
            let rows = q
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| backend("queueing attempts", e))?;
            // Ids are handed out in the order of the rows (AUTOINCREMENT, one writer).
            let mut got: Vec<i64> = rows.iter().map(|r| r.get::<i64, _>(0)).collect();
            got.sort_unstable();
            ids.extend(got.into_iter().map(QueueId));
        }
        tx.commit()
            .await
            .map_err(|e| backend("queueing attempts", e))?;
        Ok(ids)
    }

    async fn claim_attempts(
        &self,
        offer: &WorkerOffer,
        ttl: Duration,
    ) -> Result<Vec<ClaimedAttempt>, StoreError> {
        if offer.limit == 0 || offer.free.slots == 0 || offer.lanes.is_empty() {
            return Ok(Vec::new());
        }
        let lanes = to_json("encoding lanes", &offer.lanes)?;
        let tags = to_json("encoding tags", &offer.tag_pairs())?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| backend("claiming attempts", e))?;
        // Take the write lock first, so the candidates cannot go stale.
        sqlx::query("UPDATE queue_attempts SET fence = fence WHERE id = -1")
            .execute(&mut *tx)
            .await
            .map_err(|e| backend("claiming attempts", e))?;
        let window = offer.limit.saturating_mul(WINDOW).min(4096);
        let candidates: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT id, cpu, memory, slots FROM queue_attempts a WHERE state = 'queued' \
             AND lane IN (SELECT value FROM json_each($1)) \
             AND cpu <= $2 AND memory <= $3 AND slots <= $4 \
             AND (requires = '{}' OR NOT EXISTS (SELECT 1 FROM json_each(a.requires) r \
                  WHERE (r.key || '=' || r.value) NOT IN (SELECT value FROM json_each($5)))) \
             ORDER BY priority DESC, id LIMIT $6",
        )
        .bind(&lanes)
        .bind(i64::try_from(offer.free.cpu_millis).unwrap_or(i64::MAX))
        .bind(i64::try_from(offer.free.memory_bytes).unwrap_or(i64::MAX))
        .bind(i64::from(offer.free.slots))
        .bind(&tags)
        .bind(i64::try_from(window).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| backend("claiming attempts", e))?;
        let picked = offer.pack(candidates.into_iter().map(|(id, c, m, s)| {
            (
                QueueId(id),
                Capacity {
                    cpu_millis: u64::try_from(c).unwrap_or(0),
                    memory_bytes: u64::try_from(m).unwrap_or(0),
                    slots: u32::try_from(s).unwrap_or(u32::MAX),
                },
            )
        }));
        if picked.is_empty() {
            tx.rollback()
                .await
                .map_err(|e| backend("claiming attempts", e))?;
            return Ok(Vec::new());
        }
        let rows: Vec<ClaimRow> = sqlx::query_as(&format!(
            "UPDATE queue_attempts SET state = 'claimed', worker = $1, fence = fence + 1, \
             lease_until = {NOW} + $2 WHERE id IN (SELECT value FROM json_each($3)) \
             RETURNING {CLAIM_COLUMNS}"
        ))
        .bind(&offer.worker)
        .bind(millis(ttl))
        .bind(json_ids(&picked))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| backend("claiming attempts", e))?;
        tx.commit()
            .await
            .map_err(|e| backend("claiming attempts", e))?;
        let mut out = rows
            .into_iter()
            .map(ClaimRow::decode)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|c| (std::cmp::Reverse(c.attempt.priority), c.id));
        Ok(out)
    }

    async fn renew_claims(&self, worker: &str, ttl: Duration) -> Result<Renewed, StoreError> {
        let rows: Vec<(i64, bool)> = sqlx::query_as(&format!(
            "UPDATE queue_attempts SET lease_until = {NOW} + $1 \
             WHERE worker = $2 AND state = 'claimed' RETURNING id, cancel"
        ))
        .bind(millis(ttl))
        .bind(worker)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend("renewing claims", e))?;
        let mut out = Renewed {
            held: rows.len() as u64,
            ..Renewed::default()
        };
        out.cancel = rows
            .into_iter()
            .filter(|(_, c)| *c)
            .map(|(id, _)| QueueId(id))
            .collect();
        Ok(out)
    }

    async fn report(
        &self,
        worker: &str,
        reports: &[WorkerReport],
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| backend("recording reports", e))?;
        let mut accepted = Vec::with_capacity(reports.len());
        for w in reports {
            let done = w.reports.iter().any(|r| matches!(r, Report::Outcome(_)));
            let owner: Option<String> = sqlx::query_scalar(
                "UPDATE queue_attempts SET state = CASE WHEN $1 THEN 'done' ELSE state END \
                 WHERE id = $2 AND worker = $3 AND fence = $4 AND state = 'claimed' \
                 RETURNING owner",
            )
            .bind(done)
            .bind(w.id.0)
            .bind(worker)
            .bind(i64::try_from(w.fence).unwrap_or(i64::MAX))
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| backend("recording reports", e))?;
            let Some(owner) = owner else {
                accepted.push(false);
                continue;
            };
            for r in &w.reports {
                sqlx::query(
                    "INSERT INTO queue_reports (owner, attempt_id, body) VALUES ($1, $2, $3)",
                )
                .bind(&owner)
                .bind(w.id.0)
                .bind(encode_report(r)?)
                .execute(&mut *tx)
                .await
                .map_err(|e| backend("recording reports", e))?;
            }
            accepted.push(true);
        }
        tx.commit()
            .await
            .map_err(|e| backend("recording reports", e))?;
        Ok(accepted)
    }

    async fn release_claims(&self, worker: &str, ids: &[QueueId]) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE queue_attempts SET state = 'queued', worker = NULL, lease_until = NULL \
             WHERE worker = $1 AND state = 'claimed' AND id IN (SELECT value FROM json_each($2))",
        )
        .bind(worker)
        .bind(json_ids(ids))
        .execute(&self.pool)
        .await
        .map_err(|e| backend("releasing claims", e))?;
        Ok(done.rows_affected())
    }

    async fn reports(&self, owner: &str, limit: usize) -> Result<Vec<OwnerReport>, StoreError> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT seq, attempt_id, body FROM queue_reports WHERE owner = $1 \
             ORDER BY seq LIMIT $2",
        )
        .bind(owner)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend("reading reports", e))?;
        rows.iter()
            .map(|(seq, id, body)| decode_report(*seq, *id, body))
            .collect()
    }

    async fn acknowledge(
        &self,
        owner: &str,
        reports: &[u64],
        attempts: &[QueueId],
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| backend("acknowledging reports", e))?;
        if !reports.is_empty() {
            sqlx::query(
                "DELETE FROM queue_reports WHERE owner = $1 \
                 AND seq IN (SELECT value FROM json_each($2))",
            )
            .bind(owner)
            .bind(serde_json::to_string(reports).unwrap_or_else(|_| "[]".to_owned()))
            .execute(&mut *tx)
            .await
            .map_err(|e| backend("acknowledging reports", e))?;
        }
        if !attempts.is_empty() {
            sqlx::query(
                "DELETE FROM queue_attempts WHERE owner = $1 \
                 AND id IN (SELECT value FROM json_each($2))",
            )
            .bind(owner)
            .bind(json_ids(attempts))
            .execute(&mut *tx)
            .await
            .map_err(|e| backend("acknowledging reports", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| backend("acknowledging reports", e))
    }

    async fn expire_claims(&self, owner: &str) -> Result<Vec<QueueId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "UPDATE queue_attempts SET state = 'lost' WHERE owner = $1 AND state = 'claimed' \
             AND lease_until <= {NOW} RETURNING id"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend("expiring claims", e))?;
        Ok(ids.into_iter().map(QueueId).collect())
    }

    async fn cancel_attempt(&self, id: QueueId) -> Result<Cancelled, StoreError> {
        let withdrawn =
            sqlx::query("DELETE FROM queue_attempts WHERE id = $1 AND state = 'queued'")
                .bind(id.0)
                .execute(&self.pool)
                .await
                .map_err(|e| backend("cancelling an attempt", e))?;
        if withdrawn.rows_affected() > 0 {
            return Ok(Cancelled::Withdrawn);
        }
        let asked =
            sqlx::query("UPDATE queue_attempts SET cancel = 1 WHERE id = $1 AND state = 'claimed'")
                .bind(id.0)
                .execute(&self.pool)
                .await
                .map_err(|e| backend("cancelling an attempt", e))?;
        Ok(if asked.rows_affected() > 0 {
            Cancelled::Asked
        } else {
            Cancelled::Over
        })
    }

    async fn watch_queue(&self, topic: QueueTopic) -> Result<Wakeups, StoreError> {
        let _ = topic;
        let Some(opts) = self.file.clone() else {
            // An in-memory database: only this process writes it; look every tick.
            let tick = tokio::time::interval(QUEUE_WATCH_EVERY);
            return Ok(Box::pin(futures_util::stream::unfold(
                tick,
                |mut tick| async move {
                    tick.tick().await;
                    Some(((), tick))
                },
            )));
        };
        let mut conn = sqlx::ConnectOptions::connect(&opts)
            .await
            .map_err(|e| backend("watching the queue", e))?;
        let last: i64 = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| backend("watching the queue", e))?;
        Ok(Box::pin(futures_util::stream::unfold(
            (conn, last),
            |(mut conn, mut last)| async move {
                loop {
                    tokio::time::sleep(QUEUE_WATCH_EVERY).await;
                    match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                        .fetch_one(&mut conn)
                        .await
                    {
                        Ok(v) if v == last => {}
                        Ok(v) => {
                            last = v;
                            return Some(((), (conn, last)));
                        }
                        Err(_) => return Some(((), (conn, last))),
                    }
                }
            },
        )))
    }

    async fn worker_beat(&self, worker: &WorkerRecord) -> Result<(), StoreError> {
        let (lanes, tags, n) = encode_worker(worker)?;
        sqlx::query(
            "INSERT INTO queue_workers (id, host, pid, lanes, tags, cpu, memory, slots, \
             started_at, last_beat, draining) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
             lanes = excluded.lanes, tags = excluded.tags, cpu = excluded.cpu, \
             memory = excluded.memory, slots = excluded.slots, started_at = excluded.started_at, \
             last_beat = excluded.last_beat, draining = excluded.draining",
        )
        .bind(&worker.id)
        .bind(&worker.host)
        .bind(i64::from(worker.pid))
        .bind(lanes)
        .bind(tags)
        .bind(n[0])
        .bind(n[1])
        .bind(n[2])
        .bind(n[3])
        .bind(n[4])
        .bind(worker.draining)
        .execute(&self.pool)
        .await
        .map_err(|e| backend("recording a worker's heartbeat", e))?;
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        let rows: Vec<WorkerRow> = sqlx::query_as(&workers_query(NOW))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend("listing workers", e))?;
        rows.into_iter().map(WorkerRow::decode).collect()
    }

    async fn forget_worker(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM queue_workers WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| backend("forgetting a worker", e))?;
        Ok(done.rows_affected() > 0)
    }
}
