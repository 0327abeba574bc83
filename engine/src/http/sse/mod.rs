//! Live streams as Server-Sent Events: one run's events, and every run's.
//!
//! - `GET /api/v1/runs/{id}/events`: the run's events, each message with `id:` its
//!   sequence number, `event:` its kind (`run`, `node`, `log`, `progress`) and `data:`
//!   the event as the REST events endpoint shows it. A client that reconnects with
//!   `Last-Event-ID` (or `?after=SEQ`) gets the events after it from the store, then
//!   live ones: no gap, no duplicate. After the run's final event the stream sends
//!   `event: end` and closes.
//! - `GET /api/v1/events` (`?workflow=NAME` to filter): every run's events in the
//!   store's commit order, `id:` the global feed cursor; from `Last-Event-ID` (or
//!   `?after=CURSOR`), or from now. Read from the store's global feed, so events that
//!   another engine process writes to the same store reach the client too.
//!
//! The settings ([`Streams`]: keep-alive interval, store poll interval, per-client
//! buffer, the cap on open streams) apply to a router as a layer:
//!
//! ```no_run
//! use std::time::Duration;
//! use dagforge::http::{Api, sse::Streams};
//! # fn demo(engine: dagforge::Engine) -> axum::Router {
//! let streams = Streams::new().max_streams(100).keep_alive(Duration::from_secs(30));
//! Api::new(engine).router().layer(streams.layer())
//! # }
//! ```
//!
//! How each stream is fed: a run's stream replays the store, then follows the run's
//! *feeder* — one task per watched run, shared by its clients, that turns the engine's
//! live events into messages once (rendered once, the same bytes to every client) and
//! reads the store for what the live feed did not bring (a run driven by another
//! process, a subscription that lagged), every poll interval and at once when the
//! store signals a change. A client more than its buffer behind the live messages is
//! sent `event: overflow` with the id to resume from, and closed. The all-runs stream
//! reads the store's feed at the client's own pace (a slow client trails, holding no
//! more than one page), woken by this engine's events and the store's change signal.

mod all;
mod frame;
mod hub;
mod run;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::Stream;

use super::Shared;
use super::problem::{PROBLEM_JSON, Problem, ProblemKind};

pub(crate) use all::{__path_all_events, all_events};
pub(crate) use run::{__path_run_events, run_events};

/// Events read from the store at a time.
const PAGE: usize = 500;
/// The largest chunk of messages written to a client at once.
const CHUNK: usize = 64 * 1024;
/// The longest `Last-Event-ID` or `after` accepted.
const MAX_ID_LEN: usize = 64;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/runs/{id}/events", get(run_events))
        .route("/api/v1/events", get(all_events))
        .layer(axum::Extension(Arc::new(hub::Hub::default())))
}

/// Settings of the live streams; apply them to a router with
/// [`layer`](Streams::layer). Without it a router uses [`Streams::new`]'s defaults.
///
/// The cap on open streams is counted per `Streams` value (its clones share the
/// count): one value layered on one router caps that router's streams.
#[derive(Clone, Debug)]
#[must_use]
pub struct Streams {
    keep_alive: Duration,
    poll: Duration,
    buffer: usize,
    max_streams: usize,
    open: Arc<AtomicUsize>,
}

impl Default for Streams {
    fn default() -> Self {
        Streams::new()
    }
}

impl Streams {
    /// Default for [`keep_alive`](Streams::keep_alive): 15 seconds.
    pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
    /// Default for [`poll`](Streams::poll): 200 ms.
    pub const DEFAULT_POLL: Duration = Duration::from_millis(200);
    /// Default for [`buffer`](Streams::buffer): 256 batches (at most 16 MiB per watched run).
    pub const DEFAULT_BUFFER: usize = 256;
    /// Default for [`max_streams`](Streams::max_streams): 512.
    pub const DEFAULT_MAX_STREAMS: usize = 512;

