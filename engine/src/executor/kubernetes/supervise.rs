//! Running one attempt as a Job to its end: create (or adopt) it, watch its pod,
//! follow its log through the worker protocol, enforce the pending timeout, heartbeats,
//! cancellation and timeouts, decide the outcome and delete the Job.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::time::{Instant, sleep_until};

use super::Inner;
use super::logs::{Follow, Next};
use super::pod::{Ended, PodView, view};
use super::render::Attempt;
use crate::error::{ErrorInfo, ErrorKind};
use crate::executor::Execution;
use crate::executor::process::console::Console;
use crate::executor::process::watch::{Stream, Watch};
use crate::worker::{Framed, Invocation, unframe};

/// How long to wait before opening a log stream that broke again.
const REOPEN: Duration = Duration::from_millis(200);

/// What woke the supervisor.
enum Wake {
    Pod(Option<Box<Event<Pod>>>),
    Log(Next),
    Cancelled,
    Deadline(Why),
    Reopen,
}

/// Which deadline passed.
#[derive(Clone, Copy)]
enum Why {
    Grace,
    Heartbeat,
    Timeout,
    Pending,
}

async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs one attempt as a Job and decides its outcome.
pub(super) async fn supervise(inner: &Arc<Inner>, exec: &Execution) -> Result<Value, ErrorInfo> {
    let ctx = exec.context();
    let job = exec.job().name();
    let env = super::input::env(inner, exec).await?;
    let attempt = Attempt {
        job,
        run: ctx.run_id(),
        node: ctx.node_id(),
        item: ctx.item(),
        attempt: ctx.attempt(),
        resources: super::config::effective_resources(
            &inner.checked.config,
            job,
            &exec.job().spec().resources,
        ),
        timeout: exec.timeout(),
        env,
    };
    let (name, adopted) = super::adopt::create_or_adopt(inner, &attempt).await?;
    if adopted {
        ctx.warn(format!(
            "[kubernetes] following Job `{name}` left running by another engine instead of \
             starting a new one"
        ));
    }
    let mut guard = super::JobGuard::new(inner, name.clone());
    let outcome = follow_job(inner, exec, &name).await;
    guard.delete().await;
    outcome
}

