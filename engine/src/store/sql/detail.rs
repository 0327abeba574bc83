//! A run's detail in pages on both SQL stores: executions by their primary key order,
//! log lines by the partial indexes over the log columns of `events`.

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use crate::events::EventKind;
use crate::ids::RunId;
use crate::state::NodeState;
use crate::store::detail::level_rank;
use crate::store::{
    ExecutionCursor, ExecutionPage, ExecutionQuery, LogLine, LogQuery, NodeSummary, StoreError,
    SummaryQuery,
};

use super::dialect::{Dialect, Sql};
use super::queries::{Arg, Args};
use super::{ExecOut, backend, bad_row, decode_execution, from_micros, parse_state};

/// The per-node sums of [`Sql::node_summaries`]: node, own rows, item rows, highest
/// item attempt, earliest start, latest change.
type Totals = (String, i64, i64, i64, Option<i64>, Option<i64>);

/// The conditions of an execution query's filters, after `run_pk = $1`.
fn execution_conditions(query: &ExecutionQuery, args: &mut Args) -> String {
    let mut sql = String::new();
    if let Some(n) = &query.node {
        let p = args.push(Arg::Text(n.clone()), "");
        sql.push_str(&format!(" AND node = {p}"));
    }
    if let Some(i) = query.item {
        let p = args.push(Arg::Int(i64::from(i)), "");
        sql.push_str(&format!(" AND item = {p}"));
    }
    if query.items_only {
        sql.push_str(" AND item >= 0");
    }
    sql
}

