//! Claiming runs in SQLite: one `UPDATE … RETURNING` under the write lock for the
//! lanes without a cap, and per capped lane the count and the claim in one
//! transaction.

use std::time::Duration;

use crate::ids::RunId;

use super::super::sql::{ClaimHead, RunRow, backend, millis};
use super::super::{Claimed, StoreError};
use super::{SqliteStore, now_ms};

impl SqliteStore {
    /// [`Store::claim`], of any workflow (`None`) or of those named.
    pub(super) async fn claim_of(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
        workflows: Option<&[String]>,
        except: &[RunId],
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Runs in uncapped lanes: one statement. SQLite runs it under the write lock, so
        // two engines never pick the same run, and each pick increments the fence.
        let mut rows = claim_rows(
            &self.pool,
            owner,
            ttl,
            limit,
            Pick::Uncapped,
            workflows,
            except,
        )
        .await?;
        // Capped lanes with claimable runs: the count and the claim in one transaction,
        // which SQLite serializes with every other writer.
        if rows.len() < limit {
            let lanes: Vec<(String, i64)> = sqlx::query_as(
                "SELECT q.name, q.max_running FROM queues q WHERE EXISTS (SELECT 1 FROM runs \
                 WHERE queue = q.name AND lease_owner IS NOT NULL AND lease_until <= ?)",
            )
            .bind(now_ms())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend("claiming runs", e))?;
            for (lane, max) in lanes {
                let want = limit - rows.len();
                if want == 0 {
                    break;
                }
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(|e| backend("claiming runs", e))?;
                // Take the write lock first, so the count cannot go stale.
                sqlx::query("UPDATE queues SET max_running = max_running WHERE name = ?")
                    .bind(&lane)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| backend("claiming runs", e))?;
                let live: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM runs WHERE queue = ? AND lease_owner IS NOT NULL \
                     AND lease_until > ?",
                )
                .bind(&lane)
                .bind(now_ms())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| backend("claiming runs", e))?;
                let room = usize::try_from(max - live).unwrap_or(0);
                if room > 0 {
                    rows.extend(
                        claim_rows(
                            &mut *tx,
                            owner,
                            ttl,
                            room.min(want),
                            Pick::Lane(&lane),
                            workflows,
                            except,
                        )
                        .await?,
                    );
                }
                tx.commit().await.map_err(|e| backend("claiming runs", e))?;
            }
        }
        self.sql().claimed(owner, rows).await
    }
}

/// Which expired runs a claim takes.
#[derive(Clone, Copy)]
pub(super) enum Pick<'a> {
    /// Runs of lanes without a cap.
    Uncapped,
    /// Runs of this (capped) lane.
    Lane(&'a str),
    /// This run, whatever its lane.
    Run(RunId),
}

/// Claims up to `limit` expired runs for `owner`: of lane `lane`, or (`None`) of the
/// lanes without a cap, leaving the runs in `except` alone. Returns each run's new
/// fence, its event count, its stalled claims and its row.
///
/// A claim counts as stalled (`stalls` + 1) unless executions settled since the last
/// claim (`settled` remembers how many had then), which resets the count to 1.
pub(super) async fn claim_rows<'e, E: sqlx::SqliteExecutor<'e>>(
    conn: E,
    owner: &str,
    ttl: Duration,
    limit: usize,
    pick: Pick<'_>,
    workflows: Option<&[String]>,
    except: &[RunId],
) -> Result<Vec<(ClaimHead, RunRow)>, StoreError> {
    let (lane, run) = match pick {
        Pick::Uncapped => (None, None),
        Pick::Lane(lane) => (Some(lane), None),
        Pick::Run(run) => (None, Some(run.to_uuid_string())),
    };
    type Row = (
        i64,
        i64,
        i64,
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
    let now = now_ms();
    let rows: Vec<Row> = sqlx::query_as(
        "UPDATE runs SET fence = fence + 1, lease_owner = ?1, lease_until = ?2, \
         stalls = CASE WHEN (SELECT count(*) FROM executions x WHERE x.run_pk = runs.pk \
             AND x.state IN ('succeeded', 'failed', 'timed_out', 'skipped', 'cancelled')) \
             > settled THEN 1 ELSE stalls + 1 END, \
         settled = (SELECT count(*) FROM executions x WHERE x.run_pk = runs.pk \
             AND x.state IN ('succeeded', 'failed', 'timed_out', 'skipped', 'cancelled')) \
         WHERE pk IN (SELECT pk FROM runs WHERE lease_owner IS NOT NULL \
         AND (lease_until <= ?3 OR (?7 IS NOT NULL AND lease_owner = 'queue' \
             AND cancel_requested IS NOT NULL)) AND (CASE WHEN ?7 IS NOT NULL THEN id = ?7 WHEN ?5 IS NULL \
             THEN queue IS NULL OR queue NOT IN (SELECT name FROM queues) \
             ELSE queue = ?5 END) \
         AND (?6 IS NULL OR workflow IN (SELECT value FROM json_each(?6))) \
         AND (?8 IS NULL OR id NOT IN (SELECT value FROM json_each(?8))) \
         ORDER BY priority DESC, lease_until LIMIT ?4) \
         RETURNING fence, last_seq, stalls, id, workflow_id, workflow, version, inputs, state, \
         created_at, started_at, finished_at, priority, not_before, idempotency_key, queue",
    )
    .bind(owner)
    .bind(now.saturating_add(millis(ttl)))
    .bind(now)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .bind(lane)
    .bind(workflows.map(|w| serde_json::Value::from(w.to_vec()).to_string()))
    .bind(run)
    .bind((!except.is_empty()).then(|| {
        serde_json::Value::from(
            except
                .iter()
                .map(|r| r.to_uuid_string())
                .collect::<Vec<_>>(),
        )
        .to_string()
    }))
    .fetch_all(conn)
    .await
    .map_err(|e| backend("claiming runs", e))?;
    Ok(rows
        .into_iter()
        .map(|(f, last, stalls, a, b, c, d, e, g, h, i, j, k, l, m, n)| {
            (
                ClaimHead::new(f, last, stalls),
                (a, b, c, d, e, g, h, i, j, k, l, m, n),
            )
        })
        .collect())
}
