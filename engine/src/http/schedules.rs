//! Recurring schedules over `engine.schedules()`: list, show (with the next fires in
//! the schedule's time zone and the last outcome), add or update, enable, disable,
//! trigger, remove.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::Shared;
use super::extract::Body;
use super::problem::{Problem, ProblemDoc, ProblemKind, cut};
use crate::schedule::{MissedFirePolicy, OverlapPolicy, Schedule};
use crate::{Recurring, RecurringSchedule};

/// How many next fires a schedule's detail lists.
const NEXT_FIRES: usize = 5;
/// The longest schedule id accepted, in bytes.
const MAX_ID: usize = 256;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/schedules", get(list))
        .route("/api/v1/schedules/{id}", get(one).put(put).delete(remove))
        .route("/api/v1/schedules/{id}/enable", post(enable))
        .route("/api/v1/schedules/{id}/disable", post(disable))
        .route("/api/v1/schedules/{id}/trigger", post(trigger))
}

/// A recurring schedule.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleView {
    /// Its id.
    id: String,
    /// The workflow it runs.
    workflow: String,
    /// The cron expression.
    cron: String,
    /// The IANA time zone it is read in.
    time_zone: String,
    /// The runs' inputs.
    inputs: Value,
    /// `skip`, `queue` or `allow`.
    overlap: Value,
    /// `skip`, `fire_once` or `{"catch_up": {"max": N}}`.
    missed: Value,
    /// The largest delay added to a fire, in milliseconds.
    jitter_ms: u64,
    /// The runs' priority.
    priority: i32,
    /// Whether it fires.
    enabled: bool,
    /// Its next fire.
    next_fire: Option<DateTime<Utc>>,
    /// The last fire handled (run or skipped).
    last_fire: Option<DateTime<Utc>>,
    /// The last run it started.
    last_run: Option<String>,
    /// Why the last due fire started no run, or what it waits for.
    note: Option<String>,
}

impl ScheduleView {
    fn of(s: &RecurringSchedule) -> Self {
        ScheduleView {
            id: s.id.clone(),
            workflow: s.workflow.clone(),
            cron: s.cron.clone(),
            time_zone: s.time_zone.clone(),
            inputs: s.inputs.clone(),
            overlap: serde_json::to_value(s.overlap).unwrap_or(Value::Null),
            missed: serde_json::to_value(s.missed).unwrap_or(Value::Null),
            jitter_ms: u64::try_from(s.jitter.max().as_millis()).unwrap_or(u64::MAX),
            priority: s.priority,
            enabled: s.enabled,
            next_fire: s.next_fire,
            last_fire: s.last_fire,
            last_run: s.last_run.map(|r| r.to_string()),
            note: s.note.clone(),
        }
    }
}

/// A schedule with what is coming and how its last fire went.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleDetail {
    /// The schedule.
    #[serde(flatten)]
    schedule: ScheduleView,
    /// Its next fires (up to 5), in its time zone (RFC 3339 with the zone's offset).
    next_fires: Vec<String>,
    /// The state of the last run it started (`pending`, `running`, `succeeded`, …).
    last_outcome: Option<String>,
    /// Why its last due fire was skipped, if it was.
    last_skip: Option<String>,
}

fn check_id(id: &str) -> Result<(), Problem> {
    if id.is_empty() || id.len() > MAX_ID || id.chars().any(char::is_control) {
        return Err(Problem::new(
            ProblemKind::BadQuery,
            format!("a schedule id is 1 to {MAX_ID} bytes, without control characters"),
        )
        .culprit("path.id")
        .value(id));
    }
    Ok(())
}

/// Every recurring schedule, by id.
#[utoipa::path(
    get,
    path = "/api/v1/schedules",
    tag = "schedules",
    responses((status = 200, description = "The schedules.", body = Vec<ScheduleView>))
)]
pub(crate) async fn list(State(st): State<Shared>) -> Result<Json<Vec<ScheduleView>>, Problem> {
    let all = st.engine.schedules().list().await?;
    Ok(Json(all.iter().map(ScheduleView::of).collect()))
}

async fn detail(st: &Shared, s: RecurringSchedule) -> Result<ScheduleDetail, Problem> {
    let mut next_fires = Vec::new();
    if let (Some(first), Ok(parsed), Ok(zone)) = (
        s.next_fire,
        Schedule::parse(&s.cron, &s.time_zone),
        s.time_zone.parse::<chrono_tz::Tz>(),
    ) {
        let mut at = Some(first);
        while let Some(t) = at {
            if next_fires.len() == NEXT_FIRES {
                break;
            }
            next_fires.push(t.with_timezone(&zone).to_rfc3339());
            at = parsed.next_after(t);
        }
    }
    let last_outcome = match s.last_run {
        Some(run) => st
            .engine
            .store()
            .get_run(run)
            .await
            .map_err(crate::Error::from)?
            .map(|r| r.state.to_string()),
        None => None,
    };
    let last_skip = s.note.clone().filter(|n| n.starts_with("skipped"));
    Ok(ScheduleDetail {
        schedule: ScheduleView::of(&s),
        next_fires,
        last_outcome,
        last_skip,
    })
}

