//! The run page: header (inputs, state, timings, pinned version), actions, and the
//! DAG drawn from the cached layout of the run's workflow version, coloured by state;
//! the page's script patches it from `/api/v1/runs/{id}/events` and opens the node
//! panel.

use std::collections::{BTreeMap, HashMap};

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use maud::html;
use serde_json::Value;

use super::super::Shared;
use super::super::auth::Caller;
use super::super::extract::run_id;
use super::super::problem::Problem;
use super::super::views::RunSummary;
use super::assets;
use super::graph;
use super::page::{self, Ctx, Nav, badge, duration, enc, json_block, s, script_json, when};

/// `GET /runs/{id}`: one run.
pub(super) async fn page(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(&caller);
    match render(&st, &ctx, &id).await {
        Ok(r) => r,
        Err(p) => page::problem_page(&ctx, Nav::Runs, &p),
    }
}

async fn render(st: &Shared, ctx: &Ctx, id: &str) -> Result<Response, Problem> {
    let run = run_id(id, "path.id")?;
    let store = st.engine.store();
    // The last event before the run and its executions are read: the page's stream
    // starts after it, so no change is missed (one seen twice is harmless: patches
    // set states).
    let last_seq = last_seq(st, run).await?;
    let record = store
        .get_run(run)
        .await
        .map_err(crate::Error::from)?
        .ok_or(crate::Error::RunNotFound(run))?;
    let executions = store.executions(run).await.map_err(crate::Error::from)?;
    let spec = record.spec.spec();
    let layout = graph::layout(&spec);
    let gathered = super::super::nodes::latest(&spec, &executions);
    let states: Vec<&str> = gathered.iter().map(|g| g.state.as_str()).collect();
    let mut items: HashMap<usize, HashMap<&str, usize>> = HashMap::new();
    for (i, g) in gathered.iter().enumerate() {
        if g.fan_out {
            let c = items.entry(i).or_default();
            for r in g.items.values() {
                *c.entry(r.state.as_str()).or_default() += 1;
            }
        }
    }
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &states {
        *by_state.entry(s).or_default() += 1;
    }
    let summary = serde_json::to_value(RunSummary::of(&record)).unwrap_or(Value::Null);
    let svg = graph::svg(&layout, Some(&states), &items);
    let index = graph::Index {
        ids: spec.nodes.iter().map(|n| n.id.as_str()).collect(),
        boxes: &layout.node_box,
        states: states.clone(),
        groups: layout.boxes.iter().map(graph::DrawnBox::is_group).collect(),
        items,
    };
    let state = record.state.to_string();
    let finished = record.state.is_terminal();
    let wf = &record.workflow;
    let body = html! {
        div.runhead #run data-run=(record.id) data-state=(state) data-seq=(last_seq) {
            h1 {
                a href={ "/workflows/" (enc(wf)) } { (wf) } " "
                span.dim { "v" (record.version) } " "
                span #run-state { (badge(&state)) }
            }
            dl.facts {
                dt { "Run" } dd { code { (record.id) } }
                dt { "Created" } dd { (when(&summary["created_at"])) }
                dt { "Started" } dd #run-started { (when(&summary["started_at"])) }
                dt { "Finished" } dd #run-finished { (when(&summary["finished_at"])) }
                dt { "Duration" } dd #run-duration { (duration(summary["duration_ms"].as_u64())) }
                @if let Some(k) = &record.idempotency_key { dt { "Key" } dd { (k) } }
                @if let Some(l) = &record.queue { dt { "Lane" } dd { (l) } }
                dt { "Priority" } dd { (record.priority) }
            }
            (json_block("Inputs", &record.inputs, 16 * 1024))
            @if ctx.operator {
                div.actions {
                    button.danger #act-cancel type="button" data-action="cancel" hidden[finished] { "Cancel run" }
                    button #act-retry type="button" data-action="fresh" hidden[!finished] { "Retry fresh" }
                    button #act-retry-failed type="button" data-action="from_failed" hidden[!finished] { "Retry from failed" }
                }
            }
        }
        p.tally #tally {
            (spec.nodes.len()) " nodes"
            @for (st, n) in &by_state { " · " (badge(st)) " " span data-count=(st) { (n) } }
        }
        div.toolbar {
            input #search type="search" placeholder="Find a node by id" list="node-ids" size="24";
            button #zoom-in type="button" title="Zoom in" { "+" }
            button #zoom-out type="button" title="Zoom out" { "−" }
            button #zoom-fit type="button" title="Fit" { "fit" }
            label { input #live type="checkbox" checked; " live" }
            span.dim #live-note {}
        }
        div.split {
            div #canvas { (svg) }
            aside #panel hidden {}
        }
        (super::timeline::timeline(super::timeline::bars_of(&executions), std::time::SystemTime::now()))
        script #index type="application/json" { (script_json(&index)) }
        script src=(assets::url("run.js")) defer {}
        script src=(assets::url("timeline.js")) defer {}
        script src=(assets::url("panel.js")) defer {}
    };
    let title = format!("{wf} run …{}", page::short_id(s(&summary, "id")));
    Ok(page::shell(ctx, &title, Nav::Runs, &body))
}

/// The sequence number of the run's last event, found with a few one-event reads
/// (doubling, then bisecting), not by reading the whole log.
async fn last_seq(st: &Shared, run: crate::RunId) -> Result<u64, Problem> {
    let store = st.engine.store();
    let has_after = |k: u64| async move {
        store
            .events(run, k, 1)
            .await
            .map(|e| !e.is_empty())
            .map_err(|e| Problem::from(crate::Error::from(e)))
    };
    if !has_after(0).await? {
        return Ok(0);
    }
    // Invariant: an event after `lo` exists, none after `hi`.
    let (mut lo, mut hi) = (0u64, 1u64);
    while has_after(hi).await? {
        lo = hi;
        hi = hi.saturating_mul(2);
        if hi == u64::MAX {
            break;
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if has_after(mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}
