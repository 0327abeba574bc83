//! The runs page: the API's runs list (its filters, its keyset paging) as a table
//! whose rows the page's script keeps live from `/api/v1/events`.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;

use super::super::Shared;
use super::super::auth::Caller;
use super::super::extract::Query;
use super::super::problem::{Problem, ProblemKind};
use super::super::runs::{ListParams, counts, list};
use super::page::{self, Ctx, Nav, badge, duration, enc, s, when};

/// The filters the page's form offers, as the API names them.
const FILTERS: &[&str] = &[
    "state",
    "workflow",
    "q",
    "created_from",
    "created_to",
    "key",
    "lane",
];
/// Nodes of a run above which its row shows no node counts (they cost a read of
/// every execution).
const COUNT_NODES_UP_TO: usize = 2_000;

/// The page's query, empty values dropped and `datetime-local` times made RFC 3339
/// (read as UTC), as the API's list parameters.
fn params(
    uri: &Uri,
    extra: &[(&str, &str)],
) -> Result<(ListParams, Vec<(String, String)>), Problem> {
    let mut kept: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        let v = v.trim();
        if v.is_empty() || k.len() > 32 || v.len() > 512 {
            continue;
        }
        let v = if (k == "created_from" || k == "created_to") && v.len() == 16 {
            format!("{v}:00Z")
        } else {
            v.to_owned()
        };
        kept.push((k.into_owned(), v));
    }
    for (k, v) in extra {
        kept.retain(|(kk, _)| kk != k);
        kept.push(((*k).to_owned(), (*v).to_owned()));
    }
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept.iter())
        .finish();
    let parsed: ListParams = serde_urlencoded_like(&query)?;
    Ok((parsed, kept))
}

/// `query` as the list's parameters, or the API's own `bad-query` problem.
fn serde_urlencoded_like(query: &str) -> Result<ListParams, Problem> {
    let uri: Uri = format!("/?{query}").parse().map_err(|_| {
        Problem::new(ProblemKind::BadQuery, "the query is not valid").culprit("query")
    })?;
    axum::extract::Query::<ListParams>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| {
            Problem::new(
                ProblemKind::BadQuery,
                super::super::problem::cut(&e.body_text(), 300),
            )
            .culprit("query")
        })
}

