//! The pages' frame: the caller's context, the shell (navigation, security headers),
//! the login form, and small formatting helpers shared by the pages.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

use super::super::auth::{Caller, Role, Via};
use super::super::problem::Problem;
use super::assets;

/// The pages' Content-Security-Policy: scripts and styles from this server only, no
/// inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Who is looking: what the page may offer and the token its scripts send.
#[derive(Clone, Debug)]
pub(super) struct Ctx {
    /// Whether actions are offered (the server refuses them anyway to a read-only caller).
    pub(super) operator: bool,
    /// A browser session's CSRF token.
    csrf: Option<String>,
    /// Whether the caller came in through a browser session (it may log out).
    session: bool,
}

impl Ctx {
    pub(super) fn of(caller: &Caller) -> Self {
        let (csrf, session) = match &caller.via {
            Via::Session { csrf, .. } => (Some(csrf.clone()), true),
            Via::Open | Via::Bearer => (None, false),
        };
        Ctx {
            operator: caller.role >= Role::Operator,
            csrf,
            session,
        }
    }
}

/// Which navigation entry is lit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Nav {
    Runs,
    Workflows,
    Schedules,
    Engines,
}

/// A whole page: the frame around `body`, with its scripts.
pub(super) fn shell(ctx: &Ctx, title: &str, nav: Nav, body: &Markup) -> Response {
    let item = |n: Nav, href: &str, label: &str| {
        html! { a href=(href) class=@if n == nav { "on" } { (label) } }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(t) = &ctx.csrf { meta name="csrf-token" content=(t); }
                meta name="role" content=(if ctx.operator { "operator" } else { "read_only" });
                title { (title) " · dagforge" }
                link rel="stylesheet" href=(assets::url("app.css"));
                script src=(assets::url("app.js")) defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "dagforge" }
                    nav {
                        (item(Nav::Runs, "/", "Runs"))
                        (item(Nav::Workflows, "/workflows", "Workflows"))
                        (item(Nav::Schedules, "/schedules", "Schedules"))
                        (item(Nav::Engines, "/engines", "Engines"))
                    }
                    span.who {
                        @if ctx.operator { "operator" } @else { "read-only" }
                        @if ctx.session { " · " button.link #logout type="button" { "log out" } }
                    }
                }
                main { (body) }
                div #toast hidden {}
            }
        }
    };
    html_response(markup)
}

/// `markup` as an HTML response with the pages' security headers.
pub(super) fn html_response(markup: Markup) -> Response {
    let mut r = axum::response::Html(markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// The login form (`POST /api/v1/session` as a form), going to `next` once in.
pub(super) fn login(next: Option<&str>, error: Option<&str>) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Log in · dagforge" }
                link rel="stylesheet" href=(assets::url("app.css"));
            }
            body.login {
                form.login method="post" action="/api/v1/session" {
                    h1 { "dagforge" }
                    p { "This dashboard needs a token (" code { "DAGFORGE_HTTP_TOKEN" } " or a read-only one)." }
                    @if let Some(e) = error { p.error { (e) } }
                    label for="token" { "Token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    input type="hidden" name="next" value=(next.unwrap_or("/"));
                    button type="submit" { "Log in" }
                }
            }
        }
    };
    html_response(markup)
}

/// `GET /login`: the login form.
pub(super) async fn login_page() -> Response {
    login(Some("/"), None)
}

/// A problem the API answered, shown in a page.
pub(super) fn problem_box(p: &Problem) -> Markup {
    html! {
        div.problem role="alert" {
            strong { (p.kind().title()) } ": " (p.detail())
            @if let Some(v) = p.offending_value() { " (" code { (v) } ")" }
        }
    }
}

/// A page for a problem (an unknown run, a bad filter).
pub(super) fn problem_page(ctx: &Ctx, nav: Nav, p: &Problem) -> Response {
    let mut r = shell(ctx, p.kind().title(), nav, &problem_box(p));
    *r.status_mut() = p.kind().status();
    r
}

/// A state as a coloured badge.
pub(super) fn badge(state: &str) -> Markup {
    html! { span class={ "badge st-" (state) } data-state=(state) { (state) } }
}

/// An RFC 3339 time from the API as `YYYY-MM-DD HH:MM:SS` (UTC), in a `<time>`.
pub(super) fn when(v: &Value) -> Markup {
    match v.as_str() {
        Some(t) => {
            let short = t.get(..19).unwrap_or(t).replace('T', " ");
            html! { time datetime=(t) title=(t) { (short) } }
        }
        None => html! { span.dim { "—" } },
    }
}

/// Milliseconds as a short duration (`850 ms`, `12.3 s`, `4 m 05 s`, `2 h 03 m`).
pub(super) fn duration(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "—".to_owned();
    };
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} m {:02} s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{} h {:02} m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// A JSON value, pretty-printed and cut to `max` bytes, in a collapsed block (a
/// large value is written only up to the cut).
pub(super) fn json_block(summary: &str, v: &Value, max: usize) -> Markup {
    let mut out = Capped {
        bytes: Vec::new(),
        max,
        full: false,
    };
    let complete = serde_json::to_writer_pretty(&mut out, v).is_ok() && !out.full;
    let mut text = String::from_utf8_lossy(&out.bytes).into_owned();
    if !complete {
        // Cut on a character boundary (the lossy decoding marks a split one).
        text = text.trim_end_matches('\u{FFFD}').to_owned();
    }
    html! {
        details.json {
            summary {
                (summary) " "
                span.dim { "(" @if !complete { "over " } (out.bytes.len()) " bytes)" }
            }
            pre { (text) @if !complete { "\n… cut" } }
        }
    }
}

/// A writer that takes up to `max` bytes, then refuses (so serialization stops).
struct Capped {
    bytes: Vec<u8>,
    max: usize,
    full: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.max.saturating_sub(self.bytes.len());
        if room == 0 {
            self.full = true;
            return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "cut"));
        }
        let n = room.min(buf.len());
        self.bytes.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `v` as JSON for a `<script type="application/json">` block: `<`, `>` and `&` are
/// written as escapes, so no string in it can close the block.
pub(super) fn script_json(v: &impl serde::Serialize) -> PreEscaped<String> {
    let text = serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned());
    PreEscaped(
        text.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026"),
    )
}

/// The text of a JSON string field, or empty.
pub(super) fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Percent-encodes `text` for a path segment or a query value.
pub(super) fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A run id, short: its last 8 characters (a UUIDv7's first ones are its creation
/// time, the same for runs made together).
pub(super) fn short_id(id: &str) -> &str {
    id.get(id.len().saturating_sub(8)..).unwrap_or(id)
}
