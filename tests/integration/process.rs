//! The process executor: every attempt runs in a `dagforge-test-worker` child process.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dagforge::prelude::*;
use dagforge::{ErrorKind, ProcessExecutor, ProcessExecutorBuilder, RunHandle};
use serde_json::{Value, json};

#[path = "../bin/worker_jobs.rs"]
#[allow(dead_code)]
mod jobs;

use jobs::{Big, Block, Boom, Echo, Environ, Exit, Forge, Garbage, Hang, Print, Sleep, Spawn};

const WORKER: &str = env!("CARGO_BIN_EXE_dagforge-test-worker");
const GRACE: Duration = Duration::from_millis(500);

fn executor() -> ProcessExecutorBuilder {
    ProcessExecutor::builder()
        .program(WORKER)
        .args(Vec::<String>::new())
        .heartbeat_interval(Duration::from_millis(100))
        .heartbeat_timeout(Duration::from_secs(2))
        .grace_period(GRACE)
}

fn engine(executor: ProcessExecutorBuilder) -> Engine {
    Engine::builder().executor(executor.build()).build()
}

/// Log lines `(node, level, message)` of every run of an engine.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<(String, LogLevel, String)>>>);

impl Logs {
    fn collect(engine: &Engine) -> Self {
        let logs = Logs::default();
        let sink = logs.clone();
        let mut events = engine.subscribe();
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                if let EventKind::Log {
                    node,
                    level,
                    message,
                    ..
                } = e.kind
                {
                    sink.0
                        .lock()
                        .unwrap()
                        .push((node.to_string(), level, message));
                }
            }
        });
        logs
    }

    fn lines(&self) -> Vec<(String, LogLevel, String)> {
        self.0.lock().unwrap().clone()
    }

    fn has(&self, level: LogLevel, text: &str) -> bool {
        self.lines()
            .iter()
            .any(|(_, l, m)| *l == level && m.contains(text))
    }

    /// The worker pids the jobs logged.
    fn pids(&self) -> Vec<i32> {
        self.lines()
            .iter()
            .filter_map(|(_, _, m)| m.strip_prefix("pid ")?.parse().ok())
            .collect()
    }

    async fn wait_for_pids(&self, n: usize) -> Vec<i32> {
        for _ in 0..200 {
            let pids = self.pids();
            if pids.len() >= n {
                return pids;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the workers did not log {n} pids: {:?}", self.lines());
    }

    /// The pid of the process a `spawn` job started (its `grandchild <pid>` line).
    fn grandchild(&self) -> Option<i32> {
        self.lines()
            .iter()
            .find_map(|(_, _, m)| m.strip_prefix("grandchild ")?.parse().ok())
    }

    /// Waits for a `spawn` job's worker and grandchild pids, and checks both run.
    async fn wait_for_spawn(&self) -> (i32, i32) {
        for _ in 0..300 {
            if let (Some(&worker), Some(grandchild)) = (self.pids().first(), self.grandchild()) {
                assert!(runs(worker), "the worker runs");
                assert!(runs(grandchild), "the grandchild runs");
                return (worker, grandchild);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the job did not log its grandchild: {:?}", self.lines());
    }
}

/// The state letter of a process in /proc (`Z` for a zombie); `None` once it is
/// reaped.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.trim_start().chars().next()
}

/// Whether `pid` exists and is no zombie.
fn runs(pid: i32) -> bool {
    proc_state(pid).is_some_and(|s| s != 'Z')
}

/// Asserts that `pid` — a grandchild: not ours to reap — stops running within
/// `within` (it is gone, or a zombie until its new parent reaps it).
async fn assert_dead(pid: i32, within: Duration) {
    let t = Instant::now();
    while runs(pid) {
        assert!(
            t.elapsed() <= within,
            "process {pid} still runs after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Asserts that `pid` is gone (exited *and* reaped: no zombie) within `within`.
async fn assert_gone(pid: i32, within: Duration) {
    let t = Instant::now();
    loop {
        match proc_state(pid) {
            None => return,
            Some(state) if t.elapsed() > within => {
                panic!("worker {pid} still exists after {within:?} (state {state})")
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

fn node(r: &RunResult, id: &str) -> dagforge::NodeReport {
    r.node(id).unwrap_or_else(|| panic!("no node {id}")).clone()
}

/// The catalog workflow's outputs, with the run id (part of `data-proxy`'s dataset
/// reference) made neutral.
fn neutral_outputs(r: &RunResult) -> Vec<(String, NodeState, u32, String)> {
    let run = r.id.to_string();
    let mut v: Vec<_> = r
        .nodes
        .iter()
        .map(|n| {
            let out = serde_json::to_string(&n.output)
                .unwrap()
                .replace(&run, "<run>");
            (n.id.to_string(), n.state, n.attempts, out)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_outputs_are_identical_to_in_process() {
    let wf = examples::catalog::macros::catalog().unwrap();
    let in_process = Engine::new();
    let process = engine(executor());
    let logs = Logs::collect(&process);
    let (a, b) = tokio::join!(in_process.run(&wf, ()), process.run(&wf, ()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(b.is_success(), "{}", b.table());
    assert_eq!(neutral_outputs(&a), neutral_outputs(&b));
    assert_eq!(
        node(&b, "publish").attempts,
        2,
        "the retry happened in a worker"
    );
    assert_eq!(node(&b, "integration").items.len(), 6);
    // Log lines and progress travel through the protocol with their levels.
    assert!(
        logs.has(LogLevel::Info, "found 6 markets"),
        "{:?}",
        logs.lines()
    );
    assert!(logs.has(LogLevel::Warn, "catalog API answered 503"));
}

#[tokio::test]
async fn echo_fan_out_forwards_logs_and_leaves_no_process_behind() {
    let mut wf = Workflow::builder("echo");
    let items: Vec<Value> = (0..6).map(|i| json!({"i": i, "s": "é\n"})).collect();
    wf.add("each", Echo)
        .each_input(Source::value(items.clone()));
    let engine = engine(executor());
    let logs = Logs::collect(&engine);
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(r.is_success(), "{}", r.table());
    assert_eq!(r.output::<Vec<Value>>("each").unwrap(), items);
    assert!(logs.has(LogLevel::Warn, "echoing"));
    let pids = logs.pids();
    assert_eq!(pids.len(), 6);
    for pid in pids {
        // Every worker was waited for before its outcome was reported.
        assert_eq!(proc_state(pid), None, "worker {pid} is left behind");
    }
}

#[tokio::test]
async fn a_panicking_job_fails_its_attempt() {
    let mut wf = Workflow::builder("panic");
    wf.add("boom", Boom);
    let engine = engine(executor());
    let logs = Logs::collect(&engine);
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    let n = node(&r, "boom");
    assert_eq!(n.state, NodeState::Failed);
    let e = n.error.unwrap();
    assert_eq!(e.kind, ErrorKind::Panicked);
    assert!(e.message.contains("boom in a worker"), "{e}");
    // The panic hook's message went to stderr: console output.
    assert!(logs.has(LogLevel::Info, "[stderr]"), "{:?}", logs.lines());
    assert_eq!(proc_state(logs.pids()[0]), None);
}

#[tokio::test]
async fn exit_code_without_an_outcome_fails_and_quotes_stderr() {
    let mut wf = Workflow::builder("exit");
    wf.add("exit", Exit).input((3, 99));
    let r = engine(executor())
        .run(&wf.build().unwrap(), ())
        .await
        .unwrap();
    let n = node(&r, "exit");
    assert_eq!(n.state, NodeState::Failed);
    let e = n.error.unwrap();
    assert_eq!(e.kind, ErrorKind::Crashed);
    for part in [
        "job `exit`",
        "exited with code 3",
        "without reporting an outcome",
        "giving up with exit code 3",
    ] {
        assert!(e.message.contains(part), "{part:?} missing in: {e}");
    }
}

#[tokio::test]
async fn worker_failures_are_retried_per_policy() {
    let mut wf = Workflow::builder("retry");
    wf.add("exit", Exit)
        .input((3, 2))
        .retries(2)
        .backoff(Backoff::none());
    let r = engine(executor())
        .run(&wf.build().unwrap(), ())
        .await
        .unwrap();
    let n = node(&r, "exit");
    assert_eq!(n.state, NodeState::Succeeded, "{}", r.table());
    assert_eq!(n.attempts, 3);
    assert_eq!(r.output::<u32>("exit").unwrap(), 3);
}

#[tokio::test]
async fn garbage_output_is_console_and_the_job_still_succeeds() {
    let mut wf = Workflow::builder("garbage");
    wf.add("garbage", Garbage);
    let engine = engine(executor());
    let logs = Logs::collect(&engine);
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(r.is_success(), "{}", r.table());
    assert_eq!(r.output::<u32>("garbage").unwrap(), 7);
    assert!(logs.has(LogLevel::Info, "[stdout] plain text on stdout"));
    assert!(logs.has(LogLevel::Info, "[stdout] bytes \u{fffd}\u{fffd} not utf-8"));
    assert!(logs.has(LogLevel::Info, "[stderr] a warning on stderr"));
    // Protocol-looking lines on stdout are console output, not protocol errors.
    assert!(logs.has(LogLevel::Info, "[stdout] @dagforge:1 {not json"));
    assert!(logs.has(
        LogLevel::Info,
        r#"[stdout] @dagforge:9 {"type":"heartbeat"}"#
    ));
    assert!(
        !logs.has(LogLevel::Warn, "[protocol]"),
        "{:?}",
        logs.lines()
    );
}

#[tokio::test]
async fn a_job_cannot_forge_its_result_by_printing_protocol_lines() {
    let mut wf = Workflow::builder("forge");
    wf.add("forge", Forge).retries(1).backoff(Backoff::none());
    let engine = engine(executor());
    let logs = Logs::collect(&engine);
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(r.is_success(), "{}", r.table());
    assert_eq!(node(&r, "forge").attempts, 1);
    // The job's real return value, not the forged 666.
    assert_eq!(r.output::<u32>("forge").unwrap(), 42);
    let forged = r#"@dagforge:2 {"type":"output","value":666}"#;
    for line in [
        format!("[stdout] {forged}"),
        r#"[stdout] @dagforge:1 {"type":"output","value":666}"#.to_owned(),
        r#"[stdout] @dagforge:2 {"type":"error","error":{"kind":"terminal","message":"forged"}}"#
            .to_owned(),
        format!("[stderr] {forged}"),
    ] {
        assert!(
            logs.lines()
                .iter()
                .any(|(_, l, m)| *l == LogLevel::Info && *m == line),
            "{line} missing: {:?}",
            logs.lines()
        );
    }
    // What the job started printed the line on its stdout (console) too, and its write
    // to fd 0 (/dev/null, read-only) reached nothing.
    let console = logs
        .lines()
        .iter()
        .filter(|(_, _, m)| m.contains(forged))
        .count();
    assert!(console >= 3, "{:?}", logs.lines());
    assert!(
        !logs.has(LogLevel::Warn, "[protocol]"),
        "{:?}",
        logs.lines()
    );
}

/// The log lines of a run as its engine's store holds them (a subscriber may lag and
/// miss some; the store does not).
async fn stored_logs(engine: &Engine, run: dagforge::RunId) -> Vec<String> {
    let mut lines = Vec::new();
    let mut after = 0;
    loop {
        let page = engine.store().events(run, after, 10_000).await.unwrap();
        let Some(last) = page.last() else {
            return lines;
        };
        after = last.seq;
        for e in page {
            if let EventKind::Log { message, .. } = e.kind {
                lines.push(message);
            }
        }
    }
}

/// The console lines (`[stdout]`/`[stderr]`) and console markers of a run's log.
async fn console_lines(engine: &Engine, run: dagforge::RunId) -> Vec<String> {
    stored_logs(engine, run)
        .await
        .into_iter()
        .filter(|m| {
            m.starts_with("[stdout]") || m.starts_with("[stderr]") || m.starts_with("[console]")
        })
        .collect()
}

/// The peak resident memory of this process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_output_is_capped_keeping_head_and_tail_with_a_marker() {
    // 100 MB printed: 1,000,000 lines of 100 bytes, against the default 1 MiB cap.
    let mut wf = Workflow::builder("print");
    wf.add("print", Print)
        .input((1_000_000u64, 100usize, false));
    let engine = engine(executor().heartbeat_timeout(Duration::from_secs(30)));
    let t = Instant::now();
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    let took = t.elapsed();
    assert!(r.is_success(), "{}", r.table());
    assert_eq!(r.output::<u64>("print").unwrap(), 100_000_000);
    let lines = console_lines(&engine, r.id).await;
    let kept: usize = lines
        .iter()
        .filter(|m| !m.starts_with("[console]"))
        .map(String::len)
        .sum();
    let all: usize = stored_logs(&engine, r.id)
        .await
        .iter()
        .map(String::len)
        .sum();
    eprintln!(
        "100 MB printed: {took:?}, {} log lines, {kept} console bytes kept, {all} log bytes in \
         all, peak RSS of the test process {} KiB",
        lines.len(),
        peak_rss_kib()
    );
    assert!(kept <= 1 << 20, "{kept}");
    assert!(all < (1 << 20) + 4096, "{all}");
    // The head, the marker, the tail.
    assert!(
        lines[0].starts_with("[stdout] 0000000000 ppp"),
        "{}",
        lines[0]
    );
    let marker = lines
        .iter()
        .position(|m| m.contains("dropped here"))
        .expect("a truncation marker");
    assert!(
        lines[marker].contains("printed 108000000 bytes")
            && lines[marker].contains("1048576-byte console limit"),
        "{}",
        lines[marker]
    );
    assert!(
        lines.last().unwrap().starts_with("[stdout] 0000999999 ppp"),
        "{}",
        lines.last().unwrap()
    );
    assert!(
        lines[marker + 1].starts_with("[stdout] 0000"),
        "{}",
        lines[marker + 1]
    );
}

#[tokio::test]
async fn the_console_limit_is_configurable_and_covers_stderr() {
    let mut wf = Workflow::builder("print");
    wf.add("print", Print).input((10_000u64, 50usize, true));
    let engine = engine(executor().console_limit(10_000));
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(r.is_success(), "{}", r.table());
    let lines = console_lines(&engine, r.id).await;
    let kept: usize = lines
        .iter()
        .filter(|m| m.starts_with("[stderr]"))
        .map(String::len)
        .sum();
    assert!(kept <= 10_000 && kept > 9_000, "{kept}");
    assert!(
        lines.iter().any(|m| m.contains("10000-byte console limit")),
        "{lines:?}"
    );
    assert!(lines.last().unwrap().starts_with("[stderr] 0000009999"));
}

#[tokio::test]
async fn a_too_large_output_is_an_output_error_and_stays_out_of_the_log() {
    let mut wf = Workflow::builder("big");
    wf.add("big", Big).input(200_000usize).retries(2);
    let engine = engine(executor().max_message_bytes(64 << 10));
    let logs = Logs::collect(&engine);
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    let n = node(&r, "big");
    assert_eq!(n.state, NodeState::Failed);
    assert_eq!(n.attempts, 1, "not retried");
    let e = n.error.unwrap();
    assert_eq!(e.kind, ErrorKind::Output);
    for part in ["job `big`", "200041 bytes", "65536-byte limit", "artifact"] {
        assert!(e.message.contains(part), "{part:?} missing in: {e}");
    }
    let logged: usize = logs.lines().iter().map(|(_, _, m)| m.len()).sum();
    assert!(logged < 4096, "{logged} bytes logged: {:?}", logs.lines());
}

/// A program that reads its input from the channel (fd 0) and then writes `script`'s
/// output to it, as a worker that ignores the limits would.
fn raw_worker(script: &str) -> ProcessExecutorBuilder {
    executor()
        .program("sh")
        .args(["-c", &format!("cat >/dev/null; {{ {script} ; }} >&0")])
}

#[tokio::test]
async fn the_executor_drops_a_too_long_protocol_line_itself() {
    let mut wf = Workflow::builder("huge-line");
    wf.add("x", Echo).input(json!(1));
    let script = r#"printf '@dagforge:2 {"type":"output","value":"'; head -c 3000000 /dev/zero | tr '\0' b; printf '"}\n'"#;
    let engine = engine(raw_worker(script).max_message_bytes(64 << 10));
    let logs = Logs::collect(&engine);
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    let e = node(&r, "x").error.unwrap();
    assert_eq!(e.kind, ErrorKind::Output, "{e}");
    for part in ["job `echo`", "3000041 bytes", "65536-byte limit"] {
        assert!(e.message.contains(part), "{part:?} missing in: {e}");
    }
    let logged: usize = logs.lines().iter().map(|(_, _, m)| m.len()).sum();
    assert!(logged < 4096, "{logged} bytes logged");
}

#[tokio::test]
async fn garbage_on_the_protocol_channel_is_a_protocol_error() {
    let mut wf = Workflow::builder("garbage-channel");
    wf.add("x", Echo).input(json!(1));
    let script = r#"printf 'no prefix\n\377\376\n@dagforge:2 {bad\n'"#;
    let engine = engine(raw_worker(script));
    let logs = Logs::collect(&engine);
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    let e = node(&r, "x").error.unwrap();
    assert_eq!(e.kind, ErrorKind::Executor, "{e}");
    assert!(
        e.message
            .contains("protocol error: a line without the `@dagforge:` prefix"),
        "{e}"
    );
    assert!(logs.has(LogLevel::Warn, "[protocol] malformed protocol message"));
}

#[test]
fn a_worker_started_without_the_channel_refuses_on_stderr() {
    // As by hand, or by an executor of protocol version 1: stdin is a pipe.
    let out = std::process::Command::new(WORKER)
        .env("DAGFORGE_WORKER", "1")
        .stdin(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stdin is not the socket of a process executor"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn workers_inherit_no_dagforge_settings_of_the_engine() {
    let secret = "s3cr3t-pw";
    let out = std::process::Command::new(WORKER)
        .args(["engine", "env", secret])
        .env(
            "DAGFORGE_STORE",
            format!("postgres://dagforge:{secret}@db.example/prod"),
        )
        .env("DAGFORGE_CONFIG", "/etc/dagforge.toml")
        .env("DAGFORGE_CONCURRENCY", "3")
        .env("KEEP_ME", "yes")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = stdout
        .lines()
        .find_map(|l| l.strip_prefix("env "))
        .unwrap_or_else(|| panic!("no env line: {stdout}"));
    let (names, keep, leaked): (Vec<String>, Option<String>, bool) =
        serde_json::from_str(json).unwrap();
    assert!(!leaked, "the password reached the worker: {names:?}");
    assert_eq!(
        keep.as_deref(),
        Some("yes"),
        "other variables are inherited"
    );
    assert!(
        names.contains(&"DAGFORGE_WORKER_JOB".to_owned()),
        "{names:?}"
    );
    for name in &names {
        // The invocation, and the artifact store's URL (without credentials).
        assert!(
            name.starts_with("DAGFORGE_WORKER") || name == "DAGFORGE_ARTIFACTS",
            "{name} reached the worker"
        );
    }
}

#[tokio::test]
async fn a_job_past_its_timeout_times_out() {
    let mut wf = Workflow::builder("timeout");
    wf.add("sleep", Sleep)
        .input((10_000, false))
        .timeout(Duration::from_millis(300));
    let engine = engine(executor());
    let logs = Logs::collect(&engine);
    let t = Instant::now();
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let n = node(&r, "sleep");
    assert_eq!(n.state, NodeState::TimedOut);
    assert_eq!(n.error.unwrap().kind, ErrorKind::TimedOut);
    assert_eq!(proc_state(logs.pids()[0]), None);
}

#[tokio::test]
async fn a_worker_deaf_to_its_timeout_is_killed() {
    let mut wf = Workflow::builder("deaf");
    wf.add("block", Block)
        .input(10_000)
        .timeout(Duration::from_millis(200));
    let engine = engine(executor());
    let logs = Logs::collect(&engine);
    let t = Instant::now();
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(200) + GRACE && took < Duration::from_secs(3),
        "{took:?}"
    );
    let n = node(&r, "block");
    assert_eq!(n.state, NodeState::TimedOut);
    let e = n.error.unwrap();
    assert_eq!(e.kind, ErrorKind::TimedOut);
    assert!(e.message.contains("was killed"), "{e}");
    assert_eq!(proc_state(logs.pids()[0]), None);
}

async fn start_and_cancel(job_input: (u64, bool)) -> (RunResult, Duration, i32, Logs) {
    let mut wf = Workflow::builder("cancel");
    if job_input.1 {
        wf.add("job", Sleep).input(job_input);
    } else {
        wf.add("job", Block).input(job_input.0);
    }
    let engine = engine(executor());
    let logs = Logs::collect(&engine);
    let run: RunHandle = engine.start(&wf.build().unwrap(), ()).await.unwrap();
    let pid = logs.wait_for_pids(1).await[0];
    assert_eq!(
        proc_state(pid).map(|s| s != 'Z'),
        Some(true),
        "the worker runs"
    );
    let t = Instant::now();
    run.cancel();
    let r = run.wait().await.unwrap();
    (r, t.elapsed(), pid, logs)
}

#[tokio::test]
async fn cancel_mid_run_stops_a_cooperative_worker_with_sigterm() {
    let (r, took, pid, logs) = start_and_cancel((30_000, true)).await;
    assert_eq!(r.state, RunState::Cancelled);
    assert!(
        took < GRACE,
        "a cooperative worker stops at SIGTERM: {took:?}"
    );
    let n = node(&r, "job");
    assert_eq!(n.state, NodeState::Cancelled);
    let e = n.error.unwrap();
    assert_eq!(e.kind, ErrorKind::Cancelled);
    assert_eq!(e.message, "cancelled", "the job's own error, not a kill");
    assert!(logs.has(LogLevel::Warn, "SIGTERM received"));
    assert_gone(pid, GRACE).await;
}

#[tokio::test]
async fn cancel_mid_run_kills_a_deaf_worker_after_the_grace_period() {
    let (r, took, pid, _) = start_and_cancel((30_000, false)).await;
    assert_eq!(r.state, RunState::Cancelled);
    assert!(
        took >= GRACE && took < GRACE + Duration::from_millis(1500),
        "{took:?}"
    );
    let n = node(&r, "job");
    assert_eq!(n.state, NodeState::Cancelled);
    assert!(
        n.error.unwrap().message.contains("grace period"),
        "{}",
        r.table()
    );
    assert_gone(pid, Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_worker_that_stops_heartbeating_is_killed_and_retried() {
    let mut wf = Workflow::builder("hang");
    wf.add("hang", Hang).retries(1).backoff(Backoff::none());
    let engine = engine(executor().heartbeat_timeout(Duration::from_millis(400)));
    let logs = Logs::collect(&engine);
    let mut events = engine.subscribe();
    let t = Instant::now();
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let n = node(&r, "hang");
    assert_eq!(n.state, NodeState::Succeeded, "{}", r.table());
    assert_eq!(n.attempts, 2);
    let mut first_error = None;
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), events.next()).await {
        if let EventKind::Node(ev) = e.kind
            && ev.to == NodeState::Retrying
        {
            first_error = ev.error;
        }
    }
    let e = first_error.expect("attempt 1 failed");
    assert!(e.message.contains("sent no heartbeat"), "{e}");
    assert_eq!(e.kind, ErrorKind::Crashed);
    assert_gone(logs.pids()[0], Duration::from_millis(200)).await;
}

/// A job the test worker does not have.
struct NotInWorker;

impl Job for NotInWorker {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "not-in-worker";

    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        Ok(())
    }
}

#[tokio::test]
async fn an_unknown_job_fails_without_retries() {
    let mut wf = Workflow::builder("unknown");
    wf.add("x", NotInWorker).retries(3).backoff(Backoff::none());
    let r = engine(executor())
        .run(&wf.build().unwrap(), ())
        .await
        .unwrap();
    let n = node(&r, "x");
    assert_eq!(n.state, NodeState::Failed);
    assert_eq!(n.attempts, 1);
    let e = n.error.unwrap();
    assert_eq!(e.kind, ErrorKind::Terminal);
    assert!(e.message.contains("no job named `not-in-worker`"), "{e}");
}

#[tokio::test]
async fn a_program_that_is_no_worker_is_an_executor_error() {
    let mut wf = Workflow::builder("not-a-worker");
    wf.add("x", Echo).input(json!(1));
    let wf = wf.build().unwrap();
    let r = engine(executor().program("true"))
        .run(&wf, ())
        .await
        .unwrap();
    let e = node(&r, "x").error.unwrap();
    assert_eq!(e.kind, ErrorKind::Executor);
    assert!(e.message.contains("without an output line"), "{e}");

    let r = engine(executor().program("/nonexistent/dagforge-worker"))
        .run(&wf, ())
        .await
        .unwrap();
    let e = node(&r, "x").error.unwrap();
    assert_eq!(e.kind, ErrorKind::Executor);
    assert!(e.message.contains("cannot start the worker"), "{e}");
}

#[tokio::test]
async fn per_execution_environment_and_working_directory() {
    let dir = std::env::temp_dir().canonicalize().unwrap();
    let mut wf = Workflow::builder("env");
    wf.add("probe", Environ)
        .input("DAGFORGE_TEST_NODE".to_owned());
    let cwd = dir.clone();
    let exec = executor()
        .env("DAGFORGE_TEST_NODE", "overridden below")
        .configure(move |execution, command| {
            command
                .current_dir(&cwd)
                .env("DAGFORGE_TEST_NODE", execution.context().node_id());
        });
    let r = engine(exec).run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(r.is_success(), "{}", r.table());
    let (wd, value, identity): (String, Option<String>, Value) = r.output("probe").unwrap();
    assert_eq!(wd, dir.display().to_string());
    assert_eq!(value.as_deref(), Some("probe"));
    assert_eq!(
        identity,
        json!({"run": r.id.to_string(), "node": "probe", "item": null, "attempt": 1})
    );
}

#[tokio::test]
async fn fan_out_items_know_their_index() {
    let mut wf = Workflow::builder("items");
    let names: Vec<String> = vec!["A".into(), "B".into(), "C".into()];
    wf.add("probe", Environ).each_input(Source::value(names));
    let r = engine(executor())
        .run(&wf.build().unwrap(), ())
        .await
        .unwrap();
    assert!(r.is_success(), "{}", r.table());
    let out: Vec<(String, Option<String>, Value)> = r.output("probe").unwrap();
    let items: Vec<Value> = out
        .into_iter()
        .map(|(_, _, id)| id["item"].clone())
        .collect();
    assert_eq!(items, vec![json!(0), json!(1), json!(2)]);
}

#[tokio::test]
async fn the_executor_limits_its_own_concurrency() {
    let mut wf = Workflow::builder("limit");
    let naps: Vec<(u64, bool)> = vec![(200, true); 6];
    wf.add("nap", Sleep).each_input(Source::value(naps));
    let engine = engine(executor().concurrency(2));
    let t = Instant::now();
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    let took = t.elapsed();
    assert!(r.is_success(), "{}", r.table());
    // Six 200 ms naps, two at a time: three rounds.
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn large_inputs_and_outputs_cross_the_pipes() {
    // Far over a pipe's buffer (64 KiB) both ways.
    let big = json!({"blob": "x".repeat(600_000), "n": [1, 2, 3]});
    let mut wf = Workflow::builder("large");
    wf.add("echo", Echo).input(big.clone());
    let r = engine(executor())
        .run(&wf.build().unwrap(), ())
        .await
        .unwrap();
    assert!(r.is_success(), "{}", r.table());
    assert_eq!(r.output::<Value>("echo").unwrap(), big);
}

#[tokio::test]
async fn the_engine_grace_period_abort_kills_and_reaps_the_worker() {
    let mut wf = Workflow::builder("abort");
    wf.add("job", Block).input(30_000);
    // The executor would wait 5 s after SIGTERM; the engine aborts after 200 ms.
    let engine = Engine::builder()
        .executor(executor().grace_period(Duration::from_secs(5)).build())
        .cancel_grace(Duration::from_millis(200))
        .build();
    let logs = Logs::collect(&engine);
    let run = engine.start(&wf.build().unwrap(), ()).await.unwrap();
    let pid = logs.wait_for_pids(1).await[0];
    let t = Instant::now();
    run.cancel();
    let r = run.wait().await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(node(&r, "job").state, NodeState::Cancelled);
    // Aborting the execution's task dropped the child: killed, then reaped by tokio.
    assert_gone(pid, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_worker_orphaned_by_an_engine_crash_does_not_keep_running() {
    use std::io::BufRead;

    let mut engine = std::process::Command::new(WORKER)
        .arg("engine")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(engine.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: i32 = line
        .trim()
        .strip_prefix("pid ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid line: {line:?}"));
    assert_eq!(
        proc_state(pid).map(|s| s != 'Z'),
        Some(true),
        "the worker runs"
    );
    engine.kill().unwrap(); // SIGKILL: the engine cannot stop its worker
    engine.wait().unwrap();
    // The orphan notices at its next heartbeat (100 ms), cancels its (deaf) job and
    // exits after the grace period (300 ms). Its new parent reaps it, or not: either
    // way it no longer runs.
    let t = Instant::now();
    while matches!(proc_state(pid), Some(s) if s != 'Z') {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "orphaned worker {pid} still running"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_program_that_dies_of_sigterm_is_cancelled() {
    // `sleep` is no worker: SIGTERM kills it before it says anything.
    let mut wf = Workflow::builder("sigterm");
    wf.add("x", Echo).input(json!(1));
    let engine = engine(executor().program("sleep").args(["30"]));
    let run = engine.start(&wf.build().unwrap(), ()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    run.cancel();
    let r = run.wait().await.unwrap();
    assert!(t.elapsed() < GRACE, "{:?}", t.elapsed());
    let e = node(&r, "x").error.unwrap();
    assert_eq!(e.kind, ErrorKind::Cancelled);
    assert!(
        e.message
            .contains("was killed by signal SIGTERM (15) after SIGTERM"),
        "{e}"
    );
}

/// Starts a `spawn` job (a grandchild `sleep`, deaf to SIGTERM if asked) and returns
/// the run, its engine's logs and the worker's and grandchild's pids.
async fn start_spawn(
    engine: &Engine,
    input: (u64, bool),
    timeout: Option<Duration>,
) -> (RunHandle, Logs, i32, i32) {
    let mut wf = Workflow::builder("spawn");
    let node = wf.add("job", Spawn).input(input);
    if let Some(t) = timeout {
        node.timeout(t);
    }
    let logs = Logs::collect(engine);
    let run = engine.start(&wf.build().unwrap(), ()).await.unwrap();
    let (worker, grandchild) = logs.wait_for_spawn().await;
    (run, logs, worker, grandchild)
}

#[tokio::test]
async fn cancel_signals_the_worker_s_whole_process_group() {
    let engine = engine(executor());
    let (run, _, worker, grandchild) = start_spawn(&engine, (30_000, false), None).await;
    let t = Instant::now();
    run.cancel();
    let r = run.wait().await.unwrap();
    assert!(t.elapsed() < GRACE, "{:?}", t.elapsed());
    assert_eq!(r.state, RunState::Cancelled);
    assert_eq!(node(&r, "job").error.unwrap().message, "cancelled");
    // SIGTERM went to the group: the job's own `sleep` got it as well.
    assert_gone(worker, GRACE).await;
    assert_dead(grandchild, GRACE).await;
}

#[tokio::test]
async fn a_grandchild_deaf_to_sigterm_dies_when_its_cancelled_worker_exits() {
    let engine = engine(executor());
    let (run, _, worker, grandchild) = start_spawn(&engine, (30_000, true), None).await;
    let t = Instant::now();
    run.cancel();
    let r = run.wait().await.unwrap();
    // The worker itself stopped cooperatively, well within the grace period…
    assert!(t.elapsed() < GRACE, "{:?}", t.elapsed());
    assert_eq!(node(&r, "job").error.unwrap().message, "cancelled");
    assert_gone(worker, GRACE).await;
    // …and what it left in its group was killed as it exited.
    assert_dead(grandchild, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_timeout_kills_what_the_job_started() {
    let engine = engine(executor());
    let (run, _, worker, grandchild) =
        start_spawn(&engine, (30_000, true), Some(Duration::from_millis(300))).await;
    let r = run.wait().await.unwrap();
    let n = node(&r, "job");
    assert_eq!(n.state, NodeState::TimedOut, "{}", r.table());
    assert_gone(worker, GRACE).await;
    assert_dead(grandchild, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn nothing_a_job_started_outlives_its_successful_attempt() {
    let engine = engine(executor());
    let (run, _, worker, grandchild) = start_spawn(&engine, (300, true), None).await;
    let r = run.wait().await.unwrap();
    assert!(r.is_success(), "{}", r.table());
    assert_eq!(r.output::<u64>("job").unwrap(), 300);
    assert_gone(worker, GRACE).await;
    assert_dead(grandchild, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_dropped_run_kills_its_workers_process_groups() {
    let engine = engine(executor().grace_period(Duration::from_secs(30)));
    let (run, _, worker, grandchild) = start_spawn(&engine, (30_000, true), None).await;
    // As when the engine stops: the driver goes, its executions are aborted.
    run.abandon();
    assert_gone(worker, Duration::from_millis(500)).await;
    assert_dead(grandchild, Duration::from_millis(500)).await;
}

#[test]
fn a_runtime_shutdown_kills_the_workers_process_groups() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (run, worker, grandchild) = rt.block_on(async {
        let engine = engine(executor().grace_period(Duration::from_secs(30)));
        let (run, _, worker, grandchild) = start_spawn(&engine, (30_000, true), None).await;
        (run, worker, grandchild)
    });
    // The engine's process is ending (its `main` returned): the runtime drops every
    // task, executions included, without a cancellation.
    drop(rt);
    drop(run);
    let t = Instant::now();
    while runs(worker) || runs(grandchild) {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "worker {worker} ({:?}) or grandchild {grandchild} ({:?}) still runs",
            proc_state(worker),
            proc_state(grandchild)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test]
async fn a_worker_orphaned_by_an_engine_crash_ends_its_process_group() {
    use std::io::BufRead;

    let mut engine = std::process::Command::new(WORKER)
        .args(["engine", "spawn"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(engine.stdout.take().unwrap());
    let (mut worker, mut grandchild) = (None, None);
    while worker.is_none() || grandchild.is_none() {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the engine ended");
        let line = line.trim();
        if let Some(p) = line.strip_prefix("pid ") {
            worker = p.parse::<i32>().ok();
        } else if let Some(p) = line.strip_prefix("grandchild ") {
            grandchild = p.parse::<i32>().ok();
        }
    }
    let (worker, grandchild) = (worker.unwrap(), grandchild.unwrap());
    assert!(runs(worker) && runs(grandchild));
    engine.kill().unwrap(); // SIGKILL: the engine cannot stop its worker
    engine.wait().unwrap();
    // The orphan notices at its next heartbeat (100 ms) and ends its group: SIGTERM
    // (its job stops; the grandchild is deaf to it), then SIGKILL as it exits.
    let t = Instant::now();
    while runs(worker) || runs(grandchild) {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "worker {worker} ({:?}) or grandchild {grandchild} ({:?}) still runs",
            proc_state(worker),
            proc_state(grandchild)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
