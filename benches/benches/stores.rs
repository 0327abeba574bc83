//! Throughput and pickup latency through each store, with no-op nodes.
//!
//! ```sh
//! cargo bench -p benches --bench stores                       # memory and SQLite
//! cargo bench -p benches --features postgres --bench stores   # + PostgreSQL at DATABASE_URL
//! STORES_BENCH=sqlite ENGINES=2 cargo bench -p benches --bench stores
//! ```
//!
//! - **drain, fan-out**: one run whose node fans out over 100,000 items; node
//!   completions per second (every item is a completion with its events recorded).
//! - **drain, runs**: 100 runs of a 1,000-node layered DAG (10 × 100) enqueued first,
//!   then served by `ENGINES` engines until all finished; node completions per second.
//!   With `ENGINES=1` the engine serves in the bench process; with more, on SQLite and
//!   PostgreSQL, each engine is a process of its own (this binary, re-run as a server),
//!   as in production.
//! - **pickup**: 1,000 serial single-node runs: `enqueue` on one engine → the job
//!   starting on a serving engine (its own connection); min / p50 / p99 / max.
//!
//! Engines share nothing but the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dagforge::RunId;
use dagforge::prelude::*;
use dagforge::store::Store;
use tokio::sync::mpsc;

struct Noop;
impl Job for Noop {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "noop";
    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        Ok(())
    }
}

struct Items(u32);
impl Job for Items {
    type Input = ();
    type Output = Vec<u32>;
    const NAME: &'static str = "items";
    async fn run(&self, _: &JobContext, _: ()) -> Result<Vec<u32>, JobError> {
        Ok((0..self.0).collect())
    }
}

struct Item;
impl Job for Item {
    type Input = u32;
    type Output = ();
    const NAME: &'static str = "item";
    async fn run(&self, _: &JobContext, _: u32) -> Result<(), JobError> {
        Ok(())
    }
}

/// Reports its start time.
struct Started(mpsc::UnboundedSender<Instant>);
impl Job for Started {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "started";
    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        let _ = self.0.send(Instant::now());
        Ok(())
    }
}

fn layered() -> Workflow {
    let mut wf = Workflow::builder("layered-1000");
    let mut prev: Vec<NodeRef<()>> = Vec::new();
    for l in 0..10 {
        let mut layer = Vec::new();
        for i in 0..100 {
            let mut n = wf.add(format!("n{l}-{i}"), Noop);
            if !prev.is_empty() {
                n = n.after(&prev[i]).after(&prev[(i * 7 + 3) % 100]);
            }
            layer.push(n.handle());
        }
        prev = layer;
    }
    wf.build().expect("valid")
}

/// Which store, and where: opens a new connection (pool) each call, as separate
/// engine processes would.
struct Open {
    kind: String,
    url: String,
    memory: Arc<MemoryStore>,
}

impl Open {
    async fn call(&self) -> Arc<dyn Store> {
        match self.kind.as_str() {
            "sqlite" => Arc::new(
                dagforge::store::SqliteStore::open(&self.url)
                    .await
                    .expect("sqlite"),
            ),
            #[cfg(feature = "postgres")]
            "postgres" => {
                let (base, schema) = self.url.split_once('#').expect("url#schema");
                Arc::new(
                    dagforge::store::PostgresStore::options(base)
                        .schema(schema)
                        .connect()
                        .await
                        .expect("postgres"),
                )
            }
            _ => Arc::clone(&self.memory) as Arc<dyn Store>,
        }
    }
}

async fn drain_items(open: &Open) -> f64 {
    let mut wf = Workflow::builder("items-100k");
    let src = wf.add("src", Items(100_000)).handle();
    wf.add("each", Item).each_input(src);
    let wf = wf.build().expect("valid");
    let engine = Engine::builder()
        .shared_store(open.call().await)
        .concurrency(512)
        .build();
    let t = Instant::now();
    let r = engine.run(&wf, ()).await.expect("run");
    assert!(r.is_success());
    100_000.0 / t.elapsed().as_secs_f64()
}

