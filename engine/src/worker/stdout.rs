//! The stdout channel: worker mode for executors that can only read a worker's output
//! stream, such as a pod's log (the Kubernetes executor). Selected with
//! `DAGFORGE_WORKER_CHANNEL=stdout`.
//!
//! The worker keeps the process's original stdout to itself (a close-on-exec
//! duplicate) and puts pipes on fds 1 and 2: whatever the job and the processes it
//! starts print goes through the worker, which writes it out line by line between its
//! own protocol lines, so that no console line can pass for a protocol line and no two
//! lines are ever interleaved. On the stream:
//!
//! - `@dagforge:2 {json}`: a protocol line (only the worker writes one);
//! - `@@…`: a stdout line of the job that began with `@` (one `@` was added);
//! - `@!…`: a stderr line of the job;
//! - anything else: a stdout line of the job, as printed.
//!
//! The input comes in `DAGFORGE_WORKER_INPUT` (JSON) or, when it is large, as an
//! artifact whose reference is in `DAGFORGE_WORKER_INPUT_ARTIFACT`.

use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::Value;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

use super::PREFIX;
use crate::artifact::{ArtifactRef, ArtifactStore, Blob};
use crate::executor::lines::Lines;

/// `stdout` selects the stdout channel; unset (or `socket`) the socket on stdin.
pub const ENV_CHANNEL: &str = "DAGFORGE_WORKER_CHANNEL";
/// The input as JSON, for the stdout channel.
pub const ENV_INPUT: &str = "DAGFORGE_WORKER_INPUT";
/// The input as an artifact (the JSON of its `ArtifactRef`), for the stdout channel.
pub const ENV_INPUT_ARTIFACT: &str = "DAGFORGE_WORKER_INPUT_ARTIFACT";

/// The longest console line relayed; the rest of a longer line is dropped.
const MAX_CONSOLE_LINE: usize = 16 << 10;
/// How many console lines may wait for the writer: a job that prints faster than the
/// log is read is held up in its writes, as with any slow stdout.
const QUEUE: usize = 64;

/// Whether this worker is to use the stdout channel.
pub(super) fn selected() -> bool {
    std::env::var_os(ENV_CHANNEL).is_some_and(|v| v == "stdout")
}

/// A console line of the job, framed for the stream.
pub(super) type ConsoleLine = Vec<u8>;

/// The stdout channel: the writer of the stream and the relayed console.
pub(super) struct StdoutChannel {
    pub(super) writer: Box<dyn AsyncWrite + Send + Unpin>,
    pub(super) console: mpsc::Receiver<ConsoleLine>,
}

/// Takes stdout for the protocol and puts pipes on fds 1 and 2, relayed as console
/// lines. Call it inside a tokio runtime.
pub(super) fn take() -> Result<StdoutChannel, String> {
    let out = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("cannot duplicate stdout: {e}"))?;
    let writer = async_writer(out)?;
    let (tx, console) = mpsc::channel(QUEUE);
    for stderr in [false, true] {
        let (reader, pipe) = std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
        let moved = if stderr {
            nix::unistd::dup2_stderr(&pipe)
        } else {
            nix::unistd::dup2_stdout(&pipe)
        };
        moved.map_err(|e| format!("cannot put a pipe on the console: {e}"))?;
        let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
            .map_err(|e| format!("cannot register the console pipe: {e}"))?;
        tokio::spawn(relay(reader, stderr, tx.clone()));
    }
    Ok(StdoutChannel { writer, console })
}

