//! The HTTP API (feature `http`): versioned JSON under `/api/v1`, live Server-Sent
//! Events, an OpenAPI 3.1 document at `/api/v1/openapi.json`, errors as RFC 9457
//! problems.
//!
//! [`router`] gives an [`axum::Router`] to mount in an application of your own; [`Api`]
//! configures it (tokens and their roles, the body limit) and serves it
//! ([`Api::serve`]), refusing a non-loopback address without a token unless told
//! otherwise. The CLI's `serve --http ADDR` and `http` commands use it.
//!
//! ```no_run
//! use dagforge::http::{Api, Role};
//! # async fn demo(engine: dagforge::Engine) -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! Api::new(engine)
//!     .token("a-long-random-operator-token", Role::Operator)
//!     .serve(listener, std::future::pending())
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! The endpoints, their parameters and their problems are described in the OpenAPI
//! document and in `docs/guide/http-api.md`.

mod actions;
mod auth;
mod catalog;
mod engines;
mod extract;
mod history;
mod limit;
mod nodes;
mod openapi;
mod ops;
mod problem;
mod runs;
mod schedules;
mod serve;
mod session;
pub mod sse;
mod ui;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Engine;

pub use auth::Role;
pub use ops::{ops_router, serve_ops};
pub use problem::{PROBLEM_JSON, Problem, ProblemKind};
pub use serve::ServeError;

/// The API's settings and what every request shares: the engine, the access rules,
/// the browser sessions. Handlers take it as `State<Arc<ApiState>>`.
#[derive(Debug)]
pub(crate) struct ApiState {
    pub(crate) engine: Engine,
    pub(crate) access: auth::Access,
    pub(crate) sessions: auth::Sessions,
    pub(crate) body_limit: usize,
    /// Failed logins (bad tokens), limited per client address and overall.
    pub(crate) logins: limit::Limiter,
    /// Session cookies carry `Secure` (also when a proxy says `X-Forwarded-Proto: https`).
    pub(crate) secure_cookies: bool,
    /// Cancelled when the server shuts down: live streams end.
    pub(crate) closing: tokio_util::sync::CancellationToken,
}

/// The shared state as handlers receive it.
pub(crate) type Shared = Arc<ApiState>;

/// The API of `engine` with the default settings ([`Api::new`]): no token, so it
/// serves loopback clients only.
pub fn router(engine: Engine) -> Router {
    Api::new(engine).router()
}

/// Configures the HTTP API of an [`Engine`]: tokens and roles, the body limit, the
/// session lifetime; then [`router`](Api::router) or [`serve`](Api::serve).
///
/// Without a token the API serves only loopback clients that address it by a loopback
/// name (`localhost`, `127.0.0.1`, `[::1]`), and [`serve`](Api::serve) refuses any
/// other address, unless [`insecure_no_auth`](Api::insecure_no_auth).
#[derive(Debug)]
#[must_use]
pub struct Api {
    engine: Engine,
    access: auth::Access,
    body_limit: usize,
    session_ttl: Duration,
    secure_cookies: bool,
    closing: tokio_util::sync::CancellationToken,
}

impl Api {
    /// Default for [`body_limit`](Api::body_limit): 2 MiB.
    pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;
    /// Default for [`session_ttl`](Api::session_ttl): 12 hours.
    pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

