//! Browser sessions: log in with a token (JSON or a login form), learn the session's
//! role and CSRF token, log out.

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Shared;
use super::auth::{Caller, Role, SESSION_COOKIE, Via};
use super::extract::Body;
use super::problem::{Problem, ProblemDoc, ProblemKind};

pub(crate) fn open_routes() -> Router<Shared> {
    Router::new().route("/api/v1/session", post(login))
}

pub(crate) fn guarded_routes() -> Router<Shared> {
    Router::new().route("/api/v1/session", get(whoami).delete(logout))
}

/// A login: the token, and for a form, where to go next.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    /// An API token.
    token: String,
    /// For a login form: the local path to go to once logged in (default `/`).
    #[serde(default)]
    next: Option<String>,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionView {
    /// `read_only` or `operator`.
    role: Role,
    /// How the caller got in: `none` (no token configured), `bearer` or `session`.
    auth: &'static str,
    /// A browser session's CSRF token: send it in `X-CSRF-Token` with every POST,
    /// PUT, PATCH and DELETE.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    /// How long a new session lasts, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in_secs: Option<u64>,
}

/// Opens a browser session.
#[utoipa::path(
    post,
    path = "/api/v1/session",
    tag = "session",
    request_body(content = Login, description = "JSON, or a form (`application/x-www-form-urlencoded`) from a login page.", content_type = "application/json"),
    responses(
        (status = 200, description = "Logged in: the session cookie (HttpOnly, SameSite=Strict) is set; the CSRF token is in the body.", body = SessionView),
        (status = 303, description = "Logged in from a form: redirected to `next`."),
        (status = 401, description = "Not a valid token.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins from this address (or overall): see `Retry-After`.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn login(State(st): State<Shared>, request: Request) -> Result<Response, Problem> {
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    let now = std::time::Instant::now();
    if st.access.has_tokens()
        && let Err(refused) = st.logins.check(client, now)
    {
        return Ok(refused.into_response());
    }
    let secure = secure(&st, request.headers());
    let form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let login = if form {
        axum::Form::<Login>::from_request(request, &())
            .await
            .map_err(|e| {
                Problem::new(
                    ProblemKind::BadBody,
                    super::problem::cut(&e.body_text(), 400),
                )
                .culprit("body")
            })?
            .0
    } else {
        Body::<Login>::from_request(request, &()).await?.0
    };
    if !st.access.has_tokens() {
        return Ok(Json(SessionView {
            role: Role::Operator,
            auth: "none",
            csrf_token: None,
            expires_in_secs: None,
        })
        .into_response());
    }
    let Some(role) = st.access.role_of(login.token.trim()) else {
        st.logins.failed(client, now);
        return Err(
            Problem::new(ProblemKind::Unauthorized, "not a valid token").culprit("body.token")
        );
    };
    let (id, csrf) = st
        .sessions
        .open(role)
        .map_err(|e| Problem::new(ProblemKind::Internal, format!("cannot open a session: {e}")))?;
    let ttl = st.sessions.ttl().as_secs();
    let cookie =
        format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={ttl}{secure}");
    let mut response = if form {
        Redirect::to(&safe_next(login.next.as_deref())).into_response()
    } else {
        Json(SessionView {
            role,
            auth: "session",
            csrf_token: Some(csrf),
            expires_in_secs: Some(ttl),
        })
        .into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `; Secure` when the API is configured so, or when the request came through a
/// TLS-terminating proxy (`X-Forwarded-Proto: https`); else nothing.
fn secure(st: &Shared, headers: &axum::http::HeaderMap) -> &'static str {
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    if st.secure_cookies || forwarded {
        "; Secure"
    } else {
        ""
    }
}

/// A local path to redirect to: `next` if it is one (`/…`, not `//…`), else `/`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.len() <= 2048
                && n.chars().all(|c| !c.is_control()) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The caller's role, and a browser session's CSRF token.
#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "session",
    responses(
        (status = 200, description = "Who the caller is.", body = SessionView),
        (status = 401, description = "Not logged in.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn whoami(Extension(caller): Extension<Caller>) -> Json<SessionView> {
    let (auth, csrf_token) = match caller.via {
        Via::Open => ("none", None),
        Via::Bearer => ("bearer", None),
        Via::Session { csrf, .. } => ("session", Some(csrf)),
    };
    Json(SessionView {
        role: caller.role,
        auth,
        csrf_token,
        expires_in_secs: None,
    })
}

/// Ends a browser session.
#[utoipa::path(
    delete,
    path = "/api/v1/session",
    tag = "session",
    responses(
        (status = 204, description = "Logged out (any role, a read-only session too); the cookie is cleared."),
        (status = 403, description = "A session without its CSRF token.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn logout(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Via::Session { id, .. } = &caller.via {
        st.sessions.close(id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let cookie = format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(&st, &headers)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_local() {
        assert_eq!(safe_next(Some("/runs?x=1")), "/runs?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "runs",
            "/a\nb",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
