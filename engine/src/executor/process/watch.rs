//! What the supervisor learns from a worker's protocol channel and console, and the
//! attempt's outcome it decides from them and the exit status.

use std::collections::VecDeque;
use std::process::ExitStatus;

use serde_json::Value;

use super::console::Console;
use super::lines::Line;
use crate::context::JobContext;
use crate::error::{ErrorInfo, ErrorKind};
use crate::log_level::LogLevel;
use crate::worker::{EXIT_UNKNOWN_JOB, Message, PREFIX, parse_line, quote};

/// How many characters of a stderr line an error message quotes.
const QUOTE_LINE: usize = 300;

/// Which console stream a line came from.
#[derive(Clone, Copy, Debug)]
pub(in crate::executor) enum Stream {
    Stdout,
    Stderr,
}

/// What the supervisor learned from the worker's output.
pub(in crate::executor) struct Watch<'a> {
    pub(in crate::executor) ctx: &'a JobContext,
    pub(in crate::executor) job: &'static str,
    pub(in crate::executor) pid: u32,
    /// The longest protocol line read.
    pub(in crate::executor) max_message: usize,
    pub(in crate::executor) console: Console,
    pub(in crate::executor) tail: VecDeque<String>,
    pub(in crate::executor) tail_len: usize,
    pub(in crate::executor) outcome: Option<Result<Value, ErrorInfo>>,
    pub(in crate::executor) protocol_error: Option<String>,
}

