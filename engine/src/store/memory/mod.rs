//! The in-memory store: for tests, development and benchmarks. Nothing survives the
//! process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::events::Event;
use crate::ids::RunId;

use super::schedules::MemorySchedules;
use super::{Claimed, EngineRecord, Lease, RunRecord, StoreError};
use super::{ScheduleAdvance, ScheduleRecord};

mod entry;
mod feed;
mod queries;
mod queue;

use entry::Entry;
use feed::Batch;

/// Keeps runs and their event logs in memory.
///
/// ```
/// # use dagforge::prelude::*;
/// let engine = Engine::builder().store(MemoryStore::new()).build();
/// # let _ = engine;
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    runs: Mutex<BTreeMap<RunId, Entry>>,
    /// Idempotency keys and the runs holding them (locked after `runs`).
    keys: Mutex<HashMap<String, RunId>>,
    /// Capped lanes (locked after `runs`).
    queues: Mutex<BTreeMap<String, u32>>,
    /// Bumped when a run may have become claimable (enqueued, released, a cap
    /// raised, a cancellation asked): every watcher sees every bump it has not seen
    /// yet, even one it was not waiting for at that moment (no lost wake-ups).
    claimable: tokio::sync::watch::Sender<u64>,
    /// Recurring schedules.
    schedules: MemorySchedules,
    /// Runs by (creation time in µs, id), for listing newest first (locked after
    /// `runs`).
    created: Mutex<BTreeSet<(i64, RunId)>>,
    /// The global event feed: one batch per append, in the order the appends were
    /// applied (locked after `runs`, so that order is the order of `runs`' writes).
    feed: Mutex<Vec<Batch>>,
    /// Engine heartbeats, by id.
    engines: Mutex<BTreeMap<String, EngineRecord>>,
    /// The execution queue of remote workers (`store/queue.rs`).
    queue: queue::MemoryQueue,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<RunId, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written (every
        // mutation is a push or a field store), so a poisoned lock is still usable.
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an applied append of `n` events of `run` from `first` in the feed
    /// (called with `runs` locked).
    fn fed(&self, run: RunId, first: u64, n: usize) {
        if n > 0 {
            lock(&self.feed).push(Batch::new(run, first, n));
        }
    }

    /// [`Store::claim`], of any workflow (`None`) or of those named.
    fn claim_of(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
        workflows: Option<&[String]>,
        except: &[RunId],
    ) -> Vec<Claimed> {
        let now = Instant::now();
        let owner: Arc<str> = owner.into();
        let mut runs = self.lock();
        // Higher priority first, then the longest expired.
        let mut due: Vec<(i32, Instant, RunId)> = runs
            .values()
            .filter(|e| !e.record.state.is_terminal())
            .filter(|e| workflows.is_none_or(|w| w.contains(&e.record.workflow)))
            .filter(|e| !except.contains(&e.record.id))
            .filter_map(|e| match &e.lease {
                Some((_, until)) if *until <= now => Some((e.record.priority, *until, e.record.id)),
                _ => None,
            })
            .collect();
        due.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        // Room left in each capped lane: its cap less its runs under a live lease.
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let mut room: HashMap<&str, u32> = queues.iter().map(|(q, m)| (q.as_str(), *m)).collect();
        for e in runs.values() {
            if let (Some(q), Some((_, until))) = (&e.record.queue, &e.lease)
                && *until > now
                && !e.record.state.is_terminal()
                && let Some(r) = room.get_mut(q.as_str())
            {
                *r = r.saturating_sub(1);
            }
        }
        let mut out = Vec::with_capacity(due.len().min(limit));
        for (_, _, id) in due {
            if out.len() >= limit {
                break;
            }
            let Some(entry) = runs.get_mut(&id) else {
                continue;
            };
            if let Some(r) = entry.record.queue.as_deref().and_then(|q| room.get_mut(q)) {
                if *r == 0 {
                    continue;
                }
                *r -= 1;
            }
            out.push(entry.claim(&owner, now + ttl));
        }
        out
    }
}