/// Follows the Job `name` to its end.
async fn follow_job(inner: &Inner, exec: &Execution, name: &str) -> Result<Value, ErrorInfo> {
    let ctx = exec.context();
    let job = exec.job().name();
    let c = &inner.checked;
    let config = watcher::Config::default().labels(&format!("job-name={name}"));
    let mut pods = watcher::watcher(inner.pods.clone(), config)
        .default_backoff()
        .boxed();
    let mut watch = Watch {
        ctx,
        job,
        pid: 0,
        max_message: c.config.max_message_bytes,
        console: Console::new(c.config.console_limit),
        tail: VecDeque::new(),
        tail_len: 20,
        outcome: None,
        protocol_error: None,
    };
    let started = Instant::now();
    let mut state = PodView::Pending { stuck: None };
    let mut pod_name: Option<String> = None;
    let mut follow: Option<Follow> = None;
    let mut drained = false;
    let mut final_read = false;
    let mut reopen: Option<Instant> = None;
    let mut pending_until = Some(started + c.pending_timeout);
    let mut silent_until: Option<Instant> = None;
    let hard_deadline = exec
        .timeout()
        .map(|t| started + c.pending_timeout + t + c.grace);
    let mut term_deadline: Option<Instant> = None;
    let mut killed: Option<ErrorInfo> = None;
    let mut stuck_logged = false;
    let mut gone = false;

    while killed.is_none() && !(drained || gone) {
        let wake = tokio::select! {
            e = pods.next() => Wake::Pod(e.and_then(Result::ok).map(Box::new)),
            n = async { match follow.as_mut() { Some(f) if f.is_open() => f.next().await, _ => std::future::pending().await } } => Wake::Log(n),
            () = ctx.cancelled(), if term_deadline.is_none() => Wake::Cancelled,
            () = at(term_deadline) => Wake::Deadline(Why::Grace),
            () = at(silent_until) => Wake::Deadline(Why::Heartbeat),
            () = at(hard_deadline) => Wake::Deadline(Why::Timeout),
            () = at(pending_until) => Wake::Deadline(Why::Pending),
            () = at(reopen) => Wake::Reopen,
        };
        match wake {
            Wake::Pod(None) => {}
            Wake::Pod(Some(e)) if matches!(*e, Event::Apply(_) | Event::InitApply(_)) => {
                let (Event::Apply(p) | Event::InitApply(p)) = *e else {
                    continue;
                };
                pod_name = p.metadata.name.clone();
                state = view(&p);
            }
            Wake::Pod(Some(e)) if matches!(*e, Event::Delete(_)) => {
                if !matches!(state, PodView::Ended(_) | PodView::Lost(_)) {
                    state = PodView::Lost("the pod was deleted before its container ended".into());
                }
                if follow.as_ref().is_none_or(|f| !f.is_open()) {
                    gone = true;
                }
            }
            Wake::Pod(Some(_)) => {}
            Wake::Log(Next::Line(line)) => match unframe(&line.bytes) {
                Framed::Protocol(_) => {
                    if watch.on_protocol(&line) {
                        silent_until = Some(Instant::now() + c.heartbeat_timeout);
                    }
                }
                Framed::Stdout(text) => watch.on_console(Stream::Stdout, &relined(&line, text)),
                Framed::Stderr(text) => watch.on_console(Stream::Stderr, &relined(&line, text)),
            },
            Wake::Log(Next::Ended) => {
                if matches!(state, PodView::Ended(_) | PodView::Lost(_)) {
                    if let Some(f) = follow.as_mut().filter(|_| !final_read) {
                        // Read what the stream may have missed, once, without following.
                        final_read = true;
                        if f.open(false).await.is_ok() {
                            continue;
                        }
                    }
                    drained = true;
                } else {
                    reopen = Some(Instant::now() + REOPEN);
                }
            }
            Wake::Reopen => reopen = None,
            Wake::Cancelled => {
                term_deadline = Some(Instant::now() + c.grace);
                inner.delete(name, Some(c.grace)).await;
            }
            Wake::Deadline(why) => {
                inner.kill(name).await;
                killed = Some(deadline_error(exec, &state, why, name, inner));
            }
        }
        // Start (or resume) following the log once the container runs or ended.
        let runs = matches!(state, PodView::Running | PodView::Ended(_));
        if runs {
            pending_until = None;
            if silent_until.is_none() && matches!(state, PodView::Running) {
                silent_until = Some(Instant::now() + c.heartbeat_timeout);
            }
            if matches!(state, PodView::Ended(_)) {
                silent_until = None;
            }
        }
        if let PodView::Pending { stuck: Some(why) } = &state
            && !stuck_logged
        {
            stuck_logged = true;
            ctx.warn(format!(
                "[kubernetes] the pod of Job `{name}` cannot start: {why} (the attempt fails if \
                 it is still pending {:?} after the Job was created)",
                c.pending_timeout
            ));
        }
        if matches!(state, PodView::Lost(_)) && follow.is_none() {
            drained = true;
        }
        if let (true, Some(pod)) = (runs, &pod_name)
            && reopen.is_none()
            && follow.as_ref().is_none_or(|f| !f.is_open())
            && !final_read
            && !drained
        {
            let f = follow.get_or_insert_with(|| {
                Follow::new(inner.pods.clone(), pod.clone(), c.config.max_message_bytes)
            });
            if let Err(e) = f.open(true).await {
                tracing::debug!(pod, error = %e, "cannot open the pod's log yet");
                reopen = Some(Instant::now() + REOPEN);
            }
        }
    }
    finish(watch, &state, killed, term_deadline.is_some(), name)
}

/// `text` (a part of `line`) as a line of its own.
fn relined(line: &crate::executor::lines::Line, text: &[u8]) -> crate::executor::lines::Line {
    crate::executor::lines::Line {
        bytes: text.to_vec(),
        dropped: line.dropped,
    }
}

