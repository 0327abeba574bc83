//! What the API answers, as JSON: runs, nodes, attempts, events and log lines, built
//! from the store's records. Every field a job or a user wrote (ids, inputs, outputs,
//! messages) is data: JSON-escaped here, escaped again wherever it is rendered.

use std::collections::BTreeMap;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::store::{ExecutionRecord, RunRecord};
use crate::{ErrorInfo, Event, EventKind};

/// Outputs larger than this, as JSON text, are cut to a preview (with their size).
pub(crate) const OUTPUT_PREVIEW_BYTES: usize = 64 * 1024;

/// A time as RFC 3339 in UTC.
pub(crate) fn time(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

fn millis_between(from: Option<SystemTime>, to: Option<SystemTime>) -> Option<u64> {
    let d = to?.duration_since(from?).ok()?;
    Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A run, as listed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub(crate) struct RunSummary {
    /// The run's id (a UUIDv7: ids sort by creation).
    pub(crate) id: String,
    /// Its workflow.
    pub(crate) workflow: String,
    /// The workflow version the run is pinned to.
    pub(crate) version: String,
    /// `pending`, `running`, `succeeded`, `failed` or `cancelled`.
    pub(crate) state: String,
    /// When it was recorded.
    pub(crate) created_at: DateTime<Utc>,
    /// When it started running.
    pub(crate) started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub(crate) finished_at: Option<DateTime<Utc>>,
    /// From start to finish, in milliseconds (finished runs).
    pub(crate) duration_ms: Option<u64>,
    /// Its priority.
    pub(crate) priority: i32,
    /// When it may start, if enqueued for later.
    pub(crate) not_before: Option<DateTime<Utc>>,
    /// The idempotency key it was enqueued with.
    pub(crate) idempotency_key: Option<String>,
    /// The lane it waits in.
    pub(crate) lane: Option<String>,
}

impl RunSummary {
    pub(crate) fn of(r: &RunRecord) -> Self {
        RunSummary {
            id: r.id.to_string(),
            workflow: r.workflow.clone(),
            version: r.version.clone(),
            state: r.state.to_string(),
            created_at: time(r.created_at),
            started_at: r.started_at.map(time),
            finished_at: r.finished_at.map(time),
            duration_ms: millis_between(r.started_at, r.finished_at),
            priority: r.priority,
            not_before: r.not_before.map(time),
            idempotency_key: r.idempotency_key.clone(),
            lane: r.queue.clone(),
        }
    }
}

/// A recorded row that could not be decoded, left out of a page.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub(crate) struct BadRowView {
    /// The run it belongs to, when known.
    pub(crate) run: Option<String>,
    /// What the row holds.
    pub(crate) what: String,
    /// Why it does not decode.
    pub(crate) detail: String,
}

/// Counts by state.
pub(crate) type Counts = BTreeMap<String, u64>;

/// A failure as recorded.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub(crate) struct ErrorView {
    /// `failed`, `terminal`, `panicked`, `timed_out`, `cancelled`, `input`, `output`,
    /// `fan_out`, `executor` or `interrupted`.
    pub(crate) kind: String,
    /// The message, with its causes.
    pub(crate) message: String,
}

impl ErrorView {
    pub(crate) fn of(e: &ErrorInfo) -> Self {
        ErrorView {
            kind: serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{:?}", e.kind)),
            message: e.message.clone(),
        }
    }
}

/// An output: whole when small, else a preview of its JSON text; always its size.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub(crate) struct OutputView {
    /// The output, when at most 64 KiB as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output: Option<Value>,
    /// The first 64 KiB of the output's JSON text, when it is larger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_preview: Option<String>,
    /// The output's size as JSON text, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_bytes: Option<u64>,
    /// Whether `output_preview` stands for a larger output.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) output_truncated: bool,
}

