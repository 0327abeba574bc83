//! A run's recorded events, paged, and its log lines.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Shared;
use super::extract::{Query, page_size, run_id};
use super::problem::{Problem, ProblemDoc, ProblemKind};
use super::views::{AttemptView, EventView, LogLine};
use crate::LogLevel;
use crate::store::{ExecutionCursor, ExecutionQuery, LogQuery};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/runs/{id}/history", get(history))
        .route("/api/v1/runs/{id}/logs", get(logs))
        .route("/api/v1/runs/{id}/attempts", get(attempts))
}

/// Paging by sequence number.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryParams {
    /// Events after this sequence number (default 0: from the first).
    after: Option<u64>,
    /// Page size, 1 to 5,000 (default 500).
    limit: Option<usize>,
}

/// A page of a run's events.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventPage {
    /// The events, in order.
    items: Vec<EventView>,
    /// Pass as `after` for the next page: the last event's sequence number (absent
    /// when the page is empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<u64>,
}

async fn existing(st: &Shared, id: &str) -> Result<crate::RunId, Problem> {
    let run = run_id(id, "path.id")?;
    st.engine
        .store()
        .get_run(run)
        .await
        .map_err(crate::Error::from)?
        .ok_or(crate::Error::RunNotFound(run))?;
    Ok(run)
}

/// A run's recorded events, in order, paged by sequence number (the same events as
/// the live stream at `/api/v1/runs/{id}/events`).
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/history",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id."), HistoryParams),
    responses(
        (status = 200, description = "A page of events.", body = EventPage),
        (status = 400, description = "Bad run id or paging.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such run.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn history(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Query(p): Query<HistoryParams>,
) -> Result<Json<EventPage>, Problem> {
    let limit = page_size(p.limit, 500, 5_000)?;
    let run = existing(&st, &id).await?;
    let events = st
        .engine
        .store()
        .events(run, p.after.unwrap_or(0), limit)
        .await
        .map_err(crate::Error::from)?;
    Ok(Json(EventPage {
        next_after: events.last().map(|e| e.seq),
        items: events.iter().map(EventView::of).collect(),
    }))
}

/// Which log lines.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogParams {
    /// Only this node's lines.
    node: Option<String>,
    /// Only this fan-out item's lines.
    item: Option<u32>,
    /// Only this attempt's lines.
    attempt: Option<u32>,
    /// Only lines at this level or above: `trace`, `debug`, `info`, `warn`, `error`.
    level: Option<String>,
    /// Lines after this sequence number (the `next_after` of the previous page).
    after: Option<u64>,
    /// Page size, 1 to 5,000 (default 500).
    limit: Option<usize>,
    /// The last `tail` lines instead of the first ones (1 to 5,000).
    tail: Option<usize>,
}

/// A page of log lines.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogPage {
    /// The lines, in order.
    items: Vec<LogLine>,
    /// Pass as `after` for the lines that follow (the last line's sequence number;
    /// absent when the page is empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<u64>,
}

/// `text` as a log level, or a `bad-query` problem.
pub(crate) fn parse_level(text: &str) -> Result<LogLevel, Problem> {
    serde_json::from_value(serde_json::Value::String(text.trim().to_ascii_lowercase())).map_err(
        |_| {
            Problem::new(
                ProblemKind::BadQuery,
                "a log level is one of trace, debug, info, warn, error",
            )
            .culprit("query.level")
            .value(text)
        },
    )
}

/// A run's log lines, filtered by node, item, attempt and level; the first page after
/// `after`, or the last `tail` lines.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/logs",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id."), LogParams),
    responses(
        (status = 200, description = "A page of log lines.", body = LogPage),
        (status = 400, description = "Bad run id, level or paging.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such run.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn logs(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Query(p): Query<LogParams>,
) -> Result<Json<LogPage>, Problem> {
    let limit = page_size(p.limit, 500, 5_000)?;
    let run = run_id(&id, "path.id")?;
    let mut q = LogQuery::new().after(p.after.unwrap_or(0)).limit(limit);
    if let Some(t) = p.tail {
        q = q.tail(page_size(Some(t), t, 5_000).map_err(|e| e.culprit("query.tail"))?);
    }
    if let Some(level) = &p.level {
        q = q.min_level(parse_level(level)?);
    }
    if let Some(n) = p.node {
        q = q.node(n);
    }
    if let Some(i) = p.item {
        q = q.item(i);
    }
    if let Some(a) = p.attempt {
        q = q.attempt(a);
    }
    let lines = st
        .engine
        .store()
        .logs(run, &q)
        .await
        .map_err(crate::Error::from)?;
    let items: Vec<LogLine> = lines.iter().map(LogLine::of).collect();
    Ok(Json(LogPage {
        next_after: items.last().map(|l| l.seq),
        items,
    }))
}

/// Paging of a run's attempts.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AttemptParams {
    /// Page size, 1 to 10,000 (default 1,000).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of a run's attempts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AttemptPage {
    /// The attempts, by node id, item and attempt number.
    items: Vec<RunAttempt>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// One attempt of a node or item of a run.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunAttempt {
    /// The node.
    node: String,
    /// The attempt.
    #[serde(flatten)]
    attempt: AttemptView,
}

/// Every attempt of a run's nodes and items (with their start and end: a timeline),
/// read a page at a time from the store.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/attempts",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id."), AttemptParams),
    responses(
        (status = 200, description = "A page of attempts.", body = AttemptPage),
        (status = 400, description = "Bad run id, limit or cursor.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such run.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn attempts(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Query(p): Query<AttemptParams>,
) -> Result<Json<AttemptPage>, Problem> {
    let limit = page_size(p.limit, 1000, 10_000)?;
    let run = run_id(&id, "path.id")?;
    let mut q = ExecutionQuery::new().limit(limit);
    if let Some(c) = &p.cursor {
        q = q.after(c.parse::<ExecutionCursor>().map_err(|_| {
            Problem::new(ProblemKind::BadCursor, "not a cursor this API handed out")
                .culprit("query.cursor")
                .value(c)
        })?);
    }
    let page = st
        .engine
        .store()
        .executions_page(run, &q)
        .await
        .map_err(crate::Error::from)?;
    Ok(Json(AttemptPage {
        items: page
            .items
            .iter()
            .map(|e| RunAttempt {
                node: e.node.clone(),
                attempt: AttemptView::of(e),
            })
            .collect(),
        next_cursor: page.next.map(|c| c.to_string()),
    }))
}
