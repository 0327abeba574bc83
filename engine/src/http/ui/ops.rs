//! The operations pages: recurring schedules (next fires, last fire and outcome,
//! policies; enable, disable, trigger now, remove) and the engine processes serving
//! the store (heartbeat age, runs owned).

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use maud::html;
use serde_json::Value;

use super::super::Shared;
use super::super::auth::Caller;
use super::page::{self, Ctx, Nav, badge, duration, s, when};

/// `GET /schedules`: every schedule with its detail.
pub(super) async fn schedules(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let ctx = Ctx::of(&caller);
    let list = match super::super::schedules::list(State(st.clone())).await {
        Ok(l) => serde_json::to_value(l.0).unwrap_or(Value::Null),
        Err(e) => return page::problem_page(&ctx, Nav::Schedules, &e),
    };
    let mut details = Vec::new();
    for sch in list.as_array().into_iter().flatten() {
        let id = s(sch, "id").to_owned();
        match super::super::schedules::one(State(st.clone()), Path(id)).await {
            Ok(d) => details.push(serde_json::to_value(d.0).unwrap_or(Value::Null)),
            Err(_) => details.push(sch.clone()),
        }
    }
    let empty = Vec::new();
    let body = html! {
        h1 { "Schedules" }
        @if details.is_empty() { p.dim { "No recurring schedules." } }
        @else {
            table.grid #schedules {
                thead { tr {
                    th { "Schedule" } th { "Workflow" } th { "Cron" } th { "Next fires" }
                    th { "Last fire" } th { "Outcome" } th { "Policies" } th { "Enabled" }
                    @if ctx.operator { th { "Actions" } }
                } }
                tbody {
                    @for d in &details {
                        tr data-schedule=(s(d, "id")) {
                            td { code { (s(d, "id")) } }
                            td { (s(d, "workflow")) }
                            td { code { (s(d, "cron")) } br; span.dim { (s(d, "time_zone")) } }
                            td.fires { @for f in d["next_fires"].as_array().unwrap_or(&empty) { (f.as_str().unwrap_or_default()) br; } }
                            td { (when(&d["last_fire"]))
                                @if let Some(r) = d["last_run"].as_str() { br; a href={ "/runs/" (r) } { code { "…" (page::short_id(r)) } } } }
                            td { @if let Some(o) = d["last_outcome"].as_str() { (badge(o)) }
                                 @if let Some(n) = d["note"].as_str() { br; span.dim { (n) } } }
                            td.dim { "overlap " (d["overlap"]) br; "missed " (d["missed"]) }
                            td.enabled { (if d["enabled"].as_bool() == Some(true) { "yes" } else { "no" }) }
                            @if ctx.operator {
                                td.actions {
                                    @if d["enabled"].as_bool() == Some(true) {
                                        button type="button" data-sched="disable" { "Disable" }
                                    } @else {
                                        button type="button" data-sched="enable" { "Enable" }
                                    }
                                    button type="button" data-sched="trigger" { "Trigger now" }
                                    button.danger type="button" data-sched="remove" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page::shell(&ctx, "Schedules", Nav::Schedules, &body)
}

/// `GET /engines`: the engine processes with their heartbeats.
pub(super) async fn engines(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let ctx = Ctx::of(&caller);
    let body = match super::super::engines::list(State(st)).await {
        Err(e) => html! { h1 { "Engines" } (page::problem_box(&e)) },
        Ok(l) => {
            let v = serde_json::to_value(l.0).unwrap_or(Value::Null);
            let empty = Vec::new();
            let list = v.as_array().unwrap_or(&empty);
            html! {
                h1 { "Engines" }
                @if list.is_empty() { p.dim { "No engine has recorded a heartbeat in this store." } }
                @else {
                    table.grid #engines {
                        thead { tr { th { "Engine" } th { "Host" } th { "Pid" } th { "Version" } th { "Started" } th { "Heartbeat age" } th { "Runs owned" } } }
                        tbody {
                            @for e in list {
                                @let age = e["heartbeat_age_ms"].as_u64();
                                tr {
                                    td { code { (s(e, "id")) } }
                                    td { (s(e, "host")) }
                                    td { (e["pid"]) }
                                    td { (s(e, "version")) }
                                    td { (when(&e["started_at"])) }
                                    td class=@if age.unwrap_or(0) > 30_000 { "stale" } { (duration(age)) }
                                    td { (e["runs_owned"]) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page::shell(&ctx, "Engines", Nav::Engines, &body)
}
