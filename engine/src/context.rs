//! The context a job receives: identity, logging, progress, cancellation.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::artifact::{ArtifactStore, Artifacts, Scope};
use crate::ids::RunId;
use crate::log_level::LogLevel;
use crate::resource::{Live, ResourceError, ResourceSet};
use crate::signal::{Signal, SignalSender};

/// What a job knows about the attempt it runs in, and how it talks back.
///
/// Log lines and progress go to the run's event stream and the store (and to
/// `tracing`); the cancellation token fires when the run is cancelled, and a job that
/// notices should stop and return [`JobError::cancelled`](crate::JobError::cancelled).
#[derive(Clone, Debug)]
pub struct JobContext {
    run: RunId,
    node: Arc<str>,
    item: Option<u32>,
    attempt: u32,
    /// Shared by every attempt of the run: cloning an `Arc` is one atomic add, where
    /// cloning the token itself takes its tree's lock (this is on every attempt's path).
    cancel: Arc<CancellationToken>,
    sink: Option<SignalSender>,
    artifacts: Option<ArtifactStore>,
    /// The process's shared resources; `None` when none are registered.
    resources: Option<Live>,
}

impl JobContext {
    pub(crate) fn new(
        run: RunId,
        node: Arc<str>,
        item: Option<u32>,
        attempt: u32,
        cancel: impl Into<Arc<CancellationToken>>,
        sink: Option<SignalSender>,
    ) -> Self {
        JobContext {
            run,
            node,
            item,
            attempt,
            cancel: cancel.into(),
            sink,
            artifacts: None,
            resources: None,
        }
    }

    /// A context that belongs to no run: log lines go to `tracing` only. Use it to call
    /// a job directly, e.g. in a unit test.
    ///
    /// ```
    /// # use dagforge::prelude::*;
    /// let ctx = JobContext::detached("unit-test");
    /// ctx.info("hello");
    /// assert_eq!(ctx.node_id(), "unit-test");
    /// assert_eq!(ctx.attempt(), 1);
    /// ```
    pub fn detached(node: impl Into<Arc<str>>) -> Self {
        JobContext::new(
            RunId::new(),
            node.into(),
            None,
            1,
            CancellationToken::new(),
            None,
        )
        .with_artifacts(ArtifactStore::memory())
    }

    /// Uses `store` for this context's artifacts (a detached context starts with a
    /// new memory store; an engine's contexts use the engine's store).
    pub fn with_artifacts(mut self, store: ArtifactStore) -> Self {
        self.artifacts = Some(store);
        self
    }

