//! Who may call the API: tokens and their roles, browser sessions with a CSRF token,
//! and the loopback rule of a server without a token.
//!
//! [`authenticate`] runs before every route but the login and the OpenAPI document. It
//! puts a [`Caller`] in the request's extensions, or answers with a problem:
//!
//! - no token configured (and not `insecure_no_auth`): only loopback clients, with a
//!   loopback `Host` (which defeats DNS rebinding), are served; they are operators;
//! - tokens configured: `Authorization: Bearer <token>`, or the session cookie set by
//!   `POST /api/v1/session`; a read-only caller may not use unsafe methods;
//! - unsafe methods (POST, PUT, PATCH, DELETE) from a cookie session need the session's
//!   CSRF token in `X-CSRF-Token`; without a bearer header, a cross-site browser request
//!   (its `Origin` or `Sec-Fetch-Site` says so) is refused.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::ApiState;
use super::problem::{Problem, ProblemKind};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "dagforge_session";
/// The header carrying a session's CSRF token on unsafe methods.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// The most sessions kept at once (the oldest go first past it).
const MAX_SESSIONS: usize = 10_000;

/// What a caller may do.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// Read everything; change nothing.
    ReadOnly,
    /// Read, and act: enqueue, cancel, retry runs; manage schedules.
    Operator,
}

impl Role {
    /// `read_only` or `operator`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read_only",
            Role::Operator => "operator",
        }
    }
}

/// How the caller was let in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// No token is configured: a loopback client (or any client, insecure).
    Open,
    /// A bearer token.
    Bearer,
    /// A browser session (its CSRF token).
    Session { id: String, csrf: String },
}

/// The authenticated caller, in the request's extensions after [`authenticate`].
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) role: Role,
    pub(crate) via: Via,
}

/// The tokens and the rule without them.
#[derive(Clone, Default)]
pub(crate) struct Access {
    /// SHA-256 of each token, with its role (never the token itself).
    tokens: Vec<([u8; 32], Role)>,
    pub(crate) insecure_no_auth: bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("tokens", &self.tokens.len())
            .field("insecure_no_auth", &self.insecure_no_auth)
            .finish()
    }
}

impl Access {
    pub(crate) fn add_token(&mut self, token: &str, role: Role) {
        self.tokens.push((digest(token), role));
    }

    /// Whether any token is configured.
    pub(crate) fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The role of `token`, comparing digests in constant time.
    pub(crate) fn role_of(&self, token: &str) -> Option<Role> {
        let d = digest(token);
        let mut found = None;
        for (t, role) in &self.tokens {
            if constant_eq(t, &d) {
                found = Some(*role);
            }
        }
        found
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Equality that takes the same time wherever the inputs differ.
pub(crate) fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One browser session.
#[derive(Clone, Debug)]
struct Session {
    role: Role,
    csrf: String,
    expires: Instant,
}

/// The live browser sessions, bounded.
#[derive(Debug)]
pub(crate) struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub(crate) fn new(ttl: Duration) -> Self {
        Sessions {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session for `role`: its id and CSRF token.
    pub(crate) fn open(&self, role: Role) -> std::io::Result<(String, String)> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                role,
                csrf: csrf.clone(),
                expires: now + self.ttl,
            },
        );
        Ok((id, csrf))
    }

    fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub(crate) fn close(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// 32 random bytes from the operating system, as 64 hex digits.
pub(crate) fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    #[cfg(unix)]
    {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    }
    #[cfg(not(unix))]
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "browser sessions need the operating system's random source (/dev/urandom)",
        ));
    }
    #[allow(unreachable_code)]
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The value of cookie `name` in `headers`.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The bearer token of `headers`: `Ok(None)` without an `Authorization` header.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(Problem::new(
            ProblemKind::Unauthorized,
            "the Authorization header must be `Bearer <token>`",
        )
        .culprit("header.authorization")),
    }
}

/// Whether `host` (a `Host` header: name or address, optional port) names this machine.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Refuses a browser's cross-site request: `Sec-Fetch-Site: cross-site`/`same-site`,
/// or an `Origin` whose host is not the request's `Host`.
fn same_origin(headers: &HeaderMap) -> Result<(), Problem> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && (site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site"))
    {
        return Err(Problem::new(
            ProblemKind::OriginRejected,
            "cross-site requests may not change anything here",
        )
        .culprit("header.sec-fetch-site"));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
    if origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
        return Err(Problem::new(
            ProblemKind::OriginRejected,
            "the request's Origin is not this server: cross-site requests may not change anything here",
        )
        .culprit("header.origin")
        .value(origin));
    }
    Ok(())
}

