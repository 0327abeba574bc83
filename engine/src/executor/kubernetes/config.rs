//! What the Kubernetes executor puts in each Job: the settings of `[kubernetes]` in
//! `dagforge.toml`, or of [`KubernetesExecutor::builder`](super::KubernetesExecutor::builder).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, PodTemplateSpec, Toleration, Volume, VolumeMount,
};
use serde::Deserialize;

use crate::job::Resources;

/// How deleting a Job deletes its pod.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Propagation {
    /// The Job goes once its pod is gone (the pod gets SIGTERM first).
    #[default]
    Foreground,
    /// The Job goes at once; the garbage collector deletes the pod after.
    Background,
}

/// The Kubernetes executor's settings, as read from `[kubernetes]` in `dagforge.toml`
/// (keys in snake case; the Kubernetes objects inside — tolerations, affinity, env,
/// volumes — in their usual camelCase form).
///
/// ```toml
/// [kubernetes]
/// namespace = "jobs"
/// image = "registry.example.com/my-jobs:1.4"
/// service_account = "dagforge-worker"
/// node_selector = { pool = "batch" }
/// pending_timeout_secs = 300
/// env = [{ name = "DB_PASSWORD", valueFrom = { secretKeyRef = { name = "db", key = "password" } } }]
///
/// [jobs.train.resources]     # per job name (read by the CLI into `resources`)
/// cpu = "2"
/// memory = "4Gi"
/// memory_limit = "6Gi"
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct KubernetesConfig {
    /// The namespace of the Jobs (default `default`).
    pub namespace: String,
    /// The image that holds the user's binary (required).
    pub image: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`.
    pub image_pull_policy: Option<String>,
    /// Names of the secrets to pull the image with.
    pub image_pull_secrets: Vec<String>,
    /// The pods' service account.
    pub service_account: Option<String>,
    /// The container's command (default: the image's entrypoint).
    pub command: Vec<String>,
    /// The container's arguments (default `["worker"]`, `App`'s worker subcommand).
    pub args: Option<Vec<String>>,
    /// Extra labels of the Jobs and pods (the executor's own `dagforge.io/*` labels
    /// win).
    pub labels: BTreeMap<String, String>,
    /// Annotations of the Jobs and pods.
    pub annotations: BTreeMap<String, String>,
    /// The pods' node selector.
    pub node_selector: BTreeMap<String, String>,
    /// The pods' tolerations.
    pub tolerations: Vec<Toleration>,
    /// The pods' affinity.
    pub affinity: Option<Affinity>,
    /// Environment of the container, `valueFrom` (secrets, config maps) included.
    pub env: Vec<EnvVar>,
    /// Volumes of the pods.
    pub volumes: Vec<Volume>,
    /// Where the container mounts them.
    pub volume_mounts: Vec<VolumeMount>,
    /// A pod template (JSON, a `PodTemplateSpec`) for anything else: the executor
    /// starts from it and fills in its own container (named `worker`, or added).
    pub pod_template: Option<PathBuf>,
    /// `ttlSecondsAfterFinished` of each Job (default 600): the cluster deletes a
    /// finished Job the executor could not.
    pub ttl_seconds_after_finished: Option<i32>,
    /// How long a pod may stay pending (image pulls, scheduling) before the attempt
    /// fails with the reason (default 300 s).
    pub pending_timeout_secs: f64,
    /// How long a pod has to stop after SIGTERM (cancellation, timeout) — the pods'
    /// `terminationGracePeriodSeconds` — before it is killed (default 5 s).
    pub grace_period_secs: f64,
    /// How often workers write a heartbeat line (default 1 s).
    pub heartbeat_interval_secs: f64,
    /// How long a running worker may stay silent before its Job is deleted and the
    /// attempt fails (default 30 s).
    pub heartbeat_timeout_secs: f64,
    /// How deleting a Job deletes its pod (default `foreground`).
    pub propagation: Propagation,
    /// Inputs up to this many bytes go in the container's environment; larger ones
    /// through the artifact store (default 64 KiB).
    pub max_env_input_bytes: usize,
    /// The longest protocol line read from a pod's log (default 16 MiB).
    pub max_message_bytes: usize,
    /// How much console output of one attempt goes to the run's log (default 1 MiB).
    pub console_limit: usize,
    /// How many Jobs may run at once; 0: no limit of the executor's own.
    pub concurrency: usize,
    /// This engine's id in the `dagforge.io/engine` label (default: a fresh UUID).
    pub engine_id: Option<String>,
    /// Per job name: resources over those of the job's `#[job(resources(...))]`
    /// (the CLI fills it from `[jobs.<name>.resources]` of `dagforge.toml`;
    /// `[kubernetes.resources.<name>]` is read too).
    pub resources: BTreeMap<String, Resources>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            namespace: "default".into(),
            image: None,
            image_pull_policy: None,
            image_pull_secrets: Vec::new(),
            service_account: None,
            command: Vec::new(),
            args: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            affinity: None,
            env: Vec::new(),
            volumes: Vec::new(),
            volume_mounts: Vec::new(),
            pod_template: None,
            ttl_seconds_after_finished: Some(600),
            pending_timeout_secs: 300.0,
            grace_period_secs: 5.0,
            heartbeat_interval_secs: 1.0,
            heartbeat_timeout_secs: 30.0,
            propagation: Propagation::Foreground,
            max_env_input_bytes: 64 << 10,
            max_message_bytes: 16 << 20,
            console_limit: 1 << 20,
            concurrency: 0,
            engine_id: None,
            resources: BTreeMap::new(),
        }
    }
}

/// A setting that cannot be used, named.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("kubernetes executor: {setting}: {reason}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The setting (its key in `[kubernetes]`).
    pub setting: String,
    /// What is wrong with it.
    pub reason: String,
}

fn bad(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

/// Whether `s` is a DNS-1123 label (a namespace, a Job name).
pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a valid label value (empty included).
pub(super) fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric())
}

/// The largest number of seconds a duration setting may take (a year: more is taken
/// for a unit mistake).
const MAX_SECS: f64 = 365.0 * 24.0 * 3600.0;

/// The longest pod template file read.
const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

fn secs(setting: &str, v: f64) -> Result<Duration, ConfigError> {
    if v.is_finite() && v > 0.0 && v <= MAX_SECS {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(bad(
            setting,
            format!("{v} is not a number of seconds in (0, {MAX_SECS}]"),
        ))
    }
}

/// The checked form of a [`KubernetesConfig`].
#[derive(Clone, Debug)]
pub(super) struct Checked {
    pub(super) config: KubernetesConfig,
    pub(super) image: String,
    pub(super) template: Option<PodTemplateSpec>,
    pub(super) pending_timeout: Duration,
    pub(super) grace: Duration,
    pub(super) heartbeat_interval: Duration,
    pub(super) heartbeat_timeout: Duration,
    pub(super) engine: String,
}

impl KubernetesConfig {
    /// Checks every setting and reads the pod template file.
    pub(super) fn check(self) -> Result<Checked, ConfigError> {
        let image = match self.image.as_deref().map(str::trim) {
            Some(i) if !i.is_empty() => i.to_owned(),
            _ => {
                return Err(bad(
                    "image",
                    "no image: name the image that holds your binary (`image = \"…\"`)",
                ));
            }
        };
        if !is_dns_label(&self.namespace) {
            return Err(bad(
                "namespace",
                format!("`{}` is not a DNS-1123 label", self.namespace),
            ));
        }
        if let Some(p) = &self.image_pull_policy
            && !matches!(p.as_str(), "Always" | "IfNotPresent" | "Never")
        {
            return Err(bad(
                "image_pull_policy",
                format!("`{p}` is not Always, IfNotPresent or Never"),
            ));
        }
        if let Some(ttl) = self.ttl_seconds_after_finished
            && ttl < 0
        {
            return Err(bad("ttl_seconds_after_finished", "must not be negative"));
        }
        for (key, value) in &self.labels {
            if !is_label_value(value) || key.is_empty() || key.len() > 253 {
                return Err(bad(
                    "labels",
                    format!("`{key}: {value}` is not a valid label"),
                ));
            }
        }
        for var in &self.env {
            if var.name.is_empty() || var.name.starts_with("DAGFORGE_") {
                return Err(bad(
                    "env",
                    format!(
                        "`{}`: names must not be empty nor start with DAGFORGE_ (the worker's own)",
                        var.name
                    ),
                ));
            }
        }
        if self.max_message_bytes < 4096 {
            return Err(bad("max_message_bytes", "at least 4096"));
        }
        let pending_timeout = secs("pending_timeout_secs", self.pending_timeout_secs)?;
        let grace = secs("grace_period_secs", self.grace_period_secs)?;
        let heartbeat_interval = secs("heartbeat_interval_secs", self.heartbeat_interval_secs)?;
        let heartbeat_timeout = secs("heartbeat_timeout_secs", self.heartbeat_timeout_secs)?;
        if heartbeat_timeout <= heartbeat_interval {
            return Err(bad(
                "heartbeat_timeout_secs",
                "must be longer than heartbeat_interval_secs (keep it several intervals)",
            ));
        }
        let template = match &self.pod_template {
            None => None,
            Some(path) => Some(read_template(path)?),
        };
        let engine = match &self.engine_id {
            Some(id) if is_label_value(id) && !id.is_empty() => id.clone(),
            Some(id) => {
                return Err(bad(
                    "engine_id",
                    format!("`{id}` is not a valid label value"),
                ));
            }
            None => uuid::Uuid::now_v7().simple().to_string(),
        };
        Ok(Checked {
            config: self,
            image,
            template,
            pending_timeout,
            grace,
            heartbeat_interval,
            heartbeat_timeout,
            engine,
        })
    }
}

/// Reads a pod template file (JSON), within a size bound.
fn read_template(path: &std::path::Path) -> Result<PodTemplateSpec, ConfigError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let file =
        std::fs::File::open(path).map_err(|e| bad("pod_template", format!("{shown}: {e}")))?;
    let mut text = Vec::new();
    file.take(MAX_TEMPLATE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| bad("pod_template", format!("{shown}: {e}")))?;
    if text.len() as u64 > MAX_TEMPLATE_BYTES {
        return Err(bad(
            "pod_template",
            format!("{shown}: over {MAX_TEMPLATE_BYTES} bytes"),
        ));
    }
    serde_json::from_slice(&text).map_err(|e| {
        bad(
            "pod_template",
            format!("{shown}: not a JSON PodTemplateSpec: {e}"),
        )
    })
}

/// The resources of `job`: the job's own, each field overridden by the config's.
pub(super) fn effective_resources(
    config: &KubernetesConfig,
    job: &str,
    own: &Resources,
) -> Resources {
    let mut r = own.clone();
    if let Some(o) = config.resources.get(job) {
        if o.cpu.is_some() {
            r.cpu.clone_from(&o.cpu);
        }
        if o.memory.is_some() {
            r.memory.clone_from(&o.memory);
        }
        if o.cpu_limit.is_some() {
            r.cpu_limit.clone_from(&o.cpu_limit);
        }
        if o.memory_limit.is_some() {
            r.memory_limit.clone_from(&o.memory_limit);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_like: serde_json::Value) -> Result<Checked, ConfigError> {
        serde_json::from_value::<KubernetesConfig>(toml_like)
            .unwrap()
            .check()
    }

    #[test]
    fn bad_settings_are_named() {
        let e = config(serde_json::json!({})).unwrap_err();
        assert_eq!(e.setting, "image");
        for (json, setting) in [
            (
                serde_json::json!({"image": "i", "namespace": "Not_A_Label"}),
                "namespace",
            ),
            (
                serde_json::json!({"image": "i", "image_pull_policy": "Sometimes"}),
                "image_pull_policy",
            ),
            (
                serde_json::json!({"image": "i", "pending_timeout_secs": -1.0}),
                "pending_timeout_secs",
            ),
            (
                serde_json::json!({"image": "i", "heartbeat_timeout_secs": 0.5}),
                "heartbeat_timeout_secs",
            ),
            (
                serde_json::json!({"image": "i", "env": [{"name": "DAGFORGE_STORE", "value": "x"}]}),
                "env",
            ),
            (
                serde_json::json!({"image": "i", "labels": {"a": "has space"}}),
                "labels",
            ),
            (
                serde_json::json!({"image": "i", "pod_template": "/no/such/file.json"}),
                "pod_template",
            ),
        ] {
            let e = config(json.clone()).unwrap_err();
            assert_eq!(e.setting, setting, "{json}: {e}");
        }
        assert!(config(serde_json::json!({"image": "i"})).is_ok());
    }

    #[test]
    fn config_resources_override_the_jobs_field_by_field() {
        let mut c = KubernetesConfig::default();
        c.resources
            .insert("train".into(), Resources::new().memory("8Gi"));
        let own = Resources::new().cpu("1").memory("1Gi");
        let r = effective_resources(&c, "train", &own);
        assert_eq!(r, Resources::new().cpu("1").memory("8Gi"));
        assert_eq!(effective_resources(&c, "other", &own), own);
    }
}
