//! Enqueuing runs for later, with priorities and idempotency keys.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::engine::{Engine, bind_params};
use crate::error::{Error, Result};
use crate::ids::RunId;
use crate::store::{Lease, RunRecord, StoreError};
use crate::workflow::{Workflow, WorkflowSnapshot};

/// Options of [`Engine::enqueue_with`]: when the run may start, its priority, its
/// idempotency key.
///
/// ```
/// use std::time::Duration;
/// use dagforge::Enqueue;
///
/// let options = Enqueue::new()
///     .delay(Duration::from_secs(600))
///     .priority(10)
///     .idempotency_key("invoice-2026-11-30");
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Enqueue {
    at: Option<SystemTime>,
    delay: Option<Duration>,
    priority: i32,
    key: Option<String>,
    retention: Option<Duration>,
    queue: Option<String>,
}

impl Enqueue {
    /// How long an idempotency key holds by default: a second enqueue with the same
    /// key within this window returns the first run.
    pub const DEFAULT_KEY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

    /// The longest delay an enqueue accepts (about 10 years): anything further is
    /// taken for a mistake (a timestamp in the wrong unit, say).
    pub const MAX_DELAY: Duration = Duration::from_secs(10 * 366 * 24 * 60 * 60);

    /// Start as soon as an engine is free, priority 0, no key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start no earlier than `at` (an instant in the past means now).
    pub fn at(mut self, at: SystemTime) -> Self {
        self.at = Some(at);
        self.delay = None;
        self
    }

    /// Start no earlier than `delay` from now (at most [`MAX_DELAY`](Enqueue::MAX_DELAY)).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self.at = None;
        self
    }

    /// When capacity is short, runs with a higher priority are claimed first (default
    /// 0; negative is lower).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// One run per key: enqueuing again with a key that a run took less than the
    /// retention window ago ([`DEFAULT_KEY_RETENTION`](Enqueue::DEFAULT_KEY_RETENTION) unless
    /// [`key_retention`](Enqueue::key_retention)) returns that run instead of creating
    /// another, even when the two enqueues race (from any number of processes).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The lane the run waits in (default: its workflow's lane, `workflow:<name>`).
    /// A lane may be capped ([`Engine::set_queue_limit`]): claims then take at most
    /// that many of its runs at once, across every engine on the store.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// How long an idempotency key holds.
    pub fn key_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// The instant the run may start, `None` for now.
    fn start_at(&self, now: SystemTime) -> Result<Option<SystemTime>> {
        if let Some(d) = self.delay {
            if d > Self::MAX_DELAY {
                return Err(Error::Input {
                    name: "delay".to_owned(),
                    reason: format!(
                        "{d:?} is out of range (at most {} days)",
                        Self::MAX_DELAY.as_secs() / 86_400
                    ),
                });
            }
            return Ok(Some(now + d));
        }
        if let Some(at) = self.at {
            if at.duration_since(now).is_ok_and(|d| d > Self::MAX_DELAY) {
                return Err(Error::Input {
                    name: "at".to_owned(),
                    reason: format!(
                        "{} is out of range (at most {} days ahead)",
                        humantime_utc(at),
                        Self::MAX_DELAY.as_secs() / 86_400
                    ),
                });
            }
            return Ok(Some(at));
        }
        Ok(None)
    }
}

