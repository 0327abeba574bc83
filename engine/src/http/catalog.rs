//! The registered catalogue: workflows (every version, with their specs and graphs)
//! and the jobs they run.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::Shared;
use super::extract::{Query, run_id};
use super::problem::{Problem, ProblemDoc};
use crate::workflow::render::Graph;
use crate::{NodeState, Workflow};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/workflows", get(list))
        .route("/api/v1/workflows/{name}", get(one))
        .route("/api/v1/workflows/{name}/graph", get(graph))
        .route("/api/v1/workflows/{name}/graph.svg", get(graph_svg))
        .route("/api/v1/jobs", get(jobs))
        .route("/api/v1/runs/{id}/graph", get(run_graph))
        .route("/api/v1/runs/{id}/graph.svg", get(run_graph_svg))
}

/// A run parameter.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ParamView {
    /// Its name.
    name: String,
    /// Whether a run must give it.
    required: bool,
    /// Its default value, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    default: Option<Value>,
}

/// A workflow's recurring schedule as declared in code.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CronView {
    /// The cron expression.
    cron: String,
    /// Its IANA time zone.
    time_zone: String,
}

/// A registered workflow version.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowSummary {
    /// Its name.
    name: String,
    /// This version.
    version: String,
    /// Its run parameters.
    params: Vec<ParamView>,
    /// How many nodes.
    nodes: u64,
    /// How many edges.
    edges: u64,
    /// The schedule it declares.
    #[serde(skip_serializing_if = "Option::is_none")]
    cron: Option<CronView>,
}

impl WorkflowSummary {
    fn of(w: &Workflow) -> Self {
        let spec = w.spec();
        WorkflowSummary {
            name: w.name().to_owned(),
            version: w.version().to_owned(),
            params: spec
                .params
                .iter()
                .map(|p| ParamView {
                    name: p.name.clone(),
                    required: p.default.is_none(),
                    default: p.default.clone(),
                })
                .collect(),
            nodes: w.len() as u64,
            edges: w.edge_count() as u64,
            cron: w.cron().map(|(c, tz)| CronView {
                cron: c.to_owned(),
                time_zone: tz.to_owned(),
            }),
        }
    }
}

/// The registered workflows, every version, by name then version.
#[utoipa::path(
    get,
    path = "/api/v1/workflows",
    tag = "catalogue",
    responses((status = 200, description = "The workflows.", body = Vec<WorkflowSummary>))
)]
pub(crate) async fn list(State(st): State<Shared>) -> Json<Vec<WorkflowSummary>> {
    Json(
        st.engine
            .workflows()
            .iter()
            .map(WorkflowSummary::of)
            .collect(),
    )
}

/// Which version of a workflow.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct VersionParams {
    /// The version (default: the latest registered).
    version: Option<String>,
}

/// A workflow version with its spec.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowDetail {
    /// The workflow.
    #[serde(flatten)]
    summary: WorkflowSummary,
    /// Every registered version of it.
    versions: Vec<String>,
    /// Its spec: parameters and nodes with their bindings, fan-outs, conditions,
    /// trigger rules, retries, backoff, timeouts.
    spec: Value,
}

/// The registered workflow `name` at `version` (latest when `None`), or a
/// `workflow-not-found` problem.
pub(crate) fn find(st: &Shared, name: &str, version: Option<&str>) -> Result<Workflow, Problem> {
    st.engine.registered_workflow(name, version).ok_or_else(|| {
        Problem::from(crate::Error::UnknownWorkflow {
            name: name.to_owned(),
            version: version.map(str::to_owned),
            known: Vec::new(),
        })
    })
}

