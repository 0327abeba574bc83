//! The Job a node attempt gets: one pod, `restartPolicy: Never`, the worker container
//! with the attempt's invocation, resources, labels and the executor's settings.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, LocalObjectReference, PodSpec, ResourceRequirements,
    SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest, Sha256};

use super::config::{Checked, is_label_value};
use crate::ids::RunId;
use crate::job::Resources;

/// The name of the worker container.
pub(super) const CONTAINER: &str = "worker";
/// Labels and annotations the executor sets.
pub(super) const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub(super) const MANAGER: &str = "dagforge";
pub(super) const LABEL_RUN: &str = "dagforge.io/run";
pub(super) const LABEL_NODE: &str = "dagforge.io/node";
pub(super) const LABEL_ITEM: &str = "dagforge.io/item";
pub(super) const LABEL_ATTEMPT: &str = "dagforge.io/attempt";
pub(super) const LABEL_ENGINE: &str = "dagforge.io/engine";
pub(super) const ANNOTATION_NODE: &str = "dagforge.io/node-id";
pub(super) const ANNOTATION_JOB: &str = "dagforge.io/job";
/// What the display replaces a value with.
pub(super) const REDACTED: &str = "<redacted>";

/// One attempt, as the Job needs it.
#[derive(Debug)]
pub(super) struct Attempt<'a> {
    pub(super) job: &'a str,
    pub(super) run: RunId,
    pub(super) node: &'a str,
    pub(super) item: Option<u32>,
    pub(super) attempt: u32,
    pub(super) resources: Resources,
    pub(super) timeout: Option<Duration>,
    /// The worker's variables: the invocation, the channel, the input.
    pub(super) env: Vec<(String, String)>,
}

fn hex(bytes: &[u8], n: usize) -> String {
    let mut s = String::with_capacity(n);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
        if s.len() >= n {
            break;
        }
    }
    s.truncate(n);
    s
}

/// Lower-case letters, digits and `-` of `s`, at most `max` of them.
fn sanitize(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    while out.ends_with('-') {
        out.pop();
    }
    while out.starts_with('-') {
        out.remove(0);
    }
    out
}

/// The node's label value: the id itself when it is a valid one, else a readable
/// prefix and a hash (the id itself is in an annotation).
pub(super) fn node_label(node: &str) -> String {
    if is_label_value(node) && !node.is_empty() {
        return node.to_owned();
    }
    let hash = hex(&Sha256::digest(node.as_bytes()), 8);
    let head = sanitize(node, 50);
    if head.is_empty() {
        format!("n-{hash}")
    } else {
        format!("{head}-{hash}")
    }
}

/// The Job's name: the node's, readable, and a hash of the attempt (so that creating
/// it again — a retried request — finds the same Job).
pub(super) fn job_name(run: RunId, node: &str, item: Option<u32>, attempt: u32) -> String {
    let mut h = Sha256::new();
    h.update(run.to_string().as_bytes());
    h.update([0]);
    h.update(node.as_bytes());
    h.update([0]);
    h.update(item.map_or_else(String::new, |i| i.to_string()).as_bytes());
    h.update([0]);
    h.update(attempt.to_string().as_bytes());
    let head = sanitize(node, 30);
    let hash = hex(&h.finalize(), 12);
    if head.is_empty() {
        format!("df-{hash}")
    } else {
        format!("df-{head}-{hash}")
    }
}

/// The labels that find every Job of a node (or item) of a run.
pub(super) fn selector(run: RunId, node: &str, item: Option<u32>) -> String {
    let item = item.map_or_else(|| "none".to_owned(), |i| i.to_string());
    format!(
        "{MANAGED_BY}={MANAGER},{LABEL_RUN}={run},{LABEL_NODE}={},{LABEL_ITEM}={item}",
        node_label(node)
    )
}

fn quantities(pairs: [(&str, &Option<String>); 2]) -> Option<BTreeMap<String, Quantity>> {
    let map: BTreeMap<String, Quantity> = pairs
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), Quantity(v.clone()))))
        .collect();
    (!map.is_empty()).then_some(map)
}

fn resources(r: &Resources) -> Option<ResourceRequirements> {
    let requests = quantities([("cpu", &r.cpu), ("memory", &r.memory)]);
    let limits = quantities([("cpu", &r.cpu_limit), ("memory", &r.memory_limit)]);
    (requests.is_some() || limits.is_some()).then(|| ResourceRequirements {
        requests,
        limits,
        ..ResourceRequirements::default()
    })
}

fn secs_ceil(d: Duration) -> i64 {
    i64::try_from(d.as_millis().div_ceil(1000)).unwrap_or(i64::MAX)
}

