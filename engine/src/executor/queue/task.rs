//! The queue executor's task: pushes attempts, reads reports when woken, relays
//! them, cancels and withdraws, and fails attempts whose worker was lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::context::JobContext;
use crate::error::{ErrorInfo, ErrorKind};
use crate::store::{
    Cancelled, ExecutionQueue, QueueId, QueueTopic, QueuedAttempt, Report, Wakeups,
};

/// Reports read per store call.
const READ: usize = 1000;

/// Attempts pushed per store call (at most).
const PUSH: usize = 1000;

/// How long to wait before retrying after a store failure.
const RETRY: Duration = Duration::from_millis(100);

/// What the executor's `start` and its attempts' tasks ask of the queue task.
#[derive(Debug)]
pub(super) enum Cmd {
    /// Queue this attempt; send its outcome on `reply`.
    Start {
        key: u64,
        attempt: Box<QueuedAttempt>,
        ctx: JobContext,
        reply: oneshot::Sender<Result<Value, ErrorInfo>>,
    },
    /// Its run was cancelled: cancel it (withdrawn, or its worker told).
    Cancel(u64),
    /// The engine let go of it: withdraw it and forget it.
    Forget(u64),
}

/// An attempt out on the queue.
#[derive(Debug)]
struct Out {
    id: QueueId,
    ctx: JobContext,
    reply: oneshot::Sender<Result<Value, ErrorInfo>>,
}

struct State {
    queue: Arc<dyn ExecutionQueue>,
    owner: String,
    out: HashMap<u64, Out>,
    by_id: HashMap<QueueId, u64>,
    /// Attempts over whose rows are to be deleted.
    done: Vec<QueueId>,
    /// When to read the reports again after a failure.
    retry_at: Option<Instant>,
}

fn failed(kind: ErrorKind, message: impl Into<String>) -> Result<Value, ErrorInfo> {
    Err(ErrorInfo::new(kind, message))
}

