//! The OpenAPI 3.1 document of the API, generated from the handlers' annotations.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::problem::ProblemDoc;
use super::{actions, catalog, engines, history, nodes, runs, schedules, session, sse};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dagforge HTTP API",
        description = "Runs, nodes, logs, schedules and the workflow catalogue of a dagforge engine. Errors are RFC 9457 problems (`application/problem+json`).",
    ),
    paths(
        runs::list,
        runs::counts,
        runs::detail,
        runs::artifacts,
        nodes::list,
        nodes::one,
        nodes::items,
        history::history,
        history::logs,
        history::attempts,
        actions::enqueue,
        actions::cancel,
        actions::retry,
        catalog::list,
        catalog::one,
        catalog::graph,
        catalog::graph_svg,
        catalog::run_graph,
        catalog::run_graph_svg,
        catalog::jobs,
        schedules::list,
        schedules::one,
        schedules::put,
        schedules::enable,
        schedules::disable,
        schedules::trigger,
        schedules::remove,
        engines::list,
        session::login,
        session::whoami,
        session::logout,
        sse::run_events,
        sse::all_events,
    ),
    components(schemas(ProblemDoc)),
    modifiers(&Security),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "runs", description = "Recorded runs, their nodes, items, events and logs; actions on them."),
        (name = "catalogue", description = "The registered workflows and jobs."),
        (name = "schedules", description = "Recurring schedules."),
        (name = "engines", description = "The engine processes serving the store."),
        (name = "session", description = "Browser sessions."),
        (name = "streams", description = "Server-Sent Events."),
    )
)]
struct Doc;

/// The security schemes: a bearer token, or the session cookie.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                super::auth::SESSION_COOKIE,
            ))),
        );
    }
}

/// The document as JSON text (built once).
pub(crate) fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = Doc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        doc.to_json().unwrap_or_default()
    })
}

/// The OpenAPI 3.1 document of this API.
pub(crate) async fn document() -> Response {
    let mut r = json().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
