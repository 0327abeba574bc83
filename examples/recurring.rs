//! Recurring workflows: `#[workflow(cron = "…")]` registers a schedule when an engine
//! serves the store; `engine.schedules().add_or_update` adds one from code (here a single
//! job, as a one-node workflow, with jitter).
//!
//! Run with no arguments, the example serves a fresh SQLite file for about 12 seconds
//! and prints each fire; `heartbeat` fires every 5 seconds, `cleanup` every 4 (each run
//! up to 1 s later: its jitter). Every fire is one run, however many engines serve the
//! store. Afterwards it prints the commands that inspect and steer the schedules:
//!
//! ```text
//! cargo run --example recurring -- --store sqlite:///tmp/…/recurring.db schedules list
//! cargo run --example recurring -- --store … schedules disable heartbeat
//! cargo run --example recurring -- --store … schedules trigger heartbeat
//! ```

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use dagforge::prelude::*;
use dagforge::schedule::OverlapPolicy;
use dagforge::store::SqliteStore;
use dagforge::{App, Recurring};

fn now() -> String {
    DateTime::<Utc>::from(SystemTime::now()).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Says it ran.
#[job]
async fn beat() -> Result<String, JobError> {
    let at = now();
    println!("{at}  heartbeat fired");
    Ok(at)
}

/// Every five seconds (six fields: seconds first).
#[workflow(cron = "*/5 * * * * *", time_zone = "UTC")]
fn heartbeat() {
    let beat = beat();
}

/// A single job, scheduled from code.
struct Cleanup;

impl Job for Cleanup {
    type Input = u32;
    type Output = u32;
    const NAME: &'static str = "cleanup";

    async fn run(&self, _: &JobContext, keep_days: u32) -> Result<u32, JobError> {
        println!("{}  cleanup fired (keeping {keep_days} days)", now());
        Ok(keep_days)
    }
}

fn app(heartbeat: &Workflow, cleanup: &Workflow) -> App {
    App::new()
        .name("recurring")
        .about("Recurring workflows: a #[workflow(cron)] heartbeat and a scheduled single job.")
        .workflow(heartbeat.clone())
        .workflow(cleanup.clone())
}

/// Serves a fresh SQLite file for `secs` seconds.
async fn demo(
    heartbeat: &Workflow,
    cleanup: &Workflow,
    secs: u64,
) -> Result<String, dagforge::Error> {
    let dir = std::env::temp_dir().join(format!(
        "dagforge-recurring-{}",
        dagforge::RunId::new().to_uuid_string()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| dagforge::Error::Input {
        name: "store".to_owned(),
        reason: format!("{}: {e}", dir.display()),
    })?;
    let url = format!("sqlite://{}", dir.join("recurring.db").display());
    let engine = Engine::builder()
        .store(SqliteStore::open(&url).await?)
        .workflow(heartbeat)
        .workflow(cleanup)
        .build();
    engine
        .schedules()
        .add_or_update(
            "cleanup",
            cleanup,
            "*/4 * * * * *",
            Recurring::new()
                .inputs(serde_json::json!({"input": 30}))
                .overlap(OverlapPolicy::Allow)
                .jitter(Duration::from_secs(1)),
        )
        .await?;
    println!("{}  serving {url} for {secs} s", now());
    // `serve` registers `heartbeat` (its #[workflow(cron)]) and fires both schedules.
    engine
        .serve(
            Duration::from_secs(5),
            tokio::time::sleep(Duration::from_secs(secs)),
        )
        .await?;
    for s in engine.schedules().list().await? {
        println!(
            "schedule {:<9} next fire {}",
            s.id,
            s.next_fire
                .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339())
        );
    }
    Ok(url)
}

#[tokio::main]
async fn main() -> ExitCode {
    let (heartbeat, cleanup) = match (heartbeat(), Workflow::of_job(Cleanup)) {
        (Ok(h), Ok(c)) => (h, c),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if std::env::args_os().len() > 1 {
        // The dagforge CLI: `schedules list`, `serve`, `run …`.
        return app(&heartbeat, &cleanup).run().await;
    }
    let secs = std::env::var("DAGFORGE_EXAMPLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    match demo(&heartbeat, &cleanup, secs).await {
        Ok(url) => {
            println!();
            println!("try:");
            for cmd in [
                "schedules list",
                "schedules disable heartbeat",
                "schedules enable heartbeat",
                "schedules trigger heartbeat",
                "runs list",
            ] {
                println!("  cargo run --example recurring -- --store {url} {cmd}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
