//! Appends to PostgreSQL: a group of runs' appends in one statement.

use std::sync::Arc;

use sqlx::postgres::PgPool;

use crate::ids::RunId;

use super::super::combine::{Append, GroupWrite};
use super::super::sql::fence;

/// The statement writing a group of appends. One round trip and one commit for any
/// number of runs:
///
/// * `u`: one row per append (run, lease, event count, run-level change);
/// * `r`: the lease and sequence checks, per run, in one `UPDATE` (the row lock
///   orders concurrent writers of one run); runs whose lease does not match, or whose
///   log the batch does not continue, are not updated, and nothing of theirs is
///   written below;
/// * `ev`, `ex`: the events (with a log line's columns, `$27`–`$31`, by position) and
///   the execution rows of the runs that passed, numbered after each run's reserved
///   base;
/// * `fd`: one row per written run in the global feed, stamped with this
///   transaction's id.
///
/// * `s`: how the commit waits for the disk (`$26`, see [`Writer::write`]).
///
/// The statement returns the positions (from 1) of the appends that were written.
macro_rules! write_sql {
    ($select:literal) => {
        concat!(
            "\
WITH s AS MATERIALIZED (
  SELECT set_config('synchronous_commit', $26, true) AS v
), u AS (
  SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[],
                       $6::bigint[], $7::bigint[], $8::bool[], $24::bigint[])
    WITH ORDINALITY AS u (id, owner, fence, n, state, started, finished, ends, first, idx)
), r AS (
  UPDATE runs SET last_seq = runs.last_seq + u.n,
    state = COALESCE(u.state, runs.state),
    started_at = COALESCE(u.started, runs.started_at),
    finished_at = COALESCE(u.finished, runs.finished_at),
    lease_owner = CASE WHEN u.ends THEN NULL ELSE runs.lease_owner END,
    lease_until = CASE WHEN u.ends THEN NULL ELSE runs.lease_until END
  FROM u CROSS JOIN s
  WHERE runs.id = u.id::uuid AND runs.lease_owner = u.owner AND runs.fence = u.fence
    AND (u.n = 0 OR runs.last_seq = u.first - 1)
  RETURNING runs.pk, u.idx, runs.last_seq - u.n AS base, u.n, u.id, u.ends
), ev AS (
  INSERT INTO events (run_pk, seq, at, kind, node, item, attempt, level)
  SELECT r.pk, r.base + e.s, e.a, e.k::json, l.node, l.item, l.attempt, l.level
  FROM UNNEST($9::bigint[], $10::bigint[], $11::bigint[], $12::text[]) WITH ORDINALITY
    AS e (idx, s, a, k, o)
  JOIN r ON r.idx = e.idx
  LEFT JOIN UNNEST($27::bigint[], $28::text[], $29::bigint[], $30::bigint[], $31::smallint[])
    AS l (o, node, item, attempt, level) ON l.o = e.o
), fd AS (
  INSERT INTO feed (run_pk, first_seq, last_seq)
  SELECT r.pk, r.base + 1, r.base + r.n FROM r WHERE r.n > 0
), ex AS (
  INSERT INTO executions AS x (run_pk, node, item, attempt, first_seq, state, output, error,
                               reason, started_at, updated_at)
  SELECT r.pk, t.n, t.i, t.a, r.base + t.f, t.s, t.o::json, t.e::json, t.r, t.st, t.u
  FROM UNNEST($13::bigint[], $14::text[], $15::bigint[], $16::bigint[], $17::bigint[],
              $18::text[], $19::text[], $20::text[], $21::text[], $22::bigint[],
              $23::bigint[]) AS t (idx, n, i, a, f, s, o, e, r, st, u)
  JOIN r ON r.idx = t.idx
  ON CONFLICT (run_pk, node, item, attempt) DO UPDATE SET
    state = excluded.state,
    output = COALESCE(excluded.output, x.output),
    error = COALESCE(excluded.error, x.error),
    reason = COALESCE(excluded.reason, x.reason),
    started_at = COALESCE(excluded.started_at, x.started_at),
    updated_at = excluded.updated_at
)
",
            $select
        )
    };
}

/// [`write_sql`] returning the written appends, and notifying on channel `$25` the
/// runs that finished (a capped lane has room again).
const WRITE: &str = write_sql!(
    "SELECT r.idx FROM r LEFT JOIN LATERAL \
     (SELECT pg_notify($25, 'finished:' || r.id) WHERE r.ends) AS f ON true"
);

/// [`WRITE`], also notifying each written run's append.
const WRITE_NOTIFY: &str = write_sql!(
    "SELECT r.idx FROM r LEFT JOIN LATERAL \
     (SELECT pg_notify($25, 'finished:' || r.id) WHERE r.ends) AS f ON true, \
     LATERAL (SELECT pg_notify($25, 'appended:' || r.id)) AS n"
);

/// Writes appends for a [`PostgresStore`](super::PostgresStore).
#[derive(Debug)]
pub(super) struct Writer {
    pub(super) pool: PgPool,
    /// The store's notification channel.
    pub(super) channel: Arc<str>,
    /// Whether to notify every append.
    pub(super) notify_appends: bool,
    /// When groups wait for their WAL flush.
    pub(super) durability: super::Durability,
}

