//! `cargo bench -p benches --bench compare`: dagforge's in-memory orchestration
//! overhead next to dagx, dagrs and a plain-tokio floor, on the same DAG shapes, in
//! one process and one run. See `benches/README.md`.

mod floor;
mod forge;
mod probe;
mod report;
mod rss;
mod shape;
mod via_dagrs;
mod via_dagx;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::probe::Probe;
use crate::shape::{Shape, Workload};

/// One run of one engine on one shape.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    /// Turning the shape into the engine's graph (or workflow).
    pub(crate) build: Duration,
    /// The engine's run call, until it returned.
    pub(crate) exec: Duration,
    /// Tasks the engine ran, helper tasks included.
    pub(crate) tasks: usize,
}

/// The engines under comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Engine {
    /// Hand-rolled: dependency counters and one `tokio::spawn` per node.
    Floor,
    /// This workspace's engine.
    Dagforge,
    /// dagx 0.3.1.
    Dagx,
    /// dagrs 0.9.0.
    Dagrs,
}

impl Engine {
    /// Every engine, in report order.
    pub(crate) const ALL: [Engine; 4] =
        [Engine::Floor, Engine::Dagforge, Engine::Dagx, Engine::Dagrs];

    /// The name used on the command line and in the tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Engine::Floor => "tokio-floor",
            Engine::Dagforge => "dagforge",
            Engine::Dagx => "dagx",
            Engine::Dagrs => "dagrs",
        }
    }

    /// Parses [`name`](Self::name) (`floor` is accepted too).
    pub(crate) fn parse(s: &str) -> Option<Engine> {
        if s == "floor" {
            return Some(Engine::Floor);
        }
        Engine::ALL.into_iter().find(|e| e.name() == s)
    }

    /// Whether this engine runs `workload`. dagrs does not run `items`: its 1 → 100,000
    /// → 1 graph takes over a minute per run (superlinear in the fan-in).
    pub(crate) fn runs(self, workload: Workload) -> bool {
        !(self == Engine::Dagrs && workload == Workload::Items)
            || env_usize("BENCH_ITEMS_DAGRS", 0) != 0
    }

    /// Builds `shape` for this engine and runs it once; checked when `probe` is given.
    pub(crate) fn run_once(
        self,
        rt: &Runtime,
        shape: &Arc<Shape>,
        probe: Option<&Arc<Probe>>,
    ) -> Result<Sample, String> {
        match self {
            Engine::Floor => floor::run_once(rt, shape, probe),
            Engine::Dagforge => forge::run_once(rt, shape, probe),
            Engine::Dagx => via_dagx::run_once(rt, shape, probe),
            Engine::Dagrs => via_dagrs::run_once(rt, shape, probe),
        }
    }
}

/// Runs `fut` as a task on a runtime worker (so it is timed where engines run) and
/// waits for it from the calling thread.
pub(crate) fn on_worker<F>(rt: &Runtime, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(async move {
        match tokio::spawn(fut).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    })
}

/// An environment variable as a number, or `default`.
pub(crate) fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// What to run, from the environment and the command line.
#[derive(Debug)]
pub(crate) struct Config {
    /// Timed repetitions per workload and engine.
    pub(crate) reps: usize,
    /// Untimed repetitions before them.
    pub(crate) warmup: usize,
    /// Tokio worker threads.
    pub(crate) workers: usize,
    /// Workloads to run.
    pub(crate) workloads: Vec<Workload>,
    /// Engines to run.
    pub(crate) engines: Vec<Engine>,
    /// Whether to measure peak RSS in child processes.
    pub(crate) rss: bool,
}

impl Config {
    fn from_env(args: &[String]) -> Result<Config, String> {
        let list = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
        let workloads = match list("BENCH_WORKLOADS") {
            None => Workload::ALL.to_vec(),
            Some(v) => v
                .split(',')
                .map(|w| Workload::parse(w.trim()).ok_or(format!("unknown workload `{w}`")))
                .collect::<Result<_, _>>()?,
        };
        let engines = match list("BENCH_ENGINES") {
            None => Engine::ALL.to_vec(),
            Some(v) => v
                .split(',')
                .map(|e| Engine::parse(e.trim()).ok_or(format!("unknown engine `{e}`")))
                .collect::<Result<_, _>>()?,
        };
        let mut cfg = Config {
            reps: env_usize("BENCH_REPS", 9).max(1),
            warmup: env_usize("BENCH_WARMUP", 2),
            workers: env_usize("BENCH_WORKERS", 2).max(1),
            workloads,
            engines,
            rss: env_usize("BENCH_RSS", 1) != 0,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut num = |what: &str| {
                it.next()
                    .and_then(|v| v.parse::<usize>().ok())
                    .ok_or(format!("{what} needs a number"))
            };
            match a.as_str() {
                "--reps" => cfg.reps = num("--reps")?.max(1),
                "--warmup" => cfg.warmup = num("--warmup")?,
                "--workers" => cfg.workers = num("--workers")?.max(1),
                "--no-rss" => cfg.rss = false,
                // `cargo bench` passes `--bench`; filters are not supported.
                _ => {}
            }
        }
        Ok(cfg)
    }
}

/// The runtime every engine shares: multi-thread, `workers` workers.
pub(crate) fn runtime(workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

/// Every sample of one workload × engine.
#[derive(Debug, Default)]
pub(crate) struct Series {
    /// Timed samples.
    pub(crate) samples: Vec<Sample>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--rss") {
        std::process::exit(rss::child(&args[i + 1..]));
    }
    let cfg = match Config::from_env(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("compare: {e}");
            std::process::exit(2);
        }
    };
    let rt = runtime(cfg.workers);
    let mut results: Vec<(Workload, Engine, Series)> = Vec::new();
    let mut failed = false;
    for &w in &cfg.workloads {
        let shape = Arc::new(w.shape());
        eprintln!(
            "{w}: {} nodes, {} edges; checking, then {} warm-up + {} timed reps",
            shape.len(),
            shape.edges(),
            cfg.warmup,
            cfg.reps
        );
        let mut series: Vec<(Engine, Series)> = Vec::new();
        for &e in cfg.engines.iter().filter(|e| e.runs(w)) {
            let probe = Probe::new(&shape);
            let checked = e
                .run_once(&rt, &shape, Some(&probe))
                .and_then(|_| probe.verify());
            match checked {
                Ok(()) => {
                    eprintln!(
                        "  {}: checked: every node ran once, after its parents",
                        e.name()
                    );
                    series.push((e, Series::default()));
                }
                Err(why) => {
                    eprintln!("  {}: CHECK FAILED: {why}", e.name());
                    failed = true;
                }
            }
        }
        for rep in 0..cfg.warmup + cfg.reps {
            // Round-robin, starting with a different engine each repetition.
            let k = series.len();
            for j in 0..k {
                let (e, s) = &mut series[(rep + j) % k];
                match e.run_once(&rt, &shape, None) {
                    Ok(sample) if rep >= cfg.warmup => s.samples.push(sample),
                    Ok(_) => {}
                    Err(why) => {
                        eprintln!("  {}: run failed: {why}", e.name());
                        failed = true;
                    }
                }
            }
        }
        for (e, s) in series {
            results.push((w, e, s));
        }
    }
    drop(rt);
    let rss = if cfg.rss {
        rss::measure(&cfg)
    } else {
        Vec::new()
    };
    let text = report::render(&cfg, &results, &rss);
    println!("{text}");
    report::save(&text);
    if failed {
        eprintln!("compare: some engine failed a check or a run (see above)");
        std::process::exit(1);
    }
}
