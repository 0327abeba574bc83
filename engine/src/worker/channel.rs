//! The worker's end of the protocol channel: its stdin, a Unix socket the executor
//! created. The worker reads its input from it until the executor shuts its side down,
//! then writes its protocol lines to it.
//!
//! First thing, the worker takes the socket off fd 0 — keeping a close-on-exec
//! duplicate — and puts `/dev/null` there: neither the job's own code (a `println!`,
//! a library's logging, a read of stdin) nor the processes it starts can reach the
//! channel by accident, and a protocol-looking line printed on stdout stays console
//! output. Every write is asynchronous: a slow executor holds up the writer task,
//! never a runtime thread.

use std::os::fd::AsFd;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::{Receiver, UnboundedReceiver};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::Orphan;
use super::invocation::DEFAULT_MAX_MESSAGE;
use super::protocol::{Message, VERSION};
use super::stdout::ConsoleLine;
use crate::error::{ErrorInfo, ErrorKind};
use crate::signal::Signal;

/// A message to write as the worker's last line, and who waits until it is written.
pub(super) type LastWords = (Message, oneshot::Sender<()>);

/// The protocol channel, taken over from fd 0.
pub(super) struct Channel {
    /// Where the input comes from (the socket; the environment for the stdout
    /// channel).
    input: Box<dyn AsyncRead + Send + Unpin>,
    /// Where the protocol lines go.
    output: Box<dyn AsyncWrite + Send + Unpin>,
    /// The job's console lines to relay (the stdout channel, see `stdout.rs`).
    console: Option<Receiver<ConsoleLine>>,
    /// The longest line the executor reads.
    limit: usize,
    /// The job, for the messages that replace a line that would be too long.
    job: String,
}