async fn drain_runs(open: &Open, engines: usize) -> f64 {
    let wf = layered();
    let enqueuer = Engine::builder().shared_store(open.call().await).build();
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.push(enqueuer.enqueue(&wf, ()).await.expect("enqueue"));
    }
    let store = open.call().await;
    let t = Instant::now();
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut servers = Vec::new();
    let mut children = Vec::new();
    let processes = engines > 1 && open.kind != "memory";
    for e in 0..engines {
        if processes {
            children.push(
                std::process::Command::new(std::env::current_exe().expect("own path"))
                    .env(SERVE, format!("{}|{}|bench-{e}", open.kind, open.url))
                    .spawn()
                    .expect("engine process"),
            );
            continue;
        }
        let engine = Engine::builder()
            .shared_store(open.call().await)
            .id(format!("bench-{e}"))
            .concurrency(256)
            .workflow(&wf)
            .build();
        let mut stopped = stop.subscribe();
        servers.push(tokio::spawn(async move {
            engine
                .serve(Duration::from_millis(100), async move {
                    let _ = stopped.recv().await;
                })
                .await
        }));
    }
    // Watching for the end costs the store little: one run read per look (the first
    // run not seen finished yet), so the measure does not slow the drain down.
    let mut pending: std::collections::VecDeque<RunId> = ids.iter().copied().collect();
    while let Some(&id) = pending.front() {
        let run = store.get_run(id).await.expect("get").expect("run");
        if run.state.is_terminal() {
            pending.pop_front();
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let rate = 100_000.0 / t.elapsed().as_secs_f64();
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = stop.send(());
    for s in servers {
        let _ = s.await;
    }
    rate
}

async fn pickup(open: &Open) -> Vec<Duration> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut wf = Workflow::builder("pickup");
    wf.add("start", Started(tx));
    let wf = wf.build().expect("valid");
    let enqueuer = Engine::builder().shared_store(open.call().await).build();
    let server = Engine::builder()
        .shared_store(open.call().await)
        .id("server")
        .workflow(&wf)
        .build();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        server
            .serve(Duration::from_secs(1), async move {
                let _ = stopped.await;
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut lat = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        let _: RunId = enqueuer.enqueue(&wf, ()).await.expect("enqueue");
        let started = rx.recv().await.expect("job started");
        lat.push(started.duration_since(t));
    }
    let _ = stop.send(());
    let _ = serving.await;
    lat.sort();
    lat
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Set (to `kind|url|engine id`) in the engine processes the runs drain spawns.
const SERVE: &str = "DAGFORGE_BENCH_SERVE";

/// An engine process: serves the layered runs until killed.
async fn serve(spec: &str) {
    let mut parts = spec.splitn(3, '|');
    let (Some(kind), Some(url), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("{SERVE}: expected `kind|url|id`, got `{spec}`");
    };
    let open = Open {
        kind: kind.to_owned(),
        url: url.to_owned(),
        memory: Arc::new(MemoryStore::new()),
    };
    let wf = layered();
    let engine = Engine::builder()
        .shared_store(open.call().await)
        .id(id)
        .concurrency(256)
        .workflow(&wf)
        .build();
    engine
        .serve(Duration::from_millis(100), std::future::pending())
        .await
        .expect("serve");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Ok(spec) = std::env::var(SERVE) {
        return serve(&spec).await;
    }
    let which = std::env::var("STORES_BENCH").unwrap_or_else(|_| "memory,sqlite,postgres".into());
    let engines: usize = std::env::var("ENGINES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let dir = std::env::temp_dir().join(format!("dagforge-stores-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    println!(
        "| store | engines | drain fan-out 100k, completions/s | drain 100 × 1,000-node runs, completions/s | pickup min / p50 / p99 / max, ms |"
    );
    println!("|---|---:|---:|---:|---|");
    for store in which.split(',') {
        let url = match store {
            "memory" => String::new(),
            "sqlite" => format!("sqlite://{}", dir.join(format!("{store}.db")).display()),
            #[cfg(feature = "postgres")]
            "postgres" => format!(
                "{}#bench_{}",
                std::env::var("DATABASE_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
                std::process::id()
            ),
            other => {
                eprintln!("skipping `{other}` (not built in, or unknown)");
                continue;
            }
        };
        let open = Open {
            kind: store.to_owned(),
            url,
            memory: Arc::new(MemoryStore::new()),
        };
        eprintln!("{store}: drain fan-out…");
        let items = drain_items(&open).await;
        eprintln!("{store}: drain runs…");
        let runs = drain_runs(&open, engines).await;
        // Pickup is a wake-up measure: only stores that notify serving engines have one
        // (SQLite engines in other processes poll).
        let pick = if open.call().await.watch().await.ok().flatten().is_some() {
            eprintln!("{store}: pickup…");
            let lat = pickup(&open).await;
            let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2}",
                ms(lat[0]),
                ms(p(0.5)),
                ms(p(0.99)),
                ms(lat[lat.len() - 1])
            )
        } else {
            "– (polls)".to_owned()
        };
        println!("| {store} | {engines} | {items:.0} | {runs:.0} | {pick} |");
    }
    let _ = std::fs::remove_dir_all(&dir);
    #[cfg(feature = "postgres")]
    if which.contains("postgres") {
        let base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        if let Ok(s) = dagforge::store::PostgresStore::options(&base)
            .schema(format!("bench_{}", std::process::id()))
            .connect()
            .await
        {
            let _ = s.drop_schema().await;
        }
    }
}
