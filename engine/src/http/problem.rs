//! Errors as RFC 9457 problem documents (`application/problem+json`): a stable `type`
//! per kind, the HTTP status, a human-readable `detail`, and the culprit named.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The longest culprit value echoed back in a problem, in characters (hostile input is
/// cut, never reflected whole).
const MAX_VALUE_CHARS: usize = 200;

/// What went wrong, one variant per problem `type`. The `type` URI of a kind is
/// `urn:dagforge:problem:` followed by [`ProblemKind::slug`]; it never changes once
/// published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// No such route.
    NotFound,
    /// The route exists, not with this method.
    MethodNotAllowed,
    /// A path segment or query value is not a run id.
    BadRunId,
    /// A paging cursor was not one this API handed out.
    BadCursor,
    /// A query parameter is malformed or unknown.
    BadQuery,
    /// The request body is not the JSON this endpoint takes.
    BadBody,
    /// The request body is not JSON (or a form where one is taken).
    UnsupportedMediaType,
    /// The request body is larger than the configured limit.
    BodyTooLarge,
    /// No run has this id.
    RunNotFound,
    /// The run has no node with this id.
    NodeNotFound,
    /// No workflow with this name (and version) is registered.
    WorkflowNotFound,
    /// No recurring schedule has this id.
    ScheduleNotFound,
    /// Run inputs that do not match the workflow's parameters.
    InvalidInputs,
    /// A schedule's cron expression, time zone or options are invalid.
    InvalidSchedule,
    /// The run is not finished, so it cannot be retried.
    RunNotFinished,
    /// A from-failed retry of a run with nothing to re-run.
    NothingToRetry,
    /// Another engine drives the run.
    RunBusy,
    /// No credentials, or credentials that are not valid.
    Unauthorized,
    /// The caller's role may not do this (a read-only token and a mutation).
    Forbidden,
    /// An unsafe method from a browser session without the session's CSRF token.
    CsrfRejected,
    /// A request this server refuses for where it comes from: a non-loopback client
    /// or `Host` while the API runs without a token, or a cross-site browser request.
    OriginRejected,
    /// No artifact of the run has this key.
    ArtifactNotFound,
    /// Too many failed logins (bad tokens) from this client, or from everyone: wait
    /// for `Retry-After` seconds.
    TooManyRequests,
    /// The store failed (unreachable, locked, …).
    StoreUnavailable,
    /// The store does not have the capability this endpoint needs (a store of your
    /// own without the engine registry or the global event feed).
    Unsupported,
    /// Anything else; the detail says what.
    Internal,
}

impl ProblemKind {
    /// The stable part of the problem's `type` URI.
    pub fn slug(self) -> &'static str {
        match self {
            ProblemKind::NotFound => "not-found",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::BadRunId => "bad-run-id",
            ProblemKind::BadCursor => "bad-cursor",
            ProblemKind::BadQuery => "bad-query",
            ProblemKind::BadBody => "bad-body",
            ProblemKind::UnsupportedMediaType => "unsupported-media-type",
            ProblemKind::BodyTooLarge => "body-too-large",
            ProblemKind::RunNotFound => "run-not-found",
            ProblemKind::NodeNotFound => "node-not-found",
            ProblemKind::WorkflowNotFound => "workflow-not-found",
            ProblemKind::ScheduleNotFound => "schedule-not-found",
            ProblemKind::InvalidInputs => "invalid-inputs",
            ProblemKind::InvalidSchedule => "invalid-schedule",
            ProblemKind::RunNotFinished => "run-not-finished",
            ProblemKind::NothingToRetry => "nothing-to-retry",
            ProblemKind::RunBusy => "run-busy",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::CsrfRejected => "csrf-rejected",
            ProblemKind::OriginRejected => "origin-rejected",
            ProblemKind::ArtifactNotFound => "artifact-not-found",
            ProblemKind::TooManyRequests => "too-many-requests",
            ProblemKind::StoreUnavailable => "store-unavailable",
            ProblemKind::Unsupported => "unsupported",
            ProblemKind::Internal => "internal",
        }
    }

    /// The HTTP status of problems of this kind.
    pub fn status(self) -> StatusCode {
        match self {
            ProblemKind::NotFound
            | ProblemKind::RunNotFound
            | ProblemKind::NodeNotFound
            | ProblemKind::WorkflowNotFound
            | ProblemKind::ScheduleNotFound
            | ProblemKind::ArtifactNotFound => StatusCode::NOT_FOUND,
            ProblemKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ProblemKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemKind::BadRunId
            | ProblemKind::BadCursor
            | ProblemKind::BadQuery
            | ProblemKind::BadBody => StatusCode::BAD_REQUEST,
            ProblemKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemKind::InvalidInputs | ProblemKind::InvalidSchedule => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ProblemKind::RunNotFinished | ProblemKind::NothingToRetry | ProblemKind::RunBusy => {
                StatusCode::CONFLICT
            }
            ProblemKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemKind::Forbidden | ProblemKind::CsrfRejected | ProblemKind::OriginRejected => {
                StatusCode::FORBIDDEN
            }
            ProblemKind::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
            ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, fixed summary of the kind (the problem's `title`).
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::NotFound => "No such resource",
            ProblemKind::MethodNotAllowed => "Method not allowed",
            ProblemKind::BadRunId => "Not a run id",
            ProblemKind::BadCursor => "Bad paging cursor",
            ProblemKind::BadQuery => "Bad query parameter",
            ProblemKind::BadBody => "Bad request body",
            ProblemKind::UnsupportedMediaType => "Unsupported media type",
            ProblemKind::BodyTooLarge => "Request body too large",
            ProblemKind::RunNotFound => "Run not found",
            ProblemKind::NodeNotFound => "Node not found",
            ProblemKind::WorkflowNotFound => "Workflow not found",
            ProblemKind::ScheduleNotFound => "Schedule not found",
            ProblemKind::InvalidInputs => "Inputs do not match the workflow's parameters",
            ProblemKind::InvalidSchedule => "Invalid schedule",
            ProblemKind::RunNotFinished => "Run not finished",
            ProblemKind::NothingToRetry => "Nothing to retry",
            ProblemKind::RunBusy => "Run driven by another engine",
            ProblemKind::Unauthorized => "Authentication required",
            ProblemKind::Forbidden => "Not allowed for this role",
            ProblemKind::CsrfRejected => "Missing or wrong CSRF token",
            ProblemKind::OriginRejected => "Request refused for its origin",
            ProblemKind::ArtifactNotFound => "Artifact not found",
            ProblemKind::TooManyRequests => "Too many failed logins",
            ProblemKind::StoreUnavailable => "Store unavailable",
            ProblemKind::Unsupported => "Not supported by this store",
            ProblemKind::Internal => "Internal error",
        }
    }

    /// The problem's `type` URI.
    pub fn uri(self) -> String {
        format!("urn:dagforge:problem:{}", self.slug())
    }
}

