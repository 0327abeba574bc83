//! Claiming runs in PostgreSQL: `FOR UPDATE SKIP LOCKED` for the lanes without a
//! cap, and per capped lane the count and the claim under the lane's row lock.

use std::time::Duration;

use crate::ids::RunId;

use super::super::sql::{ClaimHead, RunRow, backend, millis};
use super::super::{Claimed, StoreError};
use super::PostgresStore;

impl PostgresStore {
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
        // Runs in uncapped lanes: one statement.
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
        // Capped lanes with claimable runs, each under its `queues` row lock (claimers
        // of one lane take turns, so together they never exceed the cap).
        if rows.len() < limit {
            let lanes: Vec<(String, i32)> = sqlx::query_as(
                "SELECT q.name, q.max_running FROM queues q WHERE EXISTS (SELECT 1 FROM runs \
                 WHERE queue = q.name AND lease_owner IS NOT NULL AND lease_until <= now())",
            )
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
                // The lane's row lock first, in a statement of its own: the count
                // below then reads (with a fresh snapshot) every claim committed by
                // the claimer that held the lock before.
                sqlx::query("SELECT 1 FROM queues WHERE name = $1 FOR UPDATE")
                    .bind(&lane)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| backend("claiming runs", e))?;
                let live: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM runs WHERE queue = $1 \
                     AND lease_owner IS NOT NULL AND lease_until > now()",
                )
                .bind(&lane)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| backend("claiming runs", e))?;
                let room = usize::try_from(i64::from(max) - live).unwrap_or(0);
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
/// lanes without a cap. `SKIP LOCKED`: concurrent claimers pass over each other's
/// candidates instead of waiting for them (and never pick the same run). Returns each
/// run's new fence, its event count, its stalled claims and its row. The runs in
/// `except` are left alone.
///
/// A claim counts as stalled (`stalls` + 1) unless executions settled since the last
/// claim (`settled` remembers how many had then), which resets the count to 1.
///
/// The claim commits without waiting for its WAL flush (`synchronous_commit = off`
/// for this transaction only), which takes a disk flush off every pickup. It is safe:
/// the claimer's first append commits synchronously, which flushes the WAL up to and
/// including the claim; and if the server crashes before that, the claim is lost
/// together with nothing else — the claimer's append is then refused (`Fenced`), no
/// job has started (the driver records before it acts), and the run is claimable
/// again.
pub(super) async fn claim_rows<'e, E: sqlx::PgExecutor<'e>>(
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
        i32,
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
    let rows: Vec<Row> = sqlx::query_as(
        "WITH s AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true) AS v) \
         , x AS (SELECT ARRAY['succeeded', 'failed', 'timed_out', 'skipped', 'cancelled'] AS done) \
         UPDATE runs r SET fence = r.fence + 1, lease_owner = $1, \
         lease_until = now() + $2 * interval '1 millisecond', \
         stalls = CASE WHEN (SELECT count(*) FROM executions e WHERE e.run_pk = r.pk \
             AND e.state = ANY(x.done)) > r.settled THEN 1 ELSE r.stalls + 1 END, \
         settled = (SELECT count(*) FROM executions e WHERE e.run_pk = r.pk \
             AND e.state = ANY(x.done)) \
         FROM s, x, (SELECT pk FROM runs WHERE lease_owner IS NOT NULL \
         AND (lease_until <= now() OR ($6::text IS NOT NULL AND lease_owner = 'queue' \
              AND cancel_requested IS NOT NULL)) \
         AND (CASE WHEN $6::text IS NOT NULL THEN id = $6::uuid \
              WHEN $4::text IS NULL \
              THEN queue IS NULL OR queue NOT IN (SELECT name FROM queues) \
              ELSE queue = $4 END) \
         AND ($5::text[] IS NULL OR workflow = ANY($5)) \
         AND ($7::text[] IS NULL OR NOT (id = ANY($7::text[]::uuid[]))) \
         ORDER BY priority DESC, lease_until LIMIT $3 FOR UPDATE SKIP LOCKED) c \
         WHERE r.pk = c.pk \
         RETURNING r.fence, r.last_seq, r.stalls, r.id::text, r.workflow_id, r.workflow, r.version, \
         r.inputs::text, r.state, r.created_at, r.started_at, r.finished_at, r.priority, \
         r.not_before, r.idempotency_key, r.queue",
    )
    .bind(owner)
    .bind(millis(ttl))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .bind(lane)
    .bind(workflows)
    .bind(run)
    .bind((!except.is_empty()).then(|| {
        except
            .iter()
            .map(|r| r.to_uuid_string())
            .collect::<Vec<_>>()
    }))
    .fetch_all(conn)
    .await
    .map_err(|e| backend("claiming runs", e))?;
    Ok(rows
        .into_iter()
        .map(|(f, last, stalls, a, b, c, d, e, g, h, i, j, k, l, m, n)| {
            (
                ClaimHead::new(f, last, i64::from(stalls)),
                (a, b, c, d, e, g, h, i, j, k, l, m, n),
            )
        })
        .collect())
}
