//! SSE messages as bytes on the wire, each rendered once: a run's event is serialized
//! by its run's feeder and the same bytes go to every client of the run.

use std::fmt::Display;
use std::io::Write as _;

use bytes::Bytes;
use serde_json::Value;

use super::super::views::EventView;
use crate::{Event, EventKind};

/// Rendered events `first..=seq` of a run, as its feeder hands them to the run's
/// clients.
#[derive(Clone, Debug)]
pub(super) struct Frame {
    /// The first event's sequence number.
    pub(super) first: u64,
    /// The last event's sequence number.
    pub(super) seq: u64,
    /// Whether the last event ends the run.
    pub(super) terminal: bool,
    /// The SSE messages.
    pub(super) bytes: Bytes,
}

/// Whether `e` moves the run to a final state.
pub(super) fn ends_run(e: &Event) -> bool {
    matches!(e.kind, EventKind::Run { to, .. } if to.is_terminal())
}

/// The stable name of an event's kind, its SSE `event:` field.
pub(super) fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Run { .. } => "run",
        EventKind::Node(_) => "node",
        EventKind::Log { .. } => "log",
        EventKind::Progress { .. } => "progress",
        // `EventKind` may grow.
        #[allow(unreachable_patterns)]
        _ => "event",
    }
}

/// `e` as an SSE message with `id: <id>`, appended to `out`.
pub(super) fn render_into(out: &mut Vec<u8>, id: &dyn Display, e: &Event) {
    // Writing into a Vec cannot fail; the JSON is one line (newlines in strings are
    // escaped), so it fits one `data:` field.
    let _ = write!(out, "id: {id}\nevent: {}\ndata: ", kind_name(&e.kind));
    let _ = serde_json::to_writer(&mut *out, &EventView::of(e));
    out.extend_from_slice(b"\n\n");
}

/// A message the stream itself sends (`end`, `overflow`, `error`): `event: <name>`,
/// `id: <id>` when given (so that a client resumes from it), and `data` as JSON.
pub(super) fn control(name: &str, id: Option<&str>, data: &Value) -> Bytes {
    let mut out = Vec::with_capacity(128);
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    let _ = write!(out, "event: {name}\ndata: ");
    let _ = serde_json::to_writer(&mut out, data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The first bytes of every stream: how long a browser's `EventSource` waits before it
/// reconnects, in milliseconds.
pub(super) fn preamble() -> Bytes {
    Bytes::from_static(b"retry: 1000\n\n")
}

/// A keep-alive comment (ignored by clients, keeps proxies from closing the stream).
pub(super) fn keep_alive() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::{LogLevel, RunId, RunState};

    #[test]
    fn a_message_is_one_event_with_its_id_kind_and_one_line_of_json() {
        let run = RunId::new();
        let e = Event::new(
            run,
            7,
            SystemTime::now(),
            EventKind::Log {
                node: "a".into(),
                item: None,
                attempt: 1,
                level: LogLevel::Info,
                message: "two\nlines\r\n<script>".into(),
            },
        );
        let mut bytes = Vec::new();
        render_into(&mut bytes, &e.seq, &e);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("id: 7\nevent: log\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"), "{text}");
        assert_eq!(text.matches('\n').count(), 4, "{text}");
        let data: Value = serde_json::from_str(&text.lines().nth(2).unwrap()[6..]).unwrap();
        assert_eq!(data["seq"], 7);
        assert_eq!(data["event"]["message"], "two\nlines\r\n<script>");
        assert!(!ends_run(&e));

        let end = Event::new(
            run,
            8,
            SystemTime::now(),
            EventKind::Run {
                from: RunState::Running,
                to: RunState::Succeeded,
            },
        );
        assert!(ends_run(&end));
        let c = control(
            "overflow",
            Some("8"),
            &serde_json::json!({"resume_after": "8"}),
        );
        assert_eq!(
            &c[..],
            b"id: 8\nevent: overflow\ndata: {\"resume_after\":\"8\"}\n\n"
        );
    }
}