/// One workflow (a version of it) with its spec.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}",
    tag = "catalogue",
    params(("name" = String, Path, description = "The workflow's name."), VersionParams),
    responses(
        (status = 200, description = "The workflow.", body = WorkflowDetail),
        (status = 404, description = "No such workflow (or version).", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn one(
    State(st): State<Shared>,
    Path(name): Path<String>,
    Query(p): Query<VersionParams>,
) -> Result<Json<WorkflowDetail>, Problem> {
    let wf = find(&st, &name, p.version.as_deref())?;
    let versions = st
        .engine
        .workflows()
        .iter()
        .filter(|w| w.name() == name)
        .map(|w| w.version().to_owned())
        .collect();
    Ok(Json(WorkflowDetail {
        summary: WorkflowSummary::of(&wf),
        versions,
        spec: serde_json::to_value(wf.spec()).unwrap_or(Value::Null),
    }))
}

/// Which graph: a version, or the one a run is pinned to (coloured by its states).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct GraphParams {
    /// The version (default: the latest registered; ignored with `run`).
    version: Option<String>,
    /// A run of the workflow: its pinned version, nodes coloured by their states (SVG).
    run: Option<String>,
}

/// A spec and, for a run, its node states by node id.
type Drawing = (
    crate::workflow::WorkflowSpec,
    Option<HashMap<String, NodeState>>,
);

/// The spec to draw and, for a run, its node states.
async fn spec_and_states(st: &Shared, name: &str, p: &GraphParams) -> Result<Drawing, Problem> {
    match &p.run {
        Some(run) => of_run(st, run, Some(name), "query.run").await,
        None => Ok((find(st, name, p.version.as_deref())?.spec(), None)),
    }
}

/// The spec run `run` is pinned to, and its node states (`workflow`: the run must be
/// of it).
async fn of_run(
    st: &Shared,
    run: &str,
    workflow: Option<&str>,
    culprit: &str,
) -> Result<Drawing, Problem> {
    let run = run_id(run, culprit)?;
    let store = st.engine.store();
    let record = store
        .get_run(run)
        .await
        .map_err(crate::Error::from)?
        .filter(|r| workflow.is_none_or(|w| r.workflow == w))
        .ok_or_else(|| Problem::from(crate::Error::RunNotFound(run)).culprit(culprit))?;
    let spec = (*record.spec.spec()).clone();
    let sums = super::nodes::summaries(st, run, None, false).await?;
    let states = super::nodes::summed(&spec, sums)
        .iter()
        .map(|n| (n.id.to_owned(), n.state()))
        .collect();
    Ok((spec, Some(states)))
}

/// The graph document of `drawing`: the layered graph, and `states` for a run.
fn graph_doc((spec, states): Drawing) -> Value {
    let mut doc = serde_json::to_value(Graph::from_spec(&spec)).unwrap_or(Value::Null);
    if let (Some(states), Value::Object(map)) = (states, &mut doc) {
        let states: serde_json::Map<String, Value> = states
            .into_iter()
            .map(|(k, v)| (k, Value::String(v.to_string())))
            .collect();
        map.insert("states".to_owned(), Value::Object(states));
    }
    doc
}

/// The SVG document of `drawing`, nodes coloured by the run's states.
fn graph_svg_of((spec, states): Drawing) -> Response {
    let borrowed: Option<HashMap<&str, NodeState>> = states
        .as_ref()
        .map(|s| s.iter().map(|(k, v)| (k.as_str(), *v)).collect());
    svg_response(Graph::from_spec(&spec).to_svg(borrowed.as_ref()))
}

/// The graph of the workflow version a run is pinned to, with its node states.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/graph",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The graph (as `/api/v1/workflows/{name}/graph`) with `states`: each node's state by id.", body = Object),
        (status = 404, description = "No such run.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn run_graph(
    State(st): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(graph_doc(of_run(&st, &id, None, "path.id").await?)))
}

/// The graph of the workflow version a run is pinned to as SVG, nodes coloured by
/// their states.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/graph.svg",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The SVG document.", content_type = "image/svg+xml", body = String),
        (status = 404, description = "No such run.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn run_graph_svg(
    State(st): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    Ok(graph_svg_of(of_run(&st, &id, None, "path.id").await?))
}

/// A workflow's graph as JSON: nodes with their layers and typed edges.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}/graph",
    tag = "catalogue",
    params(("name" = String, Path, description = "The workflow's name."), GraphParams),
    responses(
        (status = 200, description = "The graph: `nodes` (id, job, layer, order, fan_out, notes) and `edges` (from, to, kind, label).", body = Object),
        (status = 404, description = "No such workflow, version or run.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn graph(
    State(st): State<Shared>,
    Path(name): Path<String>,
    Query(p): Query<GraphParams>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(graph_doc(spec_and_states(&st, &name, &p).await?)))
}

/// A workflow's graph as a standalone SVG document (nodes coloured by a run's states
/// with `run`). Every label is escaped.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}/graph.svg",
    tag = "catalogue",
    params(("name" = String, Path, description = "The workflow's name."), GraphParams),
    responses(
        (status = 200, description = "The SVG document.", content_type = "image/svg+xml", body = String),
        (status = 404, description = "No such workflow, version or run.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn graph_svg(
    State(st): State<Shared>,
    Path(name): Path<String>,
    Query(p): Query<GraphParams>,
) -> Result<Response, Problem> {
    Ok(graph_svg_of(spec_and_states(&st, &name, &p).await?))
}

/// An SVG document as a response that cannot run scripts even if opened directly.
pub(crate) fn svg_response(svg: String) -> Response {
    let mut r = svg.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    r
}

/// A job and its spec.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobView {
    /// Its registered name.
    name: String,
    /// Its spec: retries, backoff, timeout, priority, queue (lane), resources.
    spec: Value,
    /// The registered workflows (name and version) that run it.
    workflows: Vec<String>,
}

/// The jobs the registered workflows run, by name.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "catalogue",
    responses((status = 200, description = "The jobs.", body = Vec<JobView>))
)]
pub(crate) async fn jobs(State(st): State<Shared>) -> Json<Vec<JobView>> {
    let workflows = st.engine.workflows();
    let specs: Vec<_> = workflows.iter().map(|w| (w, w.spec())).collect();
    Json(
        st.engine
            .jobs()
            .iter()
            .map(|j| JobView {
                name: j.name().to_owned(),
                spec: serde_json::to_value(j.spec()).unwrap_or(Value::Null),
                workflows: specs
                    .iter()
                    .filter(|(_, s)| s.nodes.iter().any(|n| n.job == j.name()))
                    .map(|(w, _)| format!("{} v{}", w.name(), w.version()))
                    .collect(),
            })
            .collect(),
    )
}