    /// Gives this context the resources of `set` (for a detached context, say in a unit
    /// test; an engine's contexts get the engine's). The resources are built anew for
    /// this context and its clones: factories run again.
    ///
    /// ```
    /// # use dagforge::prelude::*;
    /// use dagforge::resource::ResourceSet;
    ///
    /// #[derive(Debug)]
    /// struct Greeting(&'static str);
    ///
    /// #[job]
    /// async fn greet(#[resource] g: &Greeting, who: String) -> Result<String, JobError> {
    ///     Ok(format!("{} {who}", g.0))
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), JobError> {
    /// let ctx = JobContext::detached("test").with_resources(&ResourceSet::new().value(Greeting("hello")));
    /// let out = Greet.run(&ctx, GreetInput { who: "you".into() }).await?;
    /// assert_eq!(out, "hello you");
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_resources(mut self, set: &ResourceSet) -> Self {
        self.resources = set.start();
        self
    }

    /// Uses the process's live resources (the engine's, the worker's).
    pub(crate) fn with_live(mut self, live: Option<Live>) -> Self {
        self.resources = live;
        self
    }

    /// The shared resource of type `T`, registered with
    /// [`EngineBuilder::resource`](crate::EngineBuilder::resource) or
    /// [`resource_with`](crate::EngineBuilder::resource_with) (or on the app or the
    /// worker): built on first use in this process if it has a factory, then the same
    /// value for every attempt. `#[job]` functions take it as an argument instead:
    /// `#[resource] db: &Pool`.
    ///
    /// With `?` in a job, [`ResourceError::Missing`] fails the attempt for good
    /// (terminal: nothing registers it in the meantime) and a failed factory is
    /// retryable. A hand-written job lists the types it takes in
    /// [`Job::USES`](crate::Job::USES), so that a missing one is reported before any
    /// run starts.
    ///
    /// ```
    /// # use dagforge::prelude::*;
    /// use dagforge::resource::{ResourceKey, ResourceSet};
    ///
    /// #[derive(Debug)]
    /// struct Rates { eur_usd: f64 }
    ///
    /// struct Convert;
    /// impl Job for Convert {
    ///     type Input = f64;
    ///     type Output = f64;
    ///     const NAME: &'static str = "convert";
    ///     const USES: &'static [ResourceKey] = &[ResourceKey::of::<Rates>()];
    ///     async fn run(&self, ctx: &JobContext, eur: f64) -> Result<f64, JobError> {
    ///         let rates = ctx.resource::<Rates>().await?;
    ///         Ok(eur * rates.eur_usd)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), JobError> {
    /// let set = ResourceSet::new().value(Rates { eur_usd: 1.5 });
    /// let ctx = JobContext::detached("convert").with_resources(&set);
    /// assert_eq!(Convert.run(&ctx, 2.0).await?, 3.0);
    ///
    /// let bare = JobContext::detached("convert");
    /// let e = Convert.run(&bare, 2.0).await.unwrap_err();
    /// assert!(!e.is_retryable());
    /// assert!(e.message().contains("Rates"), "{e}");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn resource<T: Send + Sync + 'static>(&self) -> Result<&T, ResourceError> {
        self.resource_any::<T>().await
    }

    /// [`resource`](Self::resource) without the `Send + Sync` bound (no such type can
    /// be registered: it is then missing).
    pub(crate) async fn resource_any<T: 'static>(&self) -> Result<&T, ResourceError> {
        match &self.resources {
            Some(live) => live.get::<T>().await,
            None => Err(ResourceError::Missing {
                type_name: std::any::type_name::<T>(),
                job: None,
            }),
        }
    }

    /// The artifact store as this attempt sees it: saves go under
    /// `runs/<run>/<node>[/item-<i>]/attempt-<n>/`. The shortcuts
    /// [`save_json`](Self::save_json), [`load`](Self::load), … call it.
    pub fn artifacts(&self) -> Artifacts {
        let scope = Scope::new(self.run, self.node.clone(), self.item, self.attempt);
        self.artifact_store().scoped(scope)
    }

    /// The artifact store itself (see [`EngineBuilder::artifacts`](crate::EngineBuilder::artifacts)).
    pub fn artifact_store(&self) -> &ArtifactStore {
        self.artifacts
            .as_ref()
            .unwrap_or_else(|| crate::artifact::process_default())
    }

    /// The run this attempt belongs to.
    pub fn run_id(&self) -> RunId {
        self.run
    }

    /// The workflow node being executed.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// The fan-out item index, for a fan-out node.
    pub fn item(&self) -> Option<u32> {
        self.item
    }

    /// The attempt number, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// An idempotency key and fencing token for this attempt's side effects:
    /// `<run>/<node>[/<item>]/<attempt>`.
    ///
    /// The store's fencing keeps an engine that lost a run (frozen, cut off) from
    /// *recording* anything, but a job body it had already started may still finish
    /// and act on the world after another engine took the run over and ran the node
    /// again. Attempt numbers of a node (or item) never repeat and only grow, even
    /// across engines: so a system the job writes to can dedupe by this key (a retried
    /// call of one attempt), and refuse a write whose attempt is older than the last
    /// one it accepted for the same node (a late, superseded attempt).
    ///
    /// ```
    /// # use dagforge::prelude::*;
    /// use std::collections::HashMap;
    ///
    /// /// A ledger that applies each charge once, and never one from an attempt older
    /// /// than the newest it saw for the same node.
    /// #[derive(Default)]
    /// struct Ledger {
    ///     applied: HashMap<String, u32>, // node scope → newest attempt applied
    /// }
    /// impl Ledger {
    ///     fn charge(&mut self, ctx: &JobContext) -> bool {
    ///         let key = ctx.attempt_key();
    ///         let (scope, _) = key.rsplit_once('/').unwrap();
    ///         match self.applied.get(scope) {
    ///             Some(&newest) if newest >= ctx.attempt() => false, // duplicate or stale
    ///             _ => {
    ///                 self.applied.insert(scope.to_owned(), ctx.attempt());
    ///                 true
    ///             }
    ///         }
    ///     }
    /// }
    ///
    /// let ctx = JobContext::detached("charge");
    /// assert!(ctx.attempt_key().ends_with("/charge/1"));
    /// let mut ledger = Ledger::default();
    /// assert!(ledger.charge(&ctx));
    /// assert!(!ledger.charge(&ctx), "the same attempt applies once");
    /// ```
    pub fn attempt_key(&self) -> String {
        match self.item {
            Some(i) => format!("{}/{}/{i}/{}", self.run, self.node, self.attempt),
            None => format!("{}/{}/{}", self.run, self.node, self.attempt),
        }
    }

    /// Records a log line.
    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        let message = message.into();
        match level {
            LogLevel::Trace => {
                tracing::trace!(node = %self.node, item = self.item, attempt = self.attempt, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(node = %self.node, item = self.item, attempt = self.attempt, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(node = %self.node, item = self.item, attempt = self.attempt, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(node = %self.node, item = self.item, attempt = self.attempt, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(node = %self.node, item = self.item, attempt = self.attempt, "{message}")
            }
        }
        if let Some(sink) = &self.sink {
            sink.send(Signal::Log { level, message });
        }
    }

    /// Records a debug line.
    pub fn debug(&self, message: impl Into<String>) {
        self.log(LogLevel::Debug, message);
    }

    /// Records an info line.
    pub fn info(&self, message: impl Into<String>) {
        self.log(LogLevel::Info, message);
    }

    /// Records a warning.
    pub fn warn(&self, message: impl Into<String>) {
        self.log(LogLevel::Warn, message);
    }

    /// Records an error line (the attempt's outcome is still what `run` returns).
    pub fn error(&self, message: impl Into<String>) {
        self.log(LogLevel::Error, message);
    }

    /// Reports progress: `percent` is clamped to 0–100.
    pub fn progress(&self, percent: u8, message: impl Into<String>) {
        let percent = percent.min(100);
        let message = message.into();
        tracing::trace!(node = %self.node, percent, "{message}");
        if let Some(sink) = &self.sink {
            sink.send(Signal::Progress { percent, message });
        }
    }

    /// Reports the attempt's outcome to the orchestrator (once, by the executor).
    pub(crate) fn report_done(&self, outcome: Result<serde_json::Value, crate::ErrorInfo>) {
        if let Some(sink) = &self.sink {
            sink.send(Signal::Done(outcome));
        }
    }

    /// Whether the run has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the run is cancelled.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// The cancellation token, to hand to code that takes one.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.cancel
    }
}
