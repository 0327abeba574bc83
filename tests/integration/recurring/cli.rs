//! `schedules …` and `run --at/--delay/--priority/--key` through `App::run_from`, on a
//! temporary SQLite file.

use dagforge::prelude::*;
use dagforge::store::{RunQuery, SqliteStore, Store};
use dagforge::{App, RunId};

use crate::common::*;

fn db() -> String {
    format!("sqlite://{}", crate::store::sqlite_path().to_string_lossy())
}

fn app() -> App {
    let mut wf = Workflow::builder("report");
    let region = wf.param_or::<serde_json::Value>("region", serde_json::json!("eu"));
    wf.add("echo", Echo).input_from(region);
    App::new().name("demo").workflow(wf.build().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_add_list_show_disable_enable_trigger_remove() {
    let app = app();
    let store = db();
    let a = |args: &[&str]| {
        let mut v = vec!["demo"];
        v.extend_from_slice(args);
        v.extend_from_slice(&["--store", &store]);
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    let out = app.run_from(a(&["schedules", "list"])).await;
    assert_eq!(
        (out.code, out.stdout.trim_end().lines().last()),
        (0, Some("(no schedules)")),
        "{out:?}"
    );

    let out = app
        .run_from(a(&[
            "schedules",
            "add",
            "nightly",
            "report",
            "--cron",
            "0 2 * * *",
            "--tz",
            "Europe/Paris",
            "--overlap",
            "queue",
            "--missed",
            "catch-up=3",
            "--jitter",
            "30s",
            "--priority",
            "5",
            "-i",
            "region=\"us\"",
        ]))
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with(
            "schedule `nightly`: `report` on `0 2 * * *` (Europe/Paris), next fire 20"
        ),
        "{}",
        out.stdout
    );

    let out = app.run_from(a(&["schedules", "list"])).await;
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("schedule  workflow  cron"),
        "{}",
        out.stdout
    );
    assert!(
        lines[1].starts_with("nightly   report    0 2 * * *  Europe/Paris  enabled"),
        "{}",
        out.stdout
    );

    let out = app.run_from(a(&["schedules", "show", "nightly"])).await;
    assert_eq!(out.code, 0, "{out:?}");
    for want in [
        "overlap:   queue",
        "missed:    catch-up=3",
        "jitter:    30.0s",
        "priority:  5",
        "inputs:    {\"region\":\"us\"}",
        "state:     enabled",
    ] {
        assert!(out.stdout.contains(want), "`{want}` in:\n{}", out.stdout);
    }

    let out = app.run_from(a(&["schedules", "disable", "nightly"])).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "disabled `nightly`\n"),
        "{out:?}"
    );
    let out = app.run_from(a(&["schedules", "list"])).await;
    assert!(out.stdout.contains("disabled  -"), "{}", out.stdout);
    let out = app.run_from(a(&["schedules", "enable", "nightly"])).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with("enabled `nightly`: next fire 20"),
        "{}",
        out.stdout
    );

    // Trigger: a run now with the schedule's inputs and priority.
    let out = app.run_from(a(&["schedules", "trigger", "nightly"])).await;
    assert_eq!(out.code, 0, "{out:?}");
    let run: RunId = out.stdout.trim().parse().unwrap();
    assert!(out.stderr.contains("triggered `nightly`"), "{}", out.stderr);
    let s = SqliteStore::open(&store).await.unwrap();
    let rec = s.get_run(run).await.unwrap().unwrap();
    assert_eq!((rec.workflow.as_str(), rec.priority), ("report", 5));
    assert_eq!(rec.inputs, serde_json::json!({"region": "us"}));

    let out = app.run_from(a(&["schedules", "remove", "nightly"])).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "removed `nightly`\n"),
        "{out:?}"
    );

    // Bad input: exit code 2 and a message naming the problem.
    for (args, want) in [
        (
            vec!["schedules", "show", "nightly"],
            "no recurring schedule `nightly`",
        ),
        (
            vec!["schedules", "trigger", "nope"],
            "no recurring schedule `nope`",
        ),
        (
            vec!["schedules", "add", "x", "report", "--cron", "0 25 * * *"],
            "schedule `x`: invalid hour field: `25`",
        ),
        (
            vec!["schedules", "add", "x", "report", "--cron", "0 0 30 2 *"],
            "never fires",
        ),
        (
            vec![
                "schedules",
                "add",
                "x",
                "report",
                "--cron",
                "@daily",
                "--tz",
                "Mars/Olympus",
            ],
            "unknown time zone `Mars/Olympus`",
        ),
        (
            vec!["schedules", "add", "x", "nope", "--cron", "@daily"],
            "no workflow named `nope`",
        ),
        (
            vec![
                "schedules",
                "add",
                "x",
                "report",
                "--cron",
                "@daily",
                "--missed",
                "often",
            ],
            "--missed `often`",
        ),
        (
            vec![
                "schedules",
                "add",
                "x",
                "report",
                "--cron",
                "@daily",
                "--jitter",
                "soon",
            ],
            "--jitter `soon`",
        ),
    ] {
        let out = app.run_from(a(&args)).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(want),
            "{args:?}: `{want}` in {}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_at_delay_priority_and_key_enqueue_for_later() {
    let app = app();
    let store = db();
    let a = |args: &[&str]| {
        let mut v = vec!["demo"];
        v.extend_from_slice(args);
        v.extend_from_slice(&["--store", &store]);
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let out = app
        .run_from(a(&[
            "run",
            "report",
            "--at",
            "2030-12-01T02:00:00Z",
            "--priority",
            "-2",
        ]))
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let at_run: RunId = out.stdout.trim().parse().unwrap();
    assert!(
        out.stderr.contains("for 2030-12-01 02:00:00Z"),
        "{}",
        out.stderr
    );

    let before = std::time::SystemTime::now();
    let out = app
        .run_from(a(&["run", "report", "--delay", "10m", "--key", "k1"]))
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let delayed: RunId = out.stdout.trim().parse().unwrap();
    // The same key: the same run.
    let out = app
        .run_from(a(&["run", "report", "--delay", "10m", "--key", "k1"]))
        .await;
    assert_eq!(out.stdout.trim().parse::<RunId>().unwrap(), delayed);

    let s = SqliteStore::open(&store).await.unwrap();
    let rec = s.get_run(at_run).await.unwrap().unwrap();
    assert_eq!(rec.priority, -2);
    assert_eq!(
        rec.not_before,
        Some(std::time::SystemTime::from(
            chrono::DateTime::parse_from_rfc3339("2030-12-01T02:00:00Z").unwrap()
        ))
    );
    let rec = s.get_run(delayed).await.unwrap().unwrap();
    let wait = rec.not_before.unwrap().duration_since(before).unwrap();
    assert!(
        wait >= std::time::Duration::from_secs(599) && wait <= std::time::Duration::from_secs(610),
        "{wait:?}"
    );
    assert_eq!(rec.idempotency_key.as_deref(), Some("k1"));
    assert_eq!(s.list_runs(&RunQuery::new()).await.unwrap().items.len(), 2);

    for (args, want) in [
        (vec!["run", "report", "--at", "tomorrow"], "--at `tomorrow`"),
        (
            vec!["run", "report", "--delay", "5 parsecs"],
            "--delay `5 parsecs`",
        ),
        (vec!["run", "report", "--delay", "30000d"], "out of range"),
        (
            vec!["run", "report", "--delay", "1m", "--wait"],
            "do not go with --wait",
        ),
    ] {
        let out = app.run_from(a(&args)).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(want),
            "{args:?}: `{want}` in {}",
            out.stderr
        );
    }
}