/// Authenticates the request (see the module's documentation) and checks its role and
/// CSRF token; puts the [`Caller`] in its extensions.
pub(crate) async fn authenticate(
    State(state): State<std::sync::Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    // Bad bearer tokens count as failed logins: checked before the token is, so a
    // client guessing tokens is refused whatever it sends next.
    let guessing =
        state.access.has_tokens() && request.headers().contains_key(header::AUTHORIZATION);
    let now = std::time::Instant::now();
    let client = peer.map(|p| p.ip().to_canonical());
    if guessing && let Err(refused) = state.logins.check(client, now) {
        return refused.into_response();
    }
    let logout = request.method() == Method::DELETE && request.uri().path() == "/api/v1/session";
    match caller(&state, request.method(), request.headers(), peer, logout) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(problem) => {
            if guessing && problem.kind() == ProblemKind::Unauthorized {
                state.logins.failed(client, now);
            }
            problem.into_response()
        }
    }
}

fn caller(
    state: &ApiState,
    method: &Method,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    logout: bool,
) -> Result<Caller, Problem> {
    let unsafe_method = is_unsafe(method);
    if !state.access.has_tokens() {
        if !state.access.insecure_no_auth {
            loopback_only(headers, peer)?;
        }
        if unsafe_method {
            same_origin(headers)?;
        }
        return Ok(Caller {
            role: Role::Operator,
            via: Via::Open,
        });
    }
    let caller = if let Some(token) = bearer(headers)? {
        let role = state.access.role_of(token).ok_or_else(|| {
            Problem::new(ProblemKind::Unauthorized, "the bearer token is not valid")
                .culprit("header.authorization")
        })?;
        Caller {
            role,
            via: Via::Bearer,
        }
    } else if let Some(id) = cookie(headers, SESSION_COOKIE) {
        let session = state.sessions.get(id).ok_or_else(|| {
            Problem::new(
                ProblemKind::Unauthorized,
                "the session has expired or is not valid: log in again",
            )
            .culprit("cookie.dagforge_session")
        })?;
        if unsafe_method {
            same_origin(headers)?;
            let given = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !constant_eq(given.as_bytes(), session.csrf.as_bytes()) {
                return Err(Problem::new(
                    ProblemKind::CsrfRejected,
                    "a browser session must send its CSRF token (from POST or GET /api/v1/session) in the X-CSRF-Token header on every change",
                )
                .culprit("header.x-csrf-token"));
            }
        }
        Caller {
            role: session.role,
            via: Via::Session {
                id: id.to_owned(),
                csrf: session.csrf,
            },
        }
    } else {
        return Err(Problem::new(
            ProblemKind::Unauthorized,
            "this API needs a token: `Authorization: Bearer <token>`, or log in with POST /api/v1/session",
        )
        .culprit("header.authorization"));
    };
    // Any role may end its own session (still with its CSRF token, checked above).
    if unsafe_method && caller.role < Role::Operator && !logout {
        return Err(Problem::new(
            ProblemKind::Forbidden,
            format!("the {} role may not change anything", caller.role.as_str()),
        ));
    }
    Ok(caller)
}

/// Without a token, only loopback clients naming a loopback host are served.
fn loopback_only(headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<(), Problem> {
    match peer {
        Some(p) if p.ip().to_canonical().is_loopback() => {}
        Some(p) => {
            return Err(Problem::new(
                ProblemKind::OriginRejected,
                "this API runs without a token and serves loopback clients only",
            )
            .culprit("client")
            .value(&p.ip().to_string()));
        }
        None => {
            return Err(Problem::new(
                ProblemKind::OriginRejected,
                "this API runs without a token and cannot tell where the request comes from: \
                 serve it with `into_make_service_with_connect_info::<SocketAddr>()`, or configure a token",
            )
            .culprit("client"));
        }
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !is_loopback_host(host) {
        return Err(Problem::new(
            ProblemKind::OriginRejected,
            "this API runs without a token and answers only requests addressed to a loopback host (localhost, 127.0.0.1, [::1])",
        )
        .culprit("header.host")
        .value(host));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "127.9.9.9",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "",
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:80",
            "localhost.evil:80",
            "[::2]:80",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn tokens_compare_by_digest() {
        let mut a = Access::default();
        a.add_token("s3cret-operator", Role::Operator);
        a.add_token("s3cret-reader", Role::ReadOnly);
        assert_eq!(a.role_of("s3cret-operator"), Some(Role::Operator));
        assert_eq!(a.role_of("s3cret-reader"), Some(Role::ReadOnly));
        assert_eq!(a.role_of("s3cret"), None);
        assert!(!format!("{a:?}").contains("s3cret"));
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let s = Sessions::new(Duration::from_millis(0));
        let (id, _) = s.open(Role::Operator).expect("random");
        assert!(s.get(&id).is_none());
        let s = Sessions::new(Duration::from_secs(60));
        let (id, csrf) = s.open(Role::ReadOnly).expect("random");
        assert_eq!(id.len(), 64);
        assert_ne!(id, csrf);
        assert_eq!(s.get(&id).map(|x| x.role), Some(Role::ReadOnly));
        s.close(&id);
        assert!(s.get(&id).is_none());
    }
}
