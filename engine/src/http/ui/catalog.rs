//! Workflows and jobs: the catalogue with specs, each workflow's graph, and a form
//! that starts a run (its fields built from the workflow's parameters; the API's
//! problem details shown next to the field they name).

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::super::Shared;
use super::super::auth::Caller;
use super::super::catalog::{VersionParams, find, jobs, one as detail};
use super::super::extract::Query;
use super::graph;
use super::page::{self, Ctx, Nav, enc, json_block, s};

/// `GET /workflows`: every registered workflow and job.
pub(super) async fn list(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let ctx = Ctx::of(&caller);
    let workflows = serde_json::to_value(super::super::catalog::list(State(st.clone())).await.0)
        .unwrap_or(Value::Null);
    let jobs = serde_json::to_value(jobs(State(st)).await.0).unwrap_or(Value::Null);
    let empty = Vec::new();
    let body = html! {
        h1 { "Workflows" }
        table.grid #workflows {
            thead { tr { th { "Workflow" } th { "Version" } th { "Parameters" } th { "Nodes" } th { "Edges" } th { "Schedule" } } }
            tbody {
                @for w in workflows.as_array().unwrap_or(&empty) {
                    tr {
                        td { a href={ "/workflows/" (enc(s(w, "name"))) "?version=" (enc(s(w, "version"))) } { (s(w, "name")) } }
                        td { (s(w, "version")) }
                        td { @for p in w["params"].as_array().unwrap_or(&empty) { code { (s(p, "name")) } " " } }
                        td { (w["nodes"]) }
                        td { (w["edges"]) }
                        td { @if let Some(c) = w.get("cron").filter(|c| !c.is_null()) { code { (s(c, "cron")) } " " (s(c, "time_zone")) } }
                    }
                }
            }
        }
        h2 { "Jobs" }
        table.grid #jobs {
            thead { tr { th { "Job" } th { "Retries" } th { "Timeout" } th { "Lane" } th { "Used by" } th { "Spec" } } }
            tbody {
                @for j in jobs.as_array().unwrap_or(&empty) {
                    tr {
                        td { code { (s(j, "name")) } }
                        td { (j["spec"].get("retries").unwrap_or(&Value::Null)) }
                        td { (compact(j["spec"].get("timeout"))) }
                        td { (compact(j["spec"].get("queue"))) }
                        td { @for w in j["workflows"].as_array().unwrap_or(&empty) { (w.as_str().unwrap_or_default()) br; } }
                        td { (json_block("spec", &j["spec"], 8 * 1024)) }
                    }
                }
            }
        }
    };
    page::shell(&ctx, "Workflows", Nav::Workflows, &body)
}

fn compact(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "—".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `GET /workflows/{name}`: a workflow's graph, spec and start form.
pub(super) async fn one(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    uri: Uri,
) -> Response {
    let ctx = Ctx::of(&caller);
    let p: VersionParams = match axum::extract::Query::try_from_uri(&uri) {
        Ok(q) => q.0,
        Err(_) => VersionParams::default(),
    };
    let wf = match detail(State(st.clone()), Path(name.clone()), Query(p)).await {
        Ok(d) => serde_json::to_value(d.0).unwrap_or(Value::Null),
        Err(e) => return page::problem_page(&ctx, Nav::Workflows, &e),
    };
    let version = s(&wf, "version").to_owned();
    let drawing = match find(&st, &name, Some(&version)) {
        Ok(w) => {
            let layout = graph::layout(&w.spec());
            graph::svg(&layout, None, &HashMap::new())
        }
        Err(e) => page::problem_box(&e),
    };
    let empty = Vec::new();
    let body = html! {
        h1 { (name) " " span.dim { "v" (version) } }
        @let versions = wf["versions"].as_array().unwrap_or(&empty);
        @if versions.len() > 1 {
            p { "Versions: " @for v in versions {
                @let v = v.as_str().unwrap_or_default();
                a href={ "/workflows/" (enc(&name)) "?version=" (enc(v)) } { (v) } " "
            } }
        }
        @if ctx.operator { (start_form(&name, &version, wf["params"].as_array().unwrap_or(&empty))) }
        div #canvas.static { (drawing) }
        (json_block("Spec", &wf["spec"], 256 * 1024))
    };
    page::shell(&ctx, &name, Nav::Workflows, &body)
}

/// The form that starts a run: one field per parameter, typed from its default
/// (text, number, a checkbox, JSON for lists and objects); required ones marked.
fn start_form(name: &str, version: &str, params: &[Value]) -> Markup {
    html! {
        form.start #start-form data-workflow=(name) data-version=(version) {
            h2 { "Start a run" }
            @for p in params {
                @let pname = s(p, "name");
                @let default = p.get("default").unwrap_or(&Value::Null);
                @let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
                @let kind = match default { Value::Bool(_) => "bool", Value::Number(_) => "number", Value::String(_) => "text", Value::Null if required => "auto", _ => "json" };
                div.field data-param=(pname) data-kind=(kind) {
                    label for={ "param-" (pname) } { (pname) @if required { " *" } }
                    @match kind {
                        "bool" => input id={ "param-" (pname) } type="checkbox" name=(pname) checked[default.as_bool() == Some(true)];,
                        "number" => input id={ "param-" (pname) } type="number" step="any" name=(pname) value=(default);,
                        "text" => input id={ "param-" (pname) } type="text" name=(pname) value=(default.as_str().unwrap_or_default());,
                        "auto" => input id={ "param-" (pname) } type="text" name=(pname) required placeholder="text, or JSON";,
                        _ => textarea id={ "param-" (pname) } name=(pname) rows="3" { (default) },
                    }
                    span.field-error {}
                }
            }
            details.more {
                summary { "Options" }
                div.field data-option="priority" { label for="opt-priority" { "Priority" } input #opt-priority type="number" name="priority"; span.field-error {} }
                div.field data-option="key" { label for="opt-key" { "Idempotency key" } input #opt-key type="text" name="key"; span.field-error {} }
                div.field data-option="lane" { label for="opt-lane" { "Lane" } input #opt-lane type="text" name="lane"; span.field-error {} }
                div.field data-option="delay_ms" { label for="opt-delay" { "Delay (ms)" } input #opt-delay type="number" min="0" name="delay_ms"; span.field-error {} }
            }
            p.form-error #start-error {}
            button #start type="submit" { "Start run" }
        }
    }
}