impl Channel {
    /// Takes the channel from stdin and puts `/dev/null` on fd 0. Call it inside a
    /// tokio runtime. Fails if stdin is no Unix socket: the process was not started
    /// by a process executor that speaks this protocol version.
    pub(super) fn take() -> Result<Self, String> {
        let fd = std::io::stdin()
            .as_fd()
            // A close-on-exec duplicate (F_DUPFD_CLOEXEC): not inherited by what the
            // job starts.
            .try_clone_to_owned()
            .map_err(|e| format!("cannot duplicate stdin: {e}"))?;
        let socket = std::os::unix::net::UnixStream::from(fd);
        if let Err(e) = socket.local_addr() {
            return Err(format!(
                "stdin is not the socket of a process executor ({e}): a worker is started by \
                 a dagforge ProcessExecutor that speaks protocol version {VERSION}"
            ));
        }
        let null = std::fs::File::open("/dev/null")
            .map_err(|e| format!("cannot open /dev/null for stdin: {e}"))?;
        nix::unistd::dup2_stdin(&null)
            .map_err(|e| format!("cannot put /dev/null on stdin: {e}"))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("cannot make the protocol socket non-blocking: {e}"))?;
        let stream = tokio::net::UnixStream::from_std(socket)
            .map_err(|e| format!("cannot register the protocol socket: {e}"))?;
        Ok(Self::socket(stream))
    }

    /// The channel over a socket: input and protocol lines both on it.
    fn socket(stream: tokio::net::UnixStream) -> Self {
        let (input, output) = stream.into_split();
        Channel {
            input: Box::new(input),
            output: Box::new(output),
            console: None,
            limit: DEFAULT_MAX_MESSAGE,
            job: String::new(),
        }
    }

    /// The stdout channel (see `stdout.rs`): protocol lines and the relayed console
    /// on the process's stdout, the input from the environment.
    pub(super) fn take_stdout() -> Result<Self, String> {
        let taken = super::stdout::take()?;
        let input = std::env::var_os(super::stdout::ENV_INPUT)
            .map(|v| v.into_encoded_bytes())
            .unwrap_or_default();
        Ok(Channel {
            input: Box::new(std::io::Cursor::new(input)),
            output: taken.writer,
            console: Some(taken.console),
            limit: DEFAULT_MAX_MESSAGE,
            job: String::new(),
        })
    }
    /// Sets the longest line the executor reads and the job's name (for the messages
    /// that replace too long lines).
    pub(super) fn set_limit(&mut self, limit: usize, job: &str) {
        self.limit = limit;
        job.clone_into(&mut self.job);
    }

    /// Reads the input: JSON up to the end of the executor's side (nothing is `null`).
    pub(super) async fn read_input(&mut self) -> Result<Value, String> {
        let mut buf = Vec::new();
        self.input
            .read_to_end(&mut buf)
            .await
            .map_err(|e| format!("cannot read the input from the executor: {e}"))?;
        if buf.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&buf).map_err(|e| format!("the input is not JSON: {e}"))
    }

    /// Writes one message as one line (see [`fit`] for a message too long for one).
    pub(super) async fn send(&mut self, message: &Message) -> std::io::Result<()> {
        let line = fit(message, self.limit, &self.job);
        self.output.write_all(&line).await?;
        self.output.flush().await
    }

    /// The one writer of protocol lines: hello, then the job's signals and heartbeats
    /// in order, until the outcome (or `last`'s message, written as the last line).
    /// Returns whether every line was written.
    ///
    /// It also notices when the engine that started the worker is gone (a write fails,
    /// or at a heartbeat the parent process is another one) and then cancels the job:
    /// an orphaned worker does not keep running (see `exit_after_grace`).
    pub(super) async fn write_lines(
        mut self,
        hello: Message,
        mut rx: UnboundedReceiver<(u32, Signal)>,
        mut last: Receiver<LastWords>,
        heartbeat: Duration,
        cancel: CancellationToken,
        orphan: Orphan,
    ) -> bool {
        let parent = std::os::unix::process::parent_id();
        let mut ok = self.send(&hello).await.is_ok();
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (message, done) = tokio::select! {
                biased;
                Some((message, done)) = last.recv() => (message, Some(done)),
                line = next_console(&mut self.console) => {
                    match line {
                        Some(line) if ok => ok = self.output.write_all(&line).await.is_ok(),
                        Some(_) => {}
                        None => self.console = None,
                    }
                    continue;
                }
                signal = rx.recv() => match signal {
                    Some((_, Signal::Log { level, message })) => (Message::Log { level, message }, None),
                    Some((_, Signal::Progress { percent, message })) => {
                        (Message::Progress { percent, message }, None)
                    }
                    Some((_, Signal::Done(Ok(value)))) => (Message::Output { value }, None),
                    Some((_, Signal::Done(Err(error)))) => (Message::Error { error }, None),
                    Some((_, Signal::Retry { .. } | Signal::Cancel)) => continue,
                    None => return false,
                },
                _ = beat.tick() => {
                    if std::os::unix::process::parent_id() != parent {
                        // Re-parented: the engine died.
                        orphan.found();
                        cancel.cancel();
                    }
                    (Message::Heartbeat, None)
                }
            };
            // After a failed write (the executor is gone) nothing more is written, and
            // the job is cancelled.
            if ok {
                ok = self.send(&message).await.is_ok();
                if !ok {
                    orphan.found();
                    cancel.cancel();
                }
            }
            if let Some(done) = done {
                let _ = done.send(());
                return false;
            }
            if message.is_final() {
                return self.drain_console(ok).await;
            }
        }
    }

    /// After the last protocol line: relays the console lines still coming (the worker
    /// closes its console once the job is over) for at most [`DRAIN`]. Returns `ok`
    /// unless a write failed.
    async fn drain_console(&mut self, mut ok: bool) -> bool {
        let Some(mut console) = self.console.take() else {
            return ok;
        };
        let deadline = tokio::time::Instant::now() + DRAIN;
        while let Ok(Some(line)) = tokio::time::timeout_at(deadline, console.recv()).await {
            if ok {
                ok = self.output.write_all(&line).await.is_ok();
            }
        }
        if ok {
            ok = self.output.flush().await.is_ok();
        }
        ok
    }
}

/// How long console lines are still relayed after the last protocol line.
const DRAIN: Duration = Duration::from_millis(500);

