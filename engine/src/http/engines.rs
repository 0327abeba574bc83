//! The engine processes serving the store, from their heartbeats.

use std::time::SystemTime;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::Shared;
use super::problem::{Problem, ProblemDoc};
use super::views::time;

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/api/v1/engines", get(list))
}

/// An engine process serving the store.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EngineView {
    /// Its id (the owner name on the leases it holds).
    id: String,
    /// The host it runs on.
    host: String,
    /// Its process id there.
    pid: u32,
    /// The dagforge version it runs.
    version: String,
    /// When it started serving.
    started_at: DateTime<Utc>,
    /// When it last recorded a heartbeat.
    last_heartbeat: DateTime<Utc>,
    /// How long ago that was, in milliseconds (an engine beats every third of its
    /// lease TTL, 10 s by default; one silent for longer than its lease TTL has stopped
    /// or lost touch with the store).
    heartbeat_age_ms: u64,
    /// The unfinished runs it holds under a live lease.
    runs_owned: u64,
}

/// The engine processes that recorded a heartbeat in the store, by id.
#[utoipa::path(
    get,
    path = "/api/v1/engines",
    tag = "engines",
    responses(
        (status = 200, description = "The engines.", body = Vec<EngineView>),
        (status = 501, description = "The store keeps no heartbeats.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list(State(st): State<Shared>) -> Result<Json<Vec<EngineView>>, Problem> {
    let now = SystemTime::now();
    let engines = st
        .engine
        .store()
        .engines()
        .await
        .map_err(crate::Error::from)?;
    Ok(Json(
        engines
            .into_iter()
            .map(|e| EngineView {
                heartbeat_age_ms: now
                    .duration_since(e.last_beat)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                started_at: time(e.started_at),
                last_heartbeat: time(e.last_beat),
                id: e.id,
                host: e.host,
                pid: e.pid,
                version: e.version,
                runs_owned: e.runs_owned,
            })
            .collect(),
    ))
}
