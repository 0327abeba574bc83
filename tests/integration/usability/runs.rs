//! Recorded runs through `App::run_from` on a temporary SQLite file: ids by prefix and
//! `@latest`, `--json`, outputs, attempt errors, a fan-out retry's rows.

use dagforge::{App, AppOutput};
use serde_json::Value;

use crate::retry_run::{Switch, workflow};

struct Cli {
    app: App,
    store: String,
}

impl Cli {
    fn new(name: &str, s: &Switch) -> Self {
        let dir = crate::cli::temp_dir(&format!("usability-{name}"));
        Cli {
            app: App::new().name("demo").workflow(workflow(s)),
            store: format!("sqlite://{}", dir.join("runs.db").display()),
        }
    }

    async fn run(&self, args: &[&str]) -> AppOutput {
        let mut v = vec!["demo"];
        v.extend_from_slice(args);
        v.extend_from_slice(&["--store", &self.store]);
        self.app.run_from(v).await
    }

    /// Runs `retry-demo` here; its id.
    async fn run_demo(&self) -> String {
        let out = self
            .run(&["run", "retry-demo", "-i", "n=3", "--wait"])
            .await;
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix("run ").and_then(|r| r.split(' ').next()))
            .unwrap_or_else(|| panic!("no run id in {out:?}"))
            .to_owned()
    }
}

