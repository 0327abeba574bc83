//! A real engine process for the crash tests (`tests/integration/crash.rs`).
//!
//! `dagforge-crash-engine <store-url> <journal> start|serve|supervise|enqueue|poison <nodes>`
//!
//! - `start`: starts one run of the `crash` workflow (a layered DAG of `<nodes>` nodes
//!   whose jobs sleep a little; layers `DAGFORGE_CRASH_WIDTH` wide, default 10, 1
//!   makes a chain), prints its id, and drives it.
//! - `serve`: resumes whatever runs of the workflow have an expired lease, until no
//!   unfinished run is left, then exits 0.
//! - `supervise`: serves the store with `Engine::serve` (poll 200 ms) until killed.
//! - `enqueue`: enqueues one run of the `crash` workflow, prints its id and exits.
//! - `poison`: enqueues one run of the `poison` workflow, whose one job aborts the
//!   process that runs it, prints its id and exits.
//!
//! Every execution appends `node attempt pid` to the journal file before it reports
//! success, so the test can tell which nodes ran how many times, and
//! `node attempt pid unix-ms` to `<journal>.starts` when it starts. Leases last 2 s.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use dagforge::prelude::*;
use dagforge::store::{RunQuery, Store};

struct Step {
    journal: Arc<std::sync::Mutex<std::fs::File>>,
    starts: Arc<std::sync::Mutex<std::fs::File>>,
}

/// Appends `node attempt pid unix-ms` to `file`, durably.
fn note(file: &std::sync::Mutex<std::fs::File>, ctx: &JobContext) -> Result<(), JobError> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut f = file.lock().map_err(|_| JobError::msg("journal lock"))?;
    writeln!(
        f,
        "{} {} {} {ms}",
        ctx.node_id(),
        ctx.attempt(),
        std::process::id()
    )?;
    f.sync_data()?;
    Ok(())
}

/// Aborts the process that runs it: a run that kills every engine driving it.
struct Boom;

impl Job for Boom {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "boom";

    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        eprintln!("boom: aborting engine process {}", std::process::id());
        std::process::abort();
    }
}

impl Job for Step {
    type Input = ();
    type Output = u32;
    const NAME: &'static str = "step";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<u32, JobError> {
        note(&self.starts, ctx)?;
        let n: u32 = ctx.node_id()[1..]
            .parse()
            .map_err(JobError::terminal_from)?;
        tokio::time::sleep(Duration::from_millis(5 + u64::from(n % 7) * 3)).await;
        let mut f = self
            .journal
            .lock()
            .map_err(|_| JobError::msg("journal lock"))?;
        writeln!(
            f,
            "{} {} {}",
            ctx.node_id(),
            ctx.attempt(),
            std::process::id()
        )?;
        f.sync_data()?;
        Ok(n)
    }
}

type Journal = Arc<std::sync::Mutex<std::fs::File>>;

fn workflow(nodes: usize, journal: &Journal, starts: &Journal) -> Workflow {
    let width = std::env::var("DAGFORGE_CRASH_WIDTH")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(10usize)
        .max(1);
    let mut wf = Workflow::builder("crash");
    let mut prev: Vec<NodeRef<u32>> = Vec::new();
    let mut layer = Vec::new();
    for i in 0..nodes {
        let mut node = wf.add(
            format!("n{i}"),
            Step {
                journal: Arc::clone(journal),
                starts: Arc::clone(starts),
            },
        );
        if !prev.is_empty() {
            node = node
                .after(&prev[i % prev.len()])
                .after(&prev[(i * 7 + 3) % prev.len()]);
        }
        layer.push(node.handle());
        if layer.len() == width {
            prev = std::mem::take(&mut layer);
        }
    }
    wf.build().expect("the crash workflow is valid")
}

fn poison() -> Workflow {
    let mut wf = Workflow::builder("poison");
    wf.add("boom", Boom);
    wf.build().expect("the poison workflow is valid")
}

async fn open(url: &str) -> Result<Arc<dyn Store>, Box<dyn std::error::Error>> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(dagforge::store::SqliteStore::open(url).await?));
    }
    open_postgres(url).await
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> Result<Arc<dyn Store>, Box<dyn std::error::Error>> {
    let (url, schema) = url.split_once('#').ok_or("postgres url needs #schema")?;
    Ok(Arc::new(
        dagforge::store::PostgresStore::options(url)
            .schema(schema)
            .connect()
            .await?,
    ))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(url: &str) -> Result<Arc<dyn Store>, Box<dyn std::error::Error>> {
    Err(format!("`{url}`: built without the `postgres` feature").into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, journal, mode, nodes] = &args[..] else {
        return Err(
            "usage: dagforge-crash-engine <store-url> <journal> start|serve <nodes>".into(),
        );
    };
    let nodes: usize = nodes.parse()?;
    let open_log = |path: &str| -> std::io::Result<Journal> {
        Ok(Arc::new(std::sync::Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        )))
    };
    let starts = open_log(&format!("{journal}.starts"))?;
    let journal = open_log(journal)?;
    let wf = workflow(nodes, &journal, &starts);
    let poison = poison();
    let store = open(url).await?;
    let engine = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id(format!("crash-{}", std::process::id()))
        .lease_ttl(Duration::from_secs(2))
        .concurrency(8)
        .workflow(&wf)
        .workflow(&poison)
        .build();
    match mode.as_str() {
        "start" => {
            let run = engine.start(&wf, ()).await?;
            println!("{}", run.id());
            std::io::stdout().flush()?;
            run.wait().await?;
        }
        "serve" => loop {
            for handle in engine.resume().await? {
                // A run this process lost to another one is not a failure here.
                let _ = handle.wait().await;
            }
            let unfinished = store
                .list_runs(&RunQuery::new().limit(1000))
                .await?
                .items
                .iter()
                .filter(|r| !r.state.is_terminal())
                .count();
            if unfinished == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        },
        "supervise" => {
            engine
                .serve(Duration::from_millis(200), std::future::pending())
                .await?;
        }
        "enqueue" | "poison" => {
            let wf = if mode == "poison" { &poison } else { &wf };
            println!("{}", engine.enqueue(wf, ()).await?);
            std::io::stdout().flush()?;
        }
        other => return Err(format!("unknown mode `{other}`").into()),
    }
    Ok(())
}