fn deadline_error(
    exec: &Execution,
    state: &PodView,
    why: Why,
    name: &str,
    inner: &Inner,
) -> ErrorInfo {
    let job = exec.job().name();
    let c = &inner.checked;
    match why {
        Why::Grace => ErrorInfo::new(
            ErrorKind::Cancelled,
            format!(
                "job `{job}`: the pod of Job `{name}` did not stop within the grace period \
                 ({:?}) after its Job was deleted (run cancelled) and was killed",
                c.grace
            ),
        ),
        Why::Heartbeat => ErrorInfo::new(
            ErrorKind::Crashed,
            format!(
                "job `{job}`: the worker in Job `{name}` sent no heartbeat for {:?}; the Job \
                 was deleted",
                c.heartbeat_timeout
            ),
        ),
        Why::Timeout => ErrorInfo::new(
            ErrorKind::TimedOut,
            format!(
                "timed out after {:?}: job `{job}`: the pod of Job `{name}` was still running \
                 {:?} later and its Job was deleted",
                exec.timeout().unwrap_or_default(),
                c.grace
            ),
        ),
        Why::Pending => {
            let reason = match state {
                PodView::Pending { stuck: Some(why) } => why.clone(),
                _ => "no reason reported (is a node free for its requests?)".into(),
            };
            ErrorInfo::new(
                ErrorKind::Executor,
                format!(
                    "job `{job}`: the pod of Job `{name}` did not start within the pending \
                     timeout ({:?}): {reason}; the Job was deleted",
                    c.pending_timeout
                ),
            )
        }
    }
}

/// A container's end as an exit status: a signal when the runtime reports one (or an
/// exit code of 128 + a signal), else the code.
fn exit_status(e: &Ended) -> ExitStatus {
    match e.signal {
        Some(s) if s > 0 => ExitStatus::from_raw(s & 0x7f),
        _ if (129..160).contains(&e.exit_code) => ExitStatus::from_raw(e.exit_code - 128),
        _ => ExitStatus::from_raw((e.exit_code & 0xff) << 8),
    }
}

fn finish(
    watch: Watch<'_>,
    state: &PodView,
    killed: Option<ErrorInfo>,
    terminated: bool,
    name: &str,
) -> Result<Value, ErrorInfo> {
    let job = watch.job;
    let reported = watch.outcome.is_some();
    let outcome = match state {
        _ if killed.is_some() => watch.finish(Ok(ExitStatus::from_raw(9)), killed, terminated),
        PodView::Ended(e) if e.reason.as_deref() == Some("OOMKilled") && !reported => {
            let _ = watch.finish(Ok(exit_status(e)), None, terminated);
            Err(ErrorInfo::new(
                ErrorKind::Crashed,
                format!(
                    "OOMKilled: job `{job}`: the container of Job `{name}` went over its memory \
                     limit and was killed (exit code {}); raise its `memory_limit` \
                     (`[jobs.{job}.resources]` in dagforge.toml, or the builder's `resources`)",
                    e.exit_code
                ),
            ))
        }
        PodView::Ended(e) => watch.finish(Ok(exit_status(e)), None, terminated),
        PodView::Lost(why) if !reported => {
            let _ = watch.finish(Ok(ExitStatus::from_raw(9)), None, terminated);
            let kind = if terminated {
                ErrorKind::Cancelled
            } else {
                ErrorKind::Interrupted
            };
            Err(ErrorInfo::new(
                kind,
                format!(
                    "job `{job}`: the pod of Job `{name}` was lost before its worker reported \
                     an outcome ({why}): evicted, its node gone or deleted; it runs again if \
                     the node's retries allow"
                ),
            ))
        }
        PodView::Lost(_) | PodView::Pending { .. } | PodView::Running => {
            watch.finish(Ok(ExitStatus::from_raw(9)), None, terminated)
        }
    };
    outcome.map_err(|mut e| {
        e.message = e
            .message
            .replacen("worker (pid 0)", &format!("worker (Job `{name}`)"), 1);
        e
    })
}

/// The invocation of the worker in the pod.
pub(super) fn invocation(inner: &Inner, exec: &Execution) -> Invocation {
    let ctx = exec.context();
    Invocation {
        job: exec.job().name().to_owned(),
        run: ctx.run_id(),
        node: ctx.node_id().to_owned(),
        item: ctx.item(),
        attempt: ctx.attempt(),
        execution: uuid::Uuid::now_v7().to_string(),
        timeout: exec.timeout(),
        heartbeat: inner.checked.heartbeat_interval,
        grace: inner.checked.grace,
        max_message: inner.checked.config.max_message_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ends_become_exit_statuses() {
        let e = |code, signal| Ended {
            exit_code: code,
            signal,
            reason: None,
            message: None,
        };
        assert_eq!(exit_status(&e(0, None)).code(), Some(0));
        assert_eq!(exit_status(&e(3, None)).code(), Some(3));
        assert_eq!(exit_status(&e(134, None)).signal(), Some(6));
        assert_eq!(exit_status(&e(0, Some(9))).signal(), Some(9));
    }
}
