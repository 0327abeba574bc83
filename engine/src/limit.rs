//! The engine-wide concurrency limit.
//!
//! A counting limiter on atomics: taking and returning a permit is one atomic
//! read-modify-write each and never locks, unlike `tokio::sync::Semaphore`, whose release
//! always takes its waiter-list mutex. Only an orchestrator that found no permit waits,
//! and it is woken through a `Notify` when permits come back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Debug)]
pub(crate) struct Limiter {
    available: AtomicUsize,
    waiters: AtomicUsize,
    notify: Notify,
}

/// One unit of capacity; returned when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.available.fetch_add(1, Ordering::SeqCst);
        if self.limiter.waiters.load(Ordering::SeqCst) > 0 {
            self.limiter.notify.notify_waiters();
        }
    }
}

/// One pending [`Limiter::acquire`] in the waiter count, for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(waiters: &'a AtomicUsize) -> Self {
        waiters.fetch_add(1, Ordering::SeqCst);
        Waiting(waiters)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Limiter {
    pub(crate) fn new(permits: usize) -> Arc<Self> {
        Arc::new(Limiter {
            available: AtomicUsize::new(permits),
            waiters: AtomicUsize::new(0),
            notify: Notify::new(),
        })
    }

    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut a = self.available.load(Ordering::SeqCst);
        loop {
            if a == 0 {
                return None;
            }
            match self
                .available
                .compare_exchange_weak(a, a - 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    return Some(Permit {
                        limiter: Arc::clone(self),
                    });
                }
                Err(now) => a = now,
            }
        }
    }

    /// Waits for a permit. Cancel-safe: dropping the future before it completes
    /// leaves nothing behind (no permit taken, no waiter counted).
    pub(crate) async fn acquire(self: Arc<Self>) -> Permit {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Counted while waiting, uncounted however the wait ends (a permit, or the
            // future dropped while pending).
            let waiting = Waiting::new(&self.waiters);
            // Re-check after announcing ourselves: a release that happened before
            // the announcement left its permit for us to see here; one after it
            // will notify.
            if let Some(p) = self.try_acquire() {
                return p;
            }
            notified.await;
            drop(waiting);
            if let Some(p) = self.try_acquire() {
                return p;
            }
        }
    }

    #[cfg(test)]
    fn available(&self) -> usize {
        self.available.load(Ordering::SeqCst)
    }

    #[cfg(test)]
    fn waiters(&self) -> usize {
        self.waiters.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_and_returned() {
        let l = Limiter::new(2);
        let a = l.try_acquire().unwrap();
        let b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        drop(a);
        assert_eq!(l.available(), 1);
        let _c = l.try_acquire().unwrap();
        drop(b);
        assert_eq!(l.available(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_are_woken_and_the_limit_holds() {
        let l = Limiter::new(3);
        let live = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let l = Arc::clone(&l);
            let live = Arc::clone(&live);
            let peak = Arc::clone(&peak);
            tasks.push(tokio::spawn(async move {
                let _p = l.acquire().await;
                let n = live.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::task::yield_now().await;
                live.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(l.available(), 3);
        assert_eq!(l.waiters(), 0);
    }

    /// A pending acquire that is dropped (the driver gave up waiting: its run was
    /// cancelled, its ready nodes went) is no longer counted as a waiter, and a
    /// waiter woken by a release but dropped before it took the permit leaves the
    /// permit for others.
    #[test]
    fn a_dropped_pending_acquire_leaves_no_waiter_behind() {
        use futures_util::FutureExt;
        let l = Limiter::new(1);
        let held = l.try_acquire().unwrap();
        for _ in 0..3 {
            let mut pending = Box::pin(Arc::clone(&l).acquire());
            assert!(pending.as_mut().now_or_never().is_none());
            assert_eq!(l.waiters(), 1);
            drop(pending);
            assert_eq!(l.waiters(), 0, "a dropped acquire is still counted");
        }
        // Woken by the release, dropped before being polled again.
        let mut woken = Box::pin(Arc::clone(&l).acquire());
        assert!(woken.as_mut().now_or_never().is_none());
        drop(held);
        drop(woken);
        assert_eq!(l.waiters(), 0);
        assert_eq!(l.available(), 1);
        // And the limiter still works.
        let mut next = Box::pin(Arc::clone(&l).acquire());
        let permit = next.as_mut().now_or_never();
        assert!(permit.is_some());
        assert_eq!(l.available(), 0);
    }
}
