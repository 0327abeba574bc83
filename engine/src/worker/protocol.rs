//! The worker line protocol: one JSON object per line on the worker's protocol channel
//! (its stdin, a socket, after the input), behind a fixed, versioned prefix. See
//! `docs/protocol.md`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorInfo;
use crate::log_level::LogLevel;

/// The protocol version this build speaks. Version 2 moved the protocol lines off
/// stdout onto a channel of their own (the worker's stdin socket); version 1 shared
/// stdout with the job's console output.
pub const VERSION: u32 = 2;

/// What every protocol line starts with, followed by the version and one space:
/// `@dagforge:2 {"type":"heartbeat"}`.
pub const PREFIX: &str = "@dagforge:";

/// How much of an offending line a [`ProtocolError`] quotes.
const QUOTE: usize = 120;

/// One protocol message.
///
/// ```
/// use dagforge::worker::{Message, parse_line};
/// let line = Message::Progress { percent: 50, message: "half way".into() }.encode();
/// assert_eq!(line, r#"@dagforge:2 {"type":"progress","percent":50,"message":"half way"}"#);
/// assert_eq!(parse_line(line.as_bytes()).unwrap(), Some(Message::Progress {
///     percent: 50,
///     message: "half way".into(),
/// }));
/// assert_eq!(parse_line(b"an ordinary println").unwrap(), None);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Message {
    /// The first line a worker writes: who it is.
    Hello {
        /// The protocol version (the same as in the prefix).
        version: u32,
        /// The job the worker is about to run.
        job: String,
        /// The worker's process id.
        pid: u32,
        /// The dagforge version the worker was built with.
        dagforge: String,
    },
    /// A log line of the job.
    Log {
        /// Severity.
        level: LogLevel,
        /// The line.
        message: String,
    },
    /// Progress of the job.
    Progress {
        /// 0–100 (larger values are clamped).
        percent: u8,
        /// What it is doing.
        message: String,
    },
    /// The worker is alive.
    Heartbeat,
    /// The job succeeded with this output (the last line of a successful worker).
    Output {
        /// The job's output.
        value: Value,
    },
    /// The attempt failed (the last line of a failed worker).
    Error {
        /// What went wrong.
        error: ErrorInfo,
    },
}

impl Message {
    /// The message as one protocol line, without the line feed.
    pub fn encode(&self) -> String {
        // A message of this enum always serializes: its maps have string keys.
        let json = serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"type":"error","error":{{"kind":"executor","message":{}}}}}"#,
                Value::String(format!("cannot encode a protocol message: {e}"))
            )
        });
        format!("{PREFIX}{VERSION} {json}")
    }

    /// Whether the message ends the attempt (an output or an error).
    pub fn is_final(&self) -> bool {
        matches!(self, Message::Output { .. } | Message::Error { .. })
    }

    /// The message as one protocol line with its line feed, if that line takes at most
    /// `limit` bytes; otherwise `Err` with the line's full length. Memory stays within
    /// `limit` (plus the encoder's buffer) however large the message is: a too large
    /// message is measured, not kept.
    pub fn encode_within(&self, limit: usize) -> Result<Vec<u8>, u64> {
        let mut out = Bounded {
            buf: format!("{PREFIX}{VERSION} ").into_bytes(),
            len: 0,
            limit,
        };
        out.len = out.buf.len() as u64;
        if serde_json::to_writer(&mut out, self).is_err() {
            // Writing to memory cannot fail, and a message always serializes; report
            // it as too large rather than send a broken line.
            return Err(out.len.max(limit as u64 + 1));
        }
        out.len += 1;
        if out.len > limit as u64 {
            return Err(out.len);
        }
        out.buf.push(b'\n');
        Ok(out.buf)
    }
}

/// A buffer that keeps bytes up to a limit and only counts the rest.
struct Bounded {
    buf: Vec<u8>,
    len: u64,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.len += bytes.len() as u64;
        if self.len <= self.limit as u64 {
            self.buf.extend_from_slice(bytes);
        } else if !self.buf.is_empty() {
            self.buf = Vec::new();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A line that starts with [`PREFIX`] but is not a valid message of this version.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The version after the prefix is not a number.
    #[error("protocol line has no version number after `{PREFIX}`: `{line}`")]
    BadVersion {
        /// The start of the line.
        line: String,
    },
    /// The line speaks another protocol version.
    #[error(
        "protocol version {found} is not supported (this build speaks version {VERSION}): `{line}`"
    )]
    UnknownVersion {
        /// The version the line claims.
        found: u64,
        /// The start of the line.
        line: String,
    },
    /// The JSON after the prefix is invalid or is not a known message.
    #[error("malformed protocol message ({reason}): `{line}`")]
    Malformed {
        /// What serde found wrong.
        reason: String,
        /// The start of the line.
        line: String,
    },
}

