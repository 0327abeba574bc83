//! [`KubernetesExecutorBuilder`], and what can be seen without a cluster: the Job a
//! node would get ([`KubernetesConfig::render`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, EnvVarSource, SecretKeySelector, Toleration, Volume, VolumeMount,
};
use kube::Api;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::config::{ConfigError, KubernetesConfig, Propagation, effective_resources};
use super::render::{self, Attempt};
use super::{Inner, KubernetesExecutor};
use crate::ids::RunId;
use crate::job::{JobSpec, Resources};
use crate::worker::{ENV_CHANNEL, ENV_INPUT, Invocation};

/// Builds a [`KubernetesExecutor`]; every setting is a key of [`KubernetesConfig`].
#[must_use]
#[derive(Default)]
pub struct KubernetesExecutorBuilder {
    config: KubernetesConfig,
    api_url: Option<String>,
    client: Option<kube::Client>,
}

impl std::fmt::Debug for KubernetesExecutorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesExecutorBuilder")
            .field("namespace", &self.config.namespace)
            .field("image", &self.config.image)
            .field("api_url", &self.api_url.as_deref().map(crate::redact::url))
            .field("client", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

impl KubernetesExecutorBuilder {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Starts from `config` (e.g. `[kubernetes]` of `dagforge.toml`).
    pub fn config(mut self, config: KubernetesConfig) -> Self {
        self.config = config;
        self
    }

    /// The Jobs' namespace (default `default`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config.namespace = namespace.into();
        self
    }

    /// The image that holds the user's binary (required).
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.config.image = Some(image.into());
        self
    }

    /// `Always`, `IfNotPresent` or `Never`.
    pub fn image_pull_policy(mut self, policy: impl Into<String>) -> Self {
        self.config.image_pull_policy = Some(policy.into());
        self
    }

    /// Adds a secret to pull the image with.
    pub fn image_pull_secret(mut self, name: impl Into<String>) -> Self {
        self.config.image_pull_secrets.push(name.into());
        self
    }

    /// The pods' service account.
    pub fn service_account(mut self, name: impl Into<String>) -> Self {
        self.config.service_account = Some(name.into());
        self
    }

    /// The container's command (default: the image's entrypoint).
    pub fn command<I: IntoIterator<Item = S>, S: Into<String>>(mut self, command: I) -> Self {
        self.config.command = command.into_iter().map(Into::into).collect();
        self
    }

    /// The container's arguments (default `["worker"]`).
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.config.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a label to the Jobs and pods.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.labels.insert(key.into(), value.into());
        self
    }

    /// Adds an annotation to the Jobs and pods.
    pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.annotations.insert(key.into(), value.into());
        self
    }

    /// Adds a node selector entry.
    pub fn node_selector(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.node_selector.insert(key.into(), value.into());
        self
    }

    /// Adds a toleration.
    pub fn toleration(mut self, toleration: Toleration) -> Self {
        self.config.tolerations.push(toleration);
        self
    }

    /// The pods' affinity.
    pub fn affinity(mut self, affinity: Affinity) -> Self {
        self.config.affinity = Some(affinity);
        self
    }

    /// Sets a variable of the container.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.env.push(EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        });
        self
    }

    /// Sets a variable of the container from a key of a secret (the value never passes
    /// through the engine).
    pub fn env_from_secret(
        mut self,
        name: impl Into<String>,
        secret: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        self.config.env.push(EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.into(),
                    key: key.into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
        });
        self
    }

    /// Adds a volume and where the container mounts it.
    pub fn volume(mut self, volume: Volume, mount: VolumeMount) -> Self {
        self.config.volumes.push(volume);
        self.config.volume_mounts.push(mount);
        self
    }

    /// A pod template file (JSON `PodTemplateSpec`) to start from.
    pub fn pod_template(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.pod_template = Some(path.into());
        self
    }

    /// `ttlSecondsAfterFinished` of the Jobs (default 600); `None` for none.
    pub fn ttl_seconds_after_finished(mut self, ttl: Option<i32>) -> Self {
        self.config.ttl_seconds_after_finished = ttl;
        self
    }

    /// How long a pod may stay pending before the attempt fails (default 300 s).
    pub fn pending_timeout(mut self, timeout: Duration) -> Self {
        self.config.pending_timeout_secs = timeout.as_secs_f64();
        self
    }

    /// How long a pod has to stop after SIGTERM (default 5 s); no longer than the
    /// engine's cancel grace.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.config.grace_period_secs = grace.as_secs_f64();
        self
    }

    /// How often workers write a heartbeat (default 1 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval_secs = interval.as_secs_f64();
        self
    }

    /// How long a running worker may stay silent (default 30 s).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.config.heartbeat_timeout_secs = timeout.as_secs_f64();
        self
    }

    /// How deleting a Job deletes its pod (default foreground).
    pub fn propagation(mut self, propagation: Propagation) -> Self {
        self.config.propagation = propagation;
        self
    }

    /// Resources for the job `name` over its own `#[job(resources(...))]`.
    pub fn resources(mut self, job: impl Into<String>, resources: Resources) -> Self {
        self.config.resources.insert(job.into(), resources);
        self
    }

    /// Inputs larger than this go through the artifact store (default 64 KiB).
    pub fn max_env_input_bytes(mut self, bytes: usize) -> Self {
        self.config.max_env_input_bytes = bytes;
        self
    }

    /// How many Jobs may run at once (0: no limit of the executor's own).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.config.concurrency = limit;
        self
    }

    /// This engine's id in the `dagforge.io/engine` label (default: a fresh UUID).
    pub fn engine_id(mut self, id: impl Into<String>) -> Self {
        self.config.engine_id = Some(id.into());
        self
    }

    /// The API server to talk to without credentials, e.g. `http://127.0.0.1:8001`
    /// for `kubectl proxy` (default: the in-cluster service account, else the local
    /// kubeconfig).
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = Some(url.into());
        self
    }

    /// The client to use (default: the in-cluster service account, else the local
    /// kubeconfig).
    pub fn client(mut self, client: kube::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Checks the settings, reads the pod template and connects the client.
    pub async fn build(self) -> Result<KubernetesExecutor, ConfigError> {
        let checked = self.config.check()?;
        let client_error = |reason: String| ConfigError {
            setting: "client".into(),
            reason,
        };
        let client = match (self.client, self.api_url) {
            (Some(c), _) => c,
            (None, Some(url)) => {
                let uri = url
                    .parse()
                    .map_err(|e| client_error(format!("api_url `{url}`: {e}")))?;
                let mut config = kube::Config::new(uri);
                config
                    .default_namespace
                    .clone_from(&checked.config.namespace);
                kube::Client::try_from(config).map_err(|e| client_error(e.to_string()))?
            }
            (None, None) => kube::Client::try_default()
                .await
                .map_err(|e| client_error(format!("no cluster configuration found: {e}")))?,
        };
        let ns = checked.config.namespace.clone();
        let limit = (checked.config.concurrency > 0)
            .then(|| Arc::new(Semaphore::new(checked.config.concurrency)));
        Ok(KubernetesExecutor {
            inner: Arc::new(Inner {
                jobs: Api::namespaced(client.clone(), &ns),
                pods: Api::namespaced(client, &ns),
                checked,
                limit,
            }),
        })
    }
}

