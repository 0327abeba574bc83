//! A run's nodes, from its executions: the list (paged in the workflow's order), one
//! node with its attempts, and a fan-out node's items (paged).

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Shared;
use super::extract::{Query, page_size, run_id};
use super::problem::{Problem, ProblemDoc, ProblemKind};
use super::views::{AttemptView, Counts, ErrorView, OutputView, time};
use crate::NodeState;
use crate::store::{ExecutionCursor, ExecutionQuery, ExecutionRecord, RunRecord};
use crate::workflow::WorkflowSpec;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/runs/{id}/nodes", get(list))
        .route("/api/v1/runs/{id}/nodes/{node}", get(one))
        .route("/api/v1/runs/{id}/nodes/{node}/items", get(items))
}

/// One node's latest records, gathered from a run's executions.
#[derive(Debug)]
pub(crate) struct Gathered<'a> {
    pub(crate) id: &'a str,
    pub(crate) job: &'a str,
    pub(crate) fan_out: bool,
    pub(crate) state: NodeState,
    /// The node's own latest record (not an item's).
    pub(crate) latest: Option<&'a ExecutionRecord>,
    /// The node's own attempts, in order.
    pub(crate) attempts: Vec<&'a ExecutionRecord>,
    /// Each item's latest record, by item index.
    pub(crate) items: BTreeMap<u32, &'a ExecutionRecord>,
    /// Each item's attempt count.
    pub(crate) item_attempts: HashMap<u32, u32>,
    pub(crate) started_at: Option<SystemTime>,
}

fn newer(a: &ExecutionRecord, b: &ExecutionRecord) -> bool {
    (a.updated_at, a.attempt) >= (b.updated_at, b.attempt)
}

/// Every node of `spec`, in its order, with its latest state from `executions` (nodes
/// not reached yet are Pending).
pub(crate) fn latest<'a>(
    spec: &'a WorkflowSpec,
    executions: &'a [ExecutionRecord],
) -> Vec<Gathered<'a>> {
    let mut out: Vec<Gathered<'a>> = spec
        .nodes
        .iter()
        .map(|n| Gathered {
            id: &n.id,
            job: &n.job,
            fan_out: n.fan_out.is_some(),
            state: NodeState::Pending,
            latest: None,
            attempts: Vec::new(),
            items: BTreeMap::new(),
            item_attempts: HashMap::new(),
            started_at: None,
        })
        .collect();
    let index: HashMap<&str, usize> = out.iter().enumerate().map(|(i, g)| (g.id, i)).collect();
    for e in executions {
        let Some(&i) = index.get(e.node.as_str()) else {
            continue;
        };
        let g = &mut out[i];
        if let Some(s) = e.started_at {
            g.started_at = Some(g.started_at.map_or(s, |t| t.min(s)));
        }
        match e.item {
            None => {
                if e.attempt > 0 {
                    g.attempts.push(e);
                }
                if g.latest.is_none_or(|l| newer(e, l)) {
                    g.latest = Some(e);
                    g.state = e.state;
                }
            }
            Some(item) => {
                let n = g.item_attempts.entry(item).or_default();
                *n = (*n).max(e.attempt);
                let slot = g.items.entry(item).or_insert(e);
                if newer(e, slot) {
                    *slot = e;
                }
            }
        }
    }
    out
}

/// A node of a run.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodeView {
    /// The node's id.
    id: String,
    /// The job it runs.
    job: String,
    /// Its latest state.
    state: String,
    /// How many attempts it made (fan-out nodes: 0, their items make attempts).
    attempts: u32,
    /// Whether it fans out.
    fan_out: bool,
    /// A fan-out node's items by state (only the items that started so far).
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<Counts>,
    /// When its first attempt started.
    started_at: Option<DateTime<Utc>>,
    /// When it reached its latest state.
    updated_at: Option<DateTime<Utc>>,
    /// From its first start to its latest state, in milliseconds.
    duration_ms: Option<u64>,
    /// Its error, if it failed.
    error: Option<ErrorView>,
    /// Why it was skipped or cancelled.
    reason: Option<String>,
    /// Its output.
    #[serde(flatten)]
    output: OutputView,
}