/// Parses one line of worker output (with or without its line feed).
///
/// `Ok(None)` means the line is not a protocol line (console output); an error means it
/// starts with [`PREFIX`] but is not a valid message. Never panics, whatever the bytes.
pub fn parse_line(line: &[u8]) -> Result<Option<Message>, ProtocolError> {
    let line = trim_eol(line);
    let Some(rest) = line.strip_prefix(PREFIX.as_bytes()) else {
        return Ok(None);
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (version, body) = rest.split_at(digits);
    let version = std::str::from_utf8(version)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| ProtocolError::BadVersion { line: quote(line) })?;
    if version != u64::from(VERSION) {
        return Err(ProtocolError::UnknownVersion {
            found: version,
            line: quote(line),
        });
    }
    let Some(json) = body.strip_prefix(b" ") else {
        return Err(ProtocolError::Malformed {
            reason: "expected one space between the version and the JSON object".into(),
            line: quote(line),
        });
    };
    serde_json::from_slice::<Message>(json)
        .map(Some)
        .map_err(|e| ProtocolError::Malformed {
            reason: e.to_string(),
            line: quote(line),
        })
}

fn trim_eol(mut line: &[u8]) -> &[u8] {
    if let Some(l) = line.strip_suffix(b"\n") {
        line = l;
    }
    if let Some(l) = line.strip_suffix(b"\r") {
        line = l;
    }
    line
}

