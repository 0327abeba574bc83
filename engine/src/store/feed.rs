//! The global event feed: every run's events in one stream, in commit order, for a
//! reader (the all-runs SSE stream) that polls with the cursor it saw last.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::events::Event;

use super::StoreError;
use super::query::bad_query;

/// A position in the global event feed: the feed resumes after it. Positions are
/// totally ordered (field by field); what the fields mean is the store's business (a
/// commit group, a row within it, the event's sequence number in its run).
///
/// Its text form is `<group>-<row>-<seq>` (decimal); a malformed one is
/// [`StoreError::BadQuery`]. [`FeedCursor::START`] is before every event.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct FeedCursor {
    /// The commit group (a transaction, a write) the event was committed in.
    pub group: u64,
    /// The run's place in that group.
    pub row: u64,
    /// The event's sequence number in its run.
    pub seq: u64,
}

impl FeedCursor {
    /// Before every event.
    pub const START: FeedCursor = FeedCursor {
        group: 0,
        row: 0,
        seq: 0,
    };

    /// The position of event `seq` of row `row` of group `group`.
    pub fn new(group: u64, row: u64, seq: u64) -> Self {
        FeedCursor { group, row, seq }
    }
}

impl fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.group, self.row, self.seq)
    }
}

impl FromStr for FeedCursor {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        let bad = || bad_query("event feed cursor", s, "expected `<group>-<row>-<seq>`");
        let mut parts = s.split('-').map(|p| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                p.parse::<u64>().ok()
            }
        });
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Some(group)), Some(Some(row)), Some(Some(seq)), None) => {
                Ok(FeedCursor { group, row, seq })
            }
            _ => Err(bad()),
        }
    }
}

/// One event of the feed, with its position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FeedEvent {
    /// Its position: pass the last one seen to read on.
    pub cursor: FeedCursor,
    /// The event (its run and sequence number in it included).
    pub event: Event,
}

impl FeedEvent {
    /// Event `event` at position `cursor`.
    pub fn new(cursor: FeedCursor, event: Event) -> Self {
        FeedEvent { cursor, event }
    }
}

/// A page of the feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FeedPage {
    /// The events, in feed order.
    pub events: Vec<FeedEvent>,
    /// Where to read on from: past the last event returned, or past every event the
    /// store looked at and the filter left out (so a filtered reader moves on even
    /// when nothing matched). Equal to the cursor given when there is nothing new.
    pub next: FeedCursor,
}

impl FeedPage {
    /// A page of `events`, to be continued from `next`.
    pub fn new(events: Vec<FeedEvent>, next: FeedCursor) -> Self {
        FeedPage { events, next }
    }
}

/// Every run's events in one feed, for readers of all runs at once (an all-runs live
/// stream, an exporter).
///
/// The guarantee: a reader that starts from any cursor the store handed out (or
/// [`FeedCursor::START`]) and keeps polling [`events_since`](EventFeed::events_since)
/// with the `next` of the previous page sees every event committed after that
/// cursor **exactly once** and in **commit order** (a run's events in sequence order),
/// even when writers on several connections or processes commit out of the order
/// they began in. A store may hold back an event committed a moment ago until no
/// earlier write can still commit (PostgreSQL waits for transactions still running),
/// so a reader can trail the newest commits briefly; it never skips them.
///
/// The defaults are for a store without a feed: [`StoreError::Unsupported`].
#[async_trait::async_trait]
pub trait EventFeed: Send + Sync + std::fmt::Debug + 'static {
    /// Up to `limit` events after `after` (at most [`MAX_PAGE`](super::MAX_PAGE); 0
    /// means [`DEFAULT_PAGE`](super::DEFAULT_PAGE)), of runs of `workflow` only if
    /// given, in feed order; see the trait's guarantee.
    async fn events_since(
        &self,
        after: FeedCursor,
        limit: usize,
        workflow: Option<&str>,
    ) -> Result<FeedPage, StoreError> {
        let _ = (after, limit, workflow);
        Err(StoreError::Unsupported {
            what: "the global event feed",
        })
    }

    /// The feed's current end: reading from it gives only events committed from now
    /// on ("start from now").
    async fn feed_head(&self) -> Result<FeedCursor, StoreError> {
        Err(StoreError::Unsupported {
            what: "the global event feed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_cursors_round_trip_and_order() {
        let c = FeedCursor::new(12, 3, 40);
        assert_eq!(c.to_string(), "12-3-40");
        assert_eq!("12-3-40".parse::<FeedCursor>().unwrap(), c);
        assert!(FeedCursor::new(12, 4, 1) > c);
        assert!(FeedCursor::START < c);
        for bad in ["", "1-2", "1-2-3-4", "a-b-c", "-1-2-3", "1--3", "1-2-+3"] {
            assert!(
                matches!(bad.parse::<FeedCursor>(), Err(StoreError::BadQuery { .. })),
                "{bad}"
            );
        }
    }
}
