//! Runs attempts as Kubernetes Jobs: one `batch/v1` Job (one pod, `restartPolicy:
//! Never`) per attempt, running the user's own binary in worker mode with the stdout
//! channel of the worker protocol (`docs/protocol.md`), followed through the pod's log.

mod adopt;
mod builder;
mod config;
mod input;
mod logs;
mod manifests;
mod pod;
mod render;
mod supervise;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use tokio::sync::Semaphore;

use super::process::{attempt_span, cancelled_waiting, wait_for_slot};
use super::{Execution, ExecutionHandle, Executor};
use crate::error::ErrorInfo;
use crate::store::Store;

pub use adopt::Reaped;
pub use builder::KubernetesExecutorBuilder;
pub use config::{ConfigError, KubernetesConfig, Propagation};

/// Runs each attempt as a Kubernetes Job in a namespace, with the image that holds
/// the user's binary (whose `worker` subcommand, or [`worker::run`](crate::worker::run),
/// runs the job).
///
/// - **One Job per attempt**, labelled `dagforge.io/run`, `dagforge.io/node`,
///   `dagforge.io/item`, `dagforge.io/attempt`, `dagforge.io/engine` and
///   `app.kubernetes.io/managed-by=dagforge`; CPU and memory requests and limits from
///   the job's `#[job(resources(...))]`, re-tuned per job name by the configuration
///   (`[jobs.<name>.resources]` in the CLI's `dagforge.toml`, or
///   [`resources`](KubernetesExecutorBuilder::resources)); everything else from [`KubernetesConfig`] and its
///   pod template.
/// - **The worker protocol through the pod's log**: the worker runs with
///   `DAGFORGE_WORKER_CHANNEL=stdout` and writes its protocol lines on stdout, where
///   it also relays the job's console (framed so that no console line can pass for a
///   protocol line). The executor follows the log — resuming after a disconnect or a
///   log rotation from the last line's timestamp, dropping the lines it read — and
///   reads it to the end before it deletes a finished Job.
/// - **Input** in the container's environment, or through the artifact store when it
///   is larger than `max_env_input_bytes`.
/// - **Cancellation** deletes the Job (foreground propagation by default): the pod gets
///   SIGTERM, the job's token fires, and the pod is killed after the grace period. A
///   timeout or a heartbeat loss deletes it at once.
/// - **A pod that cannot start** (ImagePullBackOff, ErrImagePull, Unschedulable,
///   CreateContainerConfigError …) fails the attempt (`Executor`, retryable) once the
///   pending timeout passed, with the reason; an OOM kill is a `Failed` attempt whose
///   message starts with `OOMKilled`; an evicted pod or a lost node is `Interrupted`.
/// - **Engines that die**: the engine that resumes a run adopts the Job another engine
///   left for the node instead of starting a second one (a running pod is followed
///   again, a finished one read for its result); [`reap`](KubernetesExecutor::reap)
///   deletes the Jobs of runs that are over.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use dagforge::{Engine, KubernetesExecutor};
///
/// let executor = KubernetesExecutor::builder()
///     .namespace("jobs")
///     .image("registry.example.com/my-jobs:1.4")
///     .service_account("dagforge-worker")
///     .env_from_secret("DB_PASSWORD", "db", "password")
///     .build()
///     .await?;
/// let engine = Engine::builder().executor(executor).build();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KubernetesExecutor {
    inner: Arc<Inner>,
}

impl fmt::Debug for KubernetesExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubernetesExecutor")
            .field("namespace", &self.inner.checked.config.namespace)
            .field("image", &self.inner.checked.image)
            .field("engine", &self.inner.checked.engine)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    checked: config::Checked,
    jobs: Api<Job>,
    pods: Api<Pod>,
    limit: Option<Arc<Semaphore>>,
}

impl Inner {
    /// Deletes the Job `name` (its pod per the propagation policy); a Job already gone
    /// is no error, others are logged.
    async fn delete(&self, name: &str, grace: Option<Duration>) {
        let mut params = match self.checked.config.propagation {
            Propagation::Foreground => DeleteParams::foreground(),
            Propagation::Background => DeleteParams::background(),
        };
        if let Some(g) = grace {
            // Whole seconds, rounded up: a grace of 500 ms is not none.
            let secs = g.as_millis().div_ceil(1000);
            params = params.grace_period(u32::try_from(secs).unwrap_or(u32::MAX));
        }
        match self.jobs.delete(name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(job = name, error = %e, "cannot delete a Job"),
        }
    }

    /// Deletes the Job `name` and its pod at once (no grace).
    async fn kill(&self, name: &str) {
        self.delete(name, Some(Duration::ZERO)).await;
        let params = DeleteParams::default().grace_period(0);
        let pods = ListParams::default().labels(&format!("job-name={name}"));
        if let Err(e) = self.pods.delete_collection(&params, &pods).await {
            tracing::debug!(job = name, error = %e, "cannot delete a Job's pods");
        }
    }
}

/// Deletes the attempt's Job if the supervisor goes away without doing so (the
/// execution was aborted: the engine's grace ran out, the run's driver went away).
struct JobGuard {
    inner: Option<Arc<Inner>>,
    name: String,
}

impl JobGuard {
    fn new(inner: &Arc<Inner>, name: String) -> Self {
        JobGuard {
            inner: Some(Arc::clone(inner)),
            name,
        }
    }

    /// The attempt is over: deletes its Job now.
    async fn delete(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.delete(&self.name, None).await;
        }
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let name = std::mem::take(&mut self.name);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { inner.kill(&name).await });
            }
            Err(_) => tracing::warn!(
                job = name,
                "an aborted attempt's Job could not be deleted (no runtime); \
                 ttlSecondsAfterFinished or `reap` will"
            ),
        }
    }
}

impl KubernetesExecutor {
    /// Configures a Kubernetes executor.
    pub fn builder() -> KubernetesExecutorBuilder {
        KubernetesExecutorBuilder::new()
    }

    /// This engine's id in the `dagforge.io/engine` label of its Jobs.
    pub fn engine_id(&self) -> &str {
        &self.inner.checked.engine
    }

    /// Deletes the Jobs other engines left behind whose runs are over (or unknown to
    /// `store`); the Jobs of runs still going on are kept for the engine that resumes
    /// them to adopt. Call it when an engine starts (`serve` does).
    pub async fn reap(&self, store: &dyn Store) -> Result<Reaped, ErrorInfo> {
        adopt::reap(&self.inner, store).await
    }
}

impl Executor for KubernetesExecutor {
    fn start(&self, execution: Execution) -> ExecutionHandle {
        use tracing::Instrument;
        let inner = Arc::clone(&self.inner);
        let span = attempt_span(&execution, "kubernetes");
        // The task owns the attempt's Job (a `JobGuard`): aborting it deletes the Job.
        let task = tokio::spawn(
            async move {
                let Ok(slot) = wait_for_slot(inner.limit.as_ref(), &execution).await else {
                    execution.complete(Err(cancelled_waiting("a Job slot")));
                    return;
                };
                let outcome = Box::pin(supervise::supervise(&inner, &execution)).await;
                drop(slot);
                execution.complete(outcome);
            }
            .instrument(span),
        );
        ExecutionHandle::from_task(task.abort_handle())
    }

    fn name(&self) -> &'static str {
        "KubernetesExecutor"
    }
}
