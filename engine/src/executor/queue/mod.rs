//! [`QueueExecutor`]: each attempt goes to the store's execution queue
//! ([`ExecutionQueue`]), where a worker process of the fleet (`myapp work`,
//! [`QueueWorker`](crate::fleet::QueueWorker)) takes it; the outcome, logs and progress
//! come back through the store, and the executor learns of them by the queue's
//! notifications (LISTEN/NOTIFY on PostgreSQL, the change watch on SQLite) — it does
//! not poll for results.
//!
//! One task per executor (`task.rs`) owns every attempt in flight: it pushes the
//! attempts `start` hands it in batches, reads the reports when woken, relays logs and
//! progress to the attempts' contexts and their outcomes to the attempts, asks the
//! store to cancel attempts whose run is cancelled, and every `lease_check` (while
//! attempts are out) fails those whose worker's lease lapsed with
//! [`ErrorKind::WorkerLost`](crate::ErrorKind::WorkerLost).

mod task;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::{ErrorInfo, ErrorKind};
use crate::store::{Capacity, ExecutionQueue, QueuedAttempt};

use super::{Execution, ExecutionHandle, Executor};

use task::Cmd;

/// Where one job's attempts go on the fleet, besides what its spec says: its lane,
/// the tags a worker must carry, its demand (config `[jobs.<name>]` `queue`,
/// `requires`; [`QueueExecutorBuilder::route`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Route {
    /// The lane (instead of the spec's `queue`).
    pub lane: Option<String>,
    /// Tags a worker must carry, `key = value`.
    pub requires: BTreeMap<String, String>,
    /// The demand on a worker's capacity (instead of one slot and the spec's
    /// resource requests).
    pub demand: Option<Capacity>,
}

impl Route {
    /// No lane, tags or demand of its own.
    pub fn new() -> Self {
        Route::default()
    }

    /// The same route, in lane `lane`.
    pub fn lane(mut self, lane: impl Into<String>) -> Self {
        self.lane = Some(lane.into());
        self
    }

    /// The same route, requiring tag `key = value`.
    pub fn require(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.requires.insert(key.into(), value.into());
        self
    }

    /// The same route, taking `demand` of a worker.
    pub fn demand(mut self, demand: Capacity) -> Self {
        self.demand = Some(demand);
        self
    }
}

/// Runs every attempt on a worker of the fleet, through the store's execution queue.
///
/// ```
/// # use std::sync::Arc;
/// use dagforge::prelude::*;
/// use dagforge::{QueueExecutor, Route};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = Arc::new(MemoryStore::new());
/// let executor = QueueExecutor::builder(store.clone())
///     .owner("engine-1")
///     .route("train", Route::new().lane("gpu").require("region", "eu"))
///     .build();
/// let engine = Engine::builder().shared_store(store).executor(executor).build();
/// # let _ = engine;
/// # }
/// ```
#[derive(Debug)]
pub struct QueueExecutor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: Arc<dyn ExecutionQueue>,
    owner: String,
    lease_check: Duration,
    routes: HashMap<String, Route>,
    tx: OnceLock<mpsc::UnboundedSender<Cmd>>,
    next_key: AtomicU64,
}

/// Builds a [`QueueExecutor`].
#[derive(Debug)]
pub struct QueueExecutorBuilder {
    queue: Arc<dyn ExecutionQueue>,
    owner: Option<String>,
    lease_check: Duration,
    routes: HashMap<String, Route>,
}

impl QueueExecutor {
    /// An executor over `queue` (a store with an execution queue: the memory, SQLite
    /// or PostgreSQL store).
    pub fn builder(queue: Arc<dyn ExecutionQueue>) -> QueueExecutorBuilder {
        QueueExecutorBuilder {
            queue,
            owner: None,
            lease_check: Duration::from_secs(1),
            routes: HashMap::new(),
        }
    }

    /// An executor over `queue` with the defaults.
    pub fn new(queue: Arc<dyn ExecutionQueue>) -> Self {
        Self::builder(queue).build()
    }