    /// The defaults: a keep-alive comment after 15 s of silence, the store read every
    /// 200 ms for what the live feed did not bring, 256 batches of buffer per
    /// client, at most 512 open streams.
    pub fn new() -> Self {
        Streams {
            keep_alive: Self::DEFAULT_KEEP_ALIVE,
            poll: Self::DEFAULT_POLL,
            buffer: Self::DEFAULT_BUFFER,
            max_streams: Self::DEFAULT_MAX_STREAMS,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// After how long without a message a stream sends a keep-alive comment (at least
    /// 10 ms).
    pub fn keep_alive(mut self, every: Duration) -> Self {
        self.keep_alive = every.max(Duration::from_millis(10));
        self
    }

    /// How often the store is read for events the engine's live feed did not bring
    /// (events written by another engine process), when the store's change signal
    /// does not come first; between 10 ms and 10 s.
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every.clamp(Duration::from_millis(10), Duration::from_secs(10));
        self
    }

    /// How far a client of a run's stream may fall behind its live messages, in
    /// batches (a run's feeder gathers the events that come within 5 ms, at most 64 KiB,
    /// into one batch), before it is sent `event: overflow` and closed; between 16 and
    /// 65,536. The batches are shared by the run's clients: the buffer costs memory
    /// once per watched run.
    pub fn buffer(mut self, messages: usize) -> Self {
        self.buffer = messages.clamp(16, 1 << 16);
        self
    }

    /// How many streams may be open at once; one more is refused with `503` and a
    /// `too-many-streams` problem.
    pub fn max_streams(mut self, streams: usize) -> Self {
        self.max_streams = streams;
        self
    }

    /// How many streams are open now.
    pub fn open_streams(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// These settings as a layer for the API's router (`router.layer(streams.layer())`).
    pub fn layer(self) -> axum::Extension<Streams> {
        axum::Extension(self)
    }

    /// Takes a place among the open streams, or gives the `503` refusal.
    fn admit(&self) -> Result<Admitted, Box<Response>> {
        let taken = self.open.fetch_add(1, Ordering::AcqRel);
        let admitted = Admitted(Arc::clone(&self.open));
        if taken >= self.max_streams {
            drop(admitted);
            return Err(Box::new(too_many(self.max_streams)));
        }
        Ok(admitted)
    }
}

/// A place among the open streams, given back when the stream is dropped.
#[derive(Debug)]
struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The `503` for one stream too many, as a problem document.
fn too_many(max: usize) -> Response {
    let body = serde_json::json!({
        "type": "urn:dagforge:problem:too-many-streams",
        "title": "Too many open streams",
        "status": 503,
        "detail": format!("this server keeps at most {max} live streams open; try again later"),
    });
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// The `Last-Event-ID` header as text, if sent: bounded, visible ASCII, or a
/// `bad-cursor` problem naming the header.
fn last_event_id(headers: &HeaderMap, expected: &str) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let bad = || {
        Problem::new(
            ProblemKind::BadCursor,
            format!("Last-Event-ID must be {expected}"),
        )
        .culprit("header.last-event-id")
        .value(&String::from_utf8_lossy(v.as_bytes()))
    };
    let text = v.to_str().map_err(|_| bad())?.trim();
    if text.is_empty() || text.len() > MAX_ID_LEN {
        return Err(bad());
    }
    Ok(Some(text.to_owned()))
}

/// A `text/event-stream` response over `body`.
fn event_stream(body: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static) -> Response {
    let mut r = Body::from_stream(body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tells nginx-like proxies not to hold the messages back.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// A keep-alive timer whose first tick is one period from now.
fn keep_alive_timer(every: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_open_streams_and_gives_places_back() {
        let s = Streams::new().max_streams(2);
        let a = s.admit().unwrap();
        let b = s.admit().unwrap();
        let refused = s.admit().unwrap_err();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(s.open_streams(), 2);
        drop(a);
        let c = s.admit().unwrap();
        drop((b, c));
        assert_eq!(s.open_streams(), 0);
    }

    #[test]
    fn last_event_id_is_bounded_ascii() {
        let mut h = HeaderMap::new();
        assert_eq!(last_event_id(&h, "x").unwrap(), None);
        h.insert("last-event-id", HeaderValue::from_static(" 42 "));
        assert_eq!(last_event_id(&h, "x").unwrap().as_deref(), Some("42"));
        h.insert(
            "last-event-id",
            HeaderValue::from_str(&"9".repeat(65)).unwrap(),
        );
        assert!(last_event_id(&h, "x").is_err());
        h.insert("last-event-id", HeaderValue::from_bytes(b"\xff1").unwrap());
        let p = last_event_id(&h, "x").unwrap_err();
        assert_eq!(p.kind(), ProblemKind::BadCursor);
    }
}
