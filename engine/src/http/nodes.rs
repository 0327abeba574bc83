//! A run's nodes, from the store's per-node summaries
//! ([`node_summaries`](crate::store::RunQueries::node_summaries)): the list (paged in
//! the workflow's order), one node with its attempts, and a fan-out node's items
//! (paged). No handler reads every execution of a run.

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
use crate::store::{
    ExecutionCursor, ExecutionQuery, ExecutionRecord, NodeSummary, RunRecord, SummaryQuery,
};
use crate::workflow::WorkflowSpec;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/runs/{id}/nodes", get(list))
        .route("/api/v1/runs/{id}/nodes/{node}", get(one))
        .route("/api/v1/runs/{id}/nodes/{node}/items", get(items))
}

/// One node's latest records, gathered from a run's executions (all of them: for
/// small runs; the API's handlers use [`summed`] instead).
#[derive(Debug)]
pub(crate) struct Gathered<'a> {
    pub(crate) id: &'a str,
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

/// A node of a workflow with the store's summary of its executions (`None`: not
/// reached yet).
#[derive(Debug)]
pub(crate) struct Summed<'a> {
    pub(crate) id: &'a str,
    pub(crate) job: &'a str,
    pub(crate) fan_out: bool,
    pub(crate) summary: Option<NodeSummary>,
}

impl Summed<'_> {
    /// The node's latest state (Pending when not reached yet).
    pub(crate) fn state(&self) -> NodeState {
        self.summary
            .as_ref()
            .and_then(|s| s.state)
            .unwrap_or(NodeState::Pending)
    }
}

/// Every node of `spec`, in its order, with its summary from `sums`.
pub(crate) fn summed(spec: &WorkflowSpec, sums: Vec<NodeSummary>) -> Vec<Summed<'_>> {
    let mut sums: HashMap<String, NodeSummary> =
        sums.into_iter().map(|s| (s.node.clone(), s)).collect();
    spec.nodes
        .iter()
        .map(|n| Summed {
            id: &n.id,
            job: &n.job,
            fan_out: n.fan_out.is_some(),
            summary: sums.remove(n.id.as_str()),
        })
        .collect()
}

/// The summaries of a run's nodes (`node` alone if given; each node's own latest
/// execution when `latest`).
pub(crate) async fn summaries(
    st: &Shared,
    run: crate::RunId,
    node: Option<&str>,
    latest: bool,
) -> Result<Vec<NodeSummary>, Problem> {
    let mut q = SummaryQuery::new();
    if let Some(n) = node {
        q = q.node(n);
    }
    if latest {
        q = q.with_latest();
    }
    Ok(st
        .engine
        .store()
        .node_summaries(run, &q)
        .await
        .map_err(crate::Error::from)?)
}

/// A run's nodes counted by state (nodes not reached yet count as `pending`), and its
/// fan-out items counted by the state of their latest attempt: from the store's
/// summaries, without the nodes' outputs. For the run detail and the runs list.
#[derive(Debug, Default)]
pub(crate) struct StateCounts {
    /// How many nodes the workflow has.
    pub(crate) nodes_total: u64,
    /// The nodes by state.
    pub(crate) nodes: Counts,
    /// How many fan-out items started, over every fan-out node.
    pub(crate) items_total: u64,
    /// Those items by the state of their latest attempt.
    pub(crate) items: Counts,
}

