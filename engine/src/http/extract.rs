//! Extractors whose rejections are problems: JSON bodies, query strings, run ids.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::problem::{Problem, ProblemKind, cut};
use crate::RunId;

/// The longest text of a serde error kept in a problem's detail.
const MAX_DETAIL: usize = 400;

/// A JSON request body (`Content-Type: application/json`), or a problem naming what is
/// wrong with it.
#[derive(Debug)]
pub(crate) struct Body<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(e) => Err(json_problem(e)),
        }
    }
}

fn json_problem(e: JsonRejection) -> Problem {
    match e {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            ProblemKind::UnsupportedMediaType,
            "the body must be JSON, sent with `Content-Type: application/json`",
        )
        .culprit("header.content-type"),
        JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(
                ProblemKind::BodyTooLarge,
                "the request body is larger than allowed",
            )
            .culprit("body")
        }
        JsonRejection::JsonDataError(d) => {
            Problem::new(ProblemKind::BadBody, cut(&d.body_text(), MAX_DETAIL)).culprit("body")
        }
        JsonRejection::JsonSyntaxError(d) => Problem::new(
            ProblemKind::BadBody,
            format!(
                "the body is not valid JSON: {}",
                cut(&d.body_text(), MAX_DETAIL)
            ),
        )
        .culprit("body"),
        other => {
            Problem::new(ProblemKind::BadBody, cut(&other.body_text(), MAX_DETAIL)).culprit("body")
        }
    }
}

/// The 413 problem for a body over `limit` bytes.
pub(crate) fn too_large(limit: usize) -> Problem {
    Problem::new(
        ProblemKind::BodyTooLarge,
        format!("the request body is larger than the {limit} bytes allowed"),
    )
    .culprit("body")
}

/// A query string, or a `bad-query` problem naming the parameter.
#[derive(Debug)]
pub(crate) struct Query<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(Problem::new(
                ProblemKind::BadQuery,
                cut(&e.body_text(), MAX_DETAIL),
            )
            .culprit("query")),
            Err(e) => Err(
                Problem::new(ProblemKind::BadQuery, cut(&e.body_text(), MAX_DETAIL))
                    .culprit("query"),
            ),
        }
    }
}

/// `text` as a run id, or a `bad-run-id` problem naming `culprit`.
pub(crate) fn run_id(text: &str, culprit: &str) -> Result<RunId, Problem> {
    if text.len() > 64 {
        return Err(Problem::new(ProblemKind::BadRunId, "a run id is a UUID")
            .culprit(culprit)
            .value(text));
    }
    text.parse().map_err(|_| {
        Problem::new(
            ProblemKind::BadRunId,
            "a run id is a UUID (e.g. 0192a4c0-7d1e-7cc3-9a5e-3f1a2b4c5d6e)",
        )
        .culprit(culprit)
        .value(text)
    })
}

/// A page size: 1 to `max`, `default` when absent.
pub(crate) fn page_size(
    limit: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, Problem> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(Problem::new(
            ProblemKind::BadQuery,
            format!("limit must be between 1 and {max}"),
        )
        .culprit("query.limit")
        .value(&n.to_string())),
    }
}