/// One schedule, with its next fires and its last outcome.
#[utoipa::path(
    get,
    path = "/api/v1/schedules/{id}",
    tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id.")),
    responses(
        (status = 200, description = "The schedule.", body = ScheduleDetail),
        (status = 404, description = "No such schedule.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn one(
    State(st): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleDetail>, Problem> {
    check_id(&id)?;
    let s = st.engine.schedules().get(&id).await?;
    Ok(Json(detail(&st, s).await?))
}

/// A schedule to add or update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleBody {
    /// The workflow to run (registered with the engine).
    workflow: String,
    /// Its version (default: the latest registered).
    #[serde(default)]
    version: Option<String>,
    /// The cron expression (5 fields, or 6/7 with seconds and years; `@daily`…).
    cron: String,
    /// The IANA time zone (default `UTC`).
    #[serde(default)]
    time_zone: Option<String>,
    /// The runs' inputs.
    #[serde(default)]
    inputs: Option<Value>,
    /// `skip` (default), `queue` or `allow`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    overlap: Option<Value>,
    /// `skip`, `fire_once` (default) or `{"catch_up": {"max": N}}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    missed: Option<Value>,
    /// The largest delay added to a fire, in milliseconds (default 0).
    #[serde(default)]
    jitter_ms: Option<u64>,
    /// The runs' priority (default 0).
    #[serde(default)]
    priority: Option<i32>,
}

fn policy<T: for<'de> serde::Deserialize<'de>>(
    v: &Value,
    field: &str,
    expected: &str,
) -> Result<T, Problem> {
    T::deserialize(v).map_err(|_| {
        Problem::new(
            ProblemKind::BadBody,
            format!("`{field}` must be {expected}"),
        )
        .culprit(format!("body.{field}"))
        .value(&cut(&v.to_string(), 200))
    })
}

/// Adds schedule `id`, or replaces it (keeping whether it is enabled).
#[utoipa::path(
    put,
    path = "/api/v1/schedules/{id}",
    tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id.")),
    request_body = ScheduleBody,
    responses(
        (status = 200, description = "The schedule as stored.", body = ScheduleDetail),
        (status = 400, description = "A malformed body.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such workflow.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "An invalid cron expression or time zone, or inputs the workflow does not take.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn put(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Body(b): Body<ScheduleBody>,
) -> Result<Json<ScheduleDetail>, Problem> {
    check_id(&id)?;
    let wf = super::catalog::find(&st, &b.workflow, b.version.as_deref())?;
    let mut options = Recurring::new();
    if let Some(tz) = b.time_zone {
        options = options.time_zone(tz);
    }
    if let Some(inputs) = b.inputs {
        wf.check_inputs(&inputs)?;
        options = options.inputs(inputs);
    }
    if let Some(o) = b.overlap {
        options = options.overlap(policy::<OverlapPolicy>(
            &o,
            "overlap",
            "skip, queue or allow",
        )?);
    }
    if let Some(m) = b.missed {
        options = options.missed(policy::<MissedFirePolicy>(
            &m,
            "missed",
            "skip, fire_once or {\"catch_up\": {\"max\": N}}",
        )?);
    }
    if let Some(ms) = b.jitter_ms {
        options = options.jitter(Duration::from_millis(ms));
    }
    if let Some(p) = b.priority {
        options = options.priority(p);
    }
    let schedules = st.engine.schedules();
    schedules.add_or_update(&id, &wf, &b.cron, options).await?;
    let s = schedules.get(&id).await?;
    Ok(Json(detail(&st, s).await?))
}

/// Turns a schedule on (its next fire is the first after now).
#[utoipa::path(
    post,
    path = "/api/v1/schedules/{id}/enable",
    tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id.")),
    responses(
        (status = 200, description = "The schedule.", body = ScheduleDetail),
        (status = 404, description = "No such schedule.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn enable(
    State(st): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleDetail>, Problem> {
    check_id(&id)?;
    let s = st.engine.schedules().enable(&id).await?;
    Ok(Json(detail(&st, s).await?))
}

/// Turns a schedule off.
#[utoipa::path(
    post,
    path = "/api/v1/schedules/{id}/disable",
    tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id.")),
    responses(
        (status = 200, description = "The schedule.", body = ScheduleDetail),
        (status = 404, description = "No such schedule.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn disable(
    State(st): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleDetail>, Problem> {
    check_id(&id)?;
    let s = st.engine.schedules().disable(&id).await?;
    Ok(Json(detail(&st, s).await?))
}

/// The run a trigger enqueued.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Triggered {
    /// The run's id.
    id: String,
    /// Where to read it.
    location: String,
}

/// Enqueues one run of a schedule now (its next fire stays as it was).
#[utoipa::path(
    post,
    path = "/api/v1/schedules/{id}/trigger",
    tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id.")),
    responses(
        (status = 201, description = "The run enqueued.", body = Triggered),
        (status = 404, description = "No such schedule, or its workflow is not registered here.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn trigger(
    State(st): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    check_id(&id)?;
    let run = st.engine.schedules().trigger(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(Triggered {
            id: run.to_string(),
            location: format!("/api/v1/runs/{run}"),
        }),
    )
        .into_response())
}

/// Deletes a schedule (its runs are kept).
#[utoipa::path(
    delete,
    path = "/api/v1/schedules/{id}",
    tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No such schedule.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn remove(
    State(st): State<Shared>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    check_id(&id)?;
    st.engine.schedules().remove(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