/// [`StateCounts`] of run `record`.
pub(crate) async fn state_counts(st: &Shared, record: &RunRecord) -> Result<StateCounts, Problem> {
    let spec = record.spec.spec();
    let nodes = summed(&spec, summaries(st, record.id, None, false).await?);
    let mut out = StateCounts {
        nodes_total: nodes.len() as u64,
        ..StateCounts::default()
    };
    for n in &nodes {
        *out.nodes.entry(n.state().to_string()).or_default() += 1;
        if let Some(s) = &n.summary {
            for (state, c) in &s.item_states {
                *out.items.entry(state.to_string()).or_default() += c;
                out.items_total += c;
            }
        }
    }
    Ok(out)
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
    /// A fan-out node's items by the state of their latest attempt (only the items
    /// that started so far).
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<Counts>,
    /// A fan-out node's items that started so far (the sum of `items`).
    #[serde(skip_serializing_if = "Option::is_none")]
    items_total: Option<u64>,
    /// A fan-out node's item executions: every attempt of every item.
    #[serde(skip_serializing_if = "Option::is_none")]
    item_executions: Option<u64>,
    /// The highest attempt any item of a fan-out node reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_item_attempt: Option<u32>,
    /// When its first attempt (or its first item) started.
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
    /// The view of `n`, from its summary (with its own latest execution, for the
    /// error, reason, output and last change).
    fn of(n: &Summed<'_>) -> Self {
        let sum = n.summary.as_ref();
        let latest = sum.and_then(|s| s.latest.as_ref());
        let fan = |f: &dyn Fn(&NodeSummary) -> u64| n.fan_out.then(|| sum.map_or(0, f));
        let items = n.fan_out.then(|| {
            sum.map(|s| {
                s.item_states
                    .iter()
                    .map(|(state, c)| (state.to_string(), *c))
                    .collect()
            })
            .unwrap_or_default()
        });
        let started = sum.and_then(|s| s.started_at);
        let updated = latest.map(|l| l.updated_at);
        NodeView {
            id: n.id.to_owned(),
            job: n.job.to_owned(),
            state: n.state().to_string(),
            attempts: sum.map_or(0, |s| s.attempt),
            fan_out: n.fan_out,
            items,
            items_total: fan(&|s| s.items),
            item_executions: fan(&|s| s.item_executions),
            max_item_attempt: n.fan_out.then(|| sum.map_or(0, |s| s.max_item_attempt)),
            started_at: started.map(time),
            updated_at: updated.map(time),
            duration_ms: match (started, updated) {
                (Some(s), Some(u)) => u
                    .duration_since(s)
                    .ok()
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                _ => None,
            },
            error: latest.and_then(|l| l.error.as_ref()).map(ErrorView::of),
            reason: latest.and_then(|l| l.reason.clone()),
            output: OutputView::of(latest.and_then(|l| l.output.as_ref())),
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

/// The run `id`, or a problem (a bad id, no such run).
pub(crate) async fn load_run(st: &Shared, id: &str) -> Result<RunRecord, Problem> {
    let run = run_id(id, "path.id")?;
    Ok(st
        .engine
        .store()
        .get_run(run)
        .await
        .map_err(crate::Error::from)?
        .ok_or(crate::Error::RunNotFound(run))?)
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
    let record = load_run(&st, &id).await?;
    let spec = record.spec.spec();
    let nodes = summed(&spec, summaries(&st, record.id, None, true).await?);
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
    let record = load_run(&st, &id).await?;
    let spec = record.spec.spec();
    let Some(n) = spec.nodes.iter().find(|n| n.id == node) else {
        return Err(crate::Error::NodeNotFound(node).into());
    };
    let sums = summaries(&st, record.id, Some(&node), true).await?;
    let own = sums.first().map_or(0, |s| s.own_executions);
    // The node's own rows come first in the paging order (item -1): one page of
    // exactly that many rows is its attempts, whatever number of items follows.
    let mut attempt_list = Vec::new();
    if own > 0 {
        let limit = usize::try_from(own).unwrap_or(usize::MAX);
        let page = st
            .engine
            .store()
            .executions_page(
                record.id,
                &ExecutionQuery::new().node(node.clone()).limit(limit),
            )
            .await
            .map_err(crate::Error::from)?;
        attempt_list = page
            .items
            .iter()
            .filter(|e| e.item.is_none() && e.attempt > 0)
            .map(AttemptView::of)
            .collect();
    }
    let summed = Summed {
        id: &n.id,
        job: &n.job,
        fan_out: n.fan_out.is_some(),
        summary: sums.into_iter().next(),
    };
    Ok(Json(NodeDetail {
        node: NodeView::of(&summed),
        attempt_list,
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
