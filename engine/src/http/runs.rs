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
use crate::store::{RunCursor, RunQuery};

/// The default page size of lists.
pub(crate) const DEFAULT_LIMIT: usize = 50;
/// The largest page size of lists.
pub(crate) const MAX_LIMIT: usize = 500;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/runs", get(list))
        .route("/api/v1/runs/counts", get(counts))
        .route("/api/v1/runs/{id}", get(detail))
        .route("/api/v1/runs/{id}/artifacts", get(artifacts))
}

/// The runs list's filters.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Filters {
    /// Only runs in these states, comma-separated: `pending`, `running`, `succeeded`,
    /// `failed`, `cancelled`.
    state: Option<String>,
    /// Only runs of this workflow.
    workflow: Option<String>,
    /// Only runs pinned to this workflow version.
    version: Option<String>,
    /// Only runs created at or after this instant (RFC 3339).
    created_from: Option<String>,
    /// Only runs created before this instant (RFC 3339).
    created_to: Option<String>,
    /// Only the run enqueued with this idempotency key.
    key: Option<String>,
    /// Only runs of this lane.
    lane: Option<String>,
    /// Only runs whose id contains this text (hex digits and dashes).
    q: Option<String>,
}

/// The runs list's filters and paging.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only runs in these states, comma-separated: `pending`, `running`, `succeeded`,
    /// `failed`, `cancelled`.
    state: Option<String>,
    /// Only runs of this workflow.
    workflow: Option<String>,
    /// Only runs pinned to this workflow version.
    version: Option<String>,
    /// Only runs created at or after this instant (RFC 3339).
    created_from: Option<String>,
    /// Only runs created before this instant (RFC 3339).
    created_to: Option<String>,
    /// Only the run enqueued with this idempotency key.
    key: Option<String>,
    /// Only runs of this lane.
    lane: Option<String>,
    /// Only runs whose id contains this text (hex digits and dashes).
    q: Option<String>,
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

fn instant(text: &str, culprit: &str) -> Result<std::time::SystemTime, Problem> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(std::time::SystemTime::from)
        .map_err(|_| {
            Problem::new(
                ProblemKind::BadQuery,
                "an instant is RFC 3339, e.g. 2026-12-01T02:00:00Z",
            )
            .culprit(culprit)
            .value(text)
        })
}

impl Filters {
    /// The store query of these filters, or a problem naming the bad one.
    pub(crate) fn query(&self) -> Result<RunQuery, Problem> {
        let mut q = RunQuery::new();
        if let Some(states) = &self.state {
            let parsed = states
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| parse_state(s, "query.state"))
                .collect::<Result<Vec<_>, _>>()?;
            q = q.states(parsed);
        }
        if let Some(w) = &self.workflow {
            q = q.workflow(w);
        }
        if let Some(v) = &self.version {
            q = q.version(v);
        }
        if let Some(t) = &self.created_from {
            q = q.created_from(instant(t, "query.created_from")?);
        }
        if let Some(t) = &self.created_to {
            q = q.created_to(instant(t, "query.created_to")?);
        }
        if let Some(k) = &self.key {
            q = q.idempotency_key(k);
        }
        if let Some(l) = &self.lane {
            q = q.queue(l);
        }
        if let Some(text) = &self.q {
            q = q.id_contains(text.trim());
        }
        q.check().map_err(|e| {
            let p = Problem::from(crate::Error::from(e));
            let culprit = if self.q.is_some() && p.detail().contains("run id") {
                "query.q"
            } else {
                "query"
            };
            p.culprit(culprit)
        })?;
        Ok(q)
    }
}