impl KubernetesConfig {
    /// The Job that an attempt of job `job` (with `spec`) at node `node` would get for
    /// `input`, as JSON for review, without a cluster: the run id is the nil UUID, the
    /// attempt 1, the execution id empty; plain values of secret-looking variables
    /// and the input are `<redacted>`.
    pub fn render(
        &self,
        job: &str,
        spec: &JobSpec,
        node: &str,
        input: &Value,
    ) -> Result<Value, ConfigError> {
        let checked = self.clone().check()?;
        let run: RunId = uuid::Uuid::nil()
            .to_string()
            .parse()
            .unwrap_or_else(|_| RunId::new());
        let invocation = Invocation {
            job: job.to_owned(),
            run,
            node: node.to_owned(),
            item: None,
            attempt: 1,
            execution: String::new(),
            timeout: spec.timeout,
            heartbeat: checked.heartbeat_interval,
            grace: checked.grace,
            max_message: checked.config.max_message_bytes,
        };
        let mut env: Vec<(String, String)> = invocation
            .to_vars()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        env.push((ENV_CHANNEL.into(), "stdout".into()));
        env.push((ENV_INPUT.into(), input.to_string()));
        let attempt = Attempt {
            job,
            run,
            node,
            item: None,
            attempt: 1,
            resources: effective_resources(&checked.config, job, &spec.resources),
            timeout: spec.timeout,
            env,
        };
        let name = render::job_name(run, node, None, 1);
        Ok(render::display(&render::job(&checked, &attempt, &name)))
    }

    /// What the engine needs in its namespace, as a `v1` `List` to `kubectl apply`: a
    /// ServiceAccount, a Role of least privilege (Jobs; pods and their log; nothing
    /// else) and its RoleBinding, and an example Deployment of an engine running
    /// `serve` with the Kubernetes executor.
    pub fn manifests(&self) -> Value {
        super::manifests::list(self)
    }
}