#[async_trait::async_trait]
impl super::RunLog for MemoryStore {
    async fn create_run(
        &self,
        run: &RunRecord,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut runs = self.lock();
        if runs.contains_key(&run.id) {
            return Err(StoreError::RunExists(run.id));
        }
        if let Some(key) = &run.idempotency_key {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(holder) = keys.get(key).and_then(|id| runs.get(id)) {
                return Err(StoreError::KeyExists {
                    key: key.clone(),
                    run: holder.record.id,
                    created_at: holder.record.created_at,
                });
            }
            keys.insert(key.clone(), run.id);
        }
        lock(&self.created).insert((super::query::micros(run.created_at), run.id));
        runs.insert(
            run.id,
            Entry {
                record: run.clone(),
                cancel_requested: false,
                lease: Some((Arc::clone(&lease.owner), Instant::now() + ttl)),
                fence: lease.fence,
                stalls: 0,
                settled: 0,
                settled_at_claim: 0,
                chunks: Vec::new(),
                len: 0,
            },
        );
        drop(runs);
        // Claimable now, or later (serving engines then learn when).
        self.claimable.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    async fn append(&self, run: RunId, lease: &Lease, events: &[Event]) -> Result<(), StoreError> {
        let mut runs = self.lock();
        let entry = runs.get_mut(&run).ok_or(StoreError::UnknownRun(run))?;
        if let Err(e) = entry.check(run, lease) {
            return if entry.retried_last(lease, events) {
                Ok(())
            } else {
                Err(e)
            };
        }
        if entry.sequence(run, events)? {
            entry.apply(events);
            self.fed(run, events[0].seq, events.len());
        }
        Ok(())
    }

    fn append_now(
        &self,
        run: RunId,
        lease: &Lease,
        events: &mut Vec<Event>,
    ) -> Option<Result<(), StoreError>> {
        let mut runs = self.lock();
        let Some(entry) = runs.get_mut(&run) else {
            return Some(Err(StoreError::UnknownRun(run)));
        };
        if let Err(e) = entry.check(run, lease) {
            if entry.retried_last(lease, events) {
                events.clear();
                return Some(Ok(()));
            }
            return Some(Err(e));
        }
        match entry.sequence(run, events) {
            Ok(true) => {
                self.fed(run, events[0].seq, events.len());
                entry.apply_owned(events);
            }
            Ok(false) => events.clear(),
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(()))
    }

    async fn renew(&self, run: RunId, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        let mut runs = self.lock();
        let entry = runs.get_mut(&run).ok_or(StoreError::UnknownRun(run))?;
        entry.check(run, lease)?;
        entry.lease = Some((Arc::clone(&lease.owner), Instant::now() + ttl));
        Ok(())
    }

    async fn release(&self, run: RunId, lease: &Lease) -> Result<(), StoreError> {
        let mut runs = self.lock();
        let entry = runs.get_mut(&run).ok_or(StoreError::UnknownRun(run))?;
        entry.check(run, lease)?;
        if let Some((_, until)) = &mut entry.lease {
            *until = Instant::now();
        }
        // Given back, not lost: the claim does not count as a stalled one.
        entry.stalls = entry.stalls.saturating_sub(1);
        drop(runs);
        self.claimable.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    async fn request_cancel(&self, run: RunId) -> Result<bool, StoreError> {
        let mut runs = self.lock();
        let Some(entry) = runs.get_mut(&run) else {
            return Ok(false);
        };
        if entry.record.state.is_terminal() {
            return Ok(false);
        }
        entry.cancel_requested = true;
        drop(runs);
        self.claimable.send_modify(|n| *n = n.wrapping_add(1));
        Ok(true)
    }

    async fn cancel_requests(&self, owner: &str) -> Result<Vec<RunId>, StoreError> {
        let runs = self.lock();
        Ok(runs
            .values()
            .filter(|e| e.cancel_requested && !e.record.state.is_terminal())
            .filter(|e| matches!(&e.lease, Some((o, _)) if &**o == owner))
            .map(|e| e.record.id)
            .collect())
    }

    async fn claim(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        Ok(self.claim_of(owner, ttl, limit, None, &[]))
    }

    async fn claim_run(
        &self,
        run: RunId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let now = Instant::now();
        let mut runs = self.lock();
        let Some(entry) = runs.get_mut(&run) else {
            return Ok(None);
        };
        let expired = match &entry.lease {
            Some((_, until)) if *until <= now => true,
            // Queued for later, and cancelled: taken at once, to end it.
            Some((holder, _)) => &**holder == "queue" && entry.cancel_requested,
            None => false,
        };
        if entry.record.state.is_terminal() || !expired {
            return Ok(None);
        }
        let owner: Arc<str> = owner.into();
        Ok(Some(entry.claim(&owner, now + ttl)))
    }

    async fn claim_workflows(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
        workflows: &[String],
        except: &[RunId],
    ) -> Result<Vec<Claimed>, StoreError> {
        Ok(self.claim_of(owner, ttl, limit, Some(workflows), except))
    }
}

#[async_trait::async_trait]
impl super::QueueAdmin for MemoryStore {
    async fn set_queue_limit(
        &self,
        queue: &str,
        max_running: Option<u32>,
    ) -> Result<(), StoreError> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        match max_running {
            Some(m) => queues.insert(queue.to_owned(), m),
            None => queues.remove(queue),
        };
        drop(queues);
        // A raised cap may make runs claimable.
        self.claimable.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    async fn queue_limits(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        Ok(queues.iter().map(|(q, m)| (q.clone(), *m)).collect())
    }

    async fn release_key(&self, key: &str, holder: RunId) -> Result<(), StoreError> {
        let mut runs = self.lock();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.get(key) == Some(&holder) {
            keys.remove(key);
            if let Some(entry) = runs.get_mut(&holder) {
                entry.record.idempotency_key = None;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl super::ScheduleStore for MemoryStore {
    async fn put_schedule(&self, schedule: &ScheduleRecord) -> Result<(), StoreError> {
        self.schedules.put(schedule);
        Ok(())
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        Ok(self.schedules.get(id))
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        Ok(self.schedules.list())
    }

    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.schedules.delete(id))
    }

    async fn set_schedule_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_fire: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        Ok(self.schedules.set_enabled(id, enabled, next_fire))
    }

    async fn due_schedules(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        Ok(self.schedules.due(now, limit))
    }

    async fn next_schedule_fire(
        &self,
        after: SystemTime,
    ) -> Result<Option<SystemTime>, StoreError> {
        Ok(self.schedules.next_fire(after))
    }

    async fn advance_schedule(
        &self,
        id: &str,
        expected: Option<SystemTime>,
        advance: &ScheduleAdvance,
    ) -> Result<bool, StoreError> {
        Ok(self.schedules.advance(id, expected, advance))
    }
}

#[async_trait::async_trait]
impl super::Watch for MemoryStore {
    async fn next_start(&self) -> Result<Option<SystemTime>, StoreError> {
        let now = Instant::now();
        let runs = self.lock();
        let next = runs
            .values()
            .filter_map(|e| match &e.lease {
                Some((owner, until)) if &**owner == "queue" && *until > now => Some(*until),
                _ => None,
            })
            .min();
        Ok(next.map(|t| SystemTime::now() + (t - now)))
    }

    async fn watch(&self) -> Result<Option<super::Wakeups>, StoreError> {
        let mut seen = self.claimable.subscribe();
        seen.mark_unchanged();
        Ok(Some(Box::pin(futures_util::stream::unfold(
            seen,
            |mut seen| async move {
                seen.changed().await.ok()?;
                Some(((), seen))
            },
        ))))
    }
}

/// Locks `m`; every mutation under these locks is a single insert, push or field
/// store, so a poisoned lock is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