/// `GET /` and `/runs`: the runs table.
pub(super) async fn page(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> Response {
    let ctx = Ctx::of(&caller);
    let (p, kept) = match params(&uri, &[]) {
        Ok(x) => x,
        Err(e) => return page::problem_page(&ctx, Nav::Runs, &e),
    };
    let filtered = kept.iter().any(|(k, _)| FILTERS.contains(&k.as_str()));
    let paged = kept.iter().any(|(k, _)| k == "cursor");
    let filters_only: Vec<(String, String)> = kept
        .iter()
        .filter(|(k, _)| FILTERS.contains(&k.as_str()))
        .cloned()
        .collect();
    let result = list(State(st.clone()), Query(p)).await;
    let mut status = StatusCode::OK;
    let body = match result {
        Err(e) => {
            status = e.kind().status();
            html! { (filter_form(&kept)) (page::problem_box(&e)) }
        }
        Ok(page) => {
            let v = serde_json::to_value(&page.0).unwrap_or(Value::Null);
            let filter_query = filter_query(&filters_only);
            // The pager keeps the filters and the page size.
            let paging: Vec<(String, String)> = kept
                .iter()
                .filter(|(k, _)| FILTERS.contains(&k.as_str()) || k == "limit")
                .cloned()
                .collect();
            let paging = self::filter_query(&paging);
            let tally = match counts_of(&st, &filters_only).await {
                Some(c) => tally(&c),
                None => html! {},
            };
            let empty = Vec::new();
            let items = v.get("items").and_then(Value::as_array).unwrap_or(&empty);
            let mut rows = Vec::with_capacity(items.len());
            for r in items {
                rows.push(row_markup(&st, r).await);
            }
            html! {
                (filter_form(&kept))
                (tally)
                table #runs.grid data-live=(if paged { "update" } else { "insert" })
                    data-filter=(filter_query) data-filtered=(filtered) {
                    thead { tr {
                        th { "Run" } th { "Workflow" } th { "State" } th { "Created" }
                        th { "Duration" } th { "Nodes" } th { "Key" } th { "Lane" }
                    } }
                    tbody { @for r in &rows { (r) } }
                }
                @if rows.is_empty() { p.dim #no-runs { "No runs match." } }
                nav.pager {
                    @if paged { a href={ "/?" (paging) } { "← newest" } }
                    @if let Some(c) = v.get("next_cursor").and_then(Value::as_str) {
                        a #next href={ "/?" (paging) @if !paging.is_empty() { "&" } "cursor=" (enc(c)) } { "older →" }
                    }
                }
            }
        }
    };
    let mut r = page::shell(&ctx, "Runs", Nav::Runs, &html! { h1 { "Runs" } (body) });
    *r.status_mut() = status;
    r
}

fn filter_query(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter())
        .finish()
}

async fn counts_of(st: &Shared, filters: &[(String, String)]) -> Option<Value> {
    let uri: Uri = format!("/?{}", filter_query(filters)).parse().ok()?;
    let f = axum::extract::Query::try_from_uri(&uri).ok()?.0;
    let c = counts(State(st.clone()), Query(f)).await.ok()?;
    serde_json::to_value(&c.0).ok()
}

fn tally(c: &Value) -> Markup {
    let empty = serde_json::Map::new();
    let by = c
        .get("by_state")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    html! {
        p.tally {
            (c.get("total").and_then(Value::as_u64).unwrap_or(0)) " runs"
            @for (state, n) in by { " · " (badge(state)) " " (n.as_u64().unwrap_or(0)) }
        }
    }
}

fn filter_form(kept: &[(String, String)]) -> Markup {
    let get = |k: &str| {
        kept.iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let time_value = |k: &str| get(k).get(..16).unwrap_or_default().to_owned();
    html! {
        form.filters method="get" action="/" {
            label { "State " select name="state" {
                option value="" { "any" }
                @for st in ["pending", "running", "succeeded", "failed", "cancelled"] {
                    option value=(st) selected[get("state") == st] { (st) }
                }
            } }
            label { "Workflow " input name="workflow" value=(get("workflow")) size="14"; }
            label { "Id contains " input name="q" value=(get("q")) size="12"; }
            label { "From " input type="datetime-local" name="created_from" value=(time_value("created_from")); }
            label { "To " input type="datetime-local" name="created_to" value=(time_value("created_to")); }
            button type="submit" { "Filter" }
            a href="/" { "clear" }
        }
    }
}

/// One row of the table, from the API's run summary `r`.
async fn row_markup(st: &Shared, r: &Value) -> Markup {
    let id = s(r, "id");
    let nodes = node_counts(st, id).await;
    html! {
        tr data-run=(id) {
            td { a href={ "/runs/" (id) } { code { "…" (page::short_id(id)) } } }
            td { a href={ "/workflows/" (enc(s(r, "workflow"))) } { (s(r, "workflow")) } " " span.dim { "v" (s(r, "version")) } }
            td.state { (badge(s(r, "state"))) }
            td { (when(r.get("created_at").unwrap_or(&Value::Null))) }
            td.dur { (duration(r.get("duration_ms").and_then(Value::as_u64))) }
            td.nodes { (nodes) }
            td { (s(r, "idempotency_key")) }
            td { (s(r, "lane")) }
        }
    }
}

/// A run's nodes counted by state (small runs only: see [`COUNT_NODES_UP_TO`]).
async fn node_counts(st: &Shared, id: &str) -> Markup {
    let Ok(run) = id.parse::<crate::RunId>() else {
        return html! {};
    };
    let store = st.engine.store();
    let Ok(Some(record)) = store.get_run(run).await else {
        return html! {};
    };
    let spec = record.spec.spec();
    if spec.nodes.len() > COUNT_NODES_UP_TO {
        return html! { span.dim { (spec.nodes.len()) " nodes" } };
    }
    let Ok(executions) = store.executions(run).await else {
        return html! {};
    };
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for g in super::super::nodes::latest(&spec, &executions) {
        *by.entry(g.state.to_string()).or_default() += 1;
    }
    html! {
        @for (state, n) in &by { span class={ "count st-" (state) } title=(state) { (n) } }
    }
}

/// `GET /ui/rows/{id}`: the row of one run, when it passes the page's filters (given
/// as the query); `204` when it does not.
pub(super) async fn row(State(st): State<Shared>, Path(id): Path<String>, uri: Uri) -> Response {
    if id.len() > 64 || id.parse::<crate::RunId>().is_err() {
        return Problem::new(ProblemKind::BadRunId, "not a run id")
            .culprit("path.id")
            .value(&id)
            .into_response();
    }
    let (p, _) = match params(&uri, &[("q", &id), ("limit", "1")]) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let page = match list(State(st.clone()), Query(p)).await {
        Ok(p) => serde_json::to_value(&p.0).unwrap_or(Value::Null),
        Err(e) => return e.into_response(),
    };
    match page
        .get("items")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|r| s(r, "id") == id))
    {
        Some(r) => page::html_response(row_markup(&st, r).await),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}
