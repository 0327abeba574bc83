//! The PostgreSQL store's execution queue (see [`ExecutionQueue`]): claims with
//! `FOR UPDATE SKIP LOCKED`, reports in one set-based statement per batch, wake-ups by
//! `LISTEN`/`NOTIFY` on the channel `<store channel>_q` (`q` attempts pushed,
//! `c:<worker>` a cancellation for a worker, `r:<owner>` reports for an engine).

use std::time::{Duration, SystemTime};

use sqlx::Row;
use sqlx::postgres::PgListener;

use super::super::queue::{
    Cancelled, Capacity, ClaimedAttempt, ExecutionQueue, OwnerReport, QueueId, QueueTopic,
    QueuedAttempt, Renewed, Report, WorkerOffer, WorkerRecord, WorkerReport,
};
use super::super::sql::queue::{
    CLAIM_COLUMNS, ClaimRow, PUSH_COLUMNS, PUSH_ROWS, WorkerRow, bind_push, decode_report, encode,
    encode_report, encode_worker, push_values, workers_query,
};
use super::super::sql::{backend, micros, millis};
use super::super::{StoreError, Wakeups};
use super::PostgresStore;

/// Candidates read per claim, beyond the claim's limit (some may not fit together).
const WINDOW: usize = 4;

impl PostgresStore {
    fn queue_channel(&self) -> String {
        format!("{}_q", self.channel)
    }
}

fn ids(ids: &[QueueId]) -> Vec<i64> {
    ids.iter().map(|i| i.0).collect()
}