/// The start of a line, lossily decoded, for error messages.
pub(crate) fn quote(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(trim_eol(line));
    if text.chars().count() <= QUOTE {
        text.into_owned()
    } else {
        let mut s: String = text.chars().take(QUOTE).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::error::ErrorKind;

    fn all_messages() -> Vec<Message> {
        vec![
            Message::Hello {
                version: VERSION,
                job: "echo".into(),
                pid: 42,
                dagforge: "0.1.0".into(),
            },
            Message::Log {
                level: LogLevel::Warn,
                message: "disk \"almost\" full\nsecond line".into(),
            },
            Message::Progress {
                percent: 100,
                message: String::new(),
            },
            Message::Heartbeat,
            Message::Output {
                value: json!({"a": [1, 2.5, null, "é"]}),
            },
            Message::Error {
                error: ErrorInfo::new(ErrorKind::Panicked, "job panicked: boom"),
            },
        ]
    }

    #[test]
    fn every_message_round_trips_on_one_line() {
        for m in all_messages() {
            let line = m.encode();
            assert!(!line.contains('\n'), "{line}");
            assert!(line.starts_with("@dagforge:2 {"), "{line}");
            let bounded = m.encode_within(line.len() + 1).unwrap();
            assert_eq!(bounded, format!("{line}\n").into_bytes());
            assert_eq!(m.encode_within(line.len()), Err(line.len() as u64 + 1));
            assert_eq!(parse_line(line.as_bytes()).unwrap(), Some(m.clone()));
            let with_eol = format!("{line}\r\n");
            assert_eq!(parse_line(with_eol.as_bytes()).unwrap(), Some(m));
        }
    }

    #[test]
    fn wire_format_is_stable() {
        assert_eq!(
            Message::Heartbeat.encode(),
            r#"@dagforge:2 {"type":"heartbeat"}"#
        );
        let e = Message::Error {
            error: ErrorInfo::new(ErrorKind::TimedOut, "late"),
        };
        assert_eq!(
            e.encode(),
            r#"@dagforge:2 {"type":"error","error":{"kind":"timed_out","message":"late"}}"#
        );
        assert!(e.is_final());
        assert!(!Message::Heartbeat.is_final());
    }

    #[test]
    fn console_lines_are_not_protocol_lines() {
        for line in [
            &b""[..],
            b"hello",
            b" @dagforge:1 {\"type\":\"heartbeat\"}",
            b"@dagforge",
            b"\xff\xfe garbage",
        ] {
            assert_eq!(parse_line(line).unwrap(), None);
        }
    }

    #[test]
    fn malformed_protocol_lines_are_typed_errors() {
        let err = |l: &[u8]| parse_line(l).unwrap_err();
        assert!(matches!(
            err(b"@dagforge: {}"),
            ProtocolError::BadVersion { .. }
        ));
        assert!(matches!(
            err(b"@dagforge:99999999999999999999999 {}"),
            ProtocolError::BadVersion { .. }
        ));
        match err(br#"@dagforge:1 {"type":"heartbeat"}"#) {
            ProtocolError::UnknownVersion { found, line } => {
                assert_eq!(found, 1);
                assert!(line.contains("heartbeat"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            err(br#"@dagforge:2{"type":"heartbeat"}"#),
            ProtocolError::Malformed { .. }
        ));
        let e = err(br#"@dagforge:2 {"type":"teleport"}"#);
        assert!(e.to_string().contains("teleport"), "{e}");
        assert!(matches!(
            err(b"@dagforge:2 {\"type\":\"log\",\"level\":\"info\",\"message\":\"\xff\"}"),
            ProtocolError::Malformed { .. }
        ));
        assert!(matches!(
            err(br#"@dagforge:2 {"type":"progress","percent":300,"message":""}"#),
            ProtocolError::Malformed { .. }
        ));
    }

    #[test]
    fn long_lines_are_quoted_short() {
        let line = format!("@dagforge:2 {{{}", "x".repeat(10_000));
        let e = parse_line(line.as_bytes()).unwrap_err();
        assert!(e.to_string().len() < 400, "{e}");
    }

    #[test]
    fn deep_nesting_is_a_typed_error_not_a_stack_overflow() {
        for depth in [129, 10_000, 1_000_000] {
            let (open, close) = ("[".repeat(depth), "]".repeat(depth));
            for line in [
                format!(r#"@dagforge:2 {{"type":"output","value":{open}{close}}}"#),
                format!(r#"@dagforge:2 {{"type":"output","value":{open}"#),
                format!(
                    r#"@dagforge:2 {{"type":"log","level":"info","message":"m","x":{open}{close}}}"#
                ),
                format!(r#"@dagforge:2 {{"type":"error","error":{open}{close}}}"#),
                format!("@dagforge:2 {open}"),
            ] {
                match parse_line(line.as_bytes()) {
                    Err(ProtocolError::Malformed { line, .. }) => assert!(line.len() < 400),
                    other => panic!("depth {depth}: {other:?}"),
                }
            }
        }
        // Nesting within serde_json's limit is an output like any other.
        let value: Value =
            serde_json::from_str(&format!("{}{}", "[".repeat(100), "]".repeat(100))).unwrap();
        let line = Message::Output {
            value: value.clone(),
        }
        .encode();
        assert_eq!(
            parse_line(line.as_bytes()).unwrap(),
            Some(Message::Output { value })
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_line(&bytes);
        }

        #[test]
        fn never_panics_on_random_prefixed_lines(
            version in "[0-9]{0,3}",
            sep in "[ \t]?",
            body in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut line = format!("{PREFIX}{version}{sep}").into_bytes();
            line.extend_from_slice(&body);
            let parsed = parse_line(&line);
            prop_assert!(parsed.map_or(true, |m| m.is_some()), "a prefixed line is never console");
        }

        #[test]
        fn never_panics_on_random_json_shapes(
            ty in "(hello|log|progress|heartbeat|output|error|[a-z]{1,8})",
            key in "[a-z]{1,8}",
            value in "(null|true|-?[0-9]{1,20}|\"[^\"\\\\]{0,8}\"|\\[\\]|\\{\\})",
        ) {
            let line = format!(r#"{PREFIX}{VERSION} {{"type":"{ty}","{key}":{value}}}"#);
            let _ = parse_line(line.as_bytes());
        }

        #[test]
        fn logs_round_trip(message in any::<String>(), percent in 0u8..=100) {
            for m in [
                Message::Log { level: LogLevel::Info, message: message.clone() },
                Message::Progress { percent, message: message.clone() },
            ] {
                let line = m.encode();
                prop_assert!(!line.contains('\n'));
                prop_assert_eq!(parse_line(line.as_bytes()).unwrap(), Some(m));
            }
        }
    }
}
