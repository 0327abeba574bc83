//! Running one worker to its end: feeding its input, reading its protocol channel and
//! console, enforcing heartbeats, cancellation and timeouts, and deciding the outcome.

use std::collections::VecDeque;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, sleep_until};

use super::Inner;
use super::console::{self, Console};
use super::lines::Lines;
use super::spawn::{Started, start};
use super::watch::{Stream, Watch};
use crate::error::{ErrorInfo, ErrorKind};
use crate::executor::Execution;
use crate::worker::Invocation;

/// How long the streams of a worker that exited are still read (a grandchild may hold
/// its stdout or stderr open).
const DRAIN: Duration = Duration::from_millis(250);

/// Runs one worker to its end and decides the attempt's outcome.
pub(super) async fn supervise(inner: &Inner, exec: &Execution) -> Result<Value, ErrorInfo> {
    let ctx = exec.context();
    let job = exec.job().name();
    let program = match &inner.program {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| {
            ErrorInfo::new(
                ErrorKind::Executor,
                format!("job `{job}`: cannot find the current executable to run as a worker: {e}"),
            )
        })?,
    };
    let invocation = Invocation {
        job: job.to_owned(),
        run: ctx.run_id(),
        node: ctx.node_id().to_owned(),
        item: ctx.item(),
        attempt: ctx.attempt(),
        execution: uuid::Uuid::now_v7().to_string(),
        timeout: exec.timeout(),
        heartbeat: inner.heartbeat_interval,
        grace: inner.grace,
        max_message: inner.max_message,
    };
    let Started {
        mut worker,
        channel,
    } = start(inner, exec, &program, &invocation)?;
    let pid = worker.child.id().unwrap_or(0);
    let input = serde_json::to_vec(exec.input()).unwrap_or_else(|_| b"null".to_vec());
    let (channel_in, mut channel_out) = channel.into_split();
    let feed = async move {
        // A worker that exits without reading its input closes the channel; its exit
        // status tells what happened. Shutting our side down ends the input.
        let _ = channel_out.write_all(&input).await;
        let _ = channel_out.shutdown().await;
    };
    tokio::pin!(feed);
    let mut proto = Lines::new(Some(channel_in), inner.max_message);
    let mut out = Lines::new(worker.child.stdout.take(), console::MAX_LINE);
    let mut err = Lines::new(worker.child.stderr.take(), console::MAX_LINE);
    let mut fed = false;

    let mut watch = Watch {
        ctx,
        job,
        pid,
        max_message: inner.max_message,
        console: Console::new(inner.console_limit),
        tail: VecDeque::new(),
        tail_len: inner.stderr_tail,
        outcome: None,
        protocol_error: None,
    };
    let started = Instant::now();
    let mut silent_until = started + inner.heartbeat_timeout;
    let hard_deadline = exec.timeout().map(|t| started + t + inner.grace);
    let mut term_deadline: Option<Instant> = None;
    let mut killed: Option<ErrorInfo> = None;
    let mut status: Option<std::io::Result<ExitStatus>> = None;
    let mut drain_deadline: Option<Instant> = None;

    loop {
        if status.is_some() && !proto.open && !out.open && !err.open {
            break;
        }
        let alive = status.is_none();
        tokio::select! {
            line = proto.next(), if proto.open => {
                if let Some(line) = line
                    && watch.on_protocol(&line)
                {
                    silent_until = Instant::now() + inner.heartbeat_timeout;
                }
            }
            line = out.next(), if out.open => {
                if let Some(line) = line {
                    watch.on_console(Stream::Stdout, &line);
                }
            }
            line = err.next(), if err.open => {
                if let Some(line) = line {
                    watch.on_console(Stream::Stderr, &line);
                }
            }
            st = worker.child.wait(), if alive => {
                status = Some(st);
                // What the job left running in the worker's group goes with it (and
                // then no longer holds the console open).
                worker.exited();
                drain_deadline = Some(Instant::now() + DRAIN);
            }
            () = &mut feed, if !fed => fed = true,
            () = ctx.cancelled(), if alive && term_deadline.is_none() => {
                worker.signal(Signal::SIGTERM);
                term_deadline = Some(Instant::now() + inner.grace);
            }
            () = at(term_deadline), if alive && killed.is_none() => {
                worker.signal(Signal::SIGKILL);
                killed = Some(ErrorInfo::new(
                    ErrorKind::Cancelled,
                    format!(
                        "job `{job}`: worker (pid {pid}) did not stop within the grace period \
                         ({:?}) after SIGTERM and was killed",
                        inner.grace
                    ),
                ));
            }
            () = sleep_until(silent_until), if alive && killed.is_none() => {
                worker.signal(Signal::SIGKILL);
                killed = Some(ErrorInfo::new(
                    ErrorKind::Crashed,
                    format!(
                        "job `{job}`: worker (pid {pid}) sent no heartbeat for {:?} and was killed",
                        inner.heartbeat_timeout
                    ),
                ));
            }
            () = at(hard_deadline), if alive && killed.is_none() => {
                worker.signal(Signal::SIGKILL);
                let limit = exec.timeout().unwrap_or_default();
                killed = Some(ErrorInfo::new(
                    ErrorKind::TimedOut,
                    format!(
                        "timed out after {limit:?}: job `{job}`: worker (pid {pid}) was still \
                         running {:?} later and was killed",
                        inner.grace
                    ),
                ));
            }
            () = at(drain_deadline) => {
                // The worker is gone but something it started holds its streams open.
                proto.close();
                out.close();
                err.close();
            }
        }
    }
    // The loop ends only once the child was waited for: no zombie.
    let status = status.unwrap_or_else(|| Err(std::io::Error::other("not waited for")));
    watch.finish(status, killed, term_deadline.is_some())
}

async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}
