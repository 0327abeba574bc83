//! The worker's loop: claim when woken and when room frees up, run each claim with
//! the worker's executor, relay what the attempt says as reports (batched per turn),
//! renew the claims, and drain on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::context::JobContext;
use crate::error::{ErrorInfo, ErrorKind};
use crate::executor::{Execution, ExecutionHandle};
use crate::signal::{Signal, SignalSender};
use crate::store::{
    Capacity, ClaimedAttempt, QueueId, QueueTopic, Report, StoreError, Wakeups, WorkerOffer,
    WorkerReport,
};

use super::QueueWorker;
use super::journal::{Journal, WorkerStats};

/// Wait after a store failure before trying again.
const RETRY: Duration = Duration::from_millis(200);

/// Renewals (which also bring cancellations) at most this often when woken.
const RENEW_ON_WAKE: Duration = Duration::from_millis(20);

struct Held {
    claim: ClaimedAttempt,
    token: CancellationToken,
    handle: ExecutionHandle,
    /// Reports not yet sent.
    reports: Vec<Report>,
    done: bool,
}

struct Loop {
    w: QueueWorker,
    held: HashMap<u32, Held>,
    next_key: u32,
    used: Capacity,
    tx: mpsc::UnboundedSender<(u32, Signal)>,
    stats: WorkerStats,
    journal: Journal,
    draining: bool,
    last_renew: Instant,
    claim_at: Option<Instant>,
}