/// A runs-list cursor: `<microseconds>_<run id>` (this API's), or a bare run id (a
/// store that pages by id only).
pub(crate) fn parse_cursor(q: RunQuery, text: &str) -> Result<RunQuery, Problem> {
    let bad = || {
        Problem::new(ProblemKind::BadCursor, "not a cursor this API handed out")
            .culprit("query.cursor")
            .value(text)
    };
    if text.len() > 80 {
        return Err(bad());
    }
    if text.contains('_') {
        return text
            .parse::<RunCursor>()
            .map(|c| q.cursor(c))
            .map_err(|_| bad());
    }
    text.parse::<crate::RunId>()
        .map(|id| q.before(id))
        .map_err(|_| bad())
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
    let filters = Filters {
        state: p.state,
        workflow: p.workflow,
        version: p.version,
        created_from: p.created_from,
        created_to: p.created_to,
        key: p.key,
        lane: p.lane,
        q: p.q,
    };
    let mut q = filters
        .query()?
        .limit(page_size(p.limit, DEFAULT_LIMIT, MAX_LIMIT)?);
    if let Some(c) = &p.cursor {
        q = parse_cursor(q, c)?;
    }
    let page = st
        .engine
        .store()
        .list_runs(&q)
        .await
        .map_err(crate::Error::from)?;
    let next_cursor = match (page.cursor, page.next) {
        (Some(c), _) => Some(c.to_string()),
        (None, Some(id)) => Some(id.to_string()),
        (None, None) => None,
    };
    Ok(Json(RunPage {
        items: page.items.iter().map(RunSummary::of).collect(),
        next_cursor,
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

/// How many runs pass the filters, by state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunCountsView {
    /// All of them.
    total: u64,
    /// By state (states without runs left out).
    by_state: Counts,
}

/// How many runs pass the filters, by state (counted with the store's indexes).
#[utoipa::path(
    get,
    path = "/api/v1/runs/counts",
    tag = "runs",
    params(Filters),
    responses(
        (status = 200, description = "The counts.", body = RunCountsView),
        (status = 400, description = "A bad filter.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn counts(
    State(st): State<Shared>,
    Query(f): Query<Filters>,
) -> Result<Json<RunCountsView>, Problem> {
    let counts = st
        .engine
        .store()
        .count_runs(&f.query()?)
        .await
        .map_err(crate::Error::from)?;
    Ok(Json(RunCountsView {
        total: counts.total(),
        by_state: counts
            .states
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
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
    /// How many fan-out items started, over every fan-out node of the run.
    items_total: u64,
    /// Those items by the state of their latest attempt (states without items left
    /// out).
    items_by_state: Counts,
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
    let record = super::nodes::load_run(&st, &id).await?;
    let counts = super::nodes::state_counts(&st, &record).await?;
    Ok(Json(RunDetail {
        run: RunSummary::of(&record),
        inputs: record.inputs.clone(),
        nodes_total: counts.nodes_total,
        nodes_by_state: counts.nodes,
        items_total: counts.items_total,
        items_by_state: counts.items,
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any text is a cursor, or a `bad-cursor` problem naming `query.cursor` with
        /// the text cut to 200 characters; never a panic.
        #[test]
        fn cursor_parsing_is_total(text in ".{0,120}") {
            match parse_cursor(RunQuery::new(), &text) {
                Ok(_) => {}
                Err(p) => {
                    prop_assert_eq!(p.kind(), ProblemKind::BadCursor);
                    prop_assert!(p.offending_value().is_some_and(|v| v.chars().count() <= 201));
                }
            }
        }

        /// A cursor this API hands out parses back to the same position.
        #[test]
        fn handed_out_cursors_round_trip(us in 0i64..4_000_000_000_000_000) {
            let c = RunCursor { created_us: us, id: crate::RunId::new() };
            let q = parse_cursor(RunQuery::new(), &c.to_string()).expect("parses");
            prop_assert_eq!(q.cursor, Some(c));
        }

        /// Any state list is a set of states or a `bad-query` problem naming `query.state`.
        #[test]
        fn state_filters_parse_or_name_the_culprit(text in "[a-zA-Z, ]{0,40}") {
            let f = Filters { state: Some(text.clone()), ..Filters::default() };
            match f.query() {
                Ok(q) => {
                    let named = text.split(',').filter(|s| !s.trim().is_empty()).count();
                    prop_assert!(q.wanted_states().len() <= named);
                }
                Err(p) => {
                    prop_assert_eq!(p.kind(), ProblemKind::BadQuery);
                    prop_assert!(p.detail().contains("run state"));
                }
            }
        }
    }

    #[test]
    fn filters_become_the_store_query() {
        let f = Filters {
            state: Some("FAILED, running".into()),
            workflow: Some("w".into()),
            created_from: Some("2026-12-01T00:00:00Z".into()),
            q: Some("ab12".into()),
            ..Filters::default()
        };
        let q = f.query().expect("valid");
        assert_eq!(q.wanted_states(), [RunState::Failed, RunState::Running]);
        assert_eq!(q.workflow.as_deref(), Some("w"));
        assert!(q.created_from.is_some());
        let bad = Filters {
            q: Some("zz".into()),
            ..Filters::default()
        };
        assert_eq!(bad.query().unwrap_err().kind(), ProblemKind::BadQuery);
    }
}
