//! How close a run through a deep DAG of short jobs comes to its critical path, on
//! each store: the time each DAG level waits for the store shows as the ratio of the
//! run's wall time to the critical path (the sum of the job times along the longest
//! chain).
//!
//! ```sh
//! cargo bench -p benches --bench critical_path                       # memory, SQLite
//! cargo bench -p benches --features postgres --bench critical_path   # + PostgreSQL
//! TASK_MS=1,10,50 REPS=7 cargo bench -p benches --features postgres --bench critical_path
//! ```
//!
//! The workflow has the shape of a small Montage mosaic (the astronomy workflow the
//! Pegasus project uses as a benchmark): 58 tasks on 10 levels — one archive query, 12
//! re-projections, 20 overlap fits of neighbouring pairs, a concatenation, a background
//! model, 12 background corrections (each after the model and its own re-projection),
//! a table, the co-addition, 8 shrunk tiles and the final image. Every task sleeps
//! `TASK_MS` (default 10 ms), so the critical path is 10 × `TASK_MS`.
//!
//! PostgreSQL is measured under both [`Durability`](dagforge::store::Durability)
//! settings: `outcomes` (the default: every recorded outcome waits for its WAL flush)
//! and `relaxed` (none waits).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dagforge::prelude::*;
use dagforge::store::Store;

/// Sleeps its task time.
struct Task(Duration);

impl Job for Task {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "task";

    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        tokio::time::sleep(self.0).await;
        Ok(())
    }
}

/// The 58-task, 10-level Montage-shaped workflow.
fn montage(task: Duration) -> Workflow {
    let mut wf = Workflow::builder("montage");
    let archive = wf.add("archive", Task(task)).handle();
    let project: Vec<_> = (0..12)
        .map(|i| {
            wf.add(format!("project{i}"), Task(task))
                .after(&archive)
                .handle()
        })
        .collect();
    let diff: Vec<_> = (0..20)
        .map(|i| {
            wf.add(format!("difffit{i}"), Task(task))
                .after(&project[i % 12])
                .after(&project[(i + 1) % 12])
                .handle()
        })
        .collect();
    let mut concat = wf.add("concatfit", Task(task));
    for d in &diff {
        concat = concat.after(d);
    }
    let concat = concat.handle();
    let model = wf.add("bgmodel", Task(task)).after(&concat).handle();
    let background: Vec<_> = (0..12)
        .map(|i| {
            wf.add(format!("background{i}"), Task(task))
                .after(&model)
                .after(&project[i])
                .handle()
        })
        .collect();
    let mut table = wf.add("imgtbl", Task(task));
    for b in &background {
        table = table.after(b);
    }
    let table = table.handle();
    let add = wf.add("add", Task(task)).after(&table).handle();
    let shrink: Vec<_> = (0..8)
        .map(|i| {
            wf.add(format!("shrink{i}"), Task(task))
                .after(&add)
                .handle()
        })
        .collect();
    let mut jpeg = wf.add("jpeg", Task(task));
    for s in &shrink {
        jpeg = jpeg.after(s);
    }
    wf.build().expect("the montage workflow is valid")
}

/// Levels on the longest chain.
const LEVELS: u32 = 10;

async fn open(name: &str, dir: &std::path::Path) -> Option<Arc<dyn Store>> {
    match name {
        "memory" => Some(Arc::new(MemoryStore::new())),
        "sqlite" => Some(Arc::new(
            dagforge::store::SqliteStore::open(&format!(
                "sqlite://{}",
                dir.join("critical.db").display()
            ))
            .await
            .expect("open the SQLite store"),
        )),
        #[cfg(feature = "postgres")]
        "postgres-outcomes" | "postgres-relaxed" => {
            let durability = if name.ends_with("relaxed") {
                dagforge::store::Durability::Relaxed
            } else {
                dagforge::store::Durability::Outcomes
            };
            let url = std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            Some(Arc::new(
                dagforge::store::PostgresStore::options(&url)
                    .schema(format!("bench_critical_{}", std::process::id()))
                    .durability(durability)
                    .connect()
                    .await
                    .expect("connect to PostgreSQL at DATABASE_URL"),
            ))
        }
        _ => None,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    let task_ms: Vec<u64> = std::env::var("TASK_MS")
        .unwrap_or_else(|_| "10".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let stores = std::env::var("STORES")
        .unwrap_or_else(|_| "memory,sqlite,postgres-outcomes,postgres-relaxed".into());
    let dir = std::env::temp_dir().join(format!("dagforge-critical-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    println!("| store | task | critical path | run min / median | ratio min / median |");
    println!("|---|---:|---:|---:|---:|");
    for name in stores.split(',') {
        let Some(store) = open(name, &dir).await else {
            eprintln!("skipping `{name}` (not built in, or unknown)");
            continue;
        };
        for &ms in &task_ms {
            let task = Duration::from_millis(ms);
            let wf = montage(task);
            let engine = Engine::builder()
                .shared_store(Arc::clone(&store))
                .workflow(&wf)
                .build();
            // One run first, to warm the connections and caches.
            engine.run(&wf, ()).await.expect("warm-up run");
            let mut times = Vec::with_capacity(reps);
            for _ in 0..reps {
                let t = Instant::now();
                let r = engine.run(&wf, ()).await.expect("run");
                assert_eq!(r.state, RunState::Succeeded);
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let critical = (ms * u64::from(LEVELS)) as f64;
            let min = times.iter().copied().fold(f64::INFINITY, f64::min);
            let med = median(&mut times);
            println!(
                "| {name} | {ms} ms | {critical:.0} ms | {min:.1} / {med:.1} ms | {:.2}× / {:.2}× |",
                min / critical,
                med / critical
            );
        }
        #[cfg(feature = "postgres")]
        if name.starts_with("postgres") {
            let url = std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            if let Ok(pg) = dagforge::store::PostgresStore::options(&url)
                .schema(format!("bench_critical_{}", std::process::id()))
                .connect()
                .await
            {
                let _ = pg.drop_schema().await;
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