/// An RFC 9457 problem document, as every error of the API is answered: serialized as
/// `type` (`urn:dagforge:problem:<kind>`), `title`, `status`, `detail`, and `culprit`
/// and `value` when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    kind: ProblemKind,
    detail: String,
    culprit: Option<Box<str>>,
    value: Option<Box<str>>,
}

/// The problem document's schema (for the OpenAPI document).
#[derive(Serialize, ToSchema)]
#[schema(as = Problem)]
pub(crate) struct ProblemDoc {
    /// `urn:dagforge:problem:<kind>`, stable per kind of error.
    #[serde(rename = "type")]
    kind_uri: String,
    /// A short summary of the kind.
    title: String,
    /// The HTTP status code.
    status: u16,
    /// What went wrong in this request.
    detail: String,
    /// What was wrong: a parameter (`query.cursor`), a path segment (`path.id`), a body
    /// field (`body.inputs.region`), a header (`header.authorization`).
    #[serde(skip_serializing_if = "Option::is_none")]
    culprit: Option<String>,
    /// The offending value, cut to 200 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ProblemDoc {
            kind_uri: self.kind.uri(),
            title: self.kind.title().to_owned(),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
            culprit: self.culprit.as_deref().map(str::to_owned),
            value: self.value.as_deref().map(str::to_owned),
        }
        .serialize(s)
    }
}

impl Problem {
    /// A problem of `kind` with `detail`.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            detail: detail.into(),
            culprit: None,
            value: None,
        }
    }

    /// Names what was wrong (`query.cursor`, `path.id`, `body.inputs.region`).
    pub fn culprit(mut self, culprit: impl Into<String>) -> Self {
        self.culprit = Some(culprit.into().into_boxed_str());
        self
    }

    /// The offending value (cut to 200 characters).
    pub fn value(mut self, value: &str) -> Self {
        self.value = Some(cut(value, MAX_VALUE_CHARS).into_boxed_str());
        self
    }

    /// The kind.
    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// What went wrong.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The offending value, if named.
    pub fn offending_value(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

/// `s` cut to `max` characters (with `…` when cut).
pub(crate) fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.kind == ProblemKind::Unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"dagforge\""),
            );
        }
        response
    }
}

