//! Operations: the engine's Prometheus metrics and the health marks its readiness is
//! judged by.
//!
//! Every [`Engine`](crate::Engine) keeps its own metric registry (always on: the
//! counters are atomics, and a node's events cost a few of them); read it with
//! [`Engine::metrics_text`](crate::Engine::metrics_text), serve it with
//! `dagforge::http::ops_router` (feature `http`) or the CLI's `serve --metrics ADDR`.
//! [`Engine::readiness`](crate::Engine::readiness) says whether the engine can do its
//! work: the store answers and, while it serves, its scheduler turns and lease
//! renewals are recent. The metric names and what they count are listed in
//! `docs/guide/operations.md`.

pub(crate) mod metrics;
pub(crate) mod observe;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use metrics::{CONTENT_TYPE, DEFAULT_LANE, MAX_LABEL_VALUES, OVERFLOW};

/// What an engine shares for operations: its metrics and its health marks.
#[derive(Debug)]
pub(crate) struct Telemetry {
    pub(crate) metrics: metrics::Metrics,
    pub(crate) liveness: Liveness,
    cache: observe::PlanCache,
}

impl Telemetry {
    pub(crate) fn new() -> Arc<Telemetry> {
        Arc::new(Telemetry {
            metrics: metrics::Metrics::new(),
            liveness: Liveness::new(),
            cache: observe::PlanCache::default(),
        })
    }
}

/// When a serving engine last did its work: turns of its serve loop that reached the
/// store, and renewals of its heartbeat and its runs' leases. Instants are kept as
/// milliseconds since the engine was built (0: never).
#[derive(Debug)]
pub(crate) struct Liveness {
    base: Instant,
    /// How many serve loops run (usually 0 or 1).
    serving: AtomicU64,
    /// The longest a serve loop may sleep between turns, in milliseconds.
    poll_ms: AtomicU64,
    turn_ms: AtomicU64,
    renew_ms: AtomicU64,
    /// The lease renewal interval, in milliseconds.
    renew_every_ms: AtomicU64,
}

impl Liveness {
    fn new() -> Liveness {
        Liveness {
            base: Instant::now(),
            serving: AtomicU64::new(0),
            poll_ms: AtomicU64::new(0),
            turn_ms: AtomicU64::new(0),
            renew_ms: AtomicU64::new(0),
            renew_every_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// A serve loop starts, sleeping at most `poll` between turns, renewing every
    /// `renew_every`.
    pub(crate) fn serving(&self, poll: Duration, renew_every: Duration) {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.poll_ms.store(ms(poll), Ordering::Relaxed);
        self.renew_every_ms
            .store(ms(renew_every), Ordering::Relaxed);
        let now = self.now_ms();
        self.turn_ms.store(now, Ordering::Relaxed);
        self.renew_ms.store(now, Ordering::Relaxed);
        self.serving.fetch_add(1, Ordering::Relaxed);
    }

    /// A serve loop stopped.
    pub(crate) fn stopped(&self) {
        let _ = self
            .serving
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// A turn of the serve loop reached the store.
    pub(crate) fn turned(&self) {
        self.turn_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A heartbeat or lease renewal was recorded.
    pub(crate) fn renewed(&self) {
        self.renew_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Why a serving engine is behind, if it is: empty when it is not serving or its
    /// marks are recent.
    pub(crate) fn behind(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.serving.load(Ordering::Relaxed) == 0 {
            return out;
        }
        let now = self.now_ms();
        let poll = self.poll_ms.load(Ordering::Relaxed);
        // A turn comes at least every poll (a failing store: every second at most);
        // allow one late turn and a second of slack.
        let turn_budget = poll.saturating_mul(2).saturating_add(1000);
        let turn_age = now.saturating_sub(self.turn_ms.load(Ordering::Relaxed));
        if turn_age > turn_budget {
            out.push(format!(
                "scheduler: no serve turn reached the store for {:.1} s (expected within {:.1} s)",
                turn_age as f64 / 1000.0,
                turn_budget as f64 / 1000.0
            ));
        }
        // Renewals come every third of the lease TTL: two missed ones leave a third of
        // the lease; past it, runs may be taken over.
        let every = self.renew_every_ms.load(Ordering::Relaxed);
        let renew_budget = every.saturating_mul(2).saturating_add(500);
        let renew_age = now.saturating_sub(self.renew_ms.load(Ordering::Relaxed));
        if renew_age > renew_budget {
            out.push(format!(
                "leases: no heartbeat or lease renewal recorded for {:.1} s (expected every {:.1} s)",
                renew_age as f64 / 1000.0,
                every as f64 / 1000.0
            ));
        }
        out
    }
}

/// Whether an engine can do its work, and if not, why
/// ([`Engine::readiness`](crate::Engine::readiness)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Readiness {
    /// True when nothing below is wrong.
    pub ready: bool,
    /// What is wrong, one line each (the store's error, a late scheduler turn or lease
    /// renewal); empty when ready.
    pub reasons: Vec<String>,
}

impl Readiness {
    /// Ready unless `reasons` says otherwise.
    pub fn from_reasons(reasons: Vec<String>) -> Readiness {
        Readiness {
            ready: reasons.is_empty(),
            reasons,
        }
    }
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ready {
            return f.write_str("ready");
        }
        f.write_str("not ready")?;
        for r in &self.reasons {
            write!(f, "\n- {r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_that_does_not_serve_is_never_behind() {
        let l = Liveness::new();
        assert!(l.behind().is_empty());
    }

    #[test]
    fn a_late_turn_and_renewal_are_reasons() {
        let l = Liveness::new();
        l.serving(Duration::from_millis(10), Duration::from_millis(10));
        assert!(l.behind().is_empty());
        std::thread::sleep(Duration::from_millis(1100));
        let reasons = l.behind();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].starts_with("scheduler:"), "{reasons:?}");
        assert!(reasons[1].starts_with("leases:"), "{reasons:?}");
        l.turned();
        l.renewed();
        assert!(l.behind().is_empty());
        l.stopped();
        assert!(l.behind().is_empty());
    }

    #[test]
    fn readiness_prints_its_reasons() {
        let r = Readiness::from_reasons(vec!["store: gone".to_owned()]);
        assert!(!r.ready);
        assert_eq!(r.to_string(), "not ready\n- store: gone");
        assert_eq!(Readiness::from_reasons(Vec::new()).to_string(), "ready");
    }
}
