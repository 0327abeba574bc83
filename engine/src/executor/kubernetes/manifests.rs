//! What the engine needs in its namespace (`k8s manifests`): least-privilege RBAC and
//! an example engine Deployment.

use serde_json::{Value, json};

use super::config::KubernetesConfig;

/// The engine's service account (and the Role's and RoleBinding's name).
const ENGINE: &str = "dagforge-engine";

/// A `v1` `List` of the ServiceAccount, Role, RoleBinding and an example Deployment.
pub(super) fn list(config: &KubernetesConfig) -> Value {
    let ns = config.namespace.as_str();
    let image = config
        .image
        .as_deref()
        .unwrap_or("registry.example.com/my-jobs:latest");
    let labels =
        json!({"app.kubernetes.io/name": ENGINE, "app.kubernetes.io/managed-by": "dagforge"});
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": ENGINE, "namespace": ns, "labels": labels},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": ENGINE, "namespace": ns, "labels": labels},
                "rules": [
                    {
                        "apiGroups": ["batch"],
                        "resources": ["jobs"],
                        "verbs": ["create", "get", "list", "watch", "delete"],
                    },
                    {
                        "apiGroups": [""],
                        "resources": ["pods"],
                        "verbs": ["get", "list", "watch", "delete", "deletecollection"],
                    },
                    {
                        "apiGroups": [""],
                        "resources": ["pods/log"],
                        "verbs": ["get"],
                    },
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": ENGINE, "namespace": ns, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ENGINE},
                "subjects": [{"kind": "ServiceAccount", "name": ENGINE, "namespace": ns}],
            },
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": ENGINE, "namespace": ns, "labels": labels},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": ENGINE}},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "serviceAccountName": ENGINE,
                            "containers": [{
                                "name": "engine",
                                "image": image,
                                "args": ["serve"],
                                "env": [
                                    {"name": "DAGFORGE_EXECUTOR", "value": "kubernetes"},
                                    {"name": "DAGFORGE_STORE", "valueFrom": {"secretKeyRef": {"name": "dagforge-store", "key": "url"}}},
                                ],
                                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                            }],
                        },
                    },
                },
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_grants_jobs_pods_and_logs_only() {
        let list = list(&KubernetesConfig::default());
        let role = &list["items"][1];
        assert_eq!(role["kind"], "Role");
        let resources: Vec<&str> = role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["resources"].as_array().unwrap())
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(resources, ["jobs", "pods", "pods/log"]);
        assert!(
            !list.to_string().contains("secrets\""),
            "no access to secrets"
        );
    }
}