/// `at` as RFC 3339 in UTC, for messages.
fn humantime_utc(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The lane of a workflow's runs that were enqueued without one.
fn workflow_lane(workflow: &str) -> String {
    format!("workflow:{workflow}")
}

impl Engine {
    /// Records a run without driving it here: any engine serving the same store (see
    /// [`serve`](Engine::serve)) — this one included — claims and drives it. The same as
    /// [`enqueue_with`](Engine::enqueue_with) with default options ([`Enqueue::new`]).
    pub async fn enqueue(&self, workflow: &Workflow, inputs: impl Serialize) -> Result<RunId> {
        self.enqueue_with(workflow, inputs, Enqueue::new()).await
    }

    /// Caps lane `queue` at `max_running` runs going at once (claimed by some engine
    /// and not finished), across every engine serving the store; `None` lifts the cap.
    /// Runs past the cap wait in the store, in priority order, until a run of the lane
    /// finishes. Applies to enqueued runs ([`enqueue`](Engine::enqueue),
    /// [`enqueue_with`](Engine::enqueue_with)); runs started here with
    /// [`start`](Engine::start) are this engine's own.
    pub async fn set_queue_limit(&self, queue: &str, max_running: Option<u32>) -> Result<()> {
        Ok(self.sh.store.set_queue_limit(queue, max_running).await?)
    }

    /// Caps how many enqueued runs of `workflow` go at once (its lane,
    /// `workflow:<name>`, used by runs enqueued without a [`queue`](Enqueue::queue));
    /// `None` lifts the cap.
    pub async fn set_workflow_limit(
        &self,
        workflow: &Workflow,
        max_running: Option<u32>,
    ) -> Result<()> {
        self.set_queue_limit(&workflow_lane(workflow.name()), max_running)
            .await
    }

    /// Records a run of `workflow` for any engine serving the store (see
    /// [`serve`](Engine::serve)) to claim and drive, with `options`: not before a time,
    /// at a priority, at most once per idempotency key. Returns the run's id — with a
    /// key that a run holds already, that run's id.
    ///
    /// ```
    /// # use dagforge::prelude::*;
    /// # use dagforge::Enqueue;
    /// # struct Noop;
    /// # impl Job for Noop {
    /// #     type Input = ();
    /// #     type Output = ();
    /// #     const NAME: &'static str = "noop";
    /// #     async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), dagforge::Error> {
    /// let mut wf = Workflow::builder("nightly");
    /// wf.add("noop", Noop);
    /// let wf = wf.build()?;
    /// let engine = Engine::builder().workflow(&wf).build();
    /// let first = engine
    ///     .enqueue_with(&wf, (), Enqueue::new().idempotency_key("2026-11-30"))
    ///     .await?;
    /// let again = engine
    ///     .enqueue_with(&wf, (), Enqueue::new().idempotency_key("2026-11-30"))
    ///     .await?;
    /// assert_eq!(first, again);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn enqueue_with(
        &self,
        workflow: &Workflow,
        inputs: impl Serialize,
        options: Enqueue,
    ) -> Result<RunId> {
        let inputs = crate::bounds::run_inputs(&inputs, self.sh.max_input)?;
        bind_params(workflow, &inputs)?;
        let now = SystemTime::now();
        let start = options.start_at(now)?;
        let spec = WorkflowSnapshot::of(workflow);
        let retention = options.retention.unwrap_or(Enqueue::DEFAULT_KEY_RETENTION);
        // Twice at most: a key whose retention is over is freed, then taken again.
        for _ in 0..2 {
            let mut record = RunRecord::new(
                RunId::new(),
                workflow.name().to_owned(),
                workflow.version().to_owned(),
                spec.clone(),
                inputs.clone(),
            );
            record.priority = options.priority;
            record.not_before = start;
            record.idempotency_key.clone_from(&options.key);
            record.queue = Some(
                options
                    .queue
                    .clone()
                    .unwrap_or_else(|| workflow_lane(workflow.name())),
            );
            // The lease of an enqueued run expires when it may start: that is what
            // makes it claimable, then.
            let wait = start
                .and_then(|t| t.duration_since(now).ok())
                .unwrap_or(Duration::ZERO);
            match self
                .sh
                .store
                .create_run(&record, &Lease::new("queue", 0), wait)
                .await
            {
                Ok(()) => return Ok(record.id),
                Err(StoreError::KeyExists {
                    key,
                    run,
                    created_at,
                }) => {
                    let fresh = now
                        .duration_since(created_at)
                        .map_or(true, |age| age < retention);
                    if fresh {
                        return Ok(run);
                    }
                    self.sh.store.release_key(&key, run).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Input {
            name: "idempotency_key".to_owned(),
            reason: "the key was taken again while its previous run's retention ended; \
                     enqueue again"
                .to_owned(),
        })
    }
}