    /// The owner name its attempts are queued under.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    fn sender(&self) -> &mpsc::UnboundedSender<Cmd> {
        self.inner.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(task::run(
                Arc::clone(&self.inner.queue),
                self.inner.owner.clone(),
                self.inner.lease_check,
                rx,
            ));
            tx
        })
    }

    /// The attempt as queued, or why it cannot be.
    fn queued(&self, execution: &Execution) -> Result<QueuedAttempt, ErrorInfo> {
        let ctx = execution.context();
        let job = execution.job();
        let spec = job.spec();
        let route = self.inner.routes.get(job.name());
        let demand = match route.and_then(|r| r.demand) {
            Some(d) => d,
            None => Capacity::of_resources(&spec.resources).map_err(|e| {
                ErrorInfo::new(
                    ErrorKind::Terminal,
                    format!("job `{}`: its resources: {e}", job.name()),
                )
            })?,
        };
        let mut a = QueuedAttempt::new(
            self.inner.owner.clone(),
            ctx.run_id(),
            ctx.node_id(),
            ctx.item(),
            ctx.attempt(),
            job.name(),
            execution.input().clone(),
            spec,
        )
        .demand(demand);
        a.timeout = execution.timeout();
        if let Some(r) = route {
            if let Some(l) = &r.lane {
                a = a.lane(l.clone());
            }
            a.requires.extend(r.requires.clone());
        }
        Ok(a)
    }
}

impl QueueExecutorBuilder {
    /// The owner name of its attempts in the queue (default: host, process id and a
    /// random suffix). Two executors on one store must not share one.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// How often, while attempts are out, to look for claims whose worker's lease
    /// lapsed (default 1 s).
    pub fn lease_check(mut self, every: Duration) -> Self {
        self.lease_check = every.max(Duration::from_millis(10));
        self
    }

    /// Where attempts of job `job` go (lane, tags, demand).
    pub fn route(mut self, job: impl Into<String>, route: Route) -> Self {
        self.routes.insert(job.into(), route);
        self
    }

    /// The executor. Its task starts with the first attempt (inside a tokio runtime).
    pub fn build(self) -> QueueExecutor {
        let owner = self.owner.unwrap_or_else(|| {
            let host = host_name();
            let id = crate::ids::RunId::new().to_string();
            format!("{host}-{}-{}", std::process::id(), &id[..8])
        });
        QueueExecutor {
            inner: Arc::new(Inner {
                queue: self.queue,
                owner,
                lease_check: self.lease_check,
                routes: self.routes,
                tx: OnceLock::new(),
                next_key: AtomicU64::new(0),
            }),
        }
    }
}

impl Executor for QueueExecutor {
    fn start(&self, execution: Execution) -> ExecutionHandle {
        let attempt = match self.queued(&execution) {
            Ok(a) => a,
            Err(e) => {
                execution.complete(Err(e));
                return ExecutionHandle::detached();
            }
        };
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        let (reply, outcome) = oneshot::channel();
        let tx = self.sender().clone();
        let _ = tx.send(Cmd::Start {
            key,
            attempt: Box::new(attempt),
            ctx: execution.context().clone(),
            reply,
        });
        let task = tokio::spawn(async move {
            // Tells the queue task to withdraw the attempt if this task is aborted
            // (the engine let go of the attempt) before its outcome came.
            let guard = Withdraw {
                key,
                tx: Some(tx.clone()),
            };
            let token = execution.context().cancellation_token().clone();
            let mut outcome = outcome;
            let result = tokio::select! {
                r = &mut outcome => r,
                () = token.cancelled() => {
                    let _ = tx.send(Cmd::Cancel(key));
                    outcome.await
                }
            };
            guard.disarm();
            match result {
                Ok(r) => execution.complete(r),
                // The queue task is gone: the dropped execution fails the attempt.
                Err(_) => drop(execution),
            }
        });
        ExecutionHandle::from_task(task.abort_handle())
    }

    fn name(&self) -> &'static str {
        "QueueExecutor"
    }
}

/// This machine's name (`HOSTNAME`, else `/etc/hostname`, else `unknown`).
pub(crate) fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Sends [`Cmd::Forget`] when dropped armed.
struct Withdraw {
    key: u64,
    tx: Option<mpsc::UnboundedSender<Cmd>>,
}

impl Withdraw {
    fn disarm(mut self) {
        self.tx = None;
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Cmd::Forget(self.key));
        }
    }
}
