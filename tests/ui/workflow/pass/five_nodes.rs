//! A five-node workflow with a run parameter, a fan-out, a condition, a field binding
//! and an order-only edge; it runs end to end.
use dagforge::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Regions {
    ids: Vec<String>,
    source: Source,
}

#[derive(Serialize, Deserialize)]
struct Source {
    url: String,
}

#[job]
async fn list_regions(prefix: String) -> Result<Regions, JobError> {
    let ids = ["eu", "us", "ap"].iter().map(|r| format!("{prefix}{r}")).collect();
    Ok(Regions { ids, source: Source { url: "s3://bucket".into() } })
}

#[job]
async fn count(region: String, url: String, factor: u64) -> Result<u64, JobError> {
    Ok(region.len() as u64 * factor + url.len() as u64)
}

#[job]
async fn total(counts: Vec<u64>) -> Result<u64, JobError> {
    Ok(counts.iter().sum())
}

#[job]
async fn report(total: u64, label: String) -> Result<String, JobError> {
    Ok(format!("{label}: {total}"))
}

#[job]
async fn alert(total: u64) -> Result<(), JobError> {
    Err(JobError::terminal(format!("should be skipped, total {total}")))
}

#[job]
async fn cleanup() -> Result<(), JobError> {
    Ok(())
}

const FACTOR: u64 = 10;

#[workflow(name = "regions", version = "3", cron = "0 3 * * *")]
fn regions(prefix: String) {
    let regions = list_regions(prefix);
    let counts = regions.ids.map(|r| count(r, &regions.source.url, FACTOR)).concurrency(2).retries(1);
    let total = total(counts).timeout("1m");
    let report = report(total, "total").when("$ > 0");
    let alert = alert(total).when(total, "$ > 1000000").backoff(fixed(10ms));
    cleanup().after(report, alert).trigger(all_done);
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), dagforge::Error> {
    assert_eq!(RegionsWorkflow::NAME, "regions");
    assert_eq!(RegionsWorkflow::VERSION, "3");
    assert_eq!(RegionsWorkflow::CRON, Some("0 3 * * *"));
    assert_eq!(RegionsWorkflow::PARAMS, &["prefix"]);
    let wf = regions()?;
    assert_eq!(wf.name(), "regions");
    assert_eq!(wf.version(), "3");
    assert_eq!(
        wf.node_ids().collect::<Vec<_>>(),
        ["regions", "counts", "total", "report", "alert", "cleanup"]
    );
    let result = Engine::new()
        .run(&wf, serde_json::json!({ "prefix": "x-" }))
        .await?;
    assert!(result.is_success(), "{}", result.table());
    // 3 regions of 4 chars × 10 + "s3://bucket" (11) each.
    assert_eq!(result.output::<u64>("total")?, 3 * (40 + 11));
    assert_eq!(result.output::<String>("report")?, "total: 153");
    assert_eq!(result.node("alert").map(|n| n.state), Some(NodeState::Skipped));
    assert_eq!(result.node("cleanup").map(|n| n.state), Some(NodeState::Succeeded));
    Ok(())
}