pub(super) async fn run(
    w: QueueWorker,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<WorkerStats, StoreError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let journal = Journal::open(w.journal.as_deref());
    let mut l = Loop {
        w,
        held: HashMap::new(),
        next_key: 0,
        used: Capacity::ZERO,
        tx,
        stats: WorkerStats::default(),
        journal,
        draining: false,
        last_renew: Instant::now(),
        claim_at: Some(Instant::now()),
    };
    l.beat().await?;
    let mut watch: Wakeups =
        l.w.queue
            .watch_queue(QueueTopic::Worker(l.w.record.id.clone()))
            .await?;
    let mut renew = tokio::time::interval(l.w.lease / 3);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut grace_end: Option<Instant> = None;
    let mut signals = Vec::new();
    loop {
        if l.draining && l.held.is_empty() {
            break;
        }
        let claim_at = l.claim_at;
        tokio::select! {
            biased;
            n = rx.recv_many(&mut signals, 4096) => {
                if n > 0 {
                    l.signals(&mut signals);
                    l.flush().await;
                }
            }
            w = watch.next() => {
                if w.is_none() {
                    tokio::time::sleep(RETRY).await;
                    if let Ok(again) = l.w.queue.watch_queue(QueueTopic::Worker(l.w.record.id.clone())).await {
                        watch = again;
                    }
                }
                if !l.held.is_empty() && l.last_renew.elapsed() >= RENEW_ON_WAKE {
                    l.renew().await;
                }
                l.schedule_claim();
            }
            () = sleep_until(claim_at), if claim_at.is_some() && !l.draining => {
                l.claim_at = None;
                l.claim().await;
            }
            _ = renew.tick() => {
                l.renew().await;
                if let Err(e) = l.beat().await {
                    tracing::warn!(error = %e, "worker: heartbeat not recorded");
                }
            }
            () = &mut shutdown, if !l.draining => {
                l.draining = true;
                grace_end = Some(Instant::now() + l.w.grace);
                tracing::info!(worker = %l.w.record.id, running = l.held.len(), "worker: draining");
                let _ = l.beat().await;
            }
            () = sleep_until(grace_end), if grace_end.is_some() => {
                l.release().await;
                break;
            }
        }
    }
    if let Err(e) = l.w.queue.forget_worker(&l.w.record.id).await {
        tracing::warn!(error = %e, "worker: record not removed");
    }
    Ok(l.stats)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Loop {
    async fn beat(&mut self) -> Result<(), StoreError> {
        let mut r = self.w.record.clone();
        r.draining = self.draining;
        self.w.queue.worker_beat(&r).await
    }

    /// Claims now if idle, else after a delay growing with the load (idler workers
    /// first).
    fn schedule_claim(&mut self) {
        if self.draining {
            return;
        }
        let load = self.w.record.capacity.load(&self.used);
        let at = Instant::now() + self.w.balance.mul_f64(load);
        self.claim_at = Some(self.claim_at.map_or(at, |c| c.min(at)));
    }

    async fn claim(&mut self) {
        let free = self.w.record.capacity.minus(&self.used);
        if free.slots == 0 {
            return;
        }
        let offer = WorkerOffer::new(
            self.w.record.id.clone(),
            self.w.record.lanes.clone(),
            self.w.record.tags.clone(),
            free,
        );
        let claims = match self.w.queue.claim_attempts(&offer, self.w.lease).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "worker: claiming failed; retrying");
                self.claim_at = Some(Instant::now() + RETRY);
                return;
            }
        };
        let now = SystemTime::now();
        for c in claims {
            self.used = self.used.plus(&c.attempt.demand);
            if !self.used.fits_in(&self.w.record.capacity) {
                // The store handed out more than the offer: a store bug. Refuse to run.
                tracing::error!(attempt = %c.id, "worker: a claim exceeds the capacity");
            }
            self.stats.claimed += 1;
            self.stats.max_used = max_each(self.stats.max_used, self.used);
            let pickup = now.duration_since(c.enqueued_at).unwrap_or_default();
            self.stats.pickups.push(pickup);
            self.journal.line(format_args!(
                "claim {} {} {} {} {} {}",
                c.id,
                c.attempt.node,
                self.used.cpu_millis,
                self.used.memory_bytes,
                self.used.slots,
                pickup.as_micros()
            ));
            self.start(c);
        }
    }

    fn start(&mut self, claim: ClaimedAttempt) {
        let key = self.next_key;
        self.next_key = self.next_key.wrapping_add(1);
        let token = CancellationToken::new();
        let a = &claim.attempt;
        let ctx = JobContext::new(
            a.run,
            Arc::from(a.node.as_str()),
            a.item,
            a.attempt,
            token.clone(),
            Some(SignalSender::new(self.tx.clone(), key)),
        )
        .with_artifacts(self.w.artifacts.clone());
        let handle = match self.w.registry.get(&a.job) {
            Some(job) => {
                let mut execution =
                    Execution::new(job.clone(), a.input.clone(), ctx, a.timeout, None);
                execution.arm(self.w.executor.name());
                self.w.executor.start(execution)
            }
            None => {
                ctx.report_done(Err(ErrorInfo::new(
                    ErrorKind::Executor,
                    format!(
                        "job `{}` is not registered in worker `{}`",
                        a.job, self.w.record.id
                    ),
                )));
                ExecutionHandle::detached()
            }
        };
        self.held.insert(
            key,
            Held {
                claim,
                token,
                handle,
                reports: Vec::new(),
                done: false,
            },
        );
    }

    fn signals(&mut self, signals: &mut Vec<(u32, Signal)>) {
        for (key, s) in signals.drain(..) {
            let Some(h) = self.held.get_mut(&key) else {
                continue;
            };
            if h.done {
                continue;
            }
            match s {
                Signal::Log { level, message } => h.reports.push(Report::Log { level, message }),
                Signal::Progress { percent, message } => {
                    h.reports.push(Report::Progress { percent, message });
                }
                Signal::Done(outcome) => {
                    h.reports.push(Report::Outcome(outcome));
                    h.done = true;
                }
                Signal::Retry { .. } | Signal::Cancel => {}
            }
        }
    }

    /// Sends every pending report in one store call; frees the room of finished
    /// attempts and claims again if there is some.
    async fn flush(&mut self) {
        let keys: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, h)| !h.reports.is_empty())
            .map(|(k, _)| *k)
            .collect();
        if keys.is_empty() {
            return;
        }
        let batch: Vec<WorkerReport> = keys
            .iter()
            .filter_map(|k| self.held.get(k))
            .map(|h| WorkerReport::new(h.claim.id, h.claim.fence, h.reports.clone()))
            .collect();
        let accepted = loop {
            match self.w.queue.report(&self.w.record.id, &batch).await {
                Ok(a) => break a,
                Err(e) => {
                    tracing::warn!(error = %e, "worker: reporting failed; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        };
        let mut freed = false;
        for (k, ok) in keys.into_iter().zip(accepted) {
            let Some(h) = self.held.get_mut(&k) else {
                continue;
            };
            h.reports.clear();
            if !ok {
                // Fenced: the lease lapsed and the engine gave the attempt up.
                h.token.cancel();
                h.handle.abort();
                h.done = true;
            }
            if h.done {
                let id = h.claim.id;
                let has_outcome = ok;
                if let Some(h) = self.held.remove(&k) {
                    self.used = self.used.minus(&h.claim.attempt.demand);
                }
                freed = true;
                if has_outcome {
                    self.stats.accepted += 1;
                    self.journal.line(format_args!("end {id} accepted"));
                } else {
                    self.stats.refused += 1;
                    self.journal.line(format_args!("end {id} refused"));
                    tracing::warn!(attempt = %id, "worker: a late result was refused (claim lost)");
                }
            }
        }
        if freed {
            self.schedule_claim();
        }
    }

    async fn renew(&mut self) {
        self.last_renew = Instant::now();
        match self
            .w
            .queue
            .renew_claims(&self.w.record.id, self.w.lease)
            .await
        {
            Ok(r) => {
                for id in r.cancel {
                    if let Some(h) = self.held.values().find(|h| h.claim.id == id) {
                        h.token.cancel();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "worker: renewing claims failed"),
        }
    }

    /// The grace period is over: cancel what still runs and give it back.
    async fn release(&mut self) {
        let ids: Vec<QueueId> = self.held.values().map(|h| h.claim.id).collect();
        for h in self.held.values() {
            h.token.cancel();
            h.handle.abort();
        }
        match self.w.queue.release_claims(&self.w.record.id, &ids).await {
            Ok(n) => self.stats.released += n,
            Err(e) => tracing::warn!(error = %e, "worker: releasing claims failed"),
        }
        self.held.clear();
    }
}

fn max_each(a: Capacity, b: Capacity) -> Capacity {
    Capacity {
        cpu_millis: a.cpu_millis.max(b.cpu_millis),
        memory_bytes: a.memory_bytes.max(b.memory_bytes),
        slots: a.slots.max(b.slots),
    }
}