    /// The API of `engine`: no token, 2 MiB body limit, 12-hour browser sessions.
    pub fn new(engine: Engine) -> Self {
        Api {
            engine,
            access: auth::Access::default(),
            body_limit: Self::DEFAULT_BODY_LIMIT,
            session_ttl: Self::DEFAULT_SESSION_TTL,
            secure_cookies: false,
            closing: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Accepts `token` (as `Authorization: Bearer <token>`, or through the login of a
    /// browser session) for `role`. Repeatable: one token per role or per client. An
    /// empty token is ignored. The API keeps only the token's SHA-256 digest.
    pub fn token(mut self, token: impl AsRef<str>, role: Role) -> Self {
        let token = token.as_ref().trim();
        if !token.is_empty() {
            self.access.add_token(token, role);
        }
        self
    }

    /// Serves anyone, from anywhere, as an operator when no token is configured: for a
    /// network you trust entirely (a private container network). Off by default.
    pub fn insecure_no_auth(mut self, yes: bool) -> Self {
        self.access.insecure_no_auth = yes;
        self
    }

    /// The largest request body accepted, in bytes (default 2 MiB); larger bodies are
    /// refused with `413` and a `body-too-large` problem.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How long a browser session lasts after its login (default 12 hours).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Marks the session cookie `Secure` (browsers send it over HTTPS only): for an API
    /// served over HTTPS. Off by default; a request that came through a TLS-terminating
    /// proxy (`X-Forwarded-Proto: https`) gets a `Secure` cookie anyway.
    pub fn secure_cookies(mut self, yes: bool) -> Self {
        self.secure_cookies = yes;
        self
    }

    /// Whether a token is configured.
    pub fn has_tokens(&self) -> bool {
        self.access.has_tokens()
    }

    /// The router: every endpoint under `/api/v1`. Serve it with connection info
    /// (`into_make_service_with_connect_info::<SocketAddr>()`, as [`serve`](Api::serve)
    /// does): without a token, the API needs the client's address to serve loopback
    /// clients only.
    pub fn router(self) -> Router {
        let state: Shared = Arc::new(ApiState {
            engine: self.engine,
            access: self.access,
            sessions: auth::Sessions::new(self.session_ttl),
            body_limit: self.body_limit,
            logins: limit::Limiter::new(limit::Limits::default()),
            secure_cookies: self.secure_cookies,
            closing: self.closing,
        });
        let guarded = Router::new()
            .merge(runs::routes())
            .merge(nodes::routes())
            .merge(actions::routes())
            .merge(history::routes())
            .merge(schedules::routes())
            .merge(engines::routes())
            .merge(catalog::routes())
            .merge(session::guarded_routes())
            .merge(sse::routes())
            .layer(middleware::from_fn_with_state(
                Arc::clone(&state),
                auth::authenticate,
            ));
        let open = Router::new()
            .route("/api/v1/openapi.json", get(openapi::document))
            .merge(session::open_routes())
            .merge(ops::routes());
        Router::new()
            .merge(guarded)
            .merge(open)
            .merge(ui::routes(Arc::clone(&state)))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn_with_state(
                Arc::clone(&state),
                limit_body,
            ))
            .layer(DefaultBodyLimit::max(state.body_limit))
            .layer(middleware::from_fn(no_store))
            .with_state(state)
    }
}

async fn not_found(request: Request) -> Problem {
    Problem::new(ProblemKind::NotFound, "no such endpoint")
        .culprit("path")
        .value(request.uri().path())
}

async fn method_not_allowed(request: Request) -> Problem {
    Problem::new(
        ProblemKind::MethodNotAllowed,
        format!("{} is not allowed here", request.method()),
    )
    .culprit("method")
    .value(request.uri().path())
}

/// Refuses a body whose declared length is over the limit before reading it (a body
/// without a length is cut by [`DefaultBodyLimit`] as it is read).
async fn limit_body(
    axum::extract::State(state): axum::extract::State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.body_limit as u64) {
        return extract::too_large(state.body_limit).into_response();
    }
    next.run(request).await
}

/// Responses are about live state: never cached by a browser or a proxy; and never
/// sniffed into another type than the one declared.
async fn no_store(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(header::HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::Service;

    /// Mounted without connection info, a token-less API cannot tell loopback clients
    /// from others, and refuses, saying how to serve it.
    #[tokio::test]
    async fn without_connection_info_an_open_api_refuses() {
        let mut router = super::router(crate::Engine::new());
        let request = Request::get("/api/v1/runs")
            .header("host", "localhost")
            .body(Body::empty())
            .expect("request");
        let response = router.call(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("connect_info"), "{text}");
        assert!(
            text.contains("urn:dagforge:problem:origin-rejected"),
            "{text}"
        );
    }
}
