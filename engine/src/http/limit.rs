//! Failed logins, limited: a client address that sent too many bad tokens (bearer
//! headers, session logins) in a window is refused with `429` and `Retry-After` until
//! the window ends, and so is everyone once too many failed overall. The table of
//! addresses is bounded: when full, the entries whose window ended go, then the oldest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::problem::{Problem, ProblemKind};

/// The limits of [`Limiter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Failures one client address may make in a window.
    pub(crate) per_client: u32,
    /// Failures all clients together may make in a window.
    pub(crate) overall: u32,
    /// The window.
    pub(crate) window: Duration,
    /// The most client addresses tracked at once.
    pub(crate) table: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_client: 10,
            overall: 200,
            window: Duration::from_secs(60),
            table: 4096,
        }
    }
}

/// Failures in the window that started at `since`.
#[derive(Clone, Copy, Debug)]
struct Window {
    since: Instant,
    failures: u32,
}

impl Window {
    fn fresh(now: Instant) -> Self {
        Window {
            since: now,
            failures: 0,
        }
    }
}

/// Counts failed logins per client address and overall.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: Limits,
    state: Mutex<(Window, HashMap<IpAddr, Window>)>,
}

/// A refusal: how long to wait, and whether everyone is refused (not only this client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) retry_after: Duration,
    pub(crate) overall: bool,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let secs = self.retry_after.as_secs().max(1);
        let detail = if self.overall {
            format!("too many failed logins on this server: try again in {secs} s")
        } else {
            format!("too many failed logins from this address: try again in {secs} s")
        };
        let mut response = Problem::new(ProblemKind::TooManyRequests, detail)
            .culprit("client")
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl Limiter {
    pub(crate) fn new(limits: Limits) -> Self {
        let now = Instant::now();
        Limiter {
            limits,
            state: Mutex::new((Window::fresh(now), HashMap::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Window, HashMap<IpAddr, Window>)> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err` while `client` (or everyone) is over the limit: checked before a token is.
    pub(crate) fn check(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Refused> {
        let window = self.limits.window;
        let mut guard = self.lock();
        let (all, table) = &mut *guard;
        if now.duration_since(all.since) >= window {
            *all = Window::fresh(now);
        }
        if all.failures >= self.limits.overall {
            return Err(Refused {
                retry_after: window.saturating_sub(now.duration_since(all.since)),
                overall: true,
            });
        }
        if let Some(w) = client.and_then(|c| table.get(&c))
            && now.duration_since(w.since) < window
            && w.failures >= self.limits.per_client
        {
            return Err(Refused {
                retry_after: window.saturating_sub(now.duration_since(w.since)),
                overall: false,
            });
        }
        Ok(())
    }

    /// Counts a failed login of `client`.
    pub(crate) fn failed(&self, client: Option<IpAddr>, now: Instant) {
        let window = self.limits.window;
        let mut guard = self.lock();
        let (all, table) = &mut *guard;
        if now.duration_since(all.since) >= window {
            *all = Window::fresh(now);
        }
        all.failures = all.failures.saturating_add(1);
        let Some(client) = client else { return };
        if !table.contains_key(&client) && table.len() >= self.limits.table {
            table.retain(|_, w| now.duration_since(w.since) < window);
            if table.len() >= self.limits.table
                && let Some(oldest) = table.iter().min_by_key(|(_, w)| w.since).map(|(k, _)| *k)
            {
                table.remove(&oldest);
            }
        }
        let w = table.entry(client).or_insert_with(|| Window::fresh(now));
        if now.duration_since(w.since) >= window {
            *w = Window::fresh(now);
        }
        w.failures = w.failures.saturating_add(1);
    }

    /// How many client addresses are tracked.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().1.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(n: u32) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)))
    }

    #[test]
    fn a_client_over_its_limit_waits_for_the_window() {
        let l = Limiter::new(Limits {
            per_client: 3,
            overall: 100,
            window: Duration::from_secs(60),
            table: 16,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(ip(1), t0).is_ok());
            l.failed(ip(1), t0);
        }
        let r = l.check(ip(1), t0 + Duration::from_secs(20)).unwrap_err();
        assert_eq!(r.retry_after, Duration::from_secs(40));
        assert!(!r.overall);
        assert!(l.check(ip(2), t0).is_ok(), "another client is not refused");
        assert!(l.check(ip(1), t0 + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn everyone_waits_once_too_many_failed_overall() {
        let l = Limiter::new(Limits {
            per_client: 100,
            overall: 5,
            window: Duration::from_secs(10),
            table: 16,
        });
        let t0 = Instant::now();
        for n in 0..5 {
            l.failed(ip(n), t0);
        }
        let r = l.check(ip(99), t0).unwrap_err();
        assert!(r.overall);
        assert!(l.check(None, t0).is_err());
        assert!(l.check(ip(99), t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = Limiter::new(Limits {
            per_client: 3,
            overall: u32::MAX,
            window: Duration::from_secs(60),
            table: 8,
        });
        let t0 = Instant::now();
        for n in 0..1000 {
            l.failed(ip(n), t0 + Duration::from_millis(u64::from(n)));
        }
        assert_eq!(l.tracked(), 8);
        for _ in 0..3 {
            l.failed(ip(5000), t0 + Duration::from_secs(2));
        }
        assert!(l.check(ip(5000), t0 + Duration::from_secs(2)).is_err());
    }
}
