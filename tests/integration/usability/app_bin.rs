//! The real CLI app binary (`dagforge-cli-app`, named `cli-app`): the help's examples
//! run as shown, `serve`'s per-run lines, `runs watch` of a run another process
//! drives, `jobs run`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cli::{app_bin, temp_dir};

/// The app binary in `dir`, without the `DAGFORGE_*` variables of the test process.
fn command(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dagforge-cli-app"));
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("DAGFORGE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A `serve` process whose standard error lines arrive on a channel.
struct Serving {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Serving {
    fn start(dir: &std::path::Path, args: &[&str]) -> Self {
        let mut child = command(dir, args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Serving {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (up to 60 s) for `n` lines that `pred` accepts.
    fn wait_for(&mut self, n: usize, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found: Vec<String> = self.seen.iter().filter(|l| pred(l)).cloned().collect();
            if found.len() >= n {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out; serve printed:\n{}",
                self.seen.join("\n")
            );
            if let Ok(line) = self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                self.seen.push(line);
            }
        }
    }

    /// Ctrl-C; its exit must be clean.
    fn stop(mut self) -> Vec<String> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        assert!(status.success(), "{status:?}: {}", self.seen.join("\n"));
        self.seen
    }
}

/// Every example at the end of `--help` names the binary and runs as shown on the
/// very app that prints it (in a fresh directory: the default store).
#[test]
fn help_examples_run_as_shown() {
    let dir = temp_dir("help-examples");
    let (code, help, err, _) = app_bin(&dir, &["--help"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!help.contains("myapp"), "{help}");
    let examples: Vec<String> = help
        .split("Examples:")
        .nth(1)
        .unwrap_or_else(|| panic!("no examples in {help}"))
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // An example's description may wrap onto a line of its own.
        .filter(|l| l.trim_start().starts_with("cli-app "))
        .map(|l| {
            let l = l.trim_start();
            // The command, then two spaces or more, then what it does.
            l.split("  ").next().unwrap_or(l).trim().to_owned()
        })
        .collect();
    assert!(examples.len() >= 5, "{examples:?}");
    let mut serving = None;
    for example in &examples {
        let words: Vec<&str> = example.split_whitespace().collect();
        assert_eq!(words[0], "cli-app", "{example}");
        let (args, redirect) = match words.iter().position(|w| *w == ">") {
            Some(i) => (&words[1..i], words.get(i + 1).copied()),
            None => (&words[1..], None),
        };
        if args == ["serve"] {
            // Serves until interrupted: it drives the run enqueued by the example
            // before it, and says so.
            let mut s = Serving::start(&dir, args);
            s.wait_for(1, |l| l.starts_with("run ") && l.contains(" succeeded in "));
            serving = Some(s);
            continue;
        }
        let (code, out, err, _) = app_bin(&dir, args, &[]);
        assert_eq!(code, 0, "`{example}` failed: {out}{err}");
        if let Some(file) = redirect {
            std::fs::write(dir.join(file), &out).unwrap();
            assert!(out.starts_with("<?xml"), "{example}: {out}");
        }
    }
    let seen = serving.expect("an example serves").stop();
    assert!(seen.iter().any(|l| l == "stopped"), "{seen:?}");
}

/// `serve` prints one line per run started and finished, as JSON lines with
/// `--log-format json`, none with `-q`.
#[test]
fn serve_prints_a_line_per_run_started_and_finished() {
    let dir = temp_dir("serve-lines");
    let store = "sqlite://lines.db";
    let (code, out, err, _) = app_bin(&dir, &["run", "cli-echo", "--store", store], &[]);
    assert_eq!(code, 0, "{err}");
    let first = out.trim().to_owned();
    let mut s = Serving::start(
        &dir,
        &[
            "serve",
            "--store",
            store,
            "--poll-secs",
            "0.2",
            "--log-format",
            "json",
        ],
    );
    let finished = s.wait_for(1, |l| l.contains("\"run_finished\""));
    let lines = s.stop();
    let doc: serde_json::Value = serde_json::from_str(&finished[0]).unwrap();
    assert_eq!(doc["run"], first.as_str());
    assert_eq!(doc["workflow"], "cli-echo");
    assert_eq!(doc["state"], "succeeded");
    assert!(doc["duration_ms"].is_u64(), "{doc}");
    let started: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"run_started\""))
        .collect();
    assert_eq!(started.len(), 1, "{lines:?}");
    let doc: serde_json::Value = serde_json::from_str(started[0]).unwrap();
    assert_eq!(doc["run"], first.as_str());

    // Text lines, and none with -q.
    let (_, out, _, _) = app_bin(&dir, &["run", "cli-echo", "--store", store], &[]);
    let second = out.trim().to_owned();
    let mut s = Serving::start(&dir, &["serve", "--store", store, "--poll-secs", "0.2"]);
    let done = s.wait_for(1, |l| l.contains(" succeeded in "));
    s.stop();
    assert!(
        done[0].starts_with(&format!("run {second} succeeded in "))
            && done[0].ends_with(": cli-echo v1"),
        "{done:?}"
    );
    let (_, out, _, _) = app_bin(&dir, &["run", "cli-echo", "--store", store], &[]);
    let third = out.trim().to_owned();
    let s = Serving::start(
        &dir,
        &["serve", "-q", "--store", store, "--poll-secs", "0.2"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, shown, _, _) = app_bin(&dir, &["runs", "show", &third, "--store", store], &[]);
        if shown.contains("state     succeeded") {
            break;
        }
        assert!(Instant::now() < deadline, "{shown}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = s.stop();
    assert!(lines.iter().all(|l| !l.starts_with("run ")), "{lines:?}");
}

/// `runs watch` follows a run another process drives, from the store, to its end.
#[test]
fn runs_watch_follows_a_run_served_elsewhere() {
    let dir = temp_dir("watch");
    let store = "sqlite://watch.db";
    let (code, out, err, _) = app_bin(&dir, &["run", "cli-echo", "--store", store], &[]);
    assert_eq!(code, 0, "{err}");
    let id = out.trim().to_owned();
    let watch = command(&dir, &["runs", "watch", &id[..13], "--store", store])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let s = Serving::start(&dir, &["serve", "--store", store, "--poll-secs", "0.2"]);
    let out = watch.wait_with_output().unwrap();
    s.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!("run {id} of cli-echo v1")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(" pid ") && l.contains("ready → running")),
        "{stdout}"
    );
    assert!(stdout.contains("info: pid "), "{stdout}");
    assert!(stdout.contains("run succeeded"), "{stdout}");
    assert!(stdout.contains("state     succeeded"), "{stdout}");
}

/// `jobs run NAME`: one job, here, its log lines on standard error and its output as
/// JSON on standard output; nothing recorded.
#[test]
fn jobs_run_runs_one_job_by_itself() {
    let dir = temp_dir("jobs-run");
    let (code, out, err, pid) = app_bin(&dir, &["jobs", "run", "pid"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), pid.to_string());
    assert!(err.contains(&format!("info: pid {pid}")), "{err}");
    std::fs::write(dir.join("seven.json"), "7").unwrap();
    let (code, out, err, _) = app_bin(
        &dir,
        &["jobs", "run", "square", "--input-json", "seven.json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "49");
    std::fs::write(dir.join("hi.json"), "\"hi\"").unwrap();
    let (code, out, err, _) = app_bin(
        &dir,
        &["jobs", "run", "say", "--input-json", "hi.json"],
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("info: said hi") && err.contains("refused hi"),
        "{err}"
    );
    // -i builds an object input: a job taking a number refuses it, naming why.
    let (code, _, err, _) = app_bin(&dir, &["jobs", "run", "square", "-i", "n=3"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("job `square` failed"), "{err}");
    let (code, _, err, _) = app_bin(&dir, &["jobs", "run", "nope"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no job named `nope`"), "{err}");
    assert!(!dir.join("dagforge.db").exists(), "nothing is recorded");
}
