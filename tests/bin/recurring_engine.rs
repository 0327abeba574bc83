//! A real engine process for the exactly-once test of recurring schedules
//! (`tests/integration/recurring/processes.rs`).
//!
//! `dagforge-recurring-engine <store-url> <journal> <seconds>`: registers the schedule
//! `tick` (every second, overlap `allow`) and serves the store for `<seconds>`, then
//! exits 0. Each run's job appends `run-id pid` to the journal, so the test can tell
//! that every fire ran once, in one process.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use dagforge::Recurring;
use dagforge::prelude::*;
use dagforge::schedule::OverlapPolicy;
use dagforge::store::Store;

struct Tick {
    journal: Arc<std::sync::Mutex<std::fs::File>>,
}

impl Job for Tick {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "tick";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<(), JobError> {
        let mut f = self
            .journal
            .lock()
            .map_err(|_| JobError::msg("journal lock"))?;
        writeln!(f, "{} {}", ctx.run_id(), std::process::id())?;
        f.sync_data()?;
        Ok(())
    }
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
    let [_, url, journal, seconds] = &args[..] else {
        return Err("usage: dagforge-recurring-engine <store-url> <journal> <seconds>".into());
    };
    let seconds: f64 = seconds.parse()?;
    let journal = Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(journal)?,
    ));
    let mut wf = Workflow::builder("tick");
    wf.add("tick", Tick { journal });
    let wf = wf.build()?;
    let engine = Engine::builder()
        .shared_store(open(url).await?)
        .id(format!("recurring-{}", std::process::id()))
        .workflow(&wf)
        .build();
    engine
        .schedules()
        .add_or_update(
            "tick",
            &wf,
            "*/1 * * * * *",
            Recurring::new().overlap(OverlapPolicy::Allow),
        )
        .await?;
    engine
        .serve(
            Duration::from_secs(1),
            tokio::time::sleep(Duration::from_secs_f64(seconds)),
        )
        .await?;
    Ok(())
}