impl NodeView {
    fn of(g: &Gathered<'_>) -> Self {
        let items = g.fan_out.then(|| {
            let mut c = Counts::new();
            for r in g.items.values() {
                *c.entry(r.state.to_string()).or_default() += 1;
            }
            c
        });
        let updated = g.latest.map(|l| l.updated_at);
        NodeView {
            id: g.id.to_owned(),
            job: g.job.to_owned(),
            state: g.state.to_string(),
            attempts: g.attempts.iter().map(|a| a.attempt).max().unwrap_or(0),
            fan_out: g.fan_out,
            items,
            started_at: g.started_at.map(time),
            updated_at: updated.map(time),
            duration_ms: match (g.started_at, updated) {
                (Some(s), Some(u)) => u
                    .duration_since(s)
                    .ok()
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                _ => None,
            },
            error: g.latest.and_then(|l| l.error.as_ref()).map(ErrorView::of),
            reason: g.latest.and_then(|l| l.reason.clone()),
            output: OutputView::of(g.latest.and_then(|l| l.output.as_ref())),
        }
    }
}

/// Paging by position.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// Page size, 1 to 10,000 (default 1,000).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A position cursor (`p<index>`), or a `bad-cursor` problem.
pub(crate) fn position(cursor: Option<&str>) -> Result<usize, Problem> {
    let Some(c) = cursor else { return Ok(0) };
    c.strip_prefix('p')
        .filter(|n| n.len() <= 10 && n.chars().all(|ch| ch.is_ascii_digit()))
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| {
            Problem::new(ProblemKind::BadCursor, "not a cursor this API handed out")
                .culprit("query.cursor")
                .value(c)
        })
}

/// A page of a run's nodes, in the workflow's order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodePage {
    /// The nodes.
    items: Vec<NodeView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    /// How many nodes the run has.
    total: u64,
}

async fn load(st: &Shared, id: &str) -> Result<(RunRecord, Vec<ExecutionRecord>), Problem> {
    let run = run_id(id, "path.id")?;
    let store = st.engine.store();
    let record = store
        .get_run(run)
        .await
        .map_err(crate::Error::from)?
        .ok_or(crate::Error::RunNotFound(run))?;
    let executions = store.executions(run).await.map_err(crate::Error::from)?;
    Ok((record, executions))
}

/// A run's nodes, in the workflow's order.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/nodes",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id."), PageParams),
    responses(
        (status = 200, description = "A page of nodes.", body = NodePage),
        (status = 400, description = "Bad run id, limit or cursor.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such run.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Query(p): Query<PageParams>,
) -> Result<Json<NodePage>, Problem> {
    let limit = page_size(p.limit, 1000, 10_000)?;
    let from = position(p.cursor.as_deref())?;
    let (record, executions) = load(&st, &id).await?;
    let spec = record.spec.spec();
    let nodes = latest(&spec, &executions);
    let end = from.saturating_add(limit).min(nodes.len());
    let items = nodes
        .get(from..end)
        .unwrap_or_default()
        .iter()
        .map(NodeView::of)
        .collect();
    Ok(Json(NodePage {
        items,
        next_cursor: (end < nodes.len()).then(|| format!("p{end}")),
        total: nodes.len() as u64,
    }))
}

/// A node with every attempt it made.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodeDetail {
    /// The node.
    #[serde(flatten)]
    node: NodeView,
    /// Its attempts, in order (a fan-out node's items have their own).
    attempt_list: Vec<AttemptView>,
}

fn find<'a>(nodes: &'a [Gathered<'a>], node: &str) -> Result<&'a Gathered<'a>, Problem> {
    nodes
        .iter()
        .find(|g| g.id == node)
        .ok_or_else(|| Problem::from(crate::Error::NodeNotFound(node.to_owned())))
}