/// The next console line to relay; never ready without a console.
async fn next_console(console: &mut Option<Receiver<ConsoleLine>>) -> Option<ConsoleLine> {
    match console {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

/// The room a cut message keeps for its JSON envelope and the cut marker.
const ENVELOPE: usize = 512;

/// `message` as one line of at most `limit` bytes. A longer one is replaced: an output
/// by an `output` error naming the job, the size and the limit (the output is not
/// sent); a log line, a progress message or an error message is cut, with a note of how
/// much was cut.
pub(super) fn fit(message: &Message, limit: usize, job: &str) -> Vec<u8> {
    let len = match message.encode_within(limit) {
        Ok(line) => return line,
        Err(len) => len,
    };
    let replaced = match message {
        Message::Output { .. } => Message::Error {
            error: ErrorInfo::new(
                ErrorKind::Output,
                format!(
                    "job `{job}`: its output takes {len} bytes as a protocol line, over the \
                     {limit}-byte limit of one worker message (ProcessExecutorBuilder::\
                     max_message_bytes): the output was not sent; save it as an artifact and \
                     return the artifact's reference instead"
                ),
            ),
        },
        Message::Log { level, message } => Message::Log {
            level: *level,
            message: cut(message, limit, len),
        },
        Message::Progress { percent, message } => Message::Progress {
            percent: *percent,
            message: cut(message, limit, len),
        },
        Message::Error { error } => Message::Error {
            error: ErrorInfo::new(error.kind, cut(&error.message, limit, len)),
        },
        Message::Hello { .. } | Message::Heartbeat => Message::Error {
            error: ErrorInfo::new(
                ErrorKind::Executor,
                format!(
                    "job `{job}`: a protocol message of {len} bytes is over the {limit}-byte limit"
                ),
            ),
        },
    };
    replaced.encode_within(limit).unwrap_or_else(|_| {
        // Even the replacement does not fit (a job name of kilobytes): the shortest
        // error there is.
        let mut line = Message::Error {
            error: ErrorInfo::new(ErrorKind::Output, "protocol message over the limit"),
        }
        .encode()
        .into_bytes();
        line.push(b'\n');
        line
    })
}

/// The start of `text`, short enough that its message fits `limit` (its line took
/// `len` bytes), with a note of how much was cut.
fn cut(text: &str, limit: usize, len: u64) -> String {
    // Escapes may make the JSON of a character up to 6 bytes (`\u0000`).
    let keep = limit.saturating_sub(ENVELOPE) / 6;
    let mut end = keep.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… [cut: this message took {len} bytes as a protocol line, over the {limit}-byte \
         limit of one worker message]",
        &text[..end]
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::sync::mpsc::unbounded_channel;

    use super::*;
    use crate::log_level::LogLevel;
    use crate::worker::parse_line;

    #[test]
    fn a_slow_executor_holds_up_the_writer_task_not_the_runtime() {
        // One runtime thread: a blocking write would stop everything on it.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut ours, theirs) = tokio::net::UnixStream::pair().unwrap();
            let mut channel = Channel::socket(theirs);
            channel.limit = 1 << 20;
            channel.job = "j".into();
            let (tx, rx) = unbounded_channel();
            // 8 MiB of log lines, far over the socket's buffer, and nobody reads yet.
            for _ in 0..128 {
                let message = "x".repeat(64 << 10);
                tx.send((
                    0,
                    Signal::Log {
                        level: LogLevel::Info,
                        message,
                    },
                ))
                .unwrap();
            }
            let (_last, last_rx) = tokio::sync::mpsc::channel(1);
            let writer = tokio::spawn(channel.write_lines(
                Message::Heartbeat,
                rx,
                last_rx,
                Duration::from_secs(3600),
                CancellationToken::new(),
                Orphan::default(),
            ));
            // The writer waits for the reader; the runtime's thread is free for a timer.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(!writer.is_finished(), "the socket cannot hold 8 MiB");
            tx.send((0, Signal::Done(Ok(json!(7))))).unwrap();
            let mut buf = Vec::new();
            ours.read_to_end(&mut buf).await.unwrap();
            assert!(writer.await.unwrap(), "every line was written");
            let lines: Vec<&[u8]> = buf
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            assert_eq!(lines.len(), 130, "hello, 128 logs, the output");
            assert_eq!(
                parse_line(lines[129]).unwrap(),
                Some(Message::Output { value: json!(7) })
            );
        });
    }

    #[test]
    fn messages_that_fit_are_sent_as_they_are() {
        let m = Message::Output {
            value: json!([1, 2]),
        };
        let mut line = m.encode().into_bytes();
        line.push(b'\n');
        assert_eq!(fit(&m, 4096, "j"), line);
    }

    #[test]
    fn a_too_large_output_becomes_an_output_error_naming_job_size_and_limit() {
        let m = Message::Output {
            value: json!({"blob": "x".repeat(100_000)}),
        };
        let line = fit(&m, 4096, "big");
        assert!(line.len() <= 4096);
        match parse_line(&line).unwrap() {
            Some(Message::Error { error }) => {
                assert_eq!(error.kind, ErrorKind::Output);
                for part in ["job `big`", "100050 bytes", "4096-byte limit"] {
                    assert!(error.message.contains(part), "{part}: {error}");
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn too_long_messages_are_cut_to_fit() {
        let long = "\u{1}é".repeat(50_000);
        for m in [
            Message::Log {
                level: LogLevel::Info,
                message: long.clone(),
            },
            Message::Progress {
                percent: 5,
                message: long.clone(),
            },
            Message::Error {
                error: ErrorInfo::new(ErrorKind::Failed, long.clone()),
            },
        ] {
            let line = fit(&m, 4096, "j");
            assert!(line.len() <= 4096, "{}", line.len());
            let parsed = parse_line(&line).unwrap().unwrap();
            let text = match parsed {
                Message::Log { message, .. } | Message::Progress { message, .. } => message,
                Message::Error { error } => error.message,
                other => panic!("{other:?}"),
            };
            assert!(text.starts_with("\u{1}é"), "{text}");
            assert!(text.contains("[cut: this message took"), "{text}");
        }
    }
}
