//! The run's retry timers: one queue ordered by deadline and one sleep for the
//! earliest, instead of a task per retry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// A pending retry: when, the order it was armed in, node and item.
type Entry = Reverse<(Instant, u64, u32, Option<u32>)>;

/// Pending retries by deadline (FIFO among equal deadlines).
#[derive(Debug, Default)]
pub(super) struct RetryTimers {
    heap: BinaryHeap<Entry>,
    seq: u64,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl RetryTimers {
    /// Arms a retry of `node` (item `item`) at `at`.
    pub(super) fn push(&mut self, at: Instant, node: u32, item: Option<u32>) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, node, item)));
    }

    /// How many retries are waiting.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    /// The next retry due at `now`, if any.
    #[inline]
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(u32, Option<u32>)> {
        match self.heap.peek() {
            Some(Reverse((at, ..))) if *at <= now => {
                let Reverse((_, _, node, item)) = self.heap.pop()?;
                Some((node, item))
            }
            _ => None,
        }
    }

    /// Ready once the earliest retry is due; pending (and never ready) when none waits.
    #[inline]
    pub(super) fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(Reverse((at, ..))) = self.heap.peek() else {
            return Poll::Pending;
        };
        let at = *at;
        let sleep = match self.sleep.as_mut() {
            Some(s) => {
                if s.deadline() != at {
                    s.as_mut().reset(at);
                }
                s
            }
            None => self.sleep.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        sleep.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::RetryTimers;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn retries_come_due_in_deadline_order() {
        let mut t = RetryTimers::default();
        let now = Instant::now();
        t.push(now + Duration::from_secs(3), 1, None);
        t.push(now + Duration::from_secs(1), 2, Some(0));
        t.push(now + Duration::from_secs(1), 3, None);
        assert_eq!(t.pop_due(now), None);
        std::future::poll_fn(|cx| t.poll_due(cx)).await;
        assert_eq!(Instant::now(), now + Duration::from_secs(1));
        assert_eq!(t.pop_due(Instant::now()), Some((2, Some(0))));
        assert_eq!(t.pop_due(Instant::now()), Some((3, None)));
        assert_eq!(t.pop_due(Instant::now()), None);
        std::future::poll_fn(|cx| t.poll_due(cx)).await;
        assert_eq!(t.pop_due(Instant::now()), Some((1, None)));
        assert_eq!(t.len(), 0);
    }
}