/// One node of a run, with its attempts.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/nodes/{node}",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id."), ("node" = String, Path, description = "The node's id.")),
    responses(
        (status = 200, description = "The node.", body = NodeDetail),
        (status = 404, description = "No such run or node.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn one(
    State(st): State<Shared>,
    Path((id, node)): Path<(String, String)>,
) -> Result<Json<NodeDetail>, Problem> {
    let (record, executions) = load(&st, &id).await?;
    let spec = record.spec.spec();
    let nodes = latest(&spec, &executions);
    let g = find(&nodes, &node)?;
    Ok(Json(NodeDetail {
        node: NodeView::of(g),
        attempt_list: g.attempts.iter().map(|a| AttemptView::of(a)).collect(),
    }))
}

/// How many items `rows` (ordered by item) hold.
fn distinct_items(rows: &[ExecutionRecord]) -> usize {
    rows.chunk_by(|a, b| a.item == b.item).count()
}

/// A fan-out item: its latest attempt.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ItemView {
    /// How many attempts the item made.
    attempts: u32,
    /// Its latest attempt.
    #[serde(flatten)]
    latest: AttemptView,
}

/// A page of a fan-out node's items, by index.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ItemPage {
    /// The items that started, by index.
    items: Vec<ItemView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// A fan-out node's items, read a page at a time from the store.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/nodes/{node}/items",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id."), ("node" = String, Path, description = "The node's id."), PageParams),
    responses(
        (status = 200, description = "A page of items.", body = ItemPage),
        (status = 400, description = "Bad run id, limit or cursor.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such run or node.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn items(
    State(st): State<Shared>,
    Path((id, node)): Path<(String, String)>,
    Query(p): Query<PageParams>,
) -> Result<Json<ItemPage>, Problem> {
    let limit = page_size(p.limit, 1000, 10_000)?;
    let run = run_id(&id, "path.id")?;
    let mut q = ExecutionQuery::new().items_of(node.clone()).limit(limit);
    if let Some(c) = &p.cursor {
        let cursor = c
            .parse::<ExecutionCursor>()
            .ok()
            .filter(|c| c.node == node && c.item.is_some())
            .ok_or_else(|| {
                Problem::new(ProblemKind::BadCursor, "not a cursor this API handed out")
                    .culprit("query.cursor")
                    .value(c)
            })?;
        q = q.after(cursor);
    }
    let store = st.engine.store();
    let record = store
        .get_run(run)
        .await
        .map_err(crate::Error::from)?
        .ok_or(crate::Error::RunNotFound(run))?;
    if !record.spec.spec().nodes.iter().any(|n| n.id == node) {
        return Err(crate::Error::NodeNotFound(node).into());
    }
    // Rows come by item, then attempt: one group per item. Pages of rows are read
    // until one more item than asked for has begun (its rows may go on), or the end.
    let mut rows: Vec<ExecutionRecord> = Vec::new();
    let mut more = true;
    while more && distinct_items(&rows) <= limit {
        let page = store
            .executions_page(run, &q)
            .await
            .map_err(crate::Error::from)?;
        more = page.next.is_some();
        if let Some(next) = page.next {
            q = q.after(next);
        }
        rows.extend(page.items);
    }
    let mut groups: Vec<&[ExecutionRecord]> = rows.chunk_by(|a, b| a.item == b.item).collect();
    let truncated = groups.len() > limit;
    groups.truncate(limit);
    let next_cursor = match (truncated || more, groups.last().and_then(|g| g.last())) {
        (true, Some(last)) => Some(ExecutionCursor::after(last).to_string()),
        _ => None,
    };
    let items = groups
        .iter()
        .filter_map(|g| {
            let latest = g
                .iter()
                .max_by(|a, b| (a.updated_at, a.attempt).cmp(&(b.updated_at, b.attempt)))?;
            Some(ItemView {
                attempts: g.iter().map(|r| r.attempt).max().unwrap_or(0),
                latest: AttemptView::of(latest),
            })
        })
        .collect();
    Ok(Json(ItemPage { items, next_cursor }))
}