/// The engine's errors as problems. Store errors name no store URL: their text goes
/// through `scrub` (credentials out of any URL in them).
impl From<crate::Error> for Problem {
    fn from(e: crate::Error) -> Self {
        use crate::Error as E;
        match e {
            E::Input { name, reason } => Problem::new(
                ProblemKind::InvalidInputs,
                format!("run input `{}`: {reason}", cut(&name, MAX_VALUE_CHARS)),
            )
            .culprit(format!("body.inputs.{}", cut(&name, MAX_VALUE_CHARS))),
            E::RunNotFound(run) => Problem::new(ProblemKind::RunNotFound, format!("run {run} not found"))
                .culprit("path.id")
                .value(&run.to_string()),
            E::NodeNotFound(node) => {
                Problem::new(ProblemKind::NodeNotFound, "the run has no such node")
                    .culprit("path.node")
                    .value(&node)
            }
            E::UnknownWorkflow { name, version, .. } => Problem::new(
                ProblemKind::WorkflowNotFound,
                match &version {
                    Some(v) => format!(
                        "no workflow `{}` version `{}` is registered with this engine",
                        cut(&name, MAX_VALUE_CHARS),
                        cut(v, MAX_VALUE_CHARS)
                    ),
                    None => format!(
                        "no workflow `{}` is registered with this engine",
                        cut(&name, MAX_VALUE_CHARS)
                    ),
                },
            )
            .culprit("workflow")
            .value(&name),
            E::RunNotFinished { run, state } => Problem::new(
                ProblemKind::RunNotFinished,
                format!("run {run} is {state}: only a finished run can be retried"),
            )
            .culprit("path.id")
            .value(&run.to_string()),
            E::NothingToRetry(run) => Problem::new(
                ProblemKind::NothingToRetry,
                format!(
                    "run {run} has no failed, timed-out, cancelled or skipped-by-failure node to re-run"
                ),
            )
            .culprit("path.id")
            .value(&run.to_string()),
            E::RunBusy(run) => Problem::new(
                ProblemKind::RunBusy,
                format!("run {run} is driven by another engine; try again once it is done"),
            )
            .culprit("path.id")
            .value(&run.to_string()),
            E::Schedule { id, source } => Problem::new(
                ProblemKind::InvalidSchedule,
                format!("schedule `{}`: {source}", cut(&id, MAX_VALUE_CHARS)),
            )
            .culprit("body"),
            E::UnknownSchedule(id) => Problem::new(ProblemKind::ScheduleNotFound, "no such recurring schedule")
                .culprit("path.id")
                .value(&id),
            E::Store(crate::store::StoreError::UnknownRun(run)) => {
                Problem::new(ProblemKind::RunNotFound, format!("run {run} not found"))
                    .culprit("path.id")
                    .value(&run.to_string())
            }
            E::Store(crate::store::StoreError::BadQuery {
                what,
                value,
                reason,
            }) => Problem::new(
                if what.contains("cursor") {
                    ProblemKind::BadCursor
                } else {
                    ProblemKind::BadQuery
                },
                format!("{what}: {reason}"),
            )
            .culprit("query")
            .value(&value),
            E::Store(crate::store::StoreError::Unsupported { what }) => Problem::new(
                ProblemKind::Unsupported,
                format!("this store does not keep {what}"),
            ),
            E::Store(store) => Problem::new(ProblemKind::StoreUnavailable, scrub(&chain(&store))),
            other => Problem::new(ProblemKind::Internal, scrub(&chain(&other))),
        }
    }
}

/// `e` and its sources, joined with `: `.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// `text` with the credentials of any URL in it removed ([`crate::redact::url`]).
pub(crate) fn scrub(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.contains("://") {
                crate::redact::url(word)
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cut_and_urls_scrubbed() {
        let p = Problem::new(ProblemKind::BadCursor, "x").value(&"a".repeat(500));
        assert_eq!(p.offending_value().map(|v| v.chars().count()), Some(201));
        let s = scrub("store: cannot reach postgres://app:hunter2@db:5432/x now");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("db:5432"), "{s}");
    }

    #[test]
    fn every_kind_has_a_distinct_slug() {
        let kinds = [
            ProblemKind::NotFound,
            ProblemKind::MethodNotAllowed,
            ProblemKind::BadRunId,
            ProblemKind::BadCursor,
            ProblemKind::BadQuery,
            ProblemKind::BadBody,
            ProblemKind::UnsupportedMediaType,
            ProblemKind::BodyTooLarge,
            ProblemKind::RunNotFound,
            ProblemKind::NodeNotFound,
            ProblemKind::WorkflowNotFound,
            ProblemKind::ScheduleNotFound,
            ProblemKind::InvalidInputs,
            ProblemKind::InvalidSchedule,
            ProblemKind::RunNotFinished,
            ProblemKind::NothingToRetry,
            ProblemKind::RunBusy,
            ProblemKind::Unauthorized,
            ProblemKind::Forbidden,
            ProblemKind::CsrfRejected,
            ProblemKind::OriginRejected,
            ProblemKind::ArtifactNotFound,
            ProblemKind::TooManyRequests,
            ProblemKind::StoreUnavailable,
            ProblemKind::Unsupported,
            ProblemKind::Internal,
        ];
        let slugs: std::collections::HashSet<&str> = kinds.iter().map(|k| k.slug()).collect();
        assert_eq!(slugs.len(), kinds.len());
    }
}
