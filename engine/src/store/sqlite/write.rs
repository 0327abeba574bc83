//! Appends to SQLite: a group of runs' appends in one transaction.

use std::collections::HashMap;

use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Sqlite};

use crate::ids::RunId;

use super::super::combine::{Append, GroupWrite};
use super::super::sql::{ROWS_PER_INSERT, fence};

/// Runs per lease-checking `UPDATE` (10 parameters each).
const RUNS_PER_UPDATE: usize = 100;

/// The lease-checking update of appends that change their run (state, times, lease).
const CHANGING_SET: &str = ") UPDATE runs SET last_seq = runs.last_seq + u.n, \
     state = COALESCE(u.state, runs.state), \
     started_at = COALESCE(u.started, runs.started_at), \
     finished_at = COALESCE(u.finished, runs.finished_at), \
     lease_owner = CASE WHEN u.ends THEN NULL ELSE runs.lease_owner END, \
     lease_until = CASE WHEN u.ends THEN NULL ELSE runs.lease_until END";

/// The lease-checking update of the other appends: the log grows, nothing else.
const PLAIN_SET: &str = ") UPDATE runs SET last_seq = runs.last_seq + u.n";

/// Writes appends for a [`SqliteStore`](super::SqliteStore).
#[derive(Debug)]
pub(super) struct Writer {
    pub(super) pool: SqlitePool,
}

impl Writer {
    /// Writes `appends` in one transaction: one `UPDATE … FROM` checking the runs'
    /// leases and that each batch continues its run's log (its trigger adds the global
    /// feed's rows), then the events and execution rows
    /// of the runs that passed, in multi-row statements. `Ok` holds, per append,
    /// whether its lease held (and so it was written).
    async fn write(&self, appends: &[Append]) -> Result<Vec<bool>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // Run id → (its append's position): ids are unique within a group.
        let ids: Vec<String> = appends.iter().map(|a| a.run.to_uuid_string()).collect();
        let position: HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        // Per append: the run's row and the sequence number its events follow.
        let mut placed: Vec<Option<(i64, i64)>> = vec![None; appends.len()];
        // Appends that change the run itself (its state, times or lease) set those
        // columns; the others (node events, logs: the hot path) set only `last_seq`,
        // which no index holds, so their update rewrites no index entry and fires no
        // state trigger.
        let (changing, plain): (Vec<usize>, Vec<usize>) = (0..appends.len()).partition(|&i| {
            let r = &appends[i].batch.run;
            r.state.is_some() || r.started_at.is_some() || r.finished_at.is_some() || r.ends_lease
        });
        for (group, sets) in [(changing, CHANGING_SET), (plain, PLAIN_SET)] {
            for chunk in group.chunks(RUNS_PER_UPDATE) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "WITH u (id, owner, fence, n, state, started, finished, ends, first) AS (",
                );
                q.push_values(chunk, |mut b, &i| {
                    let a = &appends[i];
                    b.push_bind(ids[i].as_str())
                        .push_bind(&*a.lease.owner)
                        .push_bind(fence(&a.lease))
                        .push_bind(a.n)
                        .push_bind(a.batch.run.state.map(|s| s.as_str()))
                        .push_bind(a.batch.run.started_at)
                        .push_bind(a.batch.run.finished_at)
                        .push_bind(a.batch.run.ends_lease)
                        .push_bind(a.first);
                });
                q.push(sets);
                q.push(
                    " FROM u WHERE runs.id = u.id AND runs.lease_owner = u.owner \
                     AND runs.fence = u.fence AND (u.n = 0 OR runs.last_seq = u.first - 1) \
                     RETURNING runs.id, runs.pk, runs.last_seq",
                );
                let rows: Vec<(String, i64, i64)> = q.build_query_as().fetch_all(&mut *tx).await?;
                for (id, pk, last) in rows {
                    if let Some(&i) = position.get(id.as_str()) {
                        placed[i] = Some((pk, last - appends[i].n));
                    }
                }
            }
        }
        let events = appends
            .iter()
            .zip(&placed)
            .filter_map(|(a, p)| p.map(|(pk, base)| (a, pk, base)))
            .flat_map(|(a, pk, base)| a.batch.events.iter().map(move |e| (e, pk, base)));
        // Log lines with their log columns, other events without (four binds fewer a
        // row on the hot path).
        let (logs, plain): (Vec<_>, Vec<_>) = events.partition(|(e, _, _)| e.log.is_some());
        for chunk in plain.chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO events (run_pk, seq, at, kind) ");
            q.push_values(chunk, |mut b, (e, pk, base)| {
                b.push_bind(*pk)
                    .push_bind(base + e.seq)
                    .push_bind(e.at)
                    .push_bind(&e.kind);
            });
            q.build().execute(&mut *tx).await?;
        }
        for chunk in logs.chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (run_pk, seq, at, kind, node, item, attempt, level) ",
            );
            q.push_values(chunk, |mut b, (e, pk, base)| {
                let log = e.log.as_ref();
                b.push_bind(*pk)
                    .push_bind(base + e.seq)
                    .push_bind(e.at)
                    .push_bind(&e.kind)
                    .push_bind(log.map(|l| l.node.as_str()))
                    .push_bind(log.and_then(|l| l.item))
                    .push_bind(log.map(|l| l.attempt))
                    .push_bind(log.map(|l| l.level));
            });
            q.build().execute(&mut *tx).await?;
        }
        // The global feed's rows are written by the `feed_append` trigger on the
        // lease-checking update above (schema v7): no statement of their own.
        let execs: Vec<_> = appends
            .iter()
            .zip(&placed)
            .filter_map(|(a, p)| p.map(|(pk, base)| (a, pk, base)))
            .flat_map(|(a, pk, base)| a.batch.executions.iter().map(move |x| (x, pk, base)))
            .collect();
        for chunk in execs.chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO executions (run_pk, node, item, attempt, first_seq, state, output, \
                 error, reason, started_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, (x, pk, base)| {
                b.push_bind(*pk)
                    .push_bind(&x.node)
                    .push_bind(x.item)
                    .push_bind(x.attempt)
                    .push_bind(base + x.first_seq)
                    .push_bind(x.state)
                    .push_bind(&x.output)
                    .push_bind(&x.error)
                    .push_bind(&x.reason)
                    .push_bind(x.started_at)
                    .push_bind(x.updated_at);
            });
            q.push(
                " ON CONFLICT (run_pk, node, item, attempt) DO UPDATE SET \
                 state = excluded.state, \
                 output = COALESCE(excluded.output, executions.output), \
                 error = COALESCE(excluded.error, executions.error), \
                 reason = COALESCE(excluded.reason, executions.reason), \
                 started_at = COALESCE(excluded.started_at, executions.started_at), \
                 updated_at = excluded.updated_at",
            );
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(placed.iter().map(Option::is_some).collect())
    }
}

impl GroupWrite for Writer {
    async fn write(&self, appends: &[Append]) -> Result<Vec<bool>, sqlx::Error> {
        Writer::write(self, appends).await
    }

    async fn run_row(&self, run: RunId) -> Result<Option<(Option<String>, i64, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT lease_owner, fence, last_seq FROM runs WHERE id = ?")
            .bind(run.to_uuid_string())
            .fetch_optional(&self.pool)
            .await
    }
}
