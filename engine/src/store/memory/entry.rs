//! One run as the memory store keeps it: its record, lease and event log.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use crate::events::{Event, EventKind};
use crate::ids::RunId;
use crate::state::RunState;

use super::super::{Claimed, Lease, RunRecord, Sequence, StoreError};

/// Events per storage chunk: appends never move stored events, and the log grows by
/// one allocation per this many events.
pub(super) const CHUNK: usize = 4096;

/// An event as kept here: its run is the entry's and its sequence number its position.
#[derive(Debug)]
pub(super) struct Stored {
    pub(super) at: SystemTime,
    pub(super) kind: EventKind,
}

/// A run: its record, lease, progress and event log.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) record: RunRecord,
    /// Whether someone asked for the run to be cancelled.
    pub(super) cancel_requested: bool,
    /// Current lease: owner and expiry (on tokio's clock: the store lives in one
    /// process, and tests can pause time). `None` once the run finished.
    pub(super) lease: Option<(Arc<str>, Instant)>,
    pub(super) fence: u64,
    /// Claims since the run last made progress (see [`Claimed::stalled_claims`]).
    pub(super) stalls: u32,
    /// Node and item outcomes recorded so far (progress), and their number at the
    /// last claim.
    pub(super) settled: u64,
    pub(super) settled_at_claim: u64,
    /// The event log; every chunk but the last holds exactly `CHUNK` events.
    pub(super) chunks: Vec<Vec<Stored>>,
    pub(super) len: usize,
}

impl Entry {
    pub(super) fn push(&mut self, e: Event) {
        let e = Stored {
            at: e.at,
            kind: e.kind,
        };
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(e),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(e);
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }

    pub(super) fn note(&mut self, e: &Event) {
        if let EventKind::Node(n) = &e.kind
            && n.to.is_terminal()
        {
            self.settled += 1;
        }
        if let EventKind::Run { to, .. } = e.kind {
            self.record.state = to;
            match to {
                RunState::Running => self.record.started_at = Some(e.at),
                s if s.is_terminal() => {
                    self.record.finished_at = Some(e.at);
                    self.lease = None;
                }
                _ => {}
            }
        }
    }

    pub(super) fn check(&self, run: RunId, lease: &Lease) -> Result<(), StoreError> {
        match &self.lease {
            Some((owner, _)) if *owner == lease.owner && self.fence == lease.fence => Ok(()),
            _ => Err(StoreError::Fenced {
                run,
                owner: lease.owner.to_string(),
                fence: lease.fence,
            }),
        }
    }

    /// Whether `events` are the batch that finished the run, under `lease`, again.
    pub(super) fn retried_last(&self, lease: &Lease, events: &[Event]) -> bool {
        self.lease.is_none()
            && self.fence == lease.fence
            && events.first().is_some_and(|e| {
                Sequence::of(self.len as u64, e.seq, events.len() as u64) == Sequence::Written
            })
    }

    /// Whether `events` continue the log (`true`), were its last batch already
    /// (`false`), or neither (an error).
    pub(super) fn sequence(&self, run: RunId, events: &[Event]) -> Result<bool, StoreError> {
        let Some(first) = events.first().map(|e| e.seq) else {
            return Ok(false);
        };
        let end = self.len as u64;
        match Sequence::of(end, first, events.len() as u64) {
            Sequence::Continues => Ok(true),
            Sequence::Written => Ok(false),
            Sequence::Conflicts => Err(StoreError::OutOfSequence {
                run,
                log_end: end,
                first,
            }),
        }
    }

    pub(super) fn apply_owned(&mut self, events: &mut Vec<Event>) {
        for e in events.drain(..) {
            self.note(&e);
            self.push(e);
        }
    }

    /// Stored events from index `from`, with their sequence numbers.
    pub(super) fn iter_from(&self, from: usize) -> impl Iterator<Item = (u64, &Stored)> {
        let first = from / CHUNK;
        self.chunks
            .iter()
            .skip(first)
            .flat_map(|c| c.iter())
            .skip(from % CHUNK)
            .zip(from as u64 + 1..)
            .map(|(e, seq)| (seq, e))
    }

    /// Takes the run for `owner` until `until` with a new fencing token, counting the
    /// claim as stalled unless the run made progress since the last one.
    pub(super) fn claim(&mut self, owner: &Arc<str>, until: Instant) -> Claimed {
        self.fence += 1;
        self.lease = Some((Arc::clone(owner), until));
        self.stalls = if self.settled > self.settled_at_claim {
            1
        } else {
            self.stalls.saturating_add(1)
        };
        self.settled_at_claim = self.settled;
        Claimed {
            run: self.record.clone(),
            lease: Lease::new(Arc::clone(owner), self.fence),
            events: self.len as u64,
            stalled_claims: self.stalls,
        }
    }

    pub(super) fn apply(&mut self, events: &[Event]) {
        for e in events {
            self.note(e);
            self.push(e.clone());
        }
    }
}
