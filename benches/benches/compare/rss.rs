//! Peak resident memory, one fresh process per workload × engine.
//!
//! The parent re-executes this binary as `compare --rss <workload> <engine>` (or
//! `--rss idle`); the child starts the runtime, runs the workload `BENCH_RSS_REPS`
//! times (default 3, unchecked, the graph rebuilt and dropped each time) and prints
//! its `VmHWM` from `/proc/self/status`.

use std::process::Command;
use std::sync::Arc;

use crate::shape::Workload;
use crate::{Config, Engine, env_usize, runtime};

/// Workloads whose peak RSS is reported.
pub(crate) const WORKLOADS: [Workload; 2] = [Workload::Layered, Workload::Items];

/// One measurement: which process, and its peak RSS in KiB (`None`: it failed).
#[derive(Debug)]
pub(crate) struct Peak {
    /// The workload, or `None` for the idle process.
    pub(crate) workload: Option<Workload>,
    /// The engine (ignored for the idle process).
    pub(crate) engine: Engine,
    /// `VmHWM`, KiB.
    pub(crate) kib: Option<u64>,
}

/// Runs the child processes for every reported workload and configured engine.
pub(crate) fn measure(cfg: &Config) -> Vec<Peak> {
    let mut out = vec![Peak {
        workload: None,
        engine: Engine::Floor,
        kib: spawn(&["idle"]),
    }];
    for w in WORKLOADS {
        if !cfg.workloads.contains(&w) {
            continue;
        }
        for &e in cfg.engines.iter().filter(|e| e.runs(w)) {
            eprintln!("peak RSS: {w} / {}", e.name());
            out.push(Peak {
                workload: Some(w),
                engine: e,
                kib: spawn(&[w.name(), e.name()]),
            });
        }
    }
    out
}

fn spawn(what: &[&str]) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let out = Command::new(exe).arg("--rss").args(what).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "peak RSS child {what:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("vmhwm_kib=")?.trim().parse().ok())
}

/// The child side: `args` is `idle` or `<workload> <engine>`. Returns the exit code.
pub(crate) fn child(args: &[String]) -> i32 {
    let workers = env_usize("BENCH_WORKERS", 2).max(1);
    let rt = runtime(workers);
    match args {
        [idle] if idle == "idle" => rt.block_on(async { tokio::task::yield_now().await }),
        [w, e] => {
            let (Some(w), Some(e)) = (Workload::parse(w), Engine::parse(e)) else {
                eprintln!("unknown workload or engine: {w} {e}");
                return 2;
            };
            let shape = Arc::new(w.shape());
            for _ in 0..env_usize("BENCH_RSS_REPS", 3).max(1) {
                if let Err(why) = e.run_once(&rt, &shape, None) {
                    eprintln!("{why}");
                    return 1;
                }
            }
        }
        _ => {
            eprintln!("usage: compare --rss idle | --rss <workload> <engine>");
            return 2;
        }
    }
    match vm_hwm_kib() {
        Some(kib) => {
            println!("vmhwm_kib={kib}");
            0
        }
        None => {
            eprintln!("no VmHWM in /proc/self/status");
            1
        }
    }
}

/// This process's peak resident set, KiB.
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
