//! The worker side of the fleet: [`QueueWorker`] claims attempts from the store's
//! execution queue ([`ExecutionQueue`]) that its lanes, tags and free capacity allow,
//! runs them with an executor of this process (in-process tasks, or child processes
//! with the process executor), heartbeats its claims and reports logs, progress and
//! outcomes back through the store. `myapp work` runs one (see `docs/guide/workers.md`).

mod journal;
mod run;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::artifact::ArtifactStore;
use crate::executor::{Executor, InProcess};
use crate::registry::{DynJob, Registry};
use crate::store::{Capacity, DEFAULT_LANE, ExecutionQueue, StoreError, WorkerRecord};

pub use journal::WorkerStats;

/// A worker process of the fleet: what it serves and how it runs attempts.
///
/// ```
/// # use std::sync::Arc;
/// use dagforge::prelude::*;
/// use dagforge::fleet::QueueWorker;
/// use dagforge::store::Capacity;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), dagforge::store::StoreError> {
/// let store = Arc::new(MemoryStore::new());
/// let worker = QueueWorker::builder(store, Registry::new())
///     .lanes(["default", "gpu"])
///     .capacity(Capacity::parse("cpu=8,memory=16Gi,slots=32").unwrap())
///     .tag("region", "eu")
///     .build();
/// // Runs until the future completes (then drains): here, at once.
/// let stats = worker.run(async {}).await?;
/// assert_eq!(stats.claimed, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct QueueWorker {
    pub(crate) queue: Arc<dyn ExecutionQueue>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) record: WorkerRecord,
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) artifacts: ArtifactStore,
    pub(crate) lease: Duration,
    pub(crate) grace: Duration,
    pub(crate) balance: Duration,
    pub(crate) journal: Option<PathBuf>,
}

/// Builds a [`QueueWorker`].
#[derive(Debug)]
pub struct QueueWorkerBuilder {
    worker: QueueWorker,
}

impl QueueWorker {
    /// A worker over `queue` running the jobs of `registry`: lane `default`, one slot,
    /// no tags, in-process, a 10 s lease, a 30 s drain grace.
    pub fn builder(queue: Arc<dyn ExecutionQueue>, registry: Registry) -> QueueWorkerBuilder {
        let host = crate::executor::host_name();
        let suffix = crate::ids::RunId::new().to_string();
        let id = format!("{host}-{}-{}", std::process::id(), &suffix[..8]);
        QueueWorkerBuilder {
            worker: QueueWorker {
                queue,
                registry: Arc::new(registry),
                record: WorkerRecord::new(
                    id,
                    host,
                    std::process::id(),
                    vec![DEFAULT_LANE.to_owned()],
                    BTreeMap::new(),
                    Capacity::ONE_SLOT,
                ),
                executor: Arc::new(InProcess),
                artifacts: ArtifactStore::default_local(),
                lease: Duration::from_secs(10),
                grace: Duration::from_secs(30),
                balance: Duration::from_millis(2),
                journal: None,
            },
        }
    }

    /// A worker over `queue` running `jobs` (e.g. [`Engine::jobs`](crate::Engine::jobs):
    /// every job of the workflows an engine knows), with the defaults of
    /// [`builder`](QueueWorker::builder). A name given twice keeps its first job.
    pub fn with_jobs(
        queue: Arc<dyn ExecutionQueue>,
        jobs: impl IntoIterator<Item = DynJob>,
    ) -> QueueWorkerBuilder {
        let mut registry = Registry::new();
        for job in jobs {
            if registry.get(job.name()).is_none() {
                // Cannot fail: the name is not taken.
                let _ = registry.insert(job);
            }
        }
        Self::builder(queue, registry)
    }

    /// Its id: the owner of its claims.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Claims and runs attempts until `shutdown` completes, then drains: claims
    /// nothing more, lets running attempts finish within the grace period, cancels
    /// and gives back to the queue what is left, and removes its record. Store
    /// failures are ridden out (logged, retried); what it did is returned.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<WorkerStats, StoreError> {
        run::run(self, shutdown).await
    }
}

impl QueueWorkerBuilder {
    /// Its id (default: host, process id and a random suffix); unique on the store.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.worker.record.id = id.into();
        self
    }

    /// The host name it reports (default: this machine's).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.worker.record.host = host.into();
        self
    }

    /// The lanes it serves (default: `default`).
    pub fn lanes<I, S>(mut self, lanes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.worker.record.lanes = lanes.into_iter().map(Into::into).collect();
        self
    }

    /// A tag it carries (`key = value`): attempts requiring it may run here.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.worker.record.tags.insert(key.into(), value.into());
        self
    }

    /// Its capacity (default: one slot). Claims never exceed it.
    pub fn capacity(mut self, capacity: Capacity) -> Self {
        self.worker.record.capacity = capacity;
        self
    }

    /// How attempts run here (default: [`InProcess`]; a
    /// [`ProcessExecutor`](crate::ProcessExecutor) runs each in a child process).
    pub fn executor(mut self, executor: impl Executor) -> Self {
        self.worker.executor = Arc::new(executor);
        self
    }

    /// The artifact store its jobs use (default: the local default).
    pub fn artifacts(mut self, artifacts: ArtifactStore) -> Self {
        self.worker.artifacts = artifacts;
        self
    }

    /// The lease on its claims (default 10 s); renewed every third of it. A worker
    /// silent for longer loses its claims.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.worker.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// How long a draining worker lets running attempts finish (default 30 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.worker.grace = grace;
        self
    }

    /// Load balancing: when woken, a worker that is busy waits its load (0 to 1) times
    /// this (default 2 ms) before claiming, so that idler workers claim first.
    pub fn balance(mut self, balance: Duration) -> Self {
        self.worker.balance = balance;
        self
    }

    /// Appends one line per claim and per outcome to `path` (its load after each
    /// claim, pickup times, refused results): for tests and benchmarks.
    pub fn journal(mut self, path: impl Into<PathBuf>) -> Self {
        self.worker.journal = Some(path.into());
        self
    }

    /// The worker.
    pub fn build(self) -> QueueWorker {
        self.worker
    }
}
