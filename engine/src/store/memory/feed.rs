//! The memory store's global event feed and engine heartbeats.

use std::time::SystemTime;

use tokio::time::Instant;

use crate::events::Event;
use crate::ids::RunId;
use crate::store::query::page_size;
use crate::store::{
    EngineRecord, EngineRegistry, EventFeed, FeedCursor, FeedEvent, FeedPage, StoreError,
};

use super::{MemoryStore, lock};

/// One applied append in the feed: `n` events of `run` from sequence number `first`.
/// Its place in the feed (from 1) is its group in [`FeedCursor`]s.
#[derive(Clone, Copy, Debug)]
pub(super) struct Batch {
    run: RunId,
    first: u64,
    n: u32,
}

impl Batch {
    pub(super) fn new(run: RunId, first: u64, n: usize) -> Self {
        Batch {
            run,
            first,
            n: u32::try_from(n).unwrap_or(u32::MAX),
        }
    }

    fn last(&self) -> u64 {
        self.first + u64::from(self.n) - 1
    }
}

/// Batches looked at per call at most (bounds a filtered read that finds little).
const SCAN: usize = 4096;

#[async_trait::async_trait]
impl EventFeed for MemoryStore {
    /// Appends are applied one at a time under the store's lock, and the feed records
    /// them in that order: its order is the order of the writes.
    async fn events_since(
        &self,
        after: FeedCursor,
        limit: usize,
        workflow: Option<&str>,
    ) -> Result<FeedPage, StoreError> {
        let size = page_size(limit);
        let runs = self.lock();
        let feed = lock(&self.feed);
        let mut out = Vec::new();
        let mut next = after;
        let start = usize::try_from(after.group.saturating_sub(1)).unwrap_or(usize::MAX);
        for (i, b) in feed.iter().enumerate().skip(start).take(SCAN) {
            let group = i as u64 + 1;
            let from = if group == after.group {
                b.first.max(after.seq + 1)
            } else {
                b.first
            };
            if from > b.last() {
                continue;
            }
            let Some(entry) = runs.get(&b.run) else {
                continue;
            };
            if workflow.is_some_and(|w| w != entry.record.workflow) {
                next = FeedCursor::new(group, 0, b.last());
                continue;
            }
            let index = usize::try_from(from - 1).unwrap_or(usize::MAX);
            for (seq, e) in entry.iter_from(index).take_while(|(s, _)| *s <= b.last()) {
                if out.len() == size {
                    return Ok(FeedPage::new(out, next));
                }
                next = FeedCursor::new(group, 0, seq);
                let event = Event::new(b.run, seq, e.at, e.kind.clone());
                out.push(FeedEvent::new(next, event));
            }
        }
        Ok(FeedPage::new(out, next))
    }

    async fn feed_head(&self) -> Result<FeedCursor, StoreError> {
        let feed = lock(&self.feed);
        Ok(feed.last().map_or(FeedCursor::START, |b| {
            FeedCursor::new(feed.len() as u64, 0, b.last())
        }))
    }
}

#[async_trait::async_trait]
impl EngineRegistry for MemoryStore {
    async fn beat(&self, engine: &EngineRecord) -> Result<(), StoreError> {
        let mut record = engine.clone();
        record.runs_owned = 0;
        lock(&self.engines).insert(record.id.clone(), record);
        Ok(())
    }

    async fn engines(&self) -> Result<Vec<EngineRecord>, StoreError> {
        let now = Instant::now();
        let runs = self.lock();
        let mut engines: Vec<EngineRecord> = lock(&self.engines).values().cloned().collect();
        for e in runs.values() {
            if let Some((owner, until)) = &e.lease
                && *until > now
                && !e.record.state.is_terminal()
                && let Some(rec) = engines.iter_mut().find(|r| *r.id == **owner)
            {
                rec.runs_owned += 1;
            }
        }
        Ok(engines)
    }

    async fn forget_engine(&self, id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.engines).remove(id).is_some())
    }

    async fn forget_engines_before(&self, before: SystemTime) -> Result<u64, StoreError> {
        let mut engines = lock(&self.engines);
        let n = engines.len();
        engines.retain(|_, e| e.last_beat >= before);
        Ok((n - engines.len()) as u64)
    }
}
