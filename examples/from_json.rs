//! A workflow whose shape is read at run time: `examples/data/pipeline.json` (or the
//! file given as the first argument) is read as a `DagSpec`, built against a registry
//! of the jobs it names, drawn as Mermaid and run. See the guide page
//! `docs/guide/building-workflows-from-data.md`.
//!
//! Run with `cargo run --example from_json [-- FILE.json]`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use dagforge::prelude::*;

/// The size of one tile of the sky, scaled.
#[job(retries = 2)]
async fn measure(ctx: &JobContext, tile: String, scale: u64) -> Result<u64, JobError> {
    ctx.info(format!("measuring {tile}"));
    Ok(tile.len() as u64 * scale)
}

/// The sum of every upstream part, keyed by node id.
#[job]
async fn combine(ctx: &JobContext, parts: BTreeMap<String, u64>) -> Result<u64, JobError> {
    let names: Vec<&str> = parts.keys().map(String::as_str).collect();
    ctx.info(format!("combining {}", names.join(", ")));
    Ok(parts.values().sum())
}

/// One line for the reader.
#[job]
async fn report(title: String, total: u64) -> Result<String, JobError> {
    Ok(format!("{title}: {total} units"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/data/pipeline.json").to_owned());
    match run(&path).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    // Bounded: a file larger than 1 MiB or with more than 10,000 nodes is refused
    // before it is decoded.
    let spec = DagLimits::default()
        .max_bytes(1 << 20)
        .max_nodes(10_000)
        .read(path)?;
    let mut jobs = Registry::new();
    jobs.register(Measure)?
        .register(Combine)?
        .register(Report)?;
    let workflow = spec.build(&jobs)?;
    println!("{}", workflow.to_mermaid());

    let run = Engine::new()
        .run(&workflow, serde_json::json!({ "scale": 3 }))
        .await?;
    println!("{}", run.table());
    if run.state != RunState::Succeeded {
        return Err(format!("the run {}", run.state).into());
    }
    println!("{}", run.output::<String>("report")?);
    Ok(())
}