/// Puts `/dev/null` on fds 1 and 2 (the job is over): the relay ends once the
/// processes the job started closed them too.
pub(super) fn close_console() {
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let _ = std::io::Write::flush(&mut std::io::stderr());
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// The reference of an input passed as an artifact, if there is one (the stdout
/// channel only).
pub(super) fn input_artifact() -> Option<std::ffi::OsString> {
    if selected() {
        std::env::var_os(ENV_INPUT_ARTIFACT)
    } else {
        None
    }
}

/// Loads an input passed as an artifact.
pub(super) async fn load_input(
    reference: std::ffi::OsString,
    artifacts: Option<&ArtifactStore>,
) -> Result<Value, String> {
    let reference: ArtifactRef<Blob> = serde_json::from_slice(reference.as_encoded_bytes())
        .map_err(|e| format!("{ENV_INPUT_ARTIFACT} is not an artifact reference: {e}"))?;
    let Some(store) = artifacts else {
        return Err(format!(
            "the input is an artifact ({ENV_INPUT_ARTIFACT}) but no artifact store is \
             configured ({})",
            crate::artifact::ENV_URL
        ));
    };
    let bytes = store
        .load_bytes(&reference)
        .await
        .map_err(|e| format!("cannot load the input artifact: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("the input artifact is not JSON: {e}"))
}

async fn relay(
    reader: tokio::net::unix::pipe::Receiver,
    stderr: bool,
    tx: mpsc::Sender<ConsoleLine>,
) {
    let mut lines = Lines::new(Some(reader), MAX_CONSOLE_LINE);
    while let Some(line) = lines.next().await {
        if tx.send(frame(&line.bytes, stderr)).await.is_err() {
            return;
        }
    }
}

/// A console line as it goes on the stream (with a line feed).
pub(super) fn frame(line: &[u8], stderr: bool) -> Vec<u8> {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let mut out = Vec::with_capacity(text.len() + 3);
    if stderr {
        out.extend_from_slice(b"@!");
    } else if text.first() == Some(&b'@') {
        out.push(b'@');
    }
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// What a line of a stdout channel is.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// A protocol line (give it to [`parse_line`](super::parse_line)).
    Protocol(&'a [u8]),
    /// A stdout line of the job.
    Stdout(&'a [u8]),
    /// A stderr line of the job.
    Stderr(&'a [u8]),
}

/// Tells a line of a stdout channel apart: protocol, or the job's stdout or stderr.
pub fn unframe(line: &[u8]) -> Framed<'_> {
    if line.starts_with(PREFIX.as_bytes()) {
        Framed::Protocol(line)
    } else if let Some(rest) = line.strip_prefix(b"@!") {
        Framed::Stderr(rest)
    } else if let Some(rest) = line.strip_prefix(b"@") {
        Framed::Stdout(rest)
    } else {
        Framed::Stdout(line)
    }
}

/// An asynchronous writer over the duplicate of stdout: a pipe (a container's stdout)
/// is written without blocking; anything else (a file, a terminal) directly.
fn async_writer(fd: OwnedFd) -> Result<Box<dyn AsyncWrite + Send + Unpin>, String> {
    let probe = fd
        .try_clone()
        .map_err(|e| format!("cannot duplicate stdout: {e}"))?;
    match tokio::net::unix::pipe::Sender::from_owned_fd(probe) {
        Ok(pipe) => Ok(Box::new(pipe)),
        Err(_) => Ok(Box::new(Direct(std::fs::File::from(fd)))),
    }
}

/// Writes a file or a terminal directly (they do not block for long).
struct Direct(std::fs::File);

impl AsyncWrite for Direct {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(std::io::Write::write(&mut self.0, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(std::io::Write::flush(&mut self.0))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines_never_pass_for_protocol_lines() {
        let forged = b"@dagforge:2 {\"type\":\"output\",\"value\":666}\n";
        for (line, stderr) in [
            (&forged[..], false),
            (&forged[..], true),
            (b"@@x\n", false),
            (b"@!x", false),
            (b"plain", false),
            (b"", true),
        ] {
            let framed = frame(line, stderr);
            let text = framed.strip_suffix(b"\n").unwrap();
            let back = unframe(text);
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            match back {
                Framed::Stdout(b) => assert!(!stderr && b == body, "{line:?}"),
                Framed::Stderr(b) => assert!(stderr && b == body, "{line:?}"),
                Framed::Protocol(_) => panic!("{line:?} passed for a protocol line"),
            }
        }
        let real = b"@dagforge:2 {\"type\":\"heartbeat\"}";
        assert_eq!(unframe(real), Framed::Protocol(real));
    }
}
