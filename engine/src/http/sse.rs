//! Live streams as Server-Sent Events.
//!
//! `GET /api/v1/runs/{id}/events`: the run's events, each with `id:` its sequence
//! number and `event:` its type (`run`, `node`, `log`, `progress`), the data an
//! [`EventView`](super::views::EventView). A client reconnecting with `Last-Event-ID`
//! (or `?after=SEQ`) gets the events after it replayed from the store, then live
//! ones: no gap, no duplicate (an event is sent only if it is the next in sequence; a
//! gap in the live feed — a slow subscription, an engine in another process — is
//! filled from the store, which the store is also polled for every second). The
//! stream ends after the run's final event, or when the server shuts down.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use serde::Deserialize;

use super::Shared;
use super::extract::{Query, run_id};
use super::problem::{Problem, ProblemDoc, ProblemKind};
use super::views::EventView;
use crate::{Event, EventKind, EventStream, RunId};

/// Events read from the store at a time.
const PAGE: usize = 500;
/// How often the store is read for events the live feed did not bring.
const POLL: Duration = Duration::from_secs(1);

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/api/v1/runs/{id}/events", get(run_events))
}

/// Where a stream starts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct After {
    /// Start after this sequence number (`Last-Event-ID` wins when both are given).
    after: Option<u64>,
}

/// The run's events as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/events",
    tag = "streams",
    params(
        ("id" = String, Path, description = "The run's id."),
        ("after" = Option<u64>, Query, description = "Replay the events after this sequence number (as `Last-Event-ID`)."),
        ("Last-Event-ID" = Option<String>, Header, description = "The last event the client saw: replay the events after it."),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `id:` the event's sequence number, `event:` its type, `data:` an EventView.", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad run id or Last-Event-ID.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such run.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn run_events(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<After>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Problem> {
    let run = run_id(&id, "path.id")?;
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::BadCursor,
                    "Last-Event-ID must be the sequence number of an event of this run",
                )
                .culprit("header.last-event-id")
                .value(&String::from_utf8_lossy(v.as_bytes()))
            })?,
        None => q.after.unwrap_or(0),
    };
    // Subscribed before the store is read: nothing falls between the two.
    let live = st.engine.subscribe();
    st.engine
        .store()
        .get_run(run)
        .await
        .map_err(crate::Error::from)?
        .ok_or(crate::Error::RunNotFound(run))?;
    let stream = RunStream {
        st,
        run,
        last: after,
        live: Some(live),
        buffer: VecDeque::new(),
        catch_up: true,
        done: false,
        tick: poll_interval(),
    };
    Ok(
        Sse::new(futures_util::stream::unfold(stream, RunStream::next))
            .keep_alive(KeepAlive::default()),
    )
}

/// The state of one run's stream.
struct RunStream {
    st: Shared,
    run: RunId,
    /// The last sequence number sent.
    last: u64,
    /// The engine's live events; `None` once the engine is gone (the store is polled).
    live: Option<EventStream>,
    /// Events read, in order, not sent yet.
    buffer: VecDeque<Event>,
    /// Read the store before waiting on the live feed.
    catch_up: bool,
    /// The run's final event was sent, or the stream must end.
    done: bool,
    /// When to read the store again without news from the live feed.
    tick: tokio::time::Interval,
}

fn poll_interval() -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + POLL, POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

impl RunStream {
    async fn next(mut self) -> Option<(Result<SseEvent, Infallible>, Self)> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                if e.seq != self.last + 1 {
                    // Not the next one: the store fills the gap (or it is a duplicate).
                    if e.seq > self.last + 1 {
                        self.buffer.clear();
                        self.catch_up = true;
                    }
                    continue;
                }
                self.last = e.seq;
                if matches!(e.kind, EventKind::Run { to, .. } if to.is_terminal()) {
                    self.done = true;
                }
                return Some((Ok(sse_event(&e)), self));
            }
            if self.done {
                return None;
            }
            if self.catch_up {
                match self
                    .st
                    .engine
                    .store()
                    .events(self.run, self.last, PAGE)
                    .await
                {
                    Ok(page) if !page.is_empty() => {
                        self.buffer.extend(page);
                        continue;
                    }
                    Ok(_) => self.catch_up = false,
                    Err(e) => {
                        // Said once, then the stream ends; the client reconnects with
                        // Last-Event-ID and loses nothing.
                        self.done = true;
                        let text = super::problem::scrub(&e.to_string());
                        return Some((Ok(SseEvent::default().event("error").data(text)), self));
                    }
                }
            }
            let woke = {
                let (live, tick, closing) = (&mut self.live, &mut self.tick, &self.st.closing);
                let live = async {
                    match live {
                        Some(l) => Woke::Live(l.next().await),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    w = live => w,
                    _ = tick.tick() => Woke::Poll,
                    () = closing.cancelled() => Woke::Closing,
                }
            };
            match woke {
                Woke::Live(Some(e)) if e.run == self.run => self.buffer.push_back(e),
                Woke::Live(Some(_)) => {}
                Woke::Live(None) => {
                    self.live = None;
                    self.catch_up = true;
                }
                Woke::Poll => self.catch_up = true,
                Woke::Closing => return None,
            }
        }
    }
}

/// What a waiting stream woke up for.
enum Woke {
    Live(Option<Event>),
    Poll,
    Closing,
}

fn sse_event(e: &Event) -> SseEvent {
    let kind = match &e.kind {
        EventKind::Run { .. } => "run",
        EventKind::Node(_) => "node",
        EventKind::Log { .. } => "log",
        EventKind::Progress { .. } => "progress",
        // `EventKind` may grow.
        #[allow(unreachable_patterns)]
        _ => "event",
    };
    let data = serde_json::to_string(&EventView::of(e)).unwrap_or_default();
    SseEvent::default()
        .id(e.seq.to_string())
        .event(kind)
        .data(data)
}
