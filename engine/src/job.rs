//! Jobs: typed units of work, and the policies attached to them.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::context::JobContext;
use crate::error::JobError;

/// A typed unit of work.
///
/// `Input` and `Output` cross process boundaries as JSON, so both are serde types.
/// `NAME` identifies the job in the registry, in the store and on the worker
/// protocol: keep it stable across releases.
///
/// ```
/// use dagforge::prelude::*;
///
/// struct Double;
///
/// impl Job for Double {
///     type Input = u64;
///     type Output = u64;
///     const NAME: &'static str = "double";
///
///     async fn run(&self, ctx: &JobContext, n: u64) -> Result<u64, JobError> {
///         ctx.info(format!("doubling {n}"));
///         Ok(n * 2)
///     }
/// }
/// ```
pub trait Job: Send + Sync + 'static {
    /// The job's input, deserialized from the node's bound inputs.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The job's output, stored and passed to dependents.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The stable name of the job.
    const NAME: &'static str;
    /// The shared resources the job takes ([`JobContext::resource`]): an engine that
    /// runs jobs in process refuses to start a run whose jobs take a resource it does
    /// not have, and a worker refuses the attempt, naming the type. `#[job]` fills it
    /// from its `#[resource]` arguments; default: none.
    const USES: &'static [crate::resource::ResourceKey] = &[];

    /// Default retries, backoff, timeout and placement. Workflow nodes can override them.
    fn spec(&self) -> JobSpec {
        JobSpec::default()
    }

    /// Runs one attempt.
    fn run(
        &self,
        ctx: &JobContext,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, JobError>> + Send;
}

/// Retries, backoff, timeout, priority and placement of a job.
///
/// ```
/// # use dagforge::prelude::*;
/// # use std::time::Duration;
/// let spec = JobSpec::new()
///     .retries(3)
///     .backoff(Backoff::exponential(Duration::from_secs(1)).max_delay(Duration::from_secs(60)))
///     .timeout(Duration::from_secs(300))
///     .priority(10);
/// assert_eq!(spec.retries, 3);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobSpec {
    /// Extra attempts after the first one fails (0 = no retry).
    pub retries: u32,
    /// Delay between attempts.
    pub backoff: Backoff,
    /// Longest time one attempt may run; `None` means no limit.
    #[serde(with = "opt_millis", default)]
    pub timeout: Option<Duration>,
    /// Higher runs first when capacity is short.
    pub priority: i32,
    /// Queue (lane) the job runs in; `None` is the default queue.
    pub queue: Option<String>,
    /// CPU and memory the job asks for (used by the Kubernetes executor).
    pub resources: Resources,
}

impl JobSpec {
    /// The defaults: no retries, no timeout, priority 0.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the number of retries.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
    /// Sets the backoff between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Sets the priority.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
    /// Sets the resources.
    pub fn resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }
}

/// CPU and memory requests and limits, as Kubernetes quantities (`"500m"`, `"256Mi"`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Resources {
    /// CPU request.
    pub cpu: Option<String>,
    /// Memory request.
    pub memory: Option<String>,
    /// CPU limit.
    pub cpu_limit: Option<String>,
    /// Memory limit.
    pub memory_limit: Option<String>,
}

impl Resources {
    /// No requests or limits.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the CPU request.
    pub fn cpu(mut self, q: impl Into<String>) -> Self {
        self.cpu = Some(q.into());
        self
    }
    /// Sets the memory request.
    pub fn memory(mut self, q: impl Into<String>) -> Self {
        self.memory = Some(q.into());
        self
    }
    /// Sets the CPU limit.
    pub fn cpu_limit(mut self, q: impl Into<String>) -> Self {
        self.cpu_limit = Some(q.into());
        self
    }
    /// Sets the memory limit.
    pub fn memory_limit(mut self, q: impl Into<String>) -> Self {
        self.memory_limit = Some(q.into());
        self
    }
}

