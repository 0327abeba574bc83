//! The global event feed and the engine heartbeats on both SQL stores.
//!
//! The feed is the `feed` table: one row per run per append, written in the append's
//! transaction, ordered by `(tx, run_pk)`. SQLite's `tx` is the row id (writers are
//! serialized, so later commits have larger ones); PostgreSQL's is the writing
//! transaction's id, and a read takes only rows of transactions older than every
//! transaction still running ([`Dialect::FEED_HORIZON`]), so that a transaction that
//! began earlier but commits later can never land behind a reader's cursor.

use std::time::SystemTime;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use crate::events::Event;
use crate::store::query::page_size;
use crate::store::{EngineRecord, FeedCursor, FeedEvent, FeedPage, StoreError};

use super::dialect::{Dialect, Sql};
use super::queries::{Arg, Args};
use super::{backend, bad_row, from_micros, micros, parse_run_id};

/// Feed rows looked at per read at most (bounds a filtered read that finds little).
const SCAN: i64 = 1000;

/// Event ranges fetched per statement.
const RANGES_PER_READ: usize = 200;

/// A feed row as read: tx, run_pk, first and last sequence numbers, run id, workflow.
type FeedRow = (i64, i64, i64, i64, String, String);

/// One engine row: id, host, pid, version, started, last beat, runs owned.
type EngineRow = (String, String, i64, String, i64, i64, i64);

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl<DB: Dialect> Sql<'_, DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// [`EventFeed::events_since`](crate::store::EventFeed::events_since).
    pub(in crate::store) async fn events_since(
        &self,
        after: FeedCursor,
        limit: usize,
        workflow: Option<&str>,
    ) -> Result<FeedPage, StoreError> {
        let size = page_size(limit);
        let rows: Vec<FeedRow> = sqlx::query_as(&format!(
            "SELECT {}, f.run_pk, f.first_seq, f.last_seq, r.id{}, r.workflow \
             FROM feed f JOIN runs r ON r.pk = f.run_pk \
             WHERE (f.tx, f.run_pk) >= ($1{}, $2){} ORDER BY f.tx, f.run_pk LIMIT $3",
            DB::TX_OUT,
            DB::TEXT,
            DB::TX_IN,
            DB::FEED_HORIZON
        ))
        .bind(signed(after.group))
        .bind(signed(after.row))
        .bind(SCAN)
        .fetch_all(self.pool)
        .await
        .map_err(|e| backend("reading the event feed", e))?;
        // The ranges to read, in feed order, up to `size` events.
        let mut next = after;
        let mut wanted: Vec<(FeedCursor, i64, i64, String)> = Vec::new();
        let mut room = size as i64;
        for (tx, run_pk, first, last, id, wf) in rows {
            if room == 0 {
                break;
            }
            let (group, row) = (unsigned(tx), unsigned(run_pk));
            let from = if (group, row) == (after.group, after.row) {
                first.max(signed(after.seq).saturating_add(1))
            } else {
                first
            };
            if from > last {
                continue;
            }
            if workflow.is_some_and(|w| w != wf) {
                next = FeedCursor::new(group, row, unsigned(last));
                continue;
            }
            let to = last.min(from + room - 1);
            room -= to - from + 1;
            wanted.push((FeedCursor::new(group, row, 0), from, to, id));
            next = FeedCursor::new(group, row, unsigned(to));
        }
        let mut events = Vec::with_capacity(size.min(1024));
        for chunk in wanted.chunks(RANGES_PER_READ) {
            let mut args = Args::default();
            let mut ors = Vec::with_capacity(chunk.len());
            for (c, from, to, _) in chunk {
                let r = args.push(Arg::Int(signed(c.row)), "");
                let a = args.push(Arg::Int(*from), "");
                let b = args.push(Arg::Int(*to), "");
                ors.push(format!("(run_pk = {r} AND seq BETWEEN {a} AND {b})"));
            }
            let sql = format!(
                "SELECT run_pk, seq, at, kind{} FROM events WHERE {}",
                DB::TEXT,
                ors.join(" OR ")
            );
            let mut q = sqlx::query_as::<DB, (i64, i64, i64, String)>(&sql);
            for a in args.0 {
                q = match a {
                    Arg::Text(t) => q.bind(t),
                    Arg::Int(i) => q.bind(i),
                };
            }
            let mut got = q
                .fetch_all(self.pool)
                .await
                .map_err(|e| backend("reading the event feed", e))?;
            got.sort_by_key(|r| (r.0, r.1));
            for (c, from, to, id) in chunk {
                let run = parse_run_id(id)?;
                let start = got.partition_point(|r| (r.0, r.1) < (signed(c.row), *from));
                for (_, seq, at, kind) in got[start..]
                    .iter()
                    .take_while(|r| r.0 == signed(c.row) && r.1 <= *to)
                {
                    let kind = serde_json::from_str(kind)
                        .map_err(|e| bad_row(&format!("event {seq}"), e).in_run(run))?;
                    let event = Event::new(run, unsigned(*seq), from_micros(*at), kind);
                    let cursor = FeedCursor::new(c.group, c.row, unsigned(*seq));
                    events.push(FeedEvent::new(cursor, event));
                }
            }
        }
        Ok(FeedPage::new(events, next))
    }

    /// [`EventFeed::feed_head`](crate::store::EventFeed::feed_head): the last row
    /// under the horizon.
    pub(in crate::store) async fn feed_head(&self) -> Result<FeedCursor, StoreError> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(&format!(
            "SELECT {}, f.run_pk, f.last_seq FROM feed f WHERE 1 = 1{} \
             ORDER BY f.tx DESC, f.run_pk DESC LIMIT 1",
            DB::TX_OUT,
            DB::FEED_HORIZON
        ))
        .fetch_optional(self.pool)
        .await
        .map_err(|e| backend("reading the event feed", e))?;
        Ok(row.map_or(FeedCursor::START, |(tx, run, seq)| {
            FeedCursor::new(unsigned(tx), unsigned(run), unsigned(seq))
        }))
    }

    /// [`EngineRegistry::beat`](crate::store::EngineRegistry::beat).
    pub(in crate::store) async fn beat(&self, e: &EngineRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO engines (id, host, pid, version, started_at, last_beat) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
             host = excluded.host, pid = excluded.pid, version = excluded.version, \
             started_at = excluded.started_at, last_beat = excluded.last_beat",
        )
        .bind(e.id.as_str())
        .bind(e.host.as_str())
        .bind(i64::from(e.pid))
        .bind(e.version.as_str())
        .bind(micros(e.started_at))
        .bind(micros(e.last_beat))
        .execute(self.pool)
        .await
        .map_err(|e| backend("recording an engine heartbeat", e))?;
        Ok(())
    }

    /// [`EngineRegistry::engines`](crate::store::EngineRegistry::engines), each with
    /// the runs it holds under a live lease (by the `runs_by_owner` index).
    pub(in crate::store) async fn engines(&self) -> Result<Vec<EngineRecord>, StoreError> {
        let rows: Vec<EngineRow> = sqlx::query_as(&format!(
            "SELECT e.id, e.host, e.pid, e.version, e.started_at, e.last_beat, \
             (SELECT COUNT(*) FROM runs r WHERE r.lease_owner = e.id \
              AND r.lease_until > {}) FROM engines e ORDER BY e.id",
            DB::LEASE_NOW
        ))
        .fetch_all(self.pool)
        .await
        .map_err(|e| backend("reading engine heartbeats", e))?;
        Ok(rows
            .into_iter()
            .map(|(id, host, pid, version, started, beat, owned)| {
                EngineRecord::new(
                    id,
                    host,
                    u32::try_from(pid).unwrap_or(0),
                    version,
                    from_micros(started),
                )
                .beat_at(from_micros(beat))
                .with_runs_owned(unsigned(owned))
            })
            .collect())
    }

    /// [`EngineRegistry::forget_engine`](crate::store::EngineRegistry::forget_engine).
    pub(in crate::store) async fn forget_engine(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM engines WHERE id = $1")
            .bind(id)
            .execute(self.pool)
            .await
            .map_err(|e| backend("forgetting an engine", e))?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// [`EngineRegistry::forget_engines_before`](crate::store::EngineRegistry::forget_engines_before).
    pub(in crate::store) async fn forget_engines_before(
        &self,
        before: SystemTime,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM engines WHERE last_beat < $1")
            .bind(micros(before))
            .execute(self.pool)
            .await
            .map_err(|e| backend("forgetting stale engines", e))?;
        Ok(DB::rows_affected(&done))
    }
}
