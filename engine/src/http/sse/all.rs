//! `GET /api/v1/events`: every run's events (or one workflow's runs'), from the store's
//! global feed in commit order, so that events written by other engine processes on
//! the same store arrive too.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;

use super::super::extract::Query;
use super::super::problem::{Problem, ProblemDoc, ProblemKind};
use super::frame;
use super::hub::{Hub, Wakes};
use super::{Admitted, CHUNK, PAGE, Shared, Streams};
use crate::store::FeedCursor;

/// The longest workflow name accepted as a filter.
const MAX_WORKFLOW_LEN: usize = 200;

/// Where the all-runs stream starts, and what it keeps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AllQuery {
    /// Start after this feed cursor (`Last-Event-ID` wins when both are given).
    after: Option<String>,
    /// Only the events of this workflow's runs.
    workflow: Option<String>,
}

/// Every run's events as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "streams",
    params(
        ("workflow" = Option<String>, Query, description = "Only the events of runs of this workflow."),
        ("after" = Option<String>, Query, description = "Start after this feed cursor (as `Last-Event-ID`); without either, the stream starts now."),
        ("Last-Event-ID" = Option<String>, Header, description = "The last feed cursor the client saw: the events after it."),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `id:` the event's feed cursor (`<group>-<row>-<seq>`), `event:` its kind (`run`, `node`, `log`, `progress`), `data:` the event (with its `run`), in the store's commit order.", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad Last-Event-ID, cursor or workflow.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 501, description = "The store keeps no global event feed.", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Too many open streams.", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn all_events(
    State(st): State<Shared>,
    axum::Extension(hub): axum::Extension<Arc<Hub>>,
    settings: Option<axum::Extension<Streams>>,
    Query(q): Query<AllQuery>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let from = match super::last_event_id(&headers, "a feed cursor (`<group>-<row>-<seq>`)")? {
        Some(text) => Some(parse_cursor(&text, "header.last-event-id")?),
        None => match q.after.as_deref() {
            Some(text) => Some(parse_cursor(text, "query.after")?),
            None => None,
        },
    };
    if let Some(w) = &q.workflow
        && (w.is_empty() || w.len() > MAX_WORKFLOW_LEN)
    {
        return Err(Problem::new(
            ProblemKind::BadQuery,
            format!("workflow must be a name of 1 to {MAX_WORKFLOW_LEN} bytes"),
        )
        .culprit("query.workflow")
        .value(w));
    }
    let settings = settings.map_or_else(|| hub.defaults.clone(), |s| s.0);
    let admitted = match settings.admit() {
        Ok(a) => a,
        Err(refused) => return Ok(*refused),
    };
    // Also tells a store without a feed (`unsupported`) before the stream starts.
    let head = st
        .engine
        .store()
        .feed_head()
        .await
        .map_err(crate::Error::from)?;
    let cursor = match from {
        Some(c) if c > head => {
            return Err(Problem::new(
                ProblemKind::BadCursor,
                "Last-Event-ID is past the end of the event feed: not a cursor this server handed out",
            )
            .culprit("header.last-event-id")
            .value(&c.to_string()));
        }
        Some(c) => c,
        None => head,
    };
    let client = AllClient {
        wakes: hub.wakes(&st),
        keep: super::keep_alive_timer(settings.keep_alive),
        tick: poll_timer(settings.poll),
        st,
        _admitted: admitted,
        cursor,
        workflow: q.workflow,
        read: true,
        started: false,
        done: false,
    };
    Ok(super::event_stream(futures_util::stream::unfold(client, AllClient::next)).into_response())
}

fn parse_cursor(text: &str, culprit: &str) -> Result<FeedCursor, Problem> {
    text.parse::<FeedCursor>().map_err(|_| {
        Problem::new(
            ProblemKind::BadCursor,
            "not a feed cursor (`<group>-<row>-<seq>`, as the stream's ids)",
        )
        .culprit(culprit)
        .value(text)
    })
}

fn poll_timer(every: std::time::Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// One client's all-runs stream.
struct AllClient {
    st: Shared,
    _admitted: Admitted,
    /// Where the feed is read on from.
    cursor: FeedCursor,
    workflow: Option<String>,
    wakes: Wakes,
    keep: tokio::time::Interval,
    tick: tokio::time::Interval,
    /// Read the feed before waiting.
    read: bool,
    started: bool,
    done: bool,
}

impl AllClient {
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            return Some((Ok(frame::preamble()), self));
        }
        loop {
            if self.read {
                // Marked seen before the read: a wake-up during it reads again.
                self.wakes.store.borrow_and_update();
                self.wakes.local.borrow_and_update();
                if let Some(out) = self.read_feed().await {
                    self.keep.reset();
                    return Some((Ok(out), self));
                }
            }
            tokio::select! {
                r = self.wakes.local.changed() => self.read = r.is_ok() || self.read,
                r = self.wakes.store.changed() => self.read = r.is_ok() || self.read,
                _ = self.tick.tick() => self.read = true,
                _ = self.keep.tick() => return Some((Ok(frame::keep_alive()), self)),
                () = self.st.closing.cancelled() => return None,
            }
        }
    }

    /// The next page of the feed as messages (`None` when there is nothing new); a
    /// store error is said in an `error` message and ends the stream.
    async fn read_feed(&mut self) -> Option<Bytes> {
        let page = match self
            .st
            .engine
            .store()
            .events_since(self.cursor, PAGE, self.workflow.as_deref())
            .await
        {
            Ok(page) => page,
            Err(e) => {
                self.done = true;
                let detail = super::super::problem::scrub(&e.to_string());
                let at = self.cursor.to_string();
                return Some(frame::control(
                    "error",
                    Some(&at),
                    &serde_json::json!({ "detail": detail, "resume_after": at }),
                ));
            }
        };
        self.read = page.events.len() == PAGE;
        self.cursor = page.next;
        if page.events.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(CHUNK.min(page.events.len() * 256));
        for fe in &page.events {
            frame::render_into(&mut out, &fe.cursor, &fe.event);
        }
        Some(Bytes::from(out))
    }
}
