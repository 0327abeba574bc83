//! The memory store's execution queue: rows, reports and workers under one lock,
//! every change bumping a watch channel that wakes every watcher.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::super::queue::{
    Cancelled, Capacity, ClaimedAttempt, ExecutionQueue, OwnerReport, QueueId, QueueTopic,
    QueuedAttempt, Renewed, Report, WorkerOffer, WorkerRecord, WorkerReport,
};
use super::super::{StoreError, Wakeups};
use super::MemoryStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Queued,
    Claimed,
    Done,
    Lost,
}

#[derive(Debug)]
struct Row {
    attempt: QueuedAttempt,
    state: State,
    worker: Option<String>,
    fence: u64,
    lease_until: Instant,
    cancel: bool,
    enqueued_at: SystemTime,
}

#[derive(Debug, Default)]
struct Inner {
    rows: BTreeMap<i64, Row>,
    next_id: i64,
    /// By owner: (seq, attempt, report), in order.
    reports: HashMap<String, Vec<(u64, QueueId, Report)>>,
    next_seq: u64,
    workers: BTreeMap<String, WorkerRecord>,
}

/// The queue part of a [`MemoryStore`].
#[derive(Debug)]
pub(super) struct MemoryQueue {
    inner: Mutex<Inner>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        MemoryQueue {
            inner: Mutex::default(),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl MemoryQueue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wake(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

fn ttl_from_now(ttl: Duration) -> Instant {
    Instant::now() + ttl
}

#[async_trait::async_trait]
impl ExecutionQueue for MemoryStore {
    async fn push(&self, attempts: &[QueuedAttempt]) -> Result<Vec<QueueId>, StoreError> {
        let ids = {
            let mut q = self.queue.lock();
            let now = SystemTime::now();
            attempts
                .iter()
                .map(|a| {
                    q.next_id += 1;
                    let id = q.next_id;
                    q.rows.insert(
                        id,
                        Row {
                            attempt: a.clone(),
                            state: State::Queued,
                            worker: None,
                            fence: 0,
                            lease_until: Instant::now(),
                            cancel: false,
                            enqueued_at: now,
                        },
                    );
                    QueueId(id)
                })
                .collect()
        };
        self.queue.wake();
        Ok(ids)
    }

    async fn claim_attempts(
        &self,
        offer: &WorkerOffer,
        ttl: Duration,
    ) -> Result<Vec<ClaimedAttempt>, StoreError> {
        let claimed: Vec<ClaimedAttempt> = {
            let mut q = self.queue.lock();
            let mut candidates: Vec<(i32, i64, Capacity)> = q
                .rows
                .iter()
                .filter(|(_, r)| {
                    r.state == State::Queued
                        && offer.lanes.contains(&r.attempt.lane)
                        && r.attempt.tags_met(&offer.tags)
                        && r.attempt.demand.fits_in(&offer.free)
                })
                .map(|(id, r)| (r.attempt.priority, *id, r.attempt.demand))
                .collect();
            candidates.sort_by_key(|&(p, id, _)| (std::cmp::Reverse(p), id));
            let picked = offer.pack(candidates.into_iter().map(|(_, id, d)| (id, d)));
            let until = ttl_from_now(ttl);
            picked
                .into_iter()
                .filter_map(|id| {
                    let r = q.rows.get_mut(&id)?;
                    r.state = State::Claimed;
                    r.worker = Some(offer.worker.clone());
                    r.fence += 1;
                    r.lease_until = until;
                    Some(ClaimedAttempt::new(
                        QueueId(id),
                        r.fence,
                        r.attempt.clone(),
                        r.enqueued_at,
                    ))
                })
                .collect()
        };
        Ok(claimed)
    }

    async fn renew_claims(&self, worker: &str, ttl: Duration) -> Result<Renewed, StoreError> {
        let mut q = self.queue.lock();
        let until = ttl_from_now(ttl);
        let mut out = Renewed::default();
        for (id, r) in q.rows.iter_mut() {
            if r.state == State::Claimed && r.worker.as_deref() == Some(worker) {
                r.lease_until = until;
                out.held += 1;
                if r.cancel {
                    out.cancel.push(QueueId(*id));
                }
            }
        }
        Ok(out)
    }

    async fn report(
        &self,
        worker: &str,
        reports: &[WorkerReport],
    ) -> Result<Vec<bool>, StoreError> {
        let accepted = {
            let mut q = self.queue.lock();
            let inner = &mut *q;
            reports
                .iter()
                .map(|w| {
                    let Some(r) = inner.rows.get_mut(&w.id.0) else {
                        return false;
                    };
                    if r.state != State::Claimed
                        || r.worker.as_deref() != Some(worker)
                        || r.fence != w.fence
                    {
                        return false;
                    }
                    let log = inner.reports.entry(r.attempt.owner.clone()).or_default();
                    for rep in &w.reports {
                        inner.next_seq += 1;
                        log.push((inner.next_seq, w.id, rep.clone()));
                        if matches!(rep, Report::Outcome(_)) {
                            r.state = State::Done;
                        }
                    }
                    true
                })
                .collect()
        };
        self.queue.wake();
        Ok(accepted)
    }

    async fn release_claims(&self, worker: &str, ids: &[QueueId]) -> Result<u64, StoreError> {
        let n = {
            let mut q = self.queue.lock();
            let mut n = 0;
            for id in ids {
                if let Some(r) = q.rows.get_mut(&id.0)
                    && r.state == State::Claimed
                    && r.worker.as_deref() == Some(worker)
                {
                    r.state = State::Queued;
                    r.worker = None;
                    n += 1;
                }
            }
            n
        };
        self.queue.wake();
        Ok(n)
    }

    async fn reports(&self, owner: &str, limit: usize) -> Result<Vec<OwnerReport>, StoreError> {
        let q = self.queue.lock();
        Ok(q.reports.get(owner).map_or_else(Vec::new, |log| {
            log.iter()
                .take(limit)
                .map(|(seq, id, r)| OwnerReport::new(*seq, *id, r.clone()))
                .collect()
        }))
    }

    async fn acknowledge(
        &self,
        owner: &str,
        reports: &[u64],
        attempts: &[QueueId],
    ) -> Result<(), StoreError> {
        let mut q = self.queue.lock();
        for id in attempts {
            if q.rows.get(&id.0).is_some_and(|r| r.attempt.owner == owner) {
                q.rows.remove(&id.0);
            }
        }
        if let Some(log) = q.reports.get_mut(owner) {
            let read: std::collections::HashSet<u64> = reports.iter().copied().collect();
            log.retain(|(seq, _, _)| !read.contains(seq));
        }
        Ok(())
    }

    async fn expire_claims(&self, owner: &str) -> Result<Vec<QueueId>, StoreError> {
        let mut q = self.queue.lock();
        let now = Instant::now();
        let mut lost = Vec::new();
        for (id, r) in q.rows.iter_mut() {
            if r.state == State::Claimed && r.attempt.owner == owner && r.lease_until <= now {
                r.state = State::Lost;
                lost.push(QueueId(*id));
            }
        }
        Ok(lost)
    }

    async fn cancel_attempt(&self, id: QueueId) -> Result<Cancelled, StoreError> {
        let out = {
            let mut q = self.queue.lock();
            match q.rows.get_mut(&id.0) {
                Some(r) if r.state == State::Queued => {
                    q.rows.remove(&id.0);
                    Cancelled::Withdrawn
                }
                Some(r) if r.state == State::Claimed => {
                    r.cancel = true;
                    Cancelled::Asked
                }
                _ => Cancelled::Over,
            }
        };
        self.queue.wake();
        Ok(out)
    }

    async fn watch_queue(&self, topic: QueueTopic) -> Result<Wakeups, StoreError> {
        let _ = topic;
        let rx = self.queue.changed.subscribe();
        Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move {
                rx.changed().await.ok()?;
                Some(((), rx))
            },
        )))
    }

    async fn worker_beat(&self, worker: &WorkerRecord) -> Result<(), StoreError> {
        let mut q = self.queue.lock();
        let mut w = worker.clone();
        w.last_beat = SystemTime::now();
        q.workers.insert(w.id.clone(), w);
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        let q = self.queue.lock();
        let now = Instant::now();
        Ok(q.workers
            .values()
            .map(|w| {
                let (used, n) = q
                    .rows
                    .values()
                    .filter(|r| {
                        r.state == State::Claimed
                            && r.worker.as_deref() == Some(w.id.as_str())
                            && r.lease_until > now
                    })
                    .fold((Capacity::ZERO, 0), |(u, n), r| {
                        (u.plus(&r.attempt.demand), n + 1)
                    });
                w.clone().with_load(used, n)
            })
            .collect())
    }

    async fn forget_worker(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.queue.lock().workers.remove(id).is_some())
    }
}
