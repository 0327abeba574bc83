//! The markdown report: a side-by-side table, the details, and peak RSS.

use std::fmt::Write as _;
use std::time::Duration;

use crate::rss::{self, Peak};
use crate::shape::Workload;
use crate::{Config, Engine, Series};

/// Minimum, median and maximum of some durations.
struct Spread {
    min: Duration,
    median: Duration,
    max: Duration,
}

fn spread(mut v: Vec<Duration>) -> Option<Spread> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2
    };
    Some(Spread {
        min: v[0],
        median,
        max: v[v.len() - 1],
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us_per(d: Duration, units: usize) -> f64 {
    d.as_secs_f64() * 1e6 / units as f64
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Median execution time per unit of `w` for engine `e`, µs.
fn per_unit(results: &[(Workload, Engine, Series)], w: Workload, e: Engine) -> Option<f64> {
    let (_, _, s) = results.iter().find(|(rw, re, _)| *rw == w && *re == e)?;
    let exec = spread(s.samples.iter().map(|x| x.exec).collect())?;
    Some(us_per(exec.median, w.shape_units()))
}

impl Workload {
    /// The divisor of the per-unit figure (without building the shape).
    fn shape_units(self) -> usize {
        match self {
            Workload::Chain => 1_000,
            Workload::Layered => 100_000,
            Workload::Fanout => 10_002,
            Workload::Diamond => 3_002,
            Workload::Items => crate::shape::ITEMS,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Workload::Chain => "chain 1,000",
            Workload::Layered => "layered 100k (1,000 × 100)",
            Workload::Fanout => "fan-out/in 1 → 10,000 → 1",
            Workload::Diamond => "diamond 1 → 1,000 × 3 → 1",
            Workload::Items => "items 1 → 100,000 (dagforge `each_input`)",
        }
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cpus} CPUs, {model}")
}

/// Renders the whole report.
pub(crate) fn render(cfg: &Config, results: &[(Workload, Engine, Series)], rss: &[Peak]) -> String {
    let mut s = String::new();
    let engines = &cfg.engines;
    let _ = writeln!(
        s,
        "# dagforge vs dagx 0.3.1 vs dagrs 0.9.0 vs plain tokio\n"
    );
    let _ = writeln!(
        s,
        "- machine: {}; tokio multi-thread runtime, {} workers\n- {} warm-up + {} timed reps per workload and engine, engines interleaved; graph construction excluded from exec\n- every engine checked once per workload (untimed): each node ran once, after its parents\n",
        machine(),
        cfg.workers,
        cfg.warmup,
        cfg.reps
    );

    let _ = writeln!(s, "## Median exec time per unit, µs (× the tokio floor)\n");
    let _ = write!(s, "| shape |");
    for e in engines {
        let _ = write!(s, " {} |", e.name());
    }
    let _ = write!(s, "\n|---|");
    for _ in engines {
        let _ = write!(s, "---:|");
    }
    s.push('\n');
    for &w in &cfg.workloads {
        let floor = per_unit(results, w, Engine::Floor);
        let _ = write!(s, "| {}, µs/{} |", w.label(), w.unit());
        for &e in engines {
            match (per_unit(results, w, e), floor) {
                (Some(v), Some(f)) if e != Engine::Floor => {
                    let _ = write!(s, " {v:.2} ({:.1}×) |", v / f);
                }
                (Some(v), _) => {
                    let _ = write!(s, " {v:.2} |");
                }
                (None, _) => s.push_str(" – |"),
            }
        }
        s.push('\n');
    }
    s.push_str(
        "\nOther engines run `items` as the plain graph 1 → 100,000 → 1 (per item = total / 100,000); dagrs is left out of it (over a minute per run; `BENCH_ITEMS_DAGRS=1` adds it).\n",
    );

    let _ = writeln!(s, "\n## Details\n");
    s.push_str("| shape | engine | nodes / edges | tasks run | build median (ms) | exec min (ms) | exec median (ms) | exec max (ms) | median µs per unit |\n");
    s.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
    for &w in &cfg.workloads {
        let shape = w.shape();
        for (_, e, series) in results.iter().filter(|(rw, _, _)| *rw == w) {
            let build = spread(series.samples.iter().map(|x| x.build).collect());
            let exec = spread(series.samples.iter().map(|x| x.exec).collect());
            let (Some(build), Some(exec)) = (build, exec) else {
                continue;
            };
            let tasks = series.samples.first().map_or(0, |x| x.tasks);
            let _ = writeln!(
                s,
                "| {w} | {} | {} / {} | {tasks} | {:.3} | {:.3} | {:.3} | {:.3} | **{:.3} /{}** |",
                e.name(),
                shape.len(),
                shape.edges(),
                ms(build.median),
                ms(exec.min),
                ms(exec.median),
                ms(exec.max),
                us_per(exec.median, shape.units),
                w.unit()
            );
        }
    }

    if !rss.is_empty() {
        let idle = rss
            .iter()
            .find(|p| p.workload.is_none())
            .and_then(|p| p.kib);
        let _ = writeln!(s, "\n## Peak RSS (VmHWM), one fresh process each, MiB\n");
        match idle {
            Some(k) => {
                let _ = writeln!(s, "idle process (runtime only): {:.1} MiB\n", mib(k));
            }
            None => s.push_str("idle process: failed\n\n"),
        }
        let _ = write!(s, "| shape |");
        for e in engines {
            let _ = write!(s, " {} |", e.name());
        }
        let _ = write!(s, "\n|---|");
        for _ in engines {
            let _ = write!(s, "---:|");
        }
        s.push('\n');
        for w in rss::WORKLOADS {
            if !cfg.workloads.contains(&w) {
                continue;
            }
            let _ = write!(s, "| {} |", w.label());
            for &e in engines {
                let kib = rss
                    .iter()
                    .find(|p| p.workload == Some(w) && p.engine == e)
                    .and_then(|p| p.kib);
                match (kib, idle) {
                    (Some(k), Some(i)) => {
                        let _ = write!(s, " {:.1} (+{:.1}) |", mib(k), mib(k.saturating_sub(i)));
                    }
                    (Some(k), None) => {
                        let _ = write!(s, " {:.1} |", mib(k));
                    }
                    (None, _) if e.runs(w) => s.push_str(" failed |"),
                    (None, _) => s.push_str(" – |"),
                }
            }
            s.push('\n');
        }
        s.push_str(
            "\n(+x) = above the idle process. The shape itself (< 3 MiB) is in every number.\n",
        );
    }
    s
}

/// Writes the report to `BENCH_REPORT`, or `<target dir>/bench-report.md`.
pub(crate) fn save(text: &str) {
    let path = std::env::var_os("BENCH_REPORT")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            // The bench binary lives in `<target>/<profile>/deps/`.
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.join("bench-report.md"))
        });
    if let Some(path) = path {
        match std::fs::write(&path, text) {
            Ok(()) => eprintln!("report written to {}", path.display()),
            Err(e) => eprintln!("could not write {}: {e}", path.display()),
        }
    }
}