/// The task's loop: until every sender (the executor and its attempts' tasks) is gone.
pub(super) async fn run(
    queue: Arc<dyn ExecutionQueue>,
    owner: String,
    lease_check: Duration,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
) {
    let mut st = State {
        queue,
        owner,
        out: HashMap::new(),
        by_id: HashMap::new(),
        done: Vec::new(),
        retry_at: None,
    };
    // The watch first: no report made after it can go unnoticed.
    let mut watch = st.watch().await;
    let mut check = tokio::time::interval(lease_check);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cmds = Vec::new();
    loop {
        let retry_at = st.retry_at;
        tokio::select! {
            n = rx.recv_many(&mut cmds, PUSH) => {
                if n == 0 {
                    break;
                }
                st.apply(&mut cmds).await;
            }
            w = watch.next() => {
                if w.is_none() {
                    watch = st.watch().await;
                }
                st.read_reports().await;
            }
            _ = check.tick(), if !st.out.is_empty() => st.expire().await,
            () = sleep_until(retry_at), if retry_at.is_some() => {
                st.retry_at = None;
                st.read_reports().await;
            }
        }
    }
    // Nobody waits for the attempts still out: withdraw them.
    let keys: Vec<u64> = st.out.keys().copied().collect();
    for k in keys {
        st.forget(k).await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

impl State {
    async fn watch(&self) -> Wakeups {
        loop {
            match self
                .queue
                .watch_queue(QueueTopic::Owner(self.owner.clone()))
                .await
            {
                Ok(w) => return w,
                Err(e) => {
                    tracing::warn!(error = %e, "queue executor: cannot watch the queue; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    async fn apply(&mut self, cmds: &mut Vec<Cmd>) {
        let mut starts = Vec::new();
        let mut rest = Vec::new();
        for c in cmds.drain(..) {
            match c {
                Cmd::Start {
                    key,
                    attempt,
                    ctx,
                    reply,
                } => starts.push((key, *attempt, ctx, reply)),
                other => rest.push(other),
            }
        }
        if !starts.is_empty() {
            let attempts: Vec<QueuedAttempt> = starts.iter().map(|s| s.1.clone()).collect();
            match self.queue.push(&attempts).await {
                Ok(ids) if ids.len() == starts.len() => {
                    for ((key, _, ctx, reply), id) in starts.into_iter().zip(ids) {
                        self.by_id.insert(id, key);
                        self.out.insert(key, Out { id, ctx, reply });
                    }
                }
                Ok(_) => {
                    for (_, _, _, reply) in starts {
                        let _ = reply.send(failed(
                            ErrorKind::Executor,
                            "queue executor: the store returned the wrong number of rows",
                        ));
                    }
                }
                Err(e) => {
                    for (_, _, _, reply) in starts {
                        let _ = reply.send(failed(
                            ErrorKind::Executor,
                            format!("queue executor: queueing the attempt failed: {e}"),
                        ));
                    }
                }
            }
        }
        for c in rest {
            match c {
                Cmd::Cancel(key) => self.cancel(key).await,
                Cmd::Forget(key) => self.forget(key).await,
                Cmd::Start { .. } => {}
            }
        }
    }

    async fn cancel(&mut self, key: u64) {
        let Some(id) = self.out.get(&key).map(|o| o.id) else {
            return;
        };
        match self.queue.cancel_attempt(id).await {
            Ok(Cancelled::Withdrawn) => {
                self.settle(
                    id,
                    failed(
                        ErrorKind::Cancelled,
                        "cancelled before a worker took the attempt",
                    ),
                );
            }
            // The worker was told, or the outcome is on its way: it comes as a report.
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, attempt = %id, "queue executor: cancel not recorded")
            }
        }
    }

    async fn forget(&mut self, key: u64) {
        let Some(o) = self.out.remove(&key) else {
            return;
        };
        self.by_id.remove(&o.id);
        if let Err(e) = self.queue.cancel_attempt(o.id).await {
            tracing::debug!(error = %e, attempt = %o.id, "queue executor: withdrawal not recorded");
        }
        self.done.push(o.id);
    }

    /// Hands `outcome` to attempt `id`'s task; its row is deleted with the next
    /// acknowledgement.
    fn settle(&mut self, id: QueueId, outcome: Result<Value, ErrorInfo>) {
        if let Some(key) = self.by_id.remove(&id)
            && let Some(o) = self.out.remove(&key)
        {
            let _ = o.reply.send(outcome);
        }
        self.done.push(id);
    }

    async fn read_reports(&mut self) {
        loop {
            let reports = match self.queue.reports(&self.owner, READ).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "queue executor: reading reports failed; retrying");
                    self.retry_at = Some(Instant::now() + RETRY);
                    return;
                }
            };
            let n = reports.len();
            let mut seqs = Vec::with_capacity(n);
            for r in reports {
                seqs.push(r.seq);
                match r.report {
                    Report::Log { level, message } => {
                        if let Some(o) = self.by_id.get(&r.id).and_then(|k| self.out.get(k)) {
                            o.ctx.log(level, message);
                        }
                    }
                    Report::Progress { percent, message } => {
                        if let Some(o) = self.by_id.get(&r.id).and_then(|k| self.out.get(k)) {
                            o.ctx.progress(percent, message);
                        }
                    }
                    Report::Outcome(outcome) => self.settle(r.id, outcome),
                }
            }
            let done = std::mem::take(&mut self.done);
            if seqs.is_empty() && done.is_empty() {
                return;
            }
            if let Err(e) = self.queue.acknowledge(&self.owner, &seqs, &done).await {
                // Read again later: the outcomes already handed on are ignored then.
                tracing::warn!(error = %e, "queue executor: acknowledging reports failed");
                self.done.extend(done);
                self.retry_at = Some(Instant::now() + RETRY);
                return;
            }
            if n < READ {
                return;
            }
        }
    }

    async fn expire(&mut self) {
        match self.queue.expire_claims(&self.owner).await {
            Ok(lost) => {
                for id in lost {
                    self.settle(
                        id,
                        failed(
                            ErrorKind::WorkerLost,
                            format!(
                                "the worker holding queued attempt {id} stopped renewing its \
                                 claim (died, stalled or lost touch with the store)"
                            ),
                        ),
                    );
                }
                if !self.done.is_empty() {
                    self.read_reports().await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "queue executor: expiring claims failed"),
        }
    }
}
