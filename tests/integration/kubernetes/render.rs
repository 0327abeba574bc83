//! The Jobs the executor renders, compared with golden JSON files in
//! `tests/fixtures/kubernetes/` (`UPDATE_GOLDEN=1` rewrites them after a deliberate
//! change; review the diff).

use std::path::PathBuf;
use std::time::Duration;

use dagforge::{JobSpec, KubernetesConfig, Resources};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn config(extra: &Value) -> KubernetesConfig {
    let mut base = json!({
        "namespace": "jobs",
        "image": "registry.example.com/catalog:1.4",
        "image_pull_policy": "IfNotPresent",
        "image_pull_secrets": ["registry"],
        "service_account": "dagforge-worker",
        "labels": {"app": "catalog"},
        "annotations": {"owner": "data-team"},
        "node_selector": {"pool": "batch"},
        "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
        "env": [
            {"name": "RUST_LOG", "value": "info"},
            {"name": "API_TOKEN", "value": "plain-text-secret"},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
        ],
        "ttl_seconds_after_finished": 300,
        "engine_id": "engine-a",
        "resources": {"integrate": {"memory_limit": "2Gi"}}
    });
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    serde_json::from_value(base).expect("a config")
}

fn golden(name: &str, rendered: &Value) {
    let path = root().join("tests/fixtures/kubernetes").join(name);
    let text = serde_json::to_string_pretty(rendered).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    assert_eq!(
        rendered,
        &expected,
        "{} differs; rendered:\n{text}",
        path.display()
    );
}

fn spec() -> JobSpec {
    JobSpec::new()
        .timeout(Duration::from_secs(600))
        .resources(Resources::new().cpu("500m").memory("1Gi").cpu_limit("2"))
}

#[test]
fn a_job_with_every_setting() {
    let job = config(&json!({}))
        .render(
            "integrate",
            &spec(),
            "integrate de",
            &json!({"market": "de"}),
        )
        .unwrap();
    golden("job.json", &job);
    let text = job.to_string();
    assert!(
        !text.contains("plain-text-secret"),
        "a secret-looking value is printed"
    );
    assert!(!text.contains("\"market\""), "the input is printed");
    let k = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        k["resources"]["limits"]["memory"], "2Gi",
        "the config's override"
    );
    assert_eq!(k["resources"]["requests"]["cpu"], "500m", "the job's own");
}

#[test]
fn a_pod_template_is_the_base() {
    let template = root().join("docs/guide/kubernetes-pod-template.json");
    let job = config(&json!({"pod_template": template}))
        .render("integrate", &spec(), "integrate", &json!(null))
        .unwrap();
    golden("job-with-template.json", &job);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "batch-low");
    assert_eq!(
        pod["containers"][1]["name"], "cloud-sql-proxy",
        "the sidecar stays"
    );
    assert_eq!(
        pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
        true
    );
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"]["team"],
        "data"
    );
}

#[test]
fn bad_settings_are_refused_by_name() {
    let e = config(&json!({"image": ""}))
        .render("j", &JobSpec::new(), "n", &json!(null))
        .unwrap_err();
    assert_eq!(e.setting, "image");
    let e = config(&json!({"pod_template": root().join("README.md")}))
        .render("j", &JobSpec::new(), "n", &json!(null))
        .unwrap_err();
    assert_eq!(e.setting, "pod_template");
    assert!(e.reason.contains("not a JSON PodTemplateSpec"), "{e}");
}

#[test]
fn manifests_grant_least_privilege() {
    let list = config(&json!({})).manifests();
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["ServiceAccount", "Role", "RoleBinding", "Deployment"]
    );
    assert_eq!(list["items"][1]["metadata"]["namespace"], "jobs");
}
