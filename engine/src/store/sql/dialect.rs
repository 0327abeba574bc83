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
    /// How many rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;
}

#[cfg(feature = "sqlite")]
impl Dialect for sqlx::Sqlite {
    const UUID: &'static str = "";
    const JSON: &'static str = "";
    const TEXT: &'static str = "";
    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }
}

#[cfg(feature = "postgres")]
impl Dialect for sqlx::Postgres {
    const UUID: &'static str = "::uuid";
    const JSON: &'static str = "::json";
    const TEXT: &'static str = "::text";
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
