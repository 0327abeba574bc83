//! Listing and counting runs on both SQL stores: every filter of [`RunQuery`] as a
//! condition its index serves, keyset pages newest first by `(created_at, id)`.

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use crate::state::RunState;
use crate::store::query::{IdText, id_range, page_size};
use crate::store::{Page, RunCounts, RunCursor, RunQuery, RunRecord, StoreError};

use super::dialect::{Dialect, Sql};
use super::runs::{RunRow, run_columns};
use super::{backend, decode_each, micros, parse_run_id, parse_state};

/// A parameter of a built statement.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Text(String),
    Int(i64),
}

/// A statement's parameters, numbered as they are pushed.
#[derive(Debug, Default)]
pub(super) struct Args(pub(super) Vec<Arg>);

impl Args {
    /// Pushes `arg`; its placeholder (`$n`, with `cast`).
    pub(super) fn push(&mut self, arg: Arg, cast: &str) -> String {
        self.0.push(arg);
        format!("${}{cast}", self.0.len())
    }
}

/// The conditions of `query`'s filters (`AND`-joined, each with a leading ` AND `):
/// its states as `state = …` (one) or `state IN (…)`, and `cursor` if any.
fn conditions<DB: Dialect>(
    query: &RunQuery,
    states: &[RunState],
    cursor: Option<RunCursor>,
    args: &mut Args,
) -> Result<String, StoreError> {
    let mut sql = String::new();
    let text = |sql: &mut String, column: &str, v: &Option<String>, args: &mut Args| {
        if let Some(v) = v {
            let p = args.push(Arg::Text(v.clone()), "");
            sql.push_str(&format!(" AND {column} = {p}"));
        }
    };
    text(&mut sql, "workflow", &query.workflow, args);
    text(&mut sql, "version", &query.version, args);
    text(&mut sql, "idempotency_key", &query.idempotency_key, args);
    text(&mut sql, "queue", &query.queue, args);
    if !states.is_empty() {
        let ps: Vec<String> = states
            .iter()
            .map(|s| args.push(Arg::Text(s.as_str().to_owned()), ""))
            .collect();
        sql.push_str(&format!(" AND state IN ({})", ps.join(", ")));
    }
    if let Some(t) = query.created_from {
        let p = args.push(Arg::Int(micros(t)), "");
        sql.push_str(&format!(" AND created_at >= {p}"));
    }
    if let Some(t) = query.created_to {
        let p = args.push(Arg::Int(micros(t)), "");
        sql.push_str(&format!(" AND created_at < {p}"));
    }
    match &query.id_text {
        Some(t @ IdText::Prefix(_)) => match id_range(&t.checked()?) {
            Some((lo, hi)) => {
                let lo = args.push(Arg::Text(lo), DB::UUID);
                let hi = args.push(Arg::Text(hi), DB::UUID);
                sql.push_str(&format!(" AND id BETWEEN {lo} AND {hi}"));
            }
            // No id starts so: nothing matches.
            None => sql.push_str(" AND 1 = 0"),
        },
        Some(t) => {
            let p = args.push(Arg::Text(format!("%{}%", t.checked()?)), "");
            sql.push_str(&format!(" AND id{} LIKE {p}", DB::TEXT));
        }
        None => {}
    }
    if let Some(c) = cursor {
        let t = args.push(Arg::Int(c.created_us), "");
        let id = args.push(Arg::Text(c.id.to_uuid_string()), DB::UUID);
        sql.push_str(&format!(" AND (created_at, id) < ({t}, {id})"));
    }
    Ok(sql)
}

