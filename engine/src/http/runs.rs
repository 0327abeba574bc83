//! Runs: the list (filtered, keyset-paged) and one run's detail.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::Shared;
use super::extract::{Query, page_size, run_id};
use super::problem::{Problem, ProblemDoc, ProblemKind};
use super::views::{BadRowView, Counts, RunSummary};
use crate::RunState;
use crate::store::RunQuery;

/// The default page size of lists.
pub(crate) const DEFAULT_LIMIT: usize = 50;
/// The largest page size of lists.
pub(crate) const MAX_LIMIT: usize = 500;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/runs", get(list))
        .route("/api/v1/runs/{id}", get(detail))
        .route("/api/v1/runs/{id}/artifacts", get(artifacts))
}

/// Filters and paging of the runs list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only runs in this state: `pending`, `running`, `succeeded`, `failed`, `cancelled`.
    state: Option<String>,
    /// Only runs of this workflow.
    workflow: Option<String>,
    /// Page size, 1 to 500 (default 50).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunPage {
    /// The runs.
    items: Vec<RunSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    /// Recorded runs of this page that could not be decoded (left out of `items`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bad_rows: Vec<BadRowView>,
}

/// `text` as a run state, or a `bad-query` problem naming `culprit`.
pub(crate) fn parse_state(text: &str, culprit: &str) -> Result<RunState, Problem> {
    serde_json::from_value::<RunState>(Value::String(text.trim().to_ascii_lowercase())).map_err(
        |_| {
            Problem::new(
                ProblemKind::BadQuery,
                "a run state is one of pending, running, succeeded, failed, cancelled",
            )
            .culprit(culprit)
            .value(text)
        },
    )
}

/// Runs, newest first, filtered and keyset-paged.
#[utoipa::path(
    get,
    path = "/api/v1/runs",
    tag = "runs",
    params(ListParams),
    responses(
        (status = 200, description = "A page of runs.", body = RunPage),
        (status = 400, description = "A bad filter or cursor.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list(
    State(st): State<Shared>,
    Query(p): Query<ListParams>,
) -> Result<Json<RunPage>, Problem> {
    let mut q = RunQuery::new().limit(page_size(p.limit, DEFAULT_LIMIT, MAX_LIMIT)?);
    if let Some(s) = &p.state {
        q = q.state(parse_state(s, "query.state")?);
    }
    if let Some(w) = &p.workflow {
        q = q.workflow(w);
    }
    if let Some(c) = &p.cursor {
        q = q.before(run_id(c, "query.cursor").map_err(|e| {
            Problem::new(ProblemKind::BadCursor, "not a cursor this API handed out")
                .culprit("query.cursor")
                .value(e.offending_value().unwrap_or_default())
        })?);
    }
    let page = st
        .engine
        .store()
        .list_runs(&q)
        .await
        .map_err(crate::Error::from)?;
    Ok(Json(RunPage {
        items: page.items.iter().map(RunSummary::of).collect(),
        next_cursor: page.next.map(|id| id.to_string()),
        bad_rows: page
            .bad
            .into_iter()
            .map(|b| BadRowView {
                run: b.run,
                what: b.what,
                detail: b.detail,
            })
            .collect(),
    }))
}

/// A run: its summary, inputs, and its nodes counted by state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunDetail {
    /// The run.
    #[serde(flatten)]
    run: RunSummary,
    /// Its inputs (the workflow's parameters).
    inputs: Value,
    /// How many nodes the workflow has.
    nodes_total: u64,
    /// The nodes by state (nodes not reached yet count as `pending`).
    nodes_by_state: Counts,
}

/// One run.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run.", body = RunDetail),
        (status = 400, description = "Not a run id.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such run.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn detail(
    State(st): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, Problem> {
    let run = run_id(&id, "path.id")?;
    let store = st.engine.store();
    let record = store
        .get_run(run)
        .await
        .map_err(crate::Error::from)?
        .ok_or(crate::Error::RunNotFound(run))?;
    let executions = store.executions(run).await.map_err(crate::Error::from)?;
    let spec = record.spec.spec();
    let nodes = super::nodes::latest(&spec, &executions);
    let mut by_state = Counts::new();
    for n in &nodes {
        *by_state.entry(n.state.to_string()).or_default() += 1;
    }
    Ok(Json(RunDetail {
        run: RunSummary::of(&record),
        inputs: record.inputs.clone(),
        nodes_total: nodes.len() as u64,
        nodes_by_state: by_state,
    }))
}

/// An artifact a job of the run saved.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ArtifactView {
    /// Its key, relative to the artifact store's root.
    key: String,
    /// Its size in bytes.
    size: u64,
    /// When it was last written.
    last_modified: chrono::DateTime<chrono::Utc>,
}

/// The artifacts the jobs of a run saved, by key.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/artifacts",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The artifacts.", body = Vec<ArtifactView>),
        (status = 404, description = "No such run.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "The artifact store cannot be read.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn artifacts(
    State(st): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Vec<ArtifactView>>, Problem> {
    let run = run_id(&id, "path.id")?;
    st.engine
        .store()
        .get_run(run)
        .await
        .map_err(crate::Error::from)?
        .ok_or(crate::Error::RunNotFound(run))?;
    let listed = st
        .engine
        .artifacts()
        .list_run_artifacts(run)
        .await
        .map_err(|e| {
            Problem::new(
                ProblemKind::StoreUnavailable,
                super::problem::scrub(&format!("artifact store: {e}")),
            )
        })?;
    Ok(Json(
        listed
            .into_iter()
            .map(|a| ArtifactView {
                key: a.key,
                size: a.size,
                last_modified: super::views::time(a.last_modified),
            })
            .collect(),
    ))
}
