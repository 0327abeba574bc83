//! A real engine process for the crash tests (`tests/integration/crash.rs`).
//!
//! `dagforge-crash-engine <store-url> <journal> start|serve <nodes>`
//!
//! - `start`: starts one run of the `crash` workflow (a layered DAG of `<nodes>` nodes
//!   whose jobs sleep a little), prints its id, and drives it.
//! - `serve`: resumes whatever runs of the workflow have an expired lease, until no
//!   unfinished run is left, then exits 0.
//!
//! Every execution appends `node attempt pid` to the journal file before it reports
//! success, so the test can tell which nodes ran how many times. Leases last 2 s.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use dagforge::prelude::*;
use dagforge::store::{RunQuery, Store};

struct Step {
    journal: Arc<std::sync::Mutex<std::fs::File>>,
}

impl Job for Step {
    type Input = ();
    type Output = u32;
    const NAME: &'static str = "step";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<u32, JobError> {
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

fn workflow(nodes: usize, journal: &Arc<std::sync::Mutex<std::fs::File>>) -> Workflow {
    let width = 10;
    let mut wf = Workflow::builder("crash");
    let mut prev: Vec<NodeRef<u32>> = Vec::new();
    let mut layer = Vec::new();
    for i in 0..nodes {
        let mut node = wf.add(
            format!("n{i}"),
            Step {
                journal: Arc::clone(journal),
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
    let journal = Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(journal)?,
    ));
    let wf = workflow(nodes, &journal);
    let store = open(url).await?;
    let engine = Engine::builder()
        .shared_store(Arc::clone(&store))
        .id(format!("crash-{}", std::process::id()))
        .lease_ttl(Duration::from_secs(2))
        .concurrency(8)
        .workflow(&wf)
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
        other => return Err(format!("unknown mode `{other}`").into()),
    }
    Ok(())
}
