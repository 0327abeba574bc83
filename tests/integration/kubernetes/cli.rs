//! The Kubernetes side of the command-line app: `k8s render` (golden), `k8s manifests`,
//! the config file's `[kubernetes]` and `[jobs.<name>.resources]`, `--executor
//! kubernetes` running the examples' catalog workflow through the fake cluster (found
//! through `KUBECONFIG`) with the same outputs, states and attempts as in-process, and
//! `serve` reaping the Jobs of runs that are over.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dagforge::App;
use dagforge::store::{RunQuery, SqliteStore, Store};
use serde_json::{Value, json};

use super::Fake;
use crate::cli::{app_bin, temp_dir};

const APP: &str = env!("CARGO_BIN_EXE_dagforge-cli-app");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The catalog app, in this process.
fn catalog_app() -> App {
    App::new()
        .name("catalog")
        .workflow(examples::catalog::macros::catalog().expect("a valid catalog"))
}

/// A config file in `dir` with `[kubernetes]` settings for tests and `extra` TOML.
fn config(dir: &Path, kubernetes: &str, extra: &str) -> String {
    let path = dir.join("dagforge.toml");
    let text = format!(
        "[kubernetes]\nnamespace = \"jobs\"\nimage = \"registry.example.com/catalog:1\"\n{kubernetes}\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A kubeconfig naming the fake cluster (no credentials).
fn kubeconfig(dir: &Path, fake: &Fake) -> String {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: jobs\n\
         current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
        fake.url
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The worker settings the fake kubelet needs: the pods run the app binary itself.
fn worker_settings() -> String {
    format!(
        "command = [{APP:?}]\nheartbeat_interval_secs = 0.1\nheartbeat_timeout_secs = 3.0\n\
         grace_period_secs = 0.5\npending_timeout_secs = 10.0\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8s_render_prints_the_golden_job_with_config_resources_and_secrets_redacted() {
    let dir = temp_dir("k8s-render");
    let path = config(
        &dir,
        "service_account = \"dagforge-worker\"\nengine_id = \"engine-render\"\n\
         env = [{ name = \"API_TOKEN\", value = \"hunter2-plain\" }, \
         { name = \"DB_PASSWORD\", valueFrom = { secretKeyRef = { name = \"db\", key = \"password\" } } }]",
        "[jobs.integration.resources]\ncpu = \"250m\"\nmemory_limit = \"512Mi\"\n",
    );
    let app = catalog_app();
    let out = app
        .run_from([
            "catalog",
            "k8s",
            "render",
            "catalog-integration",
            "integration",
            "--config",
            &path,
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stdout.contains("hunter2"), "a secret printed");
    let golden = root().join("tests/fixtures/kubernetes/render-integration.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &out.stdout).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(out.stdout, want, "{} differs", golden.display());
    assert!(out.stdout.contains("cpu: \"250m\"") && out.stdout.contains("memory: \"512Mi\""));

    // JSON: the same Job.
    let json_out = app
        .run_from([
            "catalog",
            "k8s",
            "render",
            "catalog-integration",
            "integration",
            "--config",
            &path,
            "--format",
            "json",
        ])
        .await;
    assert_eq!(json_out.code, 0, "{}", json_out.stderr);
    let job: Value = serde_json::from_str(&json_out.stdout).unwrap();
    let k = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        k["resources"],
        json!({"requests": {"cpu": "250m"}, "limits": {"memory": "512Mi"}})
    );
    assert_eq!(job["metadata"]["labels"]["dagforge.io/node"], "integration");

    // Mistakes are named, exit code 2.
    for (kubernetes, extra, args, want) in [
        ("", "", vec!["nope"], "has no node `nope` (nodes: "),
        (
            "",
            "[jobs.integrate.resources]\ncpu = \"1\"\n",
            vec!["markets"],
            "`[jobs.integrate]` in the config file: no job `integrate` is registered",
        ),
        (
            "",
            "[jobs.markets.resources]\nmemory = \"4GB\"\n",
            vec!["markets"],
            "memory = \"4GB\" is not a Kubernetes quantity",
        ),
        (
            "",
            "[jobs.markets]\nresource = {}\n",
            vec!["markets"],
            "unknown field `resource`",
        ),
        (
            "resources = { markets = { cpu = \"1\" } }",
            "[jobs.markets.resources]\ncpu = \"2\"\n",
            vec!["markets"],
            "set twice",
        ),
        (
            "namespce = \"x\"",
            "",
            vec!["markets"],
            "`[kubernetes]` in the config file: unknown field `namespce`",
        ),
    ] {
        let path = config(&dir, kubernetes, extra);
        let mut argv = vec!["catalog", "k8s", "render", "catalog-integration"];
        argv.extend(args);
        argv.extend(["--config", &path]);
        let out = app.run_from(argv).await;
        assert_eq!(out.code, 2, "{want}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{want}: {}", out.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8s_manifests_prints_least_privilege_rbac_and_a_deployment() {
    let dir = temp_dir("k8s-manifests");
    let path = config(&dir, "", "");
    let app = catalog_app();
    let out = app
        .run_from(["catalog", "k8s", "manifests", "--config", &path])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let kinds: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "\"ServiceAccount\"",
            "\"Role\"",
            "\"RoleBinding\"",
            "\"Deployment\""
        ]
    );
    assert_eq!(out.stdout.matches("---\n").count(), 4);
    assert!(out.stdout.contains("namespace: \"jobs\""));
    assert!(
        out.stdout
            .contains("image: \"registry.example.com/catalog:1\"")
    );
    let json_out = app
        .run_from(["catalog", "k8s", "manifests", "--format", "json"])
        .await;
    assert_eq!(json_out.code, 0, "{}", json_out.stderr);
    let list: Value = serde_json::from_str(&json_out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let role = &list["items"][1];
    let verbs = &role["rules"][0]["verbs"];
    assert_eq!(verbs, &json!(["create", "get", "list", "watch", "delete"]));
    assert!(!json_out.stdout.contains("secrets"), "no access to secrets");
    // Without a config file: the default namespace and a placeholder image.
    assert_eq!(list["items"][0]["metadata"]["namespace"], "default");
}

/// The one run in a store: each execution's node, item, state, attempt and output
/// (the run's id replaced, it is in `data-proxy`'s output), in order.
async fn executions(url: &str) -> Vec<(String, Option<u32>, String, u32, Value)> {
    let store = SqliteStore::open(url).await.unwrap();
    let runs = store.list_runs(&RunQuery::new().limit(10)).await.unwrap();
    assert_eq!(runs.items.len(), 1, "one run");
    let run = runs.items[0].id;
    let mut rows: Vec<_> = store
        .executions(run)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let output = e.output.map_or(Value::Null, |o| {
                serde_json::from_str(&o.to_string().replace(&run.to_string(), "<run>")).unwrap()
            });
            (e.node, e.item, e.state.to_string(), e.attempt, output)
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, a.1, a.3).cmp(&(&b.0, b.1, b.3)));
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_kubernetes_runs_the_catalog_like_in_process() {
    let fake = Fake::start().await;
    let dir = temp_dir("k8s-catalog");
    let kube = kubeconfig(&dir, &fake);
    let path = config(
        &dir,
        &worker_settings(),
        "[jobs.integration.resources]\ncpu = \"250m\"\nmemory_limit = \"512Mi\"\n",
    );
    let (code, out, err, _) = tokio::task::spawn_blocking({
        let (dir, path, kube) = (dir.clone(), path.clone(), kube.clone());
        move || {
            app_bin(
                &dir,
                &[
                    "run",
                    "catalog-integration",
                    "--wait",
                    "--store",
                    "sqlite://k8s.db",
                    "--config",
                    &path,
                ],
                &[("KUBECONFIG", &kube), ("DAGFORGE_EXECUTOR", "kubernetes")],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    let reference = temp_dir("k8s-catalog-in-process");
    let (code, out2, err2, _) = tokio::task::spawn_blocking({
        let reference = reference.clone();
        move || {
            app_bin(
                &reference,
                &[
                    "run",
                    "catalog-integration",
                    "--wait",
                    "--store",
                    "sqlite://in.db",
                ],
                &[],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out2}\n{err2}");
    let k8s = executions(&format!("sqlite://{}", dir.join("k8s.db").display())).await;
    let local = executions(&format!("sqlite://{}", reference.join("in.db").display())).await;
    assert_eq!(k8s, local, "the same outputs, states and attempts");
    assert!(
        k8s.iter()
            .any(|(n, _, s, a, _)| n == "publish" && s == "succeeded" && *a == 2),
        "{k8s:?}"
    );
    // One Job per attempt: 2 + 6 integrations + 2 publish attempts + finalizer.
    let created = fake.created();
    assert_eq!(created.len(), 11, "{created:?}");
    // The integration Jobs carry the config's resources.
    let history = fake.lock().history.clone();
    let integration = history
        .iter()
        .find(|c| {
            c.kind == "jobs"
                && c.event == "ADDED"
                && c.object["metadata"]["labels"]["dagforge.io/node"] == "integration"
        })
        .map(|c| c.object.clone())
        .expect("an integration Job");
    assert_eq!(
        integration["spec"]["template"]["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "250m"}, "limits": {"memory": "512Mi"}})
    );
    let clean = fake
        .until(10, |st| st.jobs.is_empty() && st.pods.is_empty())
        .await;
    assert!(clean, "left: {:?} {:?}", fake.job_names(), fake.pod_names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_the_kubernetes_executor_reaps_jobs_of_runs_that_are_over() {
    let fake = Fake::start().await;
    let dir = temp_dir("k8s-reap");
    let kube = kubeconfig(&dir, &fake);
    let path = config(&dir, &worker_settings(), "");
    let orphan = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "df-orphan",
        "labels": {"app.kubernetes.io/managed-by": "dagforge",
            "dagforge.io/run": dagforge::RunId::new().to_string(), "dagforge.io/engine": "gone"}},
        "spec": {"template": {"spec": {"containers": [{"name": "worker", "image": "x",
            "command": ["/bin/sleep", "30"]}]}}}});
    let url = format!("{}/apis/batch/v1/namespaces/jobs/jobs", fake.url);
    let created = reqwest::Client::new()
        .post(&url)
        .json(&orphan)
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let mut serve = std::process::Command::new(APP)
        .current_dir(&dir)
        .args([
            "serve",
            "--executor",
            "kubernetes",
            "--store",
            "sqlite://serve.db",
            "--config",
            &path,
            "--poll-secs",
            "0.2",
        ])
        .env("KUBECONFIG", &kube)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let reaped = fake.until(20, |st| st.jobs.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(serve.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let (status, err) = tokio::task::spawn_blocking(move || {
        let status = serve.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(serve.stderr.as_mut().unwrap(), &mut err).unwrap();
        (status, err)
    })
    .await
    .unwrap();
    assert!(reaped, "the orphan is left: {err}");
    assert!(status.success(), "{status:?}: {err}");
    assert!(
        err.contains("kubernetes: deleted 1 Job of runs that are over (df-orphan)"),
        "{err}"
    );
    assert!(err.contains("kubernetes executor"), "{err}");
    let clean = fake.until(10, |st| st.pods.is_empty()).await;
    assert!(clean, "left: {:?}", fake.pod_names());
}