impl<DB: Dialect> Sql<'_, DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// [`RunQueries::executions_page`](crate::store::RunQueries::executions_page): a
    /// range of the primary key `(run_pk, node, item, attempt)`.
    pub(in crate::store) async fn executions_page(
        &self,
        run: RunId,
        query: &ExecutionQuery,
    ) -> Result<ExecutionPage, StoreError> {
        query.check()?;
        let pk = self.run_pk(run).await?;
        let size = query.size();
        let mut args = Args::default();
        args.push(Arg::Int(pk), "");
        let mut cond = execution_conditions(query, &mut args);
        if let Some(c) = &query.after {
            let (node, item, attempt) = c.key();
            let n = args.push(Arg::Text(node.to_owned()), "");
            let i = args.push(Arg::Int(item), "");
            let a = args.push(Arg::Int(i64::from(attempt)), "");
            cond.push_str(&format!(" AND (node, item, attempt) > ({n}, {i}, {a})"));
        }
        let l = args.push(Arg::Int(i64::try_from(size + 1).unwrap_or(i64::MAX)), "");
        let t = DB::TEXT;
        let sql = format!(
            "SELECT node, item, attempt, state, output{t}, error{t}, reason, started_at, \
             updated_at FROM executions WHERE run_pk = $1{cond} \
             ORDER BY node, item, attempt LIMIT {l}"
        );
        let mut q = sqlx::query_as::<DB, ExecOut>(&sql);
        for a in args.0 {
            q = match a {
                Arg::Text(t) => q.bind(t),
                Arg::Int(i) => q.bind(i),
            };
        }
        let mut rows = q
            .fetch_all(self.pool)
            .await
            .map_err(|e| backend("reading executions", e))?;
        let more = rows.len() > size;
        rows.truncate(size);
        let next = if more {
            rows.last().map(|r| ExecutionCursor {
                node: r.0.clone(),
                item: u32::try_from(r.1).ok(),
                attempt: u32::try_from(r.2).unwrap_or(0),
            })
        } else {
            None
        };
        let mut page = ExecutionPage::new(Vec::with_capacity(rows.len()), next);
        for row in rows {
            match decode_execution(row) {
                Ok(e) => page.items.push(e),
                Err(StoreError::BadRow(b)) => page.bad.push(b.in_run(run.to_string())),
                Err(e) => return Err(e),
            }
        }
        Ok(page)
    }

    /// [`RunQueries::count_executions`](crate::store::RunQueries::count_executions).
    pub(in crate::store) async fn count_executions(
        &self,
        run: RunId,
        query: &ExecutionQuery,
    ) -> Result<u64, StoreError> {
        query.check()?;
        let pk = self.run_pk(run).await?;
        let mut args = Args::default();
        args.push(Arg::Int(pk), "");
        let cond = execution_conditions(query, &mut args);
        let sql = format!("SELECT COUNT(*) FROM executions WHERE run_pk = $1{cond}");
        let mut q = sqlx::query_scalar::<DB, i64>(&sql);
        for a in args.0 {
            q = match a {
                Arg::Text(t) => q.bind(t),
                Arg::Int(i) => q.bind(i),
            };
        }
        let n = q
            .fetch_one(self.pool)
            .await
            .map_err(|e| backend("counting executions", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// [`RunQueries::node_summaries`](crate::store::RunQueries::node_summaries): three
    /// grouped reads of the primary key range `(run_pk, node, …)`: the sums per node,
    /// the items by the state of their latest attempt (the row no higher attempt of
    /// the same item follows), and each node's own latest row.
    pub(in crate::store) async fn node_summaries(
        &self,
        run: RunId,
        query: &SummaryQuery,
    ) -> Result<Vec<NodeSummary>, StoreError> {
        query.check()?;
        let pk = self.run_pk(run).await?;
        let node = query.node.as_deref();
        let only = if node.is_some() {
            " AND e.node = $2"
        } else {
            ""
        };
        let latest = "NOT EXISTS (SELECT 1 FROM executions l WHERE l.run_pk = e.run_pk \
                      AND l.node = e.node AND l.item = e.item AND l.attempt > e.attempt)";
        let sums = format!(
            "SELECT e.node, SUM(CASE WHEN e.item < 0 THEN 1 ELSE 0 END), \
             SUM(CASE WHEN e.item >= 0 THEN 1 ELSE 0 END), \
             MAX(CASE WHEN e.item >= 0 THEN e.attempt ELSE 0 END), MIN(e.started_at), \
             MAX(e.updated_at) FROM executions e WHERE e.run_pk = $1{only} \
             GROUP BY e.node ORDER BY e.node"
        );
        let totals: Vec<Totals> = {
            let mut q = sqlx::query_as::<DB, Totals>(&sums).bind(pk);
            if let Some(n) = node {
                q = q.bind(n);
            }
            q.fetch_all(self.pool)
                .await
                .map_err(|e| backend("summing up executions", e))?
        };
        let states = format!(
            "SELECT e.node, e.state, COUNT(*) FROM executions e WHERE e.run_pk = $1{only} \
             AND e.item >= 0 AND {latest} GROUP BY e.node, e.state"
        );
        let item_states: Vec<(String, String, i64)> = {
            let mut q = sqlx::query_as(&states).bind(pk);
            if let Some(n) = node {
                q = q.bind(n);
            }
            q.fetch_all(self.pool)
                .await
                .map_err(|e| backend("counting items by state", e))?
        };
        let t = DB::TEXT;
        let detail = if query.latest {
            format!("e.output{t}, e.error{t}, e.reason")
        } else {
            "CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT)".to_owned()
        };
        let own = format!(
            "SELECT e.node, e.item, e.attempt, e.state, {detail}, e.started_at, e.updated_at \
             FROM executions e WHERE e.run_pk = $1{only} AND e.item = -1 AND {latest}"
        );
        let own_rows: Vec<ExecOut> = {
            let mut q = sqlx::query_as::<DB, ExecOut>(&own).bind(pk);
            if let Some(n) = node {
                q = q.bind(n);
            }
            q.fetch_all(self.pool)
                .await
                .map_err(|e| backend("reading nodes' latest executions", e))?
        };
        let mut out: Vec<NodeSummary> = Vec::with_capacity(totals.len());
        for (node, own, items, max_attempt, started, updated) in totals {
            let mut s = NodeSummary::new(node);
            s.own_executions = u64::try_from(own).unwrap_or(0);
            s.item_executions = u64::try_from(items).unwrap_or(0);
            s.max_item_attempt = u32::try_from(max_attempt).unwrap_or(0);
            s.started_at = started.map(from_micros);
            s.updated_at = updated.map(from_micros);
            out.push(s);
        }
        let at = |out: &[NodeSummary], node: &str| {
            out.binary_search_by(|s| s.node.as_str().cmp(node)).ok()
        };
        for (node, state, n) in item_states {
            let state: NodeState =
                parse_state("execution state", &state).map_err(|e| e.in_run(run))?;
            if let Some(i) = at(&out, &node) {
                out[i].count_items(state, u64::try_from(n).unwrap_or(0));
            }
        }
        for row in own_rows {
            let e = decode_execution(row).map_err(|e| e.in_run(run))?;
            if let Some(i) = at(&out, &e.node) {
                let s = &mut out[i];
                s.state = Some(e.state);
                s.attempt = e.attempt;
                if query.latest {
                    s.latest = Some(e);
                }
            }
        }
        Ok(out)
    }

    /// [`RunQueries::logs`](crate::store::RunQueries::logs): the log rows of `events`
    /// (`level IS NOT NULL`), by `(run_pk, seq)` or `(run_pk, node, seq)`, forward or
    /// from the end.
    pub(in crate::store) async fn logs(
        &self,
        run: RunId,
        query: &LogQuery,
    ) -> Result<Vec<LogLine>, StoreError> {
        query.check()?;
        let pk = self.run_pk(run).await?;
        let size = query.size();
        let mut args = Args::default();
        args.push(Arg::Int(pk), "");
        let after = args.push(Arg::Int(i64::try_from(query.after).unwrap_or(i64::MAX)), "");
        let mut cond = format!(" AND seq > {after}");
        if let Some(n) = &query.node {
            let p = args.push(Arg::Text(n.clone()), "");
            cond.push_str(&format!(" AND node = {p}"));
        }
        if let Some(i) = query.item {
            let p = args.push(Arg::Int(i64::from(i)), "");
            cond.push_str(&format!(" AND item = {p}"));
        }
        if let Some(a) = query.attempt {
            let p = args.push(Arg::Int(i64::from(a)), "");
            cond.push_str(&format!(" AND attempt = {p}"));
        }
        if let Some(l) = query.min_level.filter(|l| level_rank(*l) > 0) {
            let p = args.push(Arg::Int(i64::from(level_rank(l))), "");
            cond.push_str(&format!(" AND level >= {p}"));
        }
        let dir = if query.tail { "DESC" } else { "ASC" };
        let l = args.push(Arg::Int(i64::try_from(size).unwrap_or(i64::MAX)), "");
        let sql = format!(
            "SELECT seq, at, kind{} FROM events WHERE run_pk = $1 AND level IS NOT NULL{cond} \
             ORDER BY seq {dir} LIMIT {l}",
            DB::TEXT
        );
        let mut q = sqlx::query_as::<DB, (i64, i64, String)>(&sql);
        for a in args.0 {
            q = match a {
                Arg::Text(t) => q.bind(t),
                Arg::Int(i) => q.bind(i),
            };
        }
        let mut rows = q
            .fetch_all(self.pool)
            .await
            .map_err(|e| backend("reading logs", e))?;
        if query.tail {
            rows.reverse();
        }
        let mut out = Vec::with_capacity(rows.len());
        for (seq, at, kind) in rows {
            let kind: EventKind = serde_json::from_str(&kind)
                .map_err(|e| bad_row(&format!("event {seq}"), e).in_run(run))?;
            let seq = u64::try_from(seq).unwrap_or(0);
            if let Some(line) = query.line_of(seq, from_micros(at), &kind) {
                out.push(line);
            }
        }
        Ok(out)
    }
}