/// How long to wait before the next attempt.
///
/// Jitter is *subtractive*: with `jitter = 0.2` a delay `d` becomes a uniform value in
/// `[0.8·d, d]`, so `max_delay` is never exceeded and retries of many items spread out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Backoff {
    /// Delay before the first retry.
    #[serde(with = "millis")]
    pub initial: Duration,
    /// Multiplier applied per further retry (1.0 = fixed delay).
    pub factor: f64,
    /// Upper bound of the delay.
    #[serde(with = "opt_millis", default)]
    pub max_delay: Option<Duration>,
    /// Fraction (0.0–1.0) of the delay that is randomised away.
    pub jitter: f64,
}

impl Default for Backoff {
    /// A fixed one-second delay, no jitter.
    fn default() -> Self {
        Backoff::fixed(Duration::from_secs(1))
    }
}

impl Backoff {
    /// The same delay before every retry.
    pub fn fixed(delay: Duration) -> Self {
        Backoff {
            initial: delay,
            factor: 1.0,
            max_delay: None,
            jitter: 0.0,
        }
    }

    /// A delay that doubles per retry, starting at `initial`.
    pub fn exponential(initial: Duration) -> Self {
        Backoff {
            initial,
            factor: 2.0,
            max_delay: None,
            jitter: 0.0,
        }
    }

    /// No delay at all.
    pub fn none() -> Self {
        Backoff::fixed(Duration::ZERO)
    }

    /// Sets the growth factor (values below 1.0 are treated as 1.0).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Caps the delay.
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max_delay = Some(max);
        self
    }

    /// Sets the jitter fraction, clamped to 0.0–1.0.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before retry number `retry` (1 = first retry), without jitter.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let factor = if self.factor.is_finite() {
            self.factor.max(1.0)
        } else {
            1.0
        };
        let exp = retry.saturating_sub(1).min(1024) as i32;
        let secs = self.initial.as_secs_f64() * factor.powi(exp);
        let cap = self.max_delay.map_or(f64::MAX, |m| m.as_secs_f64());
        let secs = secs.min(cap);
        if secs.is_finite() && secs < u64::MAX as f64 {
            Duration::from_secs_f64(secs)
        } else {
            self.max_delay.unwrap_or(Duration::MAX)
        }
    }

    /// The delay before retry number `retry`, with jitter drawn from `unit` (a value in `[0, 1)`).
    pub fn delay_with(&self, retry: u32, unit: f64) -> Duration {
        let base = self.base_delay(retry);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if jitter == 0.0 {
            return base;
        }
        base.mul_f64(1.0 - jitter * unit.clamp(0.0, 1.0))
    }

    /// The delay before retry number `retry`, with random jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        self.delay_with(retry, fastrand::f64())
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().min(u64::MAX as u128) as u64)
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

pub(crate) mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis().min(u64::MAX as u128) as u64)),
            None => s.serialize_none(),
        }
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_grows_and_caps() {
        let b = Backoff::exponential(Duration::from_millis(100)).max_delay(Duration::from_secs(1));
        assert_eq!(b.base_delay(1), Duration::from_millis(100));
        assert_eq!(b.base_delay(2), Duration::from_millis(200));
        assert_eq!(b.base_delay(4), Duration::from_millis(800));
        assert_eq!(b.base_delay(5), Duration::from_secs(1));
        assert_eq!(b.base_delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jitter_is_subtractive_and_bounded() {
        let b = Backoff::fixed(Duration::from_secs(10)).jitter(0.5);
        assert_eq!(b.delay_with(1, 0.0), Duration::from_secs(10));
        assert_eq!(b.delay_with(1, 1.0), Duration::from_secs(5));
        for _ in 0..1000 {
            let d = b.delay(3);
            assert!(d >= Duration::from_secs(5) && d <= Duration::from_secs(10));
        }
    }

    #[test]
    fn uncapped_huge_exponent_does_not_panic() {
        let b = Backoff::exponential(Duration::from_secs(1));
        let _ = b.base_delay(u32::MAX);
        let b = Backoff::fixed(Duration::from_secs(1)).factor(f64::NAN);
        assert_eq!(b.base_delay(10), Duration::from_secs(1));
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = JobSpec::new()
            .retries(2)
            .timeout(Duration::from_millis(1500))
            .queue("gpu")
            .resources(Resources::new().cpu("500m").memory("256Mi"));
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<JobSpec>(&json).unwrap(), spec);
    }
}