impl OutputView {
    pub(crate) fn of(output: Option<&Value>) -> Self {
        let Some(v) = output else {
            return OutputView::default();
        };
        let text = v.to_string();
        if text.len() <= OUTPUT_PREVIEW_BYTES {
            return OutputView {
                output: Some(v.clone()),
                output_preview: None,
                output_bytes: Some(text.len() as u64),
                output_truncated: false,
            };
        }
        let mut end = OUTPUT_PREVIEW_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        OutputView {
            output: None,
            output_preview: Some(text[..end].to_owned()),
            output_bytes: Some(text.len() as u64),
            output_truncated: true,
        }
    }
}

/// One attempt of a node or of a fan-out item.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub(crate) struct AttemptView {
    /// The fan-out item, if any.
    pub(crate) item: Option<u32>,
    /// The attempt number (0: the node before or without an attempt).
    pub(crate) attempt: u32,
    /// Its latest state.
    pub(crate) state: String,
    /// When it started running.
    pub(crate) started_at: Option<DateTime<Utc>>,
    /// When it reached its latest state.
    pub(crate) updated_at: DateTime<Utc>,
    /// From start to its latest state, in milliseconds.
    pub(crate) duration_ms: Option<u64>,
    /// Its error, if it failed.
    pub(crate) error: Option<ErrorView>,
    /// Why it was skipped or cancelled.
    pub(crate) reason: Option<String>,
    /// Its output.
    #[serde(flatten)]
    pub(crate) output: OutputView,
}

impl AttemptView {
    pub(crate) fn of(e: &ExecutionRecord) -> Self {
        AttemptView {
            item: e.item,
            attempt: e.attempt,
            state: e.state.to_string(),
            started_at: e.started_at.map(time),
            updated_at: time(e.updated_at),
            duration_ms: millis_between(e.started_at, Some(e.updated_at)),
            error: e.error.as_ref().map(ErrorView::of),
            reason: e.reason.clone(),
            output: OutputView::of(e.output.as_ref()),
        }
    }
}

/// An event of a run's log, as the API and its streams show it: `seq`, `at`, and the
/// event's `type` (`run`, `node`, `log`, `progress`) with its fields; a large node
/// output is cut to a preview.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub(crate) struct EventView {
    /// The run.
    pub(crate) run: String,
    /// Its position in the run's log, from 1.
    pub(crate) seq: u64,
    /// When it happened.
    pub(crate) at: DateTime<Utc>,
    /// What happened: `{"type": "node", "node": …, "from": …, "to": …}` and so on.
    pub(crate) event: Value,
}

impl EventView {
    pub(crate) fn of(e: &Event) -> Self {
        let mut event = serde_json::to_value(&e.kind).unwrap_or(Value::Null);
        if let (EventKind::Node(n), Value::Object(map)) = (&e.kind, &mut event)
            && let Some(out) = &n.output
        {
            let view = OutputView::of(Some(out));
            map.remove("output");
            if let Ok(Value::Object(fields)) = serde_json::to_value(view) {
                map.extend(fields);
            }
        }
        EventView {
            run: e.run.to_string(),
            seq: e.seq,
            at: time(e.at),
            event,
        }
    }
}

/// A log line of a job.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub(crate) struct LogLine {
    /// The event's position in the run's log.
    pub(crate) seq: u64,
    /// When it was logged.
    pub(crate) at: DateTime<Utc>,
    /// The node.
    pub(crate) node: String,
    /// The fan-out item.
    pub(crate) item: Option<u32>,
    /// The attempt.
    pub(crate) attempt: u32,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub(crate) level: String,
    /// The line, as the job wrote it.
    pub(crate) message: String,
}

impl LogLine {
    pub(crate) fn of(l: &crate::store::LogLine) -> Self {
        LogLine {
            seq: l.seq,
            at: time(l.at),
            node: l.node.clone(),
            item: l.item,
            attempt: l.attempt,
            level: l.level.to_string(),
            message: l.message.clone(),
        }
    }
}