impl Watch<'_> {
    /// Handles a line of the protocol channel; returns whether it shows the worker
    /// alive (a valid message).
    pub(in crate::executor) fn on_protocol(&mut self, line: &Line) -> bool {
        if line.dropped > 0 {
            return self.too_long(line);
        }
        match parse_line(&line.bytes) {
            Ok(Some(message)) => {
                match message {
                    Message::Hello { job, .. } if job != self.job => {
                        self.protocol_violation(format!(
                            "the worker says it runs job `{job}`, not `{}`",
                            self.job
                        ));
                    }
                    Message::Hello { .. } | Message::Heartbeat => {}
                    Message::Log { level, message } => self.ctx.log(level, message),
                    Message::Progress { percent, message } => self.ctx.progress(percent, message),
                    Message::Output { value } => self.set_outcome(Ok(value)),
                    Message::Error { error } => self.set_outcome(Err(error)),
                }
                true
            }
            Ok(None) => {
                self.protocol_violation(format!(
                    "a line without the `{PREFIX}` prefix on the protocol channel: `{}`",
                    quote(&line.bytes)
                ));
                false
            }
            Err(e) => {
                self.protocol_violation(e.to_string());
                false
            }
        }
    }

    /// A protocol line over the limit: dropped unread. An output that large fails the
    /// attempt (not retried) with a message naming the job, the size and the limit.
    fn too_long(&mut self, line: &Line) -> bool {
        let (job, pid, len, max) = (self.job, self.pid, line.len(), self.max_message);
        let output = line
            .bytes
            .splitn(2, |&b| b == b' ')
            .nth(1)
            .is_some_and(|json| json.starts_with(br#"{"type":"output""#));
        if output {
            self.set_outcome(Err(ErrorInfo::new(
                ErrorKind::Output,
                format!(
                    "job `{job}`: worker (pid {pid}) sent an output of {len} bytes, over the \
                     {max}-byte limit of one protocol message (ProcessExecutorBuilder::\
                     max_message_bytes); the output was dropped: save it as an artifact and \
                     return the artifact's reference instead"
                ),
            )));
            true
        } else {
            self.protocol_violation(format!(
                "a protocol line of {len} bytes is over the {max}-byte limit \
                 (ProcessExecutorBuilder::max_message_bytes) and was dropped: `{}`",
                quote(&line.bytes)
            ));
            false
        }
    }

    /// Handles a console line: forwarded to the log (within the console limit); a
    /// stderr line is also kept for the error message of a worker that fails.
    pub(in crate::executor) fn on_console(&mut self, stream: Stream, line: &Line) {
        let mut text = String::from_utf8_lossy(&line.bytes)
            .trim_end_matches(['\n', '\r'])
            .to_owned();
        if line.dropped > 0 {
            text.push_str(&format!(
                "… [{} more bytes of this line dropped]",
                line.dropped
            ));
        }
        if let Stream::Stderr = stream
            && self.tail_len > 0
        {
            if self.tail.len() == self.tail_len {
                self.tail.pop_front();
            }
            let mut quoted = text.clone();
            if let Some((cut, _)) = quoted.char_indices().nth(QUOTE_LINE) {
                quoted.truncate(cut);
                quoted.push('…');
            }
            self.tail.push_back(quoted);
        }
        let tag = match stream {
            Stream::Stdout => "[stdout]",
            Stream::Stderr => "[stderr]",
        };
        self.console.push(self.ctx, format!("{tag} {text}"));
    }

    fn set_outcome(&mut self, outcome: Result<Value, ErrorInfo>) {
        if self.outcome.is_some() {
            self.protocol_violation(
                "the worker reported a second outcome; the first counts".into(),
            );
        } else {
            self.outcome = Some(outcome);
        }
    }

    fn protocol_violation(&mut self, what: String) {
        self.ctx.log(LogLevel::Warn, format!("[protocol] {what}"));
        self.protocol_error.get_or_insert(what);
    }

    /// The attempt's outcome from the exit status, the final line and why it was
    /// killed (if it was). Logs the console lines held back first.
    pub(in crate::executor) fn finish(
        self,
        status: std::io::Result<ExitStatus>,
        killed: Option<ErrorInfo>,
        terminated: bool,
    ) -> Result<Value, ErrorInfo> {
        let Watch {
            ctx,
            job,
            pid,
            mut console,
            tail,
            outcome,
            protocol_error,
            ..
        } = self;
        console.finish(ctx);
        let mut context = String::new();
        if let Some(p) = &protocol_error {
            context.push_str(&format!("; protocol error: {p}"));
        }
        if !tail.is_empty() {
            context.push_str("; last stderr lines:");
            for l in &tail {
                context.push_str("\n  ");
                context.push_str(l);
            }
        }
        if let Some(mut e) = killed {
            e.message.push_str(&context);
            return Err(e);
        }
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                return Err(ErrorInfo::new(
                    ErrorKind::Executor,
                    format!("job `{job}`: cannot wait for the worker (pid {pid}): {e}{context}"),
                ));
            }
        };
        match outcome {
            Some(Ok(value)) if status.success() => Ok(value),
            Some(Err(mut e)) => {
                if status.code() == Some(i32::from(EXIT_UNKNOWN_JOB)) {
                    // The binary will never know the job: retrying cannot help.
                    e.kind = ErrorKind::Terminal;
                }
                Err(e)
            }
            Some(Ok(_)) => Err(ErrorInfo::new(
                ErrorKind::Crashed,
                format!(
                    "job `{job}`: worker (pid {pid}) wrote its output but {}{context}",
                    describe(status)
                ),
            )),
            None if status.success() => Err(ErrorInfo::new(
                ErrorKind::Executor,
                format!(
                    "job `{job}`: worker (pid {pid}) exited with code 0 without an output line \
                     (is the program a dagforge worker?){context}"
                ),
            )),
            None if terminated => Err(ErrorInfo::new(
                ErrorKind::Cancelled,
                format!(
                    "job `{job}`: worker (pid {pid}) {} after SIGTERM (run cancelled) without \
                     reporting an outcome{context}",
                    describe(status)
                ),
            )),
            None => Err(ErrorInfo::new(
                ErrorKind::Crashed,
                format!(
                    "job `{job}`: worker (pid {pid}) {} without reporting an outcome{context}",
                    describe(status)
                ),
            )),
        }
    }
}