impl<DB: Dialect> Sql<'_, DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The cursor a query continues after: its `cursor`, else its `before` run's
    /// ([`StoreError::UnknownRun`] if that run does not exist).
    async fn cursor_of(&self, query: &RunQuery) -> Result<Option<RunCursor>, StoreError> {
        if query.cursor.is_some() {
            return Ok(query.cursor);
        }
        let Some(before) = query.before else {
            return Ok(None);
        };
        let created: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT created_at FROM runs WHERE id = $1{}",
            DB::UUID
        ))
        .bind(before.to_uuid_string())
        .fetch_optional(self.pool)
        .await
        .map_err(|e| backend("listing runs", e))?;
        let created = created.ok_or(StoreError::UnknownRun(before))?;
        Ok(Some(RunCursor {
            created_us: created,
            id: before,
        }))
    }

    /// [`RunQueries::list_runs`](crate::store::RunQueries::list_runs). Several states
    /// are one page-sized branch per state (each read in order from its index) merged
    /// by a `UNION ALL`, so a rare state among common ones costs no scan.
    pub(in crate::store) async fn list_runs(
        &self,
        query: &RunQuery,
    ) -> Result<Page<RunRecord>, StoreError> {
        query.check()?;
        let size = page_size(query.limit);
        let cursor = self.cursor_of(query).await?;
        let states = query.wanted_states();
        let cols = run_columns::<DB>("");
        let mut args = Args::default();
        let limit = i64::try_from(size + 1).unwrap_or(i64::MAX);
        let order = "ORDER BY created_at DESC, id DESC";
        let sql = if states.len() > 1 {
            let mut branches = Vec::with_capacity(states.len());
            for (i, s) in states.iter().enumerate() {
                let cond = conditions::<DB>(query, std::slice::from_ref(s), cursor, &mut args)?;
                let l = args.push(Arg::Int(limit), "");
                branches.push(format!(
                    "SELECT * FROM (SELECT {cols} FROM runs WHERE 1 = 1{cond} {order} LIMIT {l}) \
                     AS b{i}"
                ));
            }
            let l = args.push(Arg::Int(limit), "");
            format!(
                "SELECT * FROM ({}) AS u {order} LIMIT {l}",
                branches.join(" UNION ALL ")
            )
        } else {
            let cond = conditions::<DB>(query, &states, cursor, &mut args)?;
            let l = args.push(Arg::Int(limit), "");
            format!("SELECT {cols} FROM runs WHERE 1 = 1{cond} {order} LIMIT {l}")
        };
        let mut q = sqlx::query_as::<DB, RunRow>(&sql);
        for a in args.0 {
            q = match a {
                Arg::Text(t) => q.bind(t),
                Arg::Int(i) => q.bind(i),
            };
        }
        let mut rows: Vec<RunRow> = q
            .fetch_all(self.pool)
            .await
            .map_err(|e| backend("listing runs", e))?;
        let more = rows.len() > size;
        rows.truncate(size);
        let last = if more {
            rows.last().and_then(|r| {
                let id = parse_run_id(&r.0).ok()?;
                Some(RunCursor {
                    created_us: r.6,
                    id,
                })
            })
        } else {
            None
        };
        let (items, bad) = decode_each(rows, |r| r.0.clone(), |r| self.records(vec![r])).await?;
        let mut page = Page::new(items, last.map(|c| c.id)).with_cursor(last);
        page.bad = bad;
        Ok(page)
    }

    /// [`RunQueries::count_runs`](crate::store::RunQueries::count_runs): filtered by
    /// workflow and states only, a sum over the `run_counts` table (kept by triggers in
    /// the transaction of every change); filtered otherwise, one `GROUP BY state` over
    /// the index of the filters given.
    pub(in crate::store) async fn count_runs(
        &self,
        query: &RunQuery,
    ) -> Result<RunCounts, StoreError> {
        query.check()?;
        let mut args = Args::default();
        let states = query.wanted_states();
        let counted = RunQuery {
            workflow: query.workflow.clone(),
            state: query.state,
            states: query.states.clone(),
            limit: query.limit,
            before: query.before,
            cursor: query.cursor,
            ..RunQuery::default()
        };
        let sql = if counted == *query {
            let mut cond = String::new();
            if let Some(w) = &query.workflow {
                let p = args.push(Arg::Text(w.clone()), "");
                cond.push_str(&format!(" AND workflow = {p}"));
            }
            if !states.is_empty() {
                let ps: Vec<String> = states
                    .iter()
                    .map(|s| args.push(Arg::Text(s.as_str().to_owned()), ""))
                    .collect();
                cond.push_str(&format!(" AND state IN ({})", ps.join(", ")));
            }
            format!(
                "SELECT state, CAST(SUM(n) AS BIGINT) FROM run_counts WHERE 1 = 1{cond} \
                 GROUP BY state"
            )
        } else {
            let cond = conditions::<DB>(query, &states, None, &mut args)?;
            format!("SELECT state, COUNT(*) FROM runs WHERE 1 = 1{cond} GROUP BY state")
        };
        let mut q = sqlx::query_as::<DB, (String, i64)>(&sql);
        for a in args.0 {
            q = match a {
                Arg::Text(t) => q.bind(t),
                Arg::Int(i) => q.bind(i),
            };
        }
        let rows = q
            .fetch_all(self.pool)
            .await
            .map_err(|e| backend("counting runs", e))?;
        let mut counts = RunCounts::default();
        for (state, n) in rows {
            let state: RunState = parse_state("run state", &state)?;
            counts.add(state, u64::try_from(n).unwrap_or(0));
        }
        Ok(counts)
    }
}