impl Writer {
    /// Writes `appends` in one statement; `Ok` holds, per append, whether its lease
    /// held (and so it was written).
    ///
    /// A group that records only starts, logs and progress (no outcome), or any group
    /// under [`Durability::Relaxed`](super::Durability::Relaxed), commits without
    /// waiting for its WAL flush (`synchronous_commit = off` for this transaction): it
    /// takes a disk flush off the start of every attempt, the pickup of every run
    /// included. Outcomes stay synchronous, and since the WAL is written in order, an
    /// outcome's flush makes everything before it durable too. If the server crashes
    /// and loses such a tail, it is lost whole: the driver's next append no longer
    /// continues the log (or its claim is gone too) and is refused, the driver stops,
    /// and the run is resumed from the recorded history — the lost starts' attempts run
    /// again (at least once, as after any crash); nothing recorded as an outcome is
    /// ever lost or run again.
    async fn write(&self, appends: &[Append]) -> Result<Vec<bool>, sqlx::Error> {
        let runs = appends.len();
        let settles = appends.iter().any(|a| a.batch.run.settles);
        let mut ids = Vec::with_capacity(runs);
        let mut owners = Vec::with_capacity(runs);
        let mut fences = Vec::with_capacity(runs);
        let mut ns = Vec::with_capacity(runs);
        let mut states = Vec::with_capacity(runs);
        let mut started = Vec::with_capacity(runs);
        let mut finished = Vec::with_capacity(runs);
        let mut ends = Vec::with_capacity(runs);
        let mut firsts_run = Vec::with_capacity(runs);
        let events: usize = appends.iter().map(|a| a.batch.events.len()).sum();
        let (mut e_idx, mut e_seq, mut e_at, mut e_kind) = (
            Vec::with_capacity(events),
            Vec::with_capacity(events),
            Vec::with_capacity(events),
            Vec::with_capacity(events),
        );
        // The log lines among the events: their position (from 1) and columns.
        let (mut l_pos, mut l_node, mut l_item, mut l_attempt, mut l_level) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let execs: usize = appends.iter().map(|a| a.batch.executions.len()).sum();
        let mut x_idx = Vec::with_capacity(execs);
        let mut nodes = Vec::with_capacity(execs);
        let mut items = Vec::with_capacity(execs);
        let mut attempts = Vec::with_capacity(execs);
        let mut firsts = Vec::with_capacity(execs);
        let mut x_states = Vec::with_capacity(execs);
        let mut outputs = Vec::with_capacity(execs);
        let mut errors = Vec::with_capacity(execs);
        let mut reasons = Vec::with_capacity(execs);
        let mut starts = Vec::with_capacity(execs);
        let mut updates = Vec::with_capacity(execs);
        for (a, idx) in appends.iter().zip(1_i64..) {
            ids.push(a.run.to_uuid_string());
            owners.push(&*a.lease.owner);
            fences.push(fence(&a.lease));
            ns.push(a.n);
            states.push(a.batch.run.state.map(|s| s.as_str()));
            started.push(a.batch.run.started_at);
            finished.push(a.batch.run.finished_at);
            ends.push(a.batch.run.ends_lease);
            firsts_run.push(a.first);
            for e in &a.batch.events {
                e_idx.push(idx);
                e_seq.push(e.seq);
                e_at.push(e.at);
                e_kind.push(e.kind.as_str());
                if let Some(l) = &e.log {
                    l_pos.push(i64::try_from(e_idx.len()).unwrap_or(i64::MAX));
                    l_node.push(l.node.as_str());
                    l_item.push(l.item);
                    l_attempt.push(l.attempt);
                    l_level.push(l.level);
                }
            }
            for x in &a.batch.executions {
                x_idx.push(idx);
                nodes.push(x.node.as_str());
                items.push(x.item);
                attempts.push(x.attempt);
                firsts.push(x.first_seq);
                x_states.push(x.state);
                outputs.push(x.output.as_deref());
                errors.push(x.error.as_deref());
                reasons.push(x.reason.as_deref());
                starts.push(x.started_at);
                updates.push(x.updated_at);
            }
        }
        let sql = if self.notify_appends {
            WRITE_NOTIFY
        } else {
            WRITE
        };
        let q = sqlx::query_as::<_, (i64,)>(sql)
            .bind(ids)
            .bind(owners)
            .bind(fences)
            .bind(ns)
            .bind(states)
            .bind(started)
            .bind(finished)
            .bind(ends)
            .bind(e_idx)
            .bind(e_seq)
            .bind(e_at)
            .bind(e_kind)
            .bind(x_idx)
            .bind(nodes)
            .bind(items)
            .bind(attempts)
            .bind(firsts)
            .bind(x_states)
            .bind(outputs)
            .bind(errors)
            .bind(reasons)
            .bind(starts)
            .bind(updates)
            .bind(firsts_run)
            .bind(&*self.channel)
            .bind(self.durability.synchronous_commit(settles))
            .bind(l_pos)
            .bind(l_node)
            .bind(l_item)
            .bind(l_attempt)
            .bind(l_level);
        let rows = q.fetch_all(&self.pool).await?;
        let mut written = vec![false; runs];
        for (idx,) in rows {
            if let Some(w) = usize::try_from(idx - 1)
                .ok()
                .and_then(|i| written.get_mut(i))
            {
                *w = true;
            }
        }
        Ok(written)
    }
}

impl GroupWrite for Writer {
    async fn write(&self, appends: &[Append]) -> Result<Vec<bool>, sqlx::Error> {
        Writer::write(self, appends).await
    }

    async fn run_row(&self, run: RunId) -> Result<Option<(Option<String>, i64, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT lease_owner, fence, last_seq FROM runs WHERE id = $1::uuid")
            .bind(run.to_uuid_string())
            .fetch_optional(&self.pool)
            .await
    }
}