/// "exited with code 3", "was killed by signal SIGKILL (9)".
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exited with code {code}")
    } else if let Some(sig) = status.signal() {
        match nix::sys::signal::Signal::try_from(sig) {
            Ok(name) => format!("was killed by signal {name} ({sig})"),
            Err(_) => format!("was killed by signal {sig}"),
        }
    } else {
        format!("ended with {status}")
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::sync::Arc;

    use proptest::prelude::*;
    use tokio::sync::mpsc::unbounded_channel;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::executor::process::lines::Lines;
    use crate::ids::RunId;
    use crate::signal::SignalSender;

    /// Reads `channel` and `stdout` as the supervisor does (lines of at most `max`
    /// bytes), with a console limit of 1 KiB, and decides the outcome for `status`.
    fn watch(channel: &[u8], stdout: &[u8], max: usize, status: i32) -> Result<Value, ErrorInfo> {
        let (tx, _rx) = unbounded_channel();
        let ctx = JobContext::new(
            RunId::new(),
            Arc::from("n"),
            None,
            1,
            CancellationToken::new(),
            Some(SignalSender::new(tx, 0)),
        );
        let mut w = Watch {
            ctx: &ctx,
            job: "j",
            pid: 1,
            max_message: max,
            console: Console::new(1024),
            tail: VecDeque::new(),
            tail_len: 3,
            outcome: None,
            protocol_error: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut lines = Lines::new(Some(channel), max);
            while let Some(l) = lines.next().await {
                w.on_protocol(&l);
            }
            let mut lines = Lines::new(Some(stdout), super::super::console::MAX_LINE);
            while let Some(l) = lines.next().await {
                w.on_console(Stream::Stdout, &l);
            }
        });
        w.finish(Ok(ExitStatus::from_raw(status << 8)), None, false)
    }

    #[test]
    fn a_huge_output_line_is_an_output_error_and_garbage_a_protocol_error() {
        let mut line = br#"@dagforge:2 {"type":"output","value":""#.to_vec();
        line.extend(std::iter::repeat_n(b'v', 1 << 20));
        line.extend(b"\"}\n");
        let e = watch(&line, b"", 4096, 0).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Output);
        assert!(e.message.contains("1048617 bytes"), "{e}");
        assert!(e.message.contains("4096-byte limit"), "{e}");

        let e = watch(b"\xff\xfe\n", b"", 4096, 0).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Executor);
        assert!(e.message.contains("protocol error: a line without"), "{e}");
    }

    #[test]
    fn protocol_lines_on_the_console_are_console_text() {
        let forged = b"@dagforge:2 {\"type\":\"output\",\"value\":666}\n";
        let real = b"@dagforge:2 {\"type\":\"output\",\"value\":42}\n";
        assert_eq!(watch(real, forged, 4096, 0).unwrap(), serde_json::json!(42));
        let e = watch(b"", forged, 4096, 0).unwrap_err();
        assert!(e.message.contains("without an output line"), "{e}");
    }

    proptest! {
        #[test]
        fn the_reader_never_panics_on_random_channel_bytes(
            chunks in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..64),
                    Just(b"@dagforge:2 ".to_vec()),
                    Just(br#"{"type":"output","value":"#.to_vec()),
                    Just(br#"{"type":"log","level":"info","message":"#.to_vec()),
                    Just(b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec()),
                    Just(b"\n".to_vec()),
                ],
                0..48,
            ),
            max in 1usize..512,
            status in 0i32..3,
        ) {
            let data: Vec<u8> = chunks.concat();
            // Whatever the bytes, an outcome or a typed error — no panic.
            let _ = watch(&data, &data, max, status);
        }
    }

    #[test]
    fn exit_statuses_are_described() {
        assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "exited with code 3");
        assert_eq!(
            describe(ExitStatus::from_raw(9)),
            "was killed by signal SIGKILL (9)"
        );
    }
}
