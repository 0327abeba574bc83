//! Operations endpoints: `/healthz` (the process answers), `/readyz` (the engine can
//! do its work; the reasons when not) and `/metrics` (Prometheus text format).
//!
//! They take no token: probes and scrapers do not carry one, and what they show is
//! operational (states, counts, workflow, job, lane and schedule names; never inputs,
//! outputs or run ids). Served on the API's router, and alone by [`ops_router`] (the
//! CLI's `serve --metrics ADDR`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiState;
use crate::Engine;
use crate::telemetry::CONTENT_TYPE;

impl FromRef<Arc<ApiState>> for Engine {
    fn from_ref(state: &Arc<ApiState>) -> Engine {
        state.engine.clone()
    }
}

/// The three routes, for any state that gives the engine.
pub(super) fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Engine: FromRef<S>,
{
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// `/healthz`, `/readyz` and `/metrics` of `engine`, and nothing else: for a port of
/// their own (`serve --metrics ADDR`), beside or without the API. Other paths answer
/// 404.
pub fn ops_router(engine: Engine) -> Router {
    routes::<Engine>()
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: try /healthz, /readyz or /metrics\n",
            )
        })
        .with_state(engine)
}

/// Serves [`ops_router`] on `listener` until `shutdown` completes.
pub async fn serve_ops(
    engine: Engine,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, ops_router(engine))
        .with_graceful_shutdown(shutdown)
        .await
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The process answers.
async fn healthz() -> Response {
    text(StatusCode::OK, "ok\n".to_owned())
}

/// `200 ready`, or `503` with the reasons, one a line.
async fn readyz(State(engine): State<Engine>) -> Response {
    let r = engine.readiness().await;
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    text(status, format!("{r}\n"))
}

/// The metrics, in the Prometheus text format.
async fn metrics(State(engine): State<Engine>) -> Response {
    let body = engine.metrics_text().await;
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_memory_engine_is_healthy_ready_and_has_metrics() {
        let router = ops_router(Engine::new());
        assert_eq!(
            get(router.clone(), "/healthz").await,
            (StatusCode::OK, "ok\n".to_owned())
        );
        assert_eq!(
            get(router.clone(), "/readyz").await,
            (StatusCode::OK, "ready\n".to_owned())
        );
        let (status, body) = get(router.clone(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("dagforge_store_up 1"), "{body}");
        assert_eq!(get(router, "/nope").await.0, StatusCode::NOT_FOUND);
    }

    /// On the API's router the endpoints answer without a token, even when the API
    /// requires one.
    #[tokio::test]
    async fn on_the_api_they_need_no_token() {
        let router = crate::http::Api::new(Engine::new())
            .token("a-long-random-operator-token", crate::http::Role::Operator)
            .router();
        let (status, body) = get(router, "/readyz").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}