#[async_trait::async_trait]
impl ExecutionQueue for PostgresStore {
    async fn push(&self, attempts: &[QueuedAttempt]) -> Result<Vec<QueueId>, StoreError> {
        let now = micros(SystemTime::now());
        let encoded = attempts
            .iter()
            .map(|a| encode(a, now))
            .collect::<Result<Vec<_>, _>>()?;
        let channel = self.queue_channel();
        let mut out = Vec::with_capacity(attempts.len());
        // One statement per chunk: the insert and the workers' wake-up.
        for chunk in encoded.chunks(PUSH_ROWS) {
            let n = chunk.len() * super::super::sql::queue::PUSH_BINDS;
            let sql = format!(
                "WITH i AS (INSERT INTO queue_attempts ({PUSH_COLUMNS}) VALUES {} RETURNING id) \
                 SELECT i.id FROM i, (SELECT pg_notify(${}, 'q')) n",
                push_values(chunk.len()),
                n + 1
            );
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = bind_push(q, e);
            }
            let rows = q
                .bind(&channel)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| backend("queueing attempts", e))?;
            let mut got: Vec<i64> = rows.iter().map(|r| r.get::<i64, _>(0)).collect();
            got.sort_unstable();
            out.extend(got.into_iter().map(QueueId));
        }
        Ok(out)
    }

    async fn claim_attempts(
        &self,
        offer: &WorkerOffer,
        ttl: Duration,
    ) -> Result<Vec<ClaimedAttempt>, StoreError> {
        if offer.limit == 0 || offer.free.slots == 0 || offer.lanes.is_empty() {
            return Ok(Vec::new());
        }
        let err = |e| backend("claiming attempts", e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        // A lost claim is harmless (the attempt is claimed again, the worker's reports
        // refused): no WAL flush to wait for.
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let window = offer.limit.saturating_mul(WINDOW).min(4096);
        let candidates: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT id, cpu, memory, slots FROM queue_attempts a WHERE state = 'queued' \
             AND lane = ANY($1) AND cpu <= $2 AND memory <= $3 AND slots <= $4 \
             AND (requires = '{}' OR NOT EXISTS (SELECT 1 FROM json_each_text(a.requires::json) r \
                  WHERE (r.key || '=' || r.value) <> ALL($5))) \
             ORDER BY priority DESC, id LIMIT $6 FOR UPDATE SKIP LOCKED",
        )
        .bind(&offer.lanes)
        .bind(i64::try_from(offer.free.cpu_millis).unwrap_or(i64::MAX))
        .bind(i64::try_from(offer.free.memory_bytes).unwrap_or(i64::MAX))
        .bind(i64::from(offer.free.slots))
        .bind(offer.tag_pairs())
        .bind(i64::try_from(window).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        let picked = offer.pack(candidates.into_iter().map(|(id, c, m, s)| {
            (
                id,
                Capacity {
                    cpu_millis: u64::try_from(c).unwrap_or(0),
                    memory_bytes: u64::try_from(m).unwrap_or(0),
                    slots: u32::try_from(s).unwrap_or(u32::MAX),
                },
            )
        }));
        if picked.is_empty() {
            tx.rollback().await.map_err(err)?;
            return Ok(Vec::new());
        }
        let rows: Vec<ClaimRow> = sqlx::query_as(&format!(
            "UPDATE queue_attempts SET state = 'claimed', worker = $1, fence = fence + 1, \
             lease_until = now() + $2 * interval '1 millisecond' WHERE id = ANY($3) \
             RETURNING {CLAIM_COLUMNS}"
        ))
        .bind(&offer.worker)
        .bind(millis(ttl) as f64)
        .bind(&picked)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        let mut out = rows
            .into_iter()
            .map(ClaimRow::decode)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|c| (std::cmp::Reverse(c.attempt.priority), c.id));
        Ok(out)
    }

    async fn renew_claims(&self, worker: &str, ttl: Duration) -> Result<Renewed, StoreError> {
        let rows: Vec<(i64, bool)> = sqlx::query_as(
            "UPDATE queue_attempts SET lease_until = now() + $1 * interval '1 millisecond' \
             WHERE worker = $2 AND state = 'claimed' RETURNING id, cancel",
        )
        .bind(millis(ttl) as f64)
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
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::with_capacity(reports.len());
        let mut fences = Vec::with_capacity(reports.len());
        let mut done = Vec::with_capacity(reports.len());
        let mut body_ids = Vec::new();
        let mut bodies = Vec::new();
        for w in reports {
            ids.push(w.id.0);
            fences.push(i64::try_from(w.fence).unwrap_or(i64::MAX));
            done.push(w.reports.iter().any(|r| matches!(r, Report::Outcome(_))));
            for r in &w.reports {
                body_ids.push(w.id.0);
                bodies.push(encode_report(r)?);
            }
        }
        // The fenced update, the reports of the attempts it accepted (in order), and a
        // wake-up per engine concerned: one statement.
        let accepted: Vec<i64> = sqlx::query_scalar(
            "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bool[]) \
                 AS u(id, fence, done)), \
             a AS (UPDATE queue_attempts q SET state = CASE WHEN u.done THEN 'done' \
                 ELSE q.state END FROM u WHERE q.id = u.id AND q.worker = $4 \
                 AND q.fence = u.fence AND q.state = 'claimed' RETURNING q.id, q.owner), \
             r AS (INSERT INTO queue_reports (owner, attempt_id, body) \
                 SELECT a.owner, b.id, b.body FROM unnest($5::bigint[], $6::text[]) \
                 WITH ORDINALITY AS b(id, body, k) JOIN a ON a.id = b.id ORDER BY b.k \
                 RETURNING 1), \
             n AS (SELECT pg_notify($7, 'r:' || o.owner) FROM (SELECT DISTINCT owner FROM a) o) \
             SELECT a.id FROM a WHERE (SELECT count(*) FROM n) + (SELECT count(*) FROM r) >= 0",
        )
        .bind(&ids)
        .bind(&fences)
        .bind(&done)
        .bind(worker)
        .bind(&body_ids)
        .bind(&bodies)
        .bind(self.queue_channel())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend("recording reports", e))?;
        Ok(ids.iter().map(|id| accepted.contains(id)).collect())
    }

    async fn release_claims(&self, worker: &str, ids_: &[QueueId]) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "WITH r AS (UPDATE queue_attempts SET state = 'queued', worker = NULL, \
             lease_until = NULL WHERE worker = $1 AND state = 'claimed' AND id = ANY($2) \
             RETURNING id) SELECT count(*) FROM r, (SELECT pg_notify($3, 'q')) n",
        )
        .bind(worker)
        .bind(ids(ids_))
        .bind(self.queue_channel())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| backend("releasing claims", e))?;
        Ok(u64::try_from(done.get::<i64, _>(0)).unwrap_or(0))
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
        let seqs: Vec<i64> = reports
            .iter()
            .map(|s| i64::try_from(*s).unwrap_or(i64::MAX))
            .collect();
        sqlx::query(
            "WITH r AS (DELETE FROM queue_reports WHERE owner = $1 AND seq = ANY($2)), \
             a AS (DELETE FROM queue_attempts WHERE owner = $1 AND id = ANY($3)) SELECT 1",
        )
        .bind(owner)
        .bind(&seqs)
        .bind(ids(attempts))
        .execute(&self.pool)
        .await
        .map_err(|e| backend("acknowledging reports", e))?;
        Ok(())
    }

    async fn expire_claims(&self, owner: &str) -> Result<Vec<QueueId>, StoreError> {
        let got: Vec<i64> = sqlx::query_scalar(
            "UPDATE queue_attempts SET state = 'lost' WHERE owner = $1 AND state = 'claimed' \
             AND lease_until <= now() RETURNING id",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend("expiring claims", e))?;
        Ok(got.into_iter().map(QueueId).collect())
    }

    async fn cancel_attempt(&self, id: QueueId) -> Result<Cancelled, StoreError> {
        let (withdrawn, asked): (i64, i64) = sqlx::query_as(
            "WITH w AS (DELETE FROM queue_attempts WHERE id = $1 AND state = 'queued' \
                 RETURNING id), \
             c AS (UPDATE queue_attempts SET cancel = true WHERE id = $1 AND state = 'claimed' \
                 RETURNING worker), \
             n AS (SELECT pg_notify($2, 'c:' || worker) FROM c) \
             SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM n)",
        )
        .bind(id.0)
        .bind(self.queue_channel())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| backend("cancelling an attempt", e))?;
        Ok(if withdrawn > 0 {
            Cancelled::Withdrawn
        } else if asked > 0 {
            Cancelled::Asked
        } else {
            Cancelled::Over
        })
    }

    async fn watch_queue(&self, topic: QueueTopic) -> Result<Wakeups, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(|e| backend("watching the queue", e))?;
        listener
            .listen(&self.queue_channel())
            .await
            .map_err(|e| backend("watching the queue", e))?;
        let wanted: Vec<String> = match topic {
            QueueTopic::Worker(w) => vec!["q".to_owned(), format!("c:{w}")],
            QueueTopic::Owner(o) => vec![format!("r:{o}")],
        };
        Ok(Box::pin(futures_util::stream::unfold(
            (listener, wanted),
            |(mut listener, wanted)| async move {
                loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) if wanted.iter().any(|w| w == n.payload()) => {
                            return Some(((), (listener, wanted)));
                        }
                        Ok(Some(_)) => {}
                        // The connection was lost (it reconnects on the next call):
                        // notifications may be gone, so wake and re-read.
                        Ok(None) => return Some(((), (listener, wanted))),
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            return Some(((), (listener, wanted)));
                        }
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
        let rows: Vec<WorkerRow> = sqlx::query_as(&workers_query("now()"))
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
