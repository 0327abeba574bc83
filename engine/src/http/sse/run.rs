//! `GET /api/v1/runs/{id}/events`: one run's events, replayed from the store after the
//! client's last one, then live from the run's feeder, then `event: end`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::super::extract::{Query, run_id};
use super::super::problem::{Problem, ProblemDoc, ProblemKind};
use super::frame::{self, Frame};
use super::hub::Hub;
use super::{Admitted, CHUNK, PAGE, Shared, Streams};
use crate::RunId;

/// Where a run's stream starts.
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
        (status = 200, description = "`text/event-stream`: `id:` the event's sequence number, `event:` its kind (`run`, `node`, `log`, `progress`), `data:` the event as `GET /api/v1/runs/{id}/history` shows it; after the run's final event, `event: end`. A client too slow for the live events gets `event: overflow` (`id:` where to resume) and the stream closes.", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad run id or Last-Event-ID.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such run.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Too many open streams.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn run_events(
    State(st): State<Shared>,
    axum::Extension(hub): axum::Extension<Arc<Hub>>,
    settings: Option<axum::Extension<Streams>>,
    Path(id): Path<String>,
    Query(q): Query<After>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let run = run_id(&id, "path.id")?;
    let after = match super::last_event_id(&headers, "the sequence number of an event of this run")?
    {
        Some(text) => parse_seq(&text)?,
        None => q.after.unwrap_or(0),
    };
    let settings = settings.map_or_else(|| hub.defaults.clone(), |s| s.0);
    let admitted = match settings.admit() {
        Ok(a) => a,
        Err(refused) => return Ok(*refused),
    };
    st.engine
        .store()
        .get_run(run)
        .await
        .map_err(crate::Error::from)?
        .ok_or(crate::Error::RunNotFound(run))?;
    let client = RunClient {
        keep: super::keep_alive_timer(settings.keep_alive),
        st,
        hub,
        settings,
        _admitted: admitted,
        run,
        last: after,
        rx: None,
        phase: Phase::Start,
        live_sent: false,
        more: false,
    };
    Ok(super::event_stream(futures_util::stream::unfold(client, RunClient::next)).into_response())
}

fn parse_seq(text: &str) -> Result<u64, Problem> {
    if text.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = text.parse::<u64>()
    {
        return Ok(n);
    }
    Err(Problem::new(
        ProblemKind::BadCursor,
        "Last-Event-ID must be the sequence number of an event of this run",
    )
    .culprit("header.last-event-id")
    .value(text))
}

/// Where a run's stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing sent yet.
    Start,
    /// Reading the store after `last`.
    Replay,
    /// Following the feeder.
    Live,
    /// The run's final event was sent: what is left, then `end`.
    Finish,
    /// Closed.
    Done,
}

/// One client's stream of one run.
struct RunClient {
    st: Shared,
    hub: Arc<Hub>,
    settings: Streams,
    _admitted: Admitted,
    run: RunId,
    /// The last sequence number sent.
    last: u64,
    /// The run's feeder, once the replay caught up.
    rx: Option<broadcast::Receiver<Frame>>,
    phase: Phase,
    /// Whether a live message was sent since the last read of the store: a client that
    /// lags then is too slow for the live events.
    live_sent: bool,
    /// The last read of the store filled a page: there may be more.
    more: bool,
    keep: tokio::time::Interval,
}

type Item = Result<Bytes, Infallible>;

impl RunClient {
    async fn next(mut self) -> Option<(Item, Self)> {
        loop {
            let out = match self.phase {
                Phase::Start => {
                    self.phase = Phase::Replay;
                    Some(frame::preamble())
                }
                Phase::Replay => self.replay().await,
                Phase::Live => self.live().await,
                Phase::Finish => {
                    let rest = self.replay().await;
                    if self.phase == Phase::Done || self.more {
                        rest
                    } else {
                        self.phase = Phase::Done;
                        let end = frame::control(
                            "end",
                            None,
                            &serde_json::json!({ "run": self.run.to_string(), "last": self.last }),
                        );
                        Some(match rest {
                            Some(rest) => [rest, end].concat().into(),
                            None => end,
                        })
                    }
                }
                Phase::Done => return None,
            };
            if let Some(bytes) = out {
                self.keep.reset();
                return Some((Ok(bytes), self));
            }
        }
    }

