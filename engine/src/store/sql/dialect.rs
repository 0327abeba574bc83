//! The seam between the SQL dialects: what the shared query text ([`Sql`]) needs to
//! know about the database it runs on, and nothing more.
//!
//! The shared statements use `$n` placeholders (which sqlx's SQLite driver reads as
//! numbered parameters too) and typed binds (`bool`, `i32`, `i64`, text). Where the
//! dialects still differ — PostgreSQL's `uuid` and `json` columns take a cast from a
//! text parameter and are read back through one — the statement names the cast with
//! a constant of [`Dialect`], empty on SQLite.

use std::sync::Arc;

use sqlx::{Database, Pool};

use super::SpecCache;

/// What differs between the SQL databases in the statements they share.
pub(in crate::store) trait Dialect: Database {
    /// Cast of a run id parameter (text) to the `id` column's type.
    const UUID: &'static str;
    /// Cast of a JSON parameter (text) to a JSON column's type.
    const JSON: &'static str;
    /// Cast of a column (a run id, a JSON value) to text, to read it back.
    const TEXT: &'static str;
    /// The current time in the unit of `runs.lease_until` (to tell live leases).
    const LEASE_NOW: &'static str;
    /// Cast of an integer parameter to the type of `feed.tx`.
    const TX_IN: &'static str;
    /// `feed.tx` (of table alias `f`) read back as an integer.
    const TX_OUT: &'static str;
    /// The condition that keeps a feed read (table alias `f`) to rows no transaction
    /// still running can precede (see [`EventFeed`](crate::store::EventFeed)); empty
    /// where writers commit in the order they write.
    const FEED_HORIZON: &'static str;
    /// How many rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;
}

#[cfg(feature = "sqlite")]
impl Dialect for sqlx::Sqlite {
    const UUID: &'static str = "";
    const JSON: &'static str = "";
    const TEXT: &'static str = "";
    const LEASE_NOW: &'static str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
    const TX_IN: &'static str = "";
    const TX_OUT: &'static str = "f.tx";
    // SQLite serializes writers: a later commit always has a larger `tx`.
    const FEED_HORIZON: &'static str = "";
    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }
}

#[cfg(feature = "postgres")]
impl Dialect for sqlx::Postgres {
    const UUID: &'static str = "::uuid";
    const JSON: &'static str = "::json";
    const TEXT: &'static str = "::text";
    const LEASE_NOW: &'static str = "now()";
    const TX_IN: &'static str = "::bigint::text::xid8";
    const TX_OUT: &'static str = "f.tx::text::bigint";
    // A transaction older than every running one has committed (or aborted): its
    // rows are all visible, and no later commit can have a smaller `tx`.
    const FEED_HORIZON: &'static str = " AND f.tx < pg_snapshot_xmin(pg_current_snapshot())";
    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }
}

/// The statements both SQL stores run alike, on database `DB`: a view of a store's
/// pool and spec cache (see [`super::runs`] and [`super::schedules`]).
pub(in crate::store) struct Sql<'a, DB: Database> {
    pub(in crate::store) pool: &'a Pool<DB>,
    pub(in crate::store) specs: &'a Arc<SpecCache>,
}

impl<'a, DB: Database> Sql<'a, DB> {
    /// The statements on `pool`, with `specs` as the spec cache.
    pub(in crate::store) fn new(pool: &'a Pool<DB>, specs: &'a Arc<SpecCache>) -> Self {
        Sql { pool, specs }
    }
}
