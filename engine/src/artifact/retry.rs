//! Retrying provider operations with exponential backoff.

use std::future::Future;
use std::time::Duration;

use super::error::{ArtifactError, BoxError};

/// How a failing provider operation is retried: `retries` more tries after the
/// first, waiting `initial`, then twice as long each time up to `max` (with up to
/// 20 % subtracted at random so that many retrying clients spread out).
///
/// Only failures another try may fix are retried (network errors, server errors,
/// throttling). A missing object, a permission error or an unsupported operation
/// fails at once. Cloud providers also retry each HTTP request inside one
/// operation (one part of a multipart upload, say) with the same policy.
///
/// ```
/// use std::time::Duration;
/// use dagforge::artifact::RetryPolicy;
///
/// let policy = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_secs(2));
/// assert_eq!(policy.retries(), 5);
/// assert_eq!(RetryPolicy::none().retries(), 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    retries: u32,
    initial: Duration,
    max: Duration,
}

impl Default for RetryPolicy {
    /// 3 retries, starting at 200 ms, at most 5 s apart.
    fn default() -> Self {
        RetryPolicy::new(3, Duration::from_millis(200), Duration::from_secs(5))
    }
}

impl RetryPolicy {
    /// A policy of `retries` retries, the first after `initial`, doubling up to `max`.
    pub const fn new(retries: u32, initial: Duration, max: Duration) -> Self {
        RetryPolicy {
            retries,
            initial,
            max,
        }
    }

    /// No retries: the first failure is final.
    pub const fn none() -> Self {
        RetryPolicy::new(0, Duration::ZERO, Duration::ZERO)
    }

    /// How many retries after the first try.
    pub const fn retries(&self) -> u32 {
        self.retries
    }

    /// The first delay.
    pub const fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest delay.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The delay before retry number `retry` (1-based), before jitter.
    pub(crate) fn base_delay(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial.saturating_mul(factor).min(self.max)
    }

    fn delay(&self, retry: u32) -> Duration {
        let base = self.base_delay(retry);
        base.mul_f64(1.0 - 0.2 * fastrand::f64())
    }
}

/// Whether another try of the operation may succeed after this provider error.
pub(crate) fn is_transient(err: &object_store::Error) -> bool {
    matches!(
        err,
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
    )
}

/// A provider failure after retries: the last error and how many tries were made.
#[derive(Debug)]
pub(crate) struct Exhausted {
    pub(crate) error: object_store::Error,
    pub(crate) attempts: u32,
}

/// Runs `op` until it succeeds, fails with an error that is not transient, or the
/// policy's retries are used up.
pub(crate) async fn retry<T, F, Fut>(policy: RetryPolicy, mut op: F) -> Result<T, Exhausted>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = object_store::Result<T>>,
{
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(error) if is_transient(&error) && attempts <= policy.retries => {
                let wait = policy.delay(attempts);
                tracing::debug!(attempt = attempts, ?wait, %error, "artifact provider error; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(error) => return Err(Exhausted { error, attempts }),
        }
    }
}

/// Turns a provider failure into the artifact error that names `key`.
pub(crate) fn classify(
    failure: Exhausted,
    key: &str,
    operation: &'static str,
    store: &str,
) -> ArtifactError {
    let Exhausted { error, attempts } = failure;
    match error {
        object_store::Error::NotFound { .. } => ArtifactError::NotFound {
            key: key.to_owned(),
            store: store.to_owned(),
        },
        error if is_transient(&error) => ArtifactError::Unavailable {
            key: key.to_owned(),
            operation,
            store: store.to_owned(),
            attempts,
            source: Box::new(error) as BoxError,
        },
        error => ArtifactError::Provider {
            key: key.to_owned(),
            operation,
            store: store.to_owned(),
            source: Box::new(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn generic() -> object_store::Error {
        object_store::Error::Generic {
            store: "test",
            source: "connection refused".into(),
        }
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = RetryPolicy::new(9, Duration::from_millis(100), Duration::from_millis(500));
        let d: Vec<_> = (1..=5).map(|n| p.base_delay(n).as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 500, 500]);
        assert_eq!(p.base_delay(100), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_then_reported() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::new(2, Duration::from_secs(1), Duration::from_secs(10));
        let started = tokio::time::Instant::now();
        let out: Result<(), _> = retry(policy, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(generic()) }
        })
        .await;
        let failure = out.unwrap_err();
        assert_eq!(failure.attempts, 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Two waits: ~1 s and ~2 s, each less at most 20 %.
        assert!(started.elapsed() >= Duration::from_millis(2400));
        let err = classify(failure, "runs/x/a", "get", "memory://");
        assert!(matches!(
            err,
            ArtifactError::Unavailable { attempts: 3, .. }
        ));
        assert!(err.is_retryable());
        assert_eq!(
            err.to_string(),
            "artifact `runs/x/a`: get failed on memory:// after 3 attempt(s)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_error_then_success() {
        let calls = AtomicU32::new(0);
        let out = retry(RetryPolicy::default(), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { if n == 0 { Err(generic()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(out.unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn terminal_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = retry(RetryPolicy::default(), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err(object_store::Error::NotFound {
                    path: "a".into(),
                    source: "gone".into(),
                })
            }
        })
        .await;
        let failure = out.unwrap_err();
        assert_eq!(failure.attempts, 1);
        let err = classify(failure, "a", "get", "memory://");
        assert!(matches!(err, ArtifactError::NotFound { .. }));
        assert!(!err.is_retryable());
    }
}
