//! The command-line app: the commands against a temporary SQLite file, through
//! `App::run_from`, which captures what they print.

use dagforge::App;

use crate::retry_run::{Switch, workflow};

fn db(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "dagforge-cli-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("cli.db").display())
}

fn app(s: &Switch) -> App {
    App::new().name("demo").workflow(workflow(s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_fail_show_retry_from_failed() {
    let s = Switch::failing();
    let app = app(&s);
    let store = db("retry");
    let a = |args: &[&str]| {
        let mut v = vec!["demo"];
        v.extend_from_slice(args);
        v.extend_from_slice(&["--store", &store]);
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    // A failing run: exit code 1, the table and the error.
    let out = app
        .run_from(a(&["run", "retry-demo", "-i", "n=3", "--wait"]))
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("flaky ") && l.contains("failed")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("flaky: flaky is down"),
        "{}",
        out.stdout
    );
    let old = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.split(' ').next()))
        .unwrap()
        .to_owned();

    let list = app
        .run_from(a(&["runs", "list", "--state", "failed"]))
        .await;
    assert_eq!(list.code, 0);
    assert!(list.stdout.contains(&old), "{}", list.stdout);

    let show = app.run_from(a(&["runs", "show", &old])).await;
    assert_eq!(show.code, 0, "{show:?}");
    assert!(show.stdout.contains("state     failed"));
    assert!(
        show.stdout
            .lines()
            .any(|l| l.starts_with("flaky") && l.contains("failed") && l.contains("flaky is down")),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout
            .lines()
            .any(|l| l.starts_with("items") && l.contains(" 1 ") && l.contains("item 2 is down")),
        "{}",
        show.stdout
    );

    // Retrying an unfinished or unknown run is bad input.
    let bad = app
        .run_from(a(&[
            "runs",
            "retry",
            "0194d000-0000-7000-8000-000000000000",
        ]))
        .await;
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("not found"), "{}", bad.stderr);

    s.heal();
    let out = app
        .run_from(a(&["runs", "retry", &old, "--from-failed", "--wait"]))
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!("retries run {old}")),
        "{}",
        out.stderr
    );
    assert_eq!(s.calls("source"), 1, "succeeded nodes are not run again");
    assert_eq!(s.calls("flaky"), 2);
    let new = out.stderr.split_whitespace().nth(1).unwrap().to_owned();
    let show = app.run_from(a(&["runs", "show", &new])).await;
    assert!(
        show.stdout.contains("state     succeeded"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains(&format!("retry of  {old}")),
        "{}",
        show.stdout
    );
    // The old run drawn with its states.
    let svg = app.run_from(a(&["runs", "show", &old, "--svg"])).await;
    assert_eq!(svg.code, 0);
    assert!(svg.stdout.starts_with("<?xml"));
    for (node, state) in [
        ("flaky", "failed"),
        ("after", "skipped"),
        ("cleanup", "succeeded"),
        ("items", "failed"),
    ] {
        assert!(
            svg.stdout
                .contains(&format!("data-id=\"{node}\" data-state=\"{state}\"")),
            "{node} {state}"
        );
    }
    let flaky_rows: Vec<&str> = show
        .stdout
        .lines()
        .filter(|l| l.starts_with("flaky"))
        .collect();
    assert_eq!(flaky_rows.len(), 2, "{}", show.stdout);
    assert!(flaky_rows[0].contains("failed") && flaky_rows[1].contains("succeeded"));

    // A fresh retry is enqueued without --wait and printed.
    let out = app.run_from(a(&["runs", "retry", &new])).await;
    assert_eq!(out.code, 0, "{out:?}");
    let queued = out.stdout.trim().to_owned();
    let list = app
        .run_from(a(&["runs", "list", "--state", "pending"]))
        .await;
    assert!(list.stdout.contains(&queued), "{}", list.stdout);
    // It can be cancelled, since no engine is driving it.
    let out = app.run_from(a(&["runs", "cancel", &queued])).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("cancelled"), "{}", out.stdout);
    // Logs of the new run include the node lines, also with --follow (finished run).
    let logs = app.run_from(a(&["runs", "logs", &new, "--follow"])).await;
    assert_eq!(logs.code, 0, "{logs:?}");
}

#[tokio::test]
async fn catalog_graph_is_valid_svg() {
    let wf = examples::catalog::macros::catalog().unwrap();
    let app = App::new().workflow(wf);
    let out = app
        .run_from(["catalog", "graph", "catalog-integration", "--format", "svg"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let svg = out.stdout.trim_end();
    assert!(svg.starts_with("<?xml"));
    assert!(svg.ends_with("</svg>"));
    for id in [
        "markets",
        "data-proxy",
        "integration",
        "publish",
        "notify-failures",
        "finalizer",
    ] {
        assert!(svg.contains(&format!("data-id=\"{id}\"")), "{id}");
    }
    // Balanced elements (the engine's unit tests parse the SVG with an XML parser).
    let opens = svg.matches("<g").count();
    let closes = svg.matches("</g>").count();
    assert_eq!(opens, closes);
}

#[tokio::test]
async fn unknown_workflow_is_named_with_exit_code_two() {
    let s = Switch::default();
    let out = app(&s)
        .run_from(["demo", "run", "retry-dem", "--store", "memory://"])
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("no workflow named `retry-dem` is registered (known: retry-demo)"),
        "{}",
        out.stderr
    );
}

/// The test app binary, run in `dir` with the `DAGFORGE_*` variables cleared and
/// `env` set.
pub(crate) fn app_bin(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String, u32) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dagforge-cli-app"));
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("DAGFORGE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        pid,
    )
}

pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dagforge-cli-bin-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn settings_precedence_flags_env_file_default() {
    let dir = temp_dir("precedence");
    let list = ["runs", "list"];
    // Default: ./dagforge.db.
    let (code, out, err, _) = app_bin(&dir, &list, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(dir.join("dagforge.db").exists());
    // The config file over the default.
    std::fs::write(dir.join("dagforge.toml"), "store = \"sqlite://file.db\"\n").unwrap();
    app_bin(&dir, &list, &[]);
    assert!(dir.join("file.db").exists());
    // The environment over the file.
    app_bin(&dir, &list, &[("DAGFORGE_STORE", "sqlite://env.db")]);
    assert!(dir.join("env.db").exists());
    // A flag over the environment.
    app_bin(
        &dir,
        &["runs", "list", "--store", "sqlite://flag.db"],
        &[("DAGFORGE_STORE", "sqlite://env2.db")],
    );
    assert!(dir.join("flag.db").exists());
    assert!(!dir.join("env2.db").exists());
    // A bad value from the environment is named, with exit code 2 (the engine's
    // settings are read by the commands that run jobs).
    let (code, _, err, _) = app_bin(
        &dir,
        &["run", "cli-echo", "--wait"],
        &[("DAGFORGE_CONCURRENCY", "lots")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("lots"), "{err}");
    // A broken config file too.
    std::fs::write(dir.join("dagforge.toml"), "executor = \"threads\"\n").unwrap();
    let (code, _, err, _) = app_bin(&dir, &list, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("dagforge.toml"), "{err}");
}

#[test]
fn the_process_executor_runs_jobs_in_worker_children() {
    let dir = temp_dir("process");
    let store = "sqlite://runs.db";
    for (executor, separate) in [("in-process", false), ("process", true)] {
        let (code, out, err, pid) = app_bin(
            &dir,
            &["run", "cli-echo", "--wait", "--store", store],
            &[("DAGFORGE_EXECUTOR", executor)],
        );
        assert_eq!(code, 0, "{executor}: {out}{err}");
        let logged: u32 = out
            .split("info: pid ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{executor}: no pid line in {out}"));
        assert_eq!(
            logged != pid,
            separate,
            "{executor}: job pid {logged}, app pid {pid}"
        );
    }
    let (code, _, err, _) = app_bin(&dir, &["run", "nope", "--store", store], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no workflow named `nope`"), "{err}");
}

#[cfg(unix)]
#[test]
fn serve_drives_enqueued_runs_until_interrupted() {
    let dir = temp_dir("serve");
    let store = "sqlite://serve.db";
    let (code, out, err, _) = app_bin(&dir, &["run", "cli-echo", "--store", store], &[]);
    assert_eq!(code, 0, "{err}");
    let id = out.trim().to_owned();
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_dagforge-cli-app"))
        .current_dir(&dir)
        .args(["serve", "--store", store, "--poll-secs", "0.2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut shown = String::new();
    while std::time::Instant::now() < deadline {
        let (_, out, _, _) = app_bin(&dir, &["runs", "show", &id, "--store", store], &[]);
        shown = out;
        if shown.contains("state     succeeded") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Ctrl-C stops it cleanly.
    let pid = nix::unistd::Pid::from_raw(serve.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = serve.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(serve.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(shown.contains("state     succeeded"), "{shown}\n{err}");
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("serving sqlite://serve.db"), "{err}");
    assert!(err.contains("stopped"), "{err}");
}

/// Ctrl-C while `run --wait` shows a run: the run is cancelled (its job sees its
/// cancellation token), the final table says so, and the exit code is 1; the store
/// records the run as cancelled.
#[cfg(unix)]
#[test]
fn ctrl_c_during_run_wait_cancels_the_run() {
    let dir = temp_dir("ctrl-c");
    let store = "sqlite://ctrl-c.db";
    let (code, _, err, _) = app_bin(&dir, &["runs", "list", "--store", store], &[]);
    assert_eq!(code, 0, "{err}");
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_dagforge-cli-app"))
        .current_dir(&dir)
        .args(["run", "cli-sleep", "--wait", "--store", store])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the job runs (the run is recorded as running).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let id = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        if let Some(status) = run.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("`run --wait` ended early ({status}): {err}");
        }
        let (_, out, _, _) = app_bin(&dir, &["runs", "list", "--store", store], &[]);
        if let Some(line) = out.lines().find(|l| l.contains("running")) {
            break line.split_whitespace().next().unwrap().to_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let asked = std::time::Instant::now();
    let pid = nix::unistd::Pid::from_raw(run.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = run.wait_with_output().unwrap();
    let took = asked.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    assert!(stdout.contains("cancelled"), "{stdout}\n{stderr}");
    let (_, shown, _, _) = app_bin(&dir, &["runs", "show", &id, "--store", store], &[]);
    assert!(shown.contains("cancelled"), "{shown}");
}