    /// A chunk of the store's events after `last`; moves to `Live` once caught up, to
    /// `Finish` after the run's final event, to `Done` on a store error (said in an
    /// `error` message: the client resumes from its last id).
    async fn replay(&mut self) -> Option<Bytes> {
        self.live_sent = false;
        let page = match self
            .st
            .engine
            .store()
            .events(self.run, self.last, PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                self.phase = Phase::Done;
                let detail = super::super::problem::scrub(&e.to_string());
                let last = self.last.to_string();
                return Some(frame::control(
                    "error",
                    Some(&last),
                    &serde_json::json!({ "detail": detail, "resume_after": last }),
                ));
            }
        };
        let mut out = Vec::with_capacity(page.len() * 256);
        for e in &page {
            frame::render_into(&mut out, &e.seq, e);
            self.last = e.seq;
            if frame::ends_run(e) && self.phase != Phase::Finish {
                self.phase = Phase::Finish;
            }
        }
        self.more = page.len() == PAGE;
        if !self.more && self.phase == Phase::Replay {
            if self.rx.is_none() {
                self.rx = Some(
                    self.hub
                        .follow(&self.st, self.run, self.last, &self.settings),
                );
            }
            self.phase = Phase::Live;
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    /// The feeder's next messages (as many as are ready, up to a chunk), a keep-alive,
    /// or a change of phase.
    async fn live(&mut self) -> Option<Bytes> {
        let Some(rx) = self.rx.as_mut() else {
            self.phase = Phase::Replay;
            return None;
        };
        let first = tokio::select! {
            r = rx.recv() => r,
            _ = self.keep.tick() => return Some(frame::keep_alive()),
            () = self.st.closing.cancelled() => {
                self.phase = Phase::Done;
                return None;
            }
        };
        let mut out = BytesMut::new();
        let mut next = first;
        loop {
            match next {
                Ok(f) if f.seq <= self.last => {}
                Ok(f) if f.first == self.last + 1 => {
                    self.last = f.seq;
                    out.extend_from_slice(&f.bytes);
                    self.live_sent = true;
                    if f.terminal {
                        self.phase = Phase::Finish;
                        break;
                    }
                }
                // Not the next ones: the store has what came between (or the part of
                // the batch after the last one sent).
                Ok(_) => {
                    self.phase = Phase::Replay;
                    break;
                }
                Err(RecvError::Lagged(_)) if self.live_sent => {
                    self.phase = Phase::Done;
                    out.extend_from_slice(&self.overflow());
                    break;
                }
                // Fell behind while reading the store: read it again.
                Err(RecvError::Lagged(_)) => {
                    self.phase = Phase::Replay;
                    break;
                }
                // The feeder stopped (the run ended, or it had no client for a moment):
                // the store has the rest, and a new feeder follows on.
                Err(RecvError::Closed) => {
                    self.rx = None;
                    self.phase = Phase::Replay;
                    break;
                }
            }
            if out.len() >= CHUNK {
                break;
            }
            next = match rx.try_recv() {
                Ok(f) => Ok(f),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
            };
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    /// The last message to a client too slow for the live events.
    fn overflow(&self) -> Bytes {
        let last = self.last.to_string();
        frame::control(
            "overflow",
            Some(&last),
            &serde_json::json!({
                "resume_after": last,
                "detail": format!(
                    "this client fell more than {} batches behind the live events; reconnect with Last-Event-ID: {last} to resume",
                    self.settings.buffer
                ),
            }),
        )
    }
}