fn json(out: &AppOutput) -> Value {
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ids_by_unique_prefix_and_latest() {
    let s = Switch::failing();
    let cli = Cli::new("ids", &s);
    let first = cli.run_demo().await;
    s.heal();
    let second = cli.run_demo().await;

    // @latest and @latest:WORKFLOW: the newest run.
    for latest in ["@latest", "@latest:retry-demo"] {
        let out = cli.run(&["runs", "show", latest]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stdout.starts_with(&format!("run       {second}")),
            "{}",
            out.stdout
        );
    }
    let out = cli.run(&["runs", "show", "@latest:nope"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("no run of workflow `nope`"),
        "{}",
        out.stderr
    );

    // The shortest prefix that tells them apart works in every command taking an id;
    // the prefix they share is ambiguous and names both.
    let common = first
        .chars()
        .zip(second.chars())
        .take_while(|(a, b)| a == b)
        .count();
    let unique = &first[..common + 1];
    let shared = &first[..common.max(1)];
    let logs = cli.run(&["runs", "logs", unique]).await;
    assert_eq!(logs.code, 0, "{logs:?}");
    assert!(logs.stdout.contains("flaky is down"), "{}", logs.stdout);
    for args in [
        vec!["runs", "show", unique],
        vec!["runs", "show", unique, "--json"],
    ] {
        let out = cli.run(&args).await;
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(out.stdout.contains(&first), "{args:?}: {}", out.stdout);
    }
    let out = cli.run(&["runs", "retry", unique]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!("a retry of run {first}")),
        "{}",
        out.stderr
    );
    let retry = out.stdout.trim().to_owned();
    let out = cli
        .run(&["runs", "cancel", &retry[..retry.len() - 4]])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("cancelled"), "{}", out.stdout);
    if common < 30 {
        let out = cli.run(&["runs", "show", shared]).await;
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.stderr.contains("ambiguous") && out.stderr.contains(&second),
            "{}",
            out.stderr
        );
    }
    for bad in ["zz", "@earliest", "@latest:"] {
        let out = cli.run(&["runs", "show", bad]).await;
        assert_eq!(out.code, 2, "{bad}: {out:?}");
        assert!(
            out.stderr.contains("@latest:WORKFLOW"),
            "{bad}: {}",
            out.stderr
        );
    }
    let out = cli.run(&["runs", "show", "ffff"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("no run id starts with `ffff`"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_shapes_of_runs_and_jobs() {
    let s = Switch::default();
    let cli = Cli::new("json", &s);
    let id = cli.run_demo().await;

    let list = json(&cli.run(&["runs", "list", "--json"]).await);
    let runs = list.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["workflow"], "retry-demo");
    assert_eq!(r["state"], "succeeded");
    for key in [
        "version",
        "created_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "priority",
        "not_before",
        "queue",
    ] {
        assert!(r.get(key).is_some(), "{key} missing: {r}");
    }
    assert!(r["duration_ms"].is_u64());

    let show = json(&cli.run(&["runs", "show", &id, "--json"]).await);
    assert_eq!(show["id"], id.as_str());
    assert_eq!(show["inputs"]["n"], 3);
    assert_eq!(show["retry_of"], Value::Null);
    let nodes = show["nodes"].as_array().unwrap();
    let node = |id: &str| nodes.iter().find(|n| n["id"] == id).unwrap();
    assert_eq!(node("source")["output"], serde_json::json!([1, 2, 3]));
    assert_eq!(node("items")["fan_out"], true);
    assert_eq!(node("items")["output"], serde_json::json!([10, 20, 30]));
    assert_eq!(node("total")["output"], 60);
    let items = node("items")["attempts"].as_array().unwrap();
    // The node's own row, then one attempt per item.
    assert_eq!(items.len(), 4, "{items:?}");
    for a in &items[1..] {
        assert_eq!(a["attempt"], 1);
        assert_eq!(a["state"], "succeeded");
        assert!(a["item"].is_u64());
        assert_eq!(a["error"], Value::Null);
    }

    let jobs = json(&cli.run(&["jobs", "--json"]).await);
    assert!(jobs["jobs"]["retry-item"].is_object(), "{jobs}");
    assert_eq!(jobs["workflows"][0]["name"], "retry-demo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_prints_outputs_and_errors_and_one_whole_output() {
    let s = Switch::failing();
    let cli = Cli::new("outputs", &s);
    let id = cli.run_demo().await;
    let show = cli.run(&["runs", "show", &id]).await;
    assert_eq!(show.code, 0, "{show:?}");
    let outputs = show.stdout.split("outputs (").nth(1).unwrap_or_else(|| {
        panic!("no outputs section: {}", show.stdout);
    });
    assert!(
        outputs
            .lines()
            .any(|l| l.trim_start().starts_with("source") && l.contains("[1,2,3]")),
        "{outputs}"
    );
    assert!(
        show.stdout
            .lines()
            .any(|l| l.starts_with("flaky") && l.contains("failed") && l.contains("flaky is down")),
        "{}",
        show.stdout
    );
    let whole = cli.run(&["runs", "show", &id, "--output", "source"]).await;
    assert_eq!(whole.code, 0, "{whole:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&whole.stdout).unwrap(),
        serde_json::json!([1, 2, 3])
    );
    let none = cli.run(&["runs", "show", &id, "--output", "flaky"]).await;
    assert_eq!(none.code, 2, "{none:?}");
    assert!(
        none.stderr.contains("has no output: it is failed"),
        "{}",
        none.stderr
    );
    let unknown = cli.run(&["runs", "show", &id, "--output", "nope"]).await;
    assert_eq!(unknown.code, 2, "{unknown:?}");

    // `runs logs` carries the failed attempts' errors; --follow every state change.
    let logs = cli.run(&["runs", "logs", &id]).await;
    assert_eq!(logs.code, 0, "{logs:?}");
    assert!(
        logs.stdout.contains("flaky #1  failed: flaky is down"),
        "{}",
        logs.stdout
    );
    assert!(
        logs.stdout.contains("items[1] #1  failed: item 2 is down"),
        "{}",
        logs.stdout
    );
    assert!(!logs.stdout.contains(" → "), "{}", logs.stdout);
    let follow = cli.run(&["runs", "logs", &id, "--follow"]).await;
    assert!(
        follow.stdout.contains("source #1  ready → running"),
        "{}",
        follow.stdout
    );
    assert!(
        follow.stdout.contains("run running → failed"),
        "{}",
        follow.stdout
    );
    let one = cli.run(&["runs", "logs", &id, "items", "--follow"]).await;
    assert!(
        one.stdout.lines().all(|l| l.contains("items")),
        "{}",
        one.stdout
    );
}

/// A fan-out retried from its failures: each item's attempts with their real states
/// (no `ready` rows, no attempt-0 rows), the attempts of the original run marked, and
/// the link to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_retry_rows_have_real_states_and_the_original_run() {
    let s = Switch::failing();
    let cli = Cli::new("fan-retry", &s);
    let old = cli.run_demo().await;
    let show = cli.run(&["runs", "show", &old]).await;
    let rows = |text: &str, node: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{node} ")))
            .map(str::to_owned)
            .collect()
    };
    let items = rows(&show.stdout, "items");
    assert!(items.iter().all(|r| !r.contains("ready")), "{items:#?}");
    assert!(
        items
            .iter()
            .any(|r| r.contains(" 1 ") && r.contains("failed") && r.contains("item 2 is down")),
        "{items:#?}"
    );
    s.heal();
    let out = cli
        .run(&["runs", "retry", &old, "--from-failed", "--wait"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let show = cli.run(&["runs", "show", "@latest"]).await;
    assert!(
        show.stdout.contains(&format!("retry of  {old}")),
        "{}",
        show.stdout
    );
    let items = rows(&show.stdout, "items");
    // The node's row, items 0 and 2 from the original run, item 1's failed attempt
    // there and its new one here.
    assert_eq!(items.len(), 5, "{items:#?}\n{}", show.stdout);
    assert!(items.iter().all(|r| !r.contains("ready")), "{items:#?}");
    let item1: Vec<&String> = items
        .iter()
        .filter(|r| r.split_whitespace().nth(1) == Some("1"))
        .collect();
    assert_eq!(item1.len(), 2, "{items:#?}");
    assert!(
        item1[0].contains(" 1* ") && item1[0].contains("failed"),
        "{item1:?}"
    );
    assert!(
        item1[1].contains(" 2 ") && item1[1].contains("succeeded"),
        "{item1:?}"
    );
    let doc = json(&cli.run(&["runs", "show", "@latest", "--json"]).await);
    assert_eq!(doc["retry_of"], old.as_str());
    let attempts = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "items")
        .unwrap()["attempts"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        attempts.iter().all(|a| a["state"] != "ready"),
        "{attempts:?}"
    );
    assert!(
        attempts
            .iter()
            .any(|a| a["item"] == 1 && a["attempt"] == 1 && a["in_retried_run"] == true),
        "{attempts:?}"
    );
}

#[tokio::test]
async fn negative_delay_and_read_only_flags() {
    let s = Switch::default();
    let cli = Cli::new("flags", &s);
    let out = cli.run(&["run", "retry-demo", "--delay", "-5m"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("--delay `-5m`: a duration cannot be negative"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("-- -5"), "{}", out.stderr);
    // Read-only commands neither show nor take the engine's flags.
    for args in [
        &["runs", "list", "--help"][..],
        &["runs", "show", "--help"],
        &["runs", "logs", "--help"],
        &["schedules", "list", "--help"],
        &["graph", "--help"],
        &["jobs", "--help"],
    ] {
        let out = cli.run(args).await;
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(
            !out.stdout.contains("--executor") && !out.stdout.contains("--concurrency"),
            "{args:?}: {}",
            out.stdout
        );
    }
    let out = cli.run(&["runs", "list", "--concurrency", "3"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    for args in [
        &["serve", "--help"][..],
        &["run", "--help"],
        &["runs", "retry", "--help"],
    ] {
        let out = cli.run(args).await;
        assert!(
            out.stdout.contains("--executor") && out.stdout.contains("--concurrency"),
            "{args:?}: {}",
            out.stdout
        );
    }
}
