//! Following a pod's log: line by line with a bound, with timestamps, resumed after a
//! disconnect (or a log rotation) from the last line's second with the lines already
//! read dropped.

use std::pin::Pin;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::LogParams;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::render::CONTAINER;
use crate::executor::lines::{Line, Lines};

type Stream = Pin<Box<dyn tokio::io::AsyncRead + Send>>;

/// The room a line's timestamp takes (`2006-01-02T15:04:05.999999999Z `).
const STAMP: usize = 64;

/// A pod's log, followed.
pub(super) struct Follow {
    api: Api<Pod>,
    pod: String,
    max: usize,
    lines: Option<Lines<Stream>>,
    /// The timestamp of the last line read, and how many lines read carry it.
    last: Option<(Timestamp, usize)>,
    /// While resuming: lines at the last timestamp still to drop.
    skip: usize,
    /// How many times the stream was opened.
    pub(super) opened: u32,
}

/// What following yields.
pub(super) enum Next {
    /// A line, without its timestamp.
    Line(Line),
    /// The stream ended (the container ended, or the connection broke): look at the
    /// pod, then [`Follow::open`] again or stop.
    Ended,
}

impl Follow {
    pub(super) fn new(api: Api<Pod>, pod: String, max_line: usize) -> Self {
        Follow {
            api,
            pod,
            max: max_line + STAMP,
            lines: None,
            last: None,
            skip: 0,
            opened: 0,
        }
    }

    /// Whether a stream is open.
    pub(super) fn is_open(&self) -> bool {
        self.lines.as_ref().is_some_and(|l| l.open)
    }

    /// Opens the log (following it, or reading what there is), from the start or
    /// from the last line's second.
    pub(super) async fn open(&mut self, follow: bool) -> Result<(), kube::Error> {
        let since = self
            .last
            .and_then(|(t, _)| Timestamp::from_second(t.as_second()).ok());
        let params = LogParams {
            container: Some(CONTAINER.into()),
            follow,
            timestamps: true,
            since_time: since,
            ..LogParams::default()
        };
        let stream = self.api.log_stream(&self.pod, &params).await?;
        let stream: Stream = Box::pin(stream.compat());
        self.lines = Some(Lines::new(Some(stream), self.max));
        self.skip = self.last.map_or(0, |(_, n)| n);
        self.opened += 1;
        Ok(())
    }

    /// The next new line. Cancel-safe.
    pub(super) async fn next(&mut self) -> Next {
        loop {
            let Some(lines) = self.lines.as_mut() else {
                return Next::Ended;
            };
            let Some(mut line) = lines.next().await else {
                self.lines = None;
                return Next::Ended;
            };
            let space = line.bytes.iter().position(|&b| b == b' ');
            let stamp = space
                .and_then(|i| std::str::from_utf8(&line.bytes[..i]).ok())
                .and_then(|s| s.parse::<Timestamp>().ok());
            let Some(stamp) = stamp else {
                // No timestamp (cannot happen with `timestamps=true`): keep the line.
                return Next::Line(line);
            };
            if let Some((last, seen)) = self.last {
                if stamp < last {
                    continue;
                }
                if stamp == last {
                    if self.skip > 0 {
                        self.skip -= 1;
                        continue;
                    }
                    self.last = Some((last, seen + 1));
                } else {
                    self.last = Some((stamp, 1));
                    self.skip = 0;
                }
            } else {
                self.last = Some((stamp, 1));
            }
            line.bytes.drain(..=space.unwrap_or(0));
            return Next::Line(line);
        }
    }
}
