//! Where the engine reads the time: the [`Clock`] trait, the wall clock
//! ([`SystemClock`]) and a clock for tests that moves only when told to
//! ([`ManualClock`]). Plain data of the floor: it imports nothing of the crate.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, TimeDelta, Utc};

/// Where the engine's scheduler reads the time. [`SystemClock`] by default; tests use a
/// [`ManualClock`] to step through fires without waiting for them.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        SystemTime::now().into()
    }
}

/// A clock that moves only when told to; clones share the time.
///
/// ```
/// use std::time::Duration;
/// use chrono::{TimeZone, Utc};
/// use dagforge::{Clock, ManualClock};
///
/// let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now(), Utc.with_ymd_and_hms(2026, 12, 1, 0, 1, 30).unwrap());
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock reading `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// Moves the time forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = TimeDelta::from_std(by)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
        {
            *now = t;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn manual_clock_advances_and_clones_share_the_time() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let clock = ManualClock::new(t0);
        let other = clock.clone();
        other.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), t0 + TimeDelta::seconds(90));
        clock.set(t0);
        assert_eq!(other.now(), t0);
    }

    #[test]
    fn manual_clock_saturates_instead_of_overflowing() {
        let clock = ManualClock::new(DateTime::<Utc>::MAX_UTC);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now(), DateTime::<Utc>::MAX_UTC);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), DateTime::<Utc>::MAX_UTC);
    }
}
