//! Acting on runs: enqueue a run of a workflow, cancel a run, retry a finished run.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::Shared;
use super::extract::{Body, run_id};
use super::problem::{Problem, ProblemDoc, ProblemKind, cut};
use super::views::time;
use crate::{Enqueue, RetryMode, RunId};

/// The longest idempotency key or lane name accepted, in bytes.
const MAX_NAME: usize = 256;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/runs", post(enqueue))
        .route("/api/v1/runs/{id}/cancel", post(cancel))
        .route("/api/v1/runs/{id}/retry", post(retry))
}

/// A run to enqueue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnqueueBody {
    /// The workflow's name.
    workflow: String,
    /// Its version (default: the latest registered).
    #[serde(default)]
    version: Option<String>,
    /// The run's parameters: an object, checked against the workflow's parameters
    /// and the input types of the jobs that take them.
    #[serde(default)]
    inputs: Option<Value>,
    /// Start no earlier than this instant (RFC 3339).
    #[serde(default)]
    at: Option<DateTime<Utc>>,
    /// Start no earlier than this many milliseconds from now.
    #[serde(default)]
    delay_ms: Option<u64>,
    /// Claimed before lower priorities when capacity is short (default 0).
    #[serde(default)]
    priority: Option<i32>,
    /// One run per key: enqueuing again with the same key returns the first run.
    #[serde(default)]
    key: Option<String>,
    /// The lane the run waits in (default: its workflow's lane).
    #[serde(default)]
    lane: Option<String>,
}

/// A run that was enqueued (or found by its idempotency key).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Enqueued {
    /// The run's id.
    id: String,
    /// Its state.
    state: String,
    /// When it may start, if later.
    not_before: Option<DateTime<Utc>>,
    /// Where to read it.
    location: String,
}

fn check_name(value: &Option<String>, field: &str) -> Result<(), Problem> {
    match value {
        Some(v) if v.is_empty() || v.len() > MAX_NAME || v.chars().any(char::is_control) => {
            Err(Problem::new(
                ProblemKind::BadBody,
                format!("`{field}` must be 1 to {MAX_NAME} bytes, without control characters"),
            )
            .culprit(format!("body.{field}"))
            .value(v))
        }
        _ => Ok(()),
    }
}

/// A `201 Created` answer naming the run.
async fn created(st: &Shared, id: RunId) -> Result<Response, Problem> {
    let record = st
        .engine
        .store()
        .get_run(id)
        .await
        .map_err(crate::Error::from)?
        .ok_or(crate::Error::RunNotFound(id))?;
    let location = format!("/api/v1/runs/{id}");
    let body = Enqueued {
        id: id.to_string(),
        state: record.state.to_string(),
        not_before: record.not_before.map(time),
        location: location.clone(),
    };
    let mut r = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// Enqueues a run of a workflow for the engines serving the store.
#[utoipa::path(
    post,
    path = "/api/v1/runs",
    tag = "runs",
    request_body = EnqueueBody,
    responses(
        (status = 201, description = "Enqueued (or the run holding the idempotency key).", body = Enqueued),
        (status = 400, description = "A malformed body.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such workflow (or version).", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Inputs that do not match the workflow's parameters.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn enqueue(
    State(st): State<Shared>,
    Body(b): Body<EnqueueBody>,
) -> Result<Response, Problem> {
    check_name(&b.key, "key")?;
    check_name(&b.lane, "lane")?;
    let wf = super::catalog::find(&st, &b.workflow, b.version.as_deref())?;
    let inputs = b.inputs.unwrap_or(Value::Null);
    if !matches!(inputs, Value::Null | Value::Object(_)) {
        return Err(Problem::new(
            ProblemKind::InvalidInputs,
            "`inputs` must be an object of parameter values",
        )
        .culprit("body.inputs"));
    }
    wf.check_inputs(&inputs)?;
    let mut options = Enqueue::new();
    if let Some(at) = b.at {
        options = options.at(at.into());
    }
    if let Some(ms) = b.delay_ms {
        let delay = Duration::from_millis(ms);
        if delay > Enqueue::MAX_DELAY {
            return Err(Problem::new(
                ProblemKind::BadBody,
                format!(
                    "`delay_ms` is more than {} days",
                    Enqueue::MAX_DELAY.as_secs() / 86_400
                ),
            )
            .culprit("body.delay_ms")
            .value(&ms.to_string()));
        }
        options = options.delay(delay);
    }
    if let Some(p) = b.priority {
        options = options.priority(p);
    }
    if let Some(k) = b.key {
        options = options.idempotency_key(k);
    }
    if let Some(l) = b.lane {
        options = options.queue(l);
    }
    let id = st.engine.enqueue_with(&wf, inputs, options).await?;
    created(&st, id).await
}

/// The state a run is in after a cancellation.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Cancelled {
    /// The run's id.
    id: String,
    /// Its state now: `cancelled`, the final state it had reached, or `pending` /
    /// `running` while the engine driving it stops it.
    state: String,
    /// Whether the run is still to stop: the request is recorded, and the engine that
    /// drives it (now, or when it claims it) cancels it.
    requested: bool,
}

/// Cancels a run, wherever it is: queued, driven here, or by another engine.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/cancel",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "Cancelled, or asked to cancel.", body = Cancelled),
        (status = 400, description = "Not a run id.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such run.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn cancel(
    State(st): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Cancelled>, Problem> {
    let run = run_id(&id, "path.id")?;
    let state = st.engine.cancel_recorded(run).await?;
    Ok(Json(Cancelled {
        id: run.to_string(),
        state: state.to_string(),
        requested: !state.is_terminal(),
    }))
}

/// How to retry.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryBody {
    /// `fresh` (a new run with the same inputs, the default) or `from_failed` (re-run
    /// only what failed; succeeded nodes keep their outputs).
    #[serde(default)]
    mode: Option<String>,
}

/// Retries a finished run as a new run, enqueued for the engines serving the store.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/retry",
    tag = "runs",
    params(("id" = String, Path, description = "The finished run's id.")),
    request_body = RetryBody,
    responses(
        (status = 201, description = "The new run.", body = Enqueued),
        (status = 400, description = "Not a run id, or a bad mode.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such run, or its workflow version is not registered here.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The run is not finished, or has nothing to re-run.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn retry(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Body(b): Body<RetryBody>,
) -> Result<Response, Problem> {
    let run = run_id(&id, "path.id")?;
    let mode = match b.mode.as_deref().map(str::trim) {
        None | Some("fresh") => RetryMode::Fresh,
        Some("from_failed") => RetryMode::FromFailed,
        Some(other) => {
            return Err(
                Problem::new(ProblemKind::BadBody, "`mode` is `fresh` or `from_failed`")
                    .culprit("body.mode")
                    .value(&cut(other, 64)),
            );
        }
    };
    let new = st.engine.enqueue_retry(run, mode).await?;
    created(&st, new).await
}