/// The Job of one attempt.
pub(super) fn job(checked: &Checked, a: &Attempt<'_>, name: &str) -> Job {
    let c = &checked.config;
    let mut labels = c.labels.clone();
    labels.insert(MANAGED_BY.into(), MANAGER.into());
    labels.insert(LABEL_RUN.into(), a.run.to_string());
    labels.insert(LABEL_NODE.into(), node_label(a.node));
    labels.insert(
        LABEL_ITEM.into(),
        a.item.map_or_else(|| "none".to_owned(), |i| i.to_string()),
    );
    labels.insert(LABEL_ATTEMPT.into(), a.attempt.to_string());
    labels.insert(LABEL_ENGINE.into(), checked.engine.clone());
    let mut annotations = c.annotations.clone();
    annotations.insert(ANNOTATION_NODE.into(), a.node.to_owned());
    annotations.insert(ANNOTATION_JOB.into(), a.job.to_owned());

    let mut template = checked.template.clone().unwrap_or_default();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .extend(labels.clone());
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .extend(annotations.clone());
    let spec = template.spec.get_or_insert_with(PodSpec::default);
    pod_spec(checked, a, spec);

    let deadline = a
        .timeout
        .map(|t| secs_ceil(t + checked.pending_timeout + checked.grace * 2));
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(c.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            ttl_seconds_after_finished: c.ttl_seconds_after_finished,
            active_deadline_seconds: deadline,
            template,
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// Fills the pod spec (the template's, or an empty one) with the executor's settings
/// and the worker container.
fn pod_spec(checked: &Checked, a: &Attempt<'_>, spec: &mut PodSpec) {
    let c = &checked.config;
    spec.restart_policy = Some("Never".into());
    if let Some(sa) = &c.service_account {
        spec.service_account_name = Some(sa.clone());
    }
    if !c.node_selector.is_empty() {
        spec.node_selector
            .get_or_insert_with(BTreeMap::new)
            .extend(c.node_selector.clone());
    }
    if !c.tolerations.is_empty() {
        spec.tolerations
            .get_or_insert_with(Vec::new)
            .extend(c.tolerations.iter().cloned());
    }
    if c.affinity.is_some() {
        spec.affinity.clone_from(&c.affinity);
    }
    if !c.image_pull_secrets.is_empty() {
        spec.image_pull_secrets.get_or_insert_with(Vec::new).extend(
            c.image_pull_secrets
                .iter()
                .map(|n| LocalObjectReference { name: n.clone() }),
        );
    }
    if !c.volumes.is_empty() {
        spec.volumes
            .get_or_insert_with(Vec::new)
            .extend(c.volumes.iter().cloned());
    }
    spec.termination_grace_period_seconds = Some(secs_ceil(checked.grace).max(1));
    let at = match spec.containers.iter().position(|k| k.name == CONTAINER) {
        Some(i) => i,
        None => {
            spec.containers.push(Container {
                name: CONTAINER.into(),
                ..Container::default()
            });
            spec.containers.len() - 1
        }
    };
    let k = &mut spec.containers[at];
    k.image = Some(checked.image.clone());
    if let Some(p) = &c.image_pull_policy {
        k.image_pull_policy = Some(p.clone());
    }
    if !c.command.is_empty() {
        k.command = Some(c.command.clone());
    }
    k.args = Some(c.args.clone().unwrap_or_else(|| vec!["worker".into()]));
    let env = k.env.get_or_insert_with(Vec::new);
    env.retain(|v| !v.name.starts_with("DAGFORGE_"));
    env.extend(c.env.iter().cloned());
    env.extend(a.env.iter().map(|(name, value)| EnvVar {
        name: name.clone(),
        value: Some(value.clone()),
        value_from: None,
    }));
    if let Some(r) = resources(&a.resources) {
        k.resources = Some(r);
    }
    if !c.volume_mounts.is_empty() {
        k.volume_mounts
            .get_or_insert_with(Vec::new)
            .extend(c.volume_mounts.iter().cloned());
    }
    k.security_context.get_or_insert_with(|| SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        ..SecurityContext::default()
    });
}

/// Whether a variable's plain value is to be hidden in displays: the input, and any
/// name that speaks of a secret.
fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    name == crate::worker::ENV_INPUT
        || ["PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "AUTH"]
            .iter()
            .any(|w| upper.contains(w))
}

/// The Job as JSON for people to read: plain values of secret-looking variables and
/// the input are replaced by `<redacted>` (`valueFrom` references stay: they name a
/// secret, not its value).
pub(super) fn display(job: &Job) -> serde_json::Value {
    let mut job = job.clone();
    if let Some(spec) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        for k in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            for var in k.env.iter_mut().flatten() {
                if var.value.is_some() && secret_name(&var.name) {
                    var.value = Some(REDACTED.into());
                }
            }
        }
    }
    serde_json::to_value(&job).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::super::config::is_dns_label;
    use super::*;

    #[test]
    fn names_and_labels_are_valid_whatever_the_node_id() {
        let run = RunId::new();
        for node in [
            "plain",
            "With Spaces/and/slashes",
            "",
            "-",
            &"x".repeat(300),
            "ünï",
        ] {
            let name = job_name(run, node, Some(3), 2);
            assert!(is_dns_label(&name), "{node:?} → {name}");
            assert!(is_label_value(&node_label(node)), "{node:?}");
        }
        assert_eq!(node_label("load-data"), "load-data");
        assert_ne!(
            node_label("a b"),
            node_label("a/b"),
            "a hash tells them apart"
        );
        assert_ne!(job_name(run, "n", None, 1), job_name(run, "n", None, 2));
        assert_eq!(job_name(run, "n", None, 1), job_name(run, "n", None, 1));
    }
}
