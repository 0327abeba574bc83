//! The "catalog-integration" workflow, built with the typed builder.
//!
//! `markets` and `data-proxy` run in parallel; `integration` fans out over the market
//! ids (one execution per market); `publish` retries once after a transient failure;
//! `finalizer` reads a field of `data-proxy`'s output; `notify-failures` only runs
//! when some market failed, so here it is skipped.
//!
//! Run with `cargo run --example catalog`.

use std::time::{Duration, Instant};

use dagforge::prelude::*;
use serde::{Deserialize, Serialize};

/// Lists the markets to integrate.
struct Markets;

#[derive(Debug, Serialize, Deserialize)]
struct MarketList {
    market_ids: Vec<String>,
}

impl Job for Markets {
    type Input = ();
    type Output = MarketList;
    const NAME: &'static str = "markets";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<MarketList, JobError> {
        ctx.info("querying the market registry");
        tokio::time::sleep(Duration::from_millis(120)).await;
        let market_ids = ["de", "fr", "it", "es", "nl", "pl"]
            .map(String::from)
            .to_vec();
        ctx.info(format!("found {} markets", market_ids.len()));
        Ok(MarketList { market_ids })
    }
}

/// Prepares the shared dataset and returns a reference to it.
struct DataProxy;

#[derive(Debug, Serialize, Deserialize)]
struct Dataset {
    dataset_ref: String,
    rows: u64,
}

impl Dataset {
    const DATASET_REF: Field<Self, String> = Field::new("dataset_ref");
}

impl Job for DataProxy {
    type Input = ();
    type Output = Dataset;
    const NAME: &'static str = "data-proxy";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<Dataset, JobError> {
        for step in 1..=4u8 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            ctx.progress(step * 25, format!("loaded chunk {step}/4"));
        }
        Ok(Dataset {
            dataset_ref: format!("datasets/{}/catalog.parquet", ctx.run_id()),
            rows: 48_000,
        })
    }
}

/// Integrates one market against the dataset.
struct Integration;

#[derive(Debug, Serialize, Deserialize)]
struct IntegrationInput {
    market: String,
    dataset_ref: String,
}

impl IntegrationInput {
    const MARKET: Field<Self, String> = Field::new("market");
    const DATASET_REF: Field<Self, String> = Field::new("dataset_ref");
}

#[derive(Debug, Serialize, Deserialize)]
struct MarketReport {
    market: String,
    products: u32,
}

impl Job for Integration {
    type Input = IntegrationInput;
    type Output = MarketReport;
    const NAME: &'static str = "integration";

    async fn run(
        &self,
        ctx: &JobContext,
        input: IntegrationInput,
    ) -> Result<MarketReport, JobError> {
        ctx.info(format!(
            "integrating {} from {}",
            input.market, input.dataset_ref
        ));
        let products = 1000 + 37 * input.market.bytes().map(u32::from).sum::<u32>() % 500;
        tokio::time::sleep(Duration::from_millis(80 + u64::from(products % 7) * 20)).await;
        Ok(MarketReport {
            market: input.market,
            products,
        })
    }
}

/// Publishes the integrated catalog. The first attempt hits a transient error.
struct Publish;

#[derive(Debug, Serialize, Deserialize)]
struct Published {
    products: u32,
    failed: u32,
}

impl Job for Publish {
    type Input = Vec<MarketReport>;
    type Output = Published;
    const NAME: &'static str = "publish";

    fn spec(&self) -> JobSpec {
        JobSpec::new()
            .retries(2)
            .backoff(Backoff::fixed(Duration::from_millis(200)))
    }

    async fn run(
        &self,
        ctx: &JobContext,
        reports: Vec<MarketReport>,
    ) -> Result<Published, JobError> {
        if ctx.attempt() == 1 {
            ctx.warn("catalog API answered 503");
            return Err(JobError::msg("catalog API unavailable (503)"));
        }
        let products = reports.iter().map(|r| r.products).sum();
        ctx.info(format!(
            "published {products} products from {} markets",
            reports.len()
        ));
        Ok(Published {
            products,
            failed: 0,
        })
    }
}

/// Alerts someone; runs only when publishing reported failures.
struct NotifyFailures;

impl Job for NotifyFailures {
    type Input = Published;
    type Output = ();
    const NAME: &'static str = "notify-failures";

    async fn run(&self, ctx: &JobContext, p: Published) -> Result<(), JobError> {
        ctx.warn(format!("{} markets failed to publish", p.failed));
        Ok(())
    }
}

/// Cleans up the dataset once everything is published.
struct Finalizer;

impl Job for Finalizer {
    type Input = String;
    type Output = String;
    const NAME: &'static str = "finalizer";

    async fn run(&self, ctx: &JobContext, dataset_ref: String) -> Result<String, JobError> {
        ctx.info(format!("archiving {dataset_ref}"));
        tokio::time::sleep(Duration::from_millis(40)).await;
        Ok(format!("archived {dataset_ref}"))
    }
}

fn catalog() -> Result<Workflow, dagforge::Error> {
    let mut wf = Workflow::builder("catalog-integration");
    let markets = wf.add("markets", Markets).handle();
    let data = wf.add("data-proxy", DataProxy).handle();
    let integration = wf
        .add("integration", Integration)
        .each(
            IntegrationInput::MARKET,
            markets.each_at::<String>("$.market_ids"),
        )
        .bind(
            IntegrationInput::DATASET_REF,
            data.field(Dataset::DATASET_REF),
        )
        .concurrency(3)
        .handle();
    let publish = wf
        .add("publish", Publish)
        .input_from(integration)
        .retries(2)
        .handle();
    wf.add("notify-failures", NotifyFailures)
        .input_from(publish)
        .when(&publish, "$.failed > 0");
    wf.add("finalizer", Finalizer)
        .input_from(data.field(Dataset::DATASET_REF))
        .after(&publish);
    Ok(wf.build()?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let workflow = catalog()?;
    let engine = Engine::new();
    let mut events = engine.subscribe();
    let t0 = Instant::now();
    let printer = tokio::spawn(async move {
        while let Some(e) = events.next().await {
            let at = t0.elapsed().as_secs_f64();
            match e.kind {
                EventKind::Node(n) => {
                    let item = n.item.map(|i| format!("[{i}]")).unwrap_or_default();
                    let label = format!("{}{item}", n.node);
                    let why = n
                        .error
                        .map(|e| format!(" ({e})"))
                        .or(n.reason.map(|r| format!(" ({r})")))
                        .unwrap_or_default();
                    println!("{at:7.3}s  {label:<18} {} → {}{why}", n.from, n.to);
                }
                EventKind::Progress {
                    node,
                    percent,
                    message,
                    ..
                } => {
                    println!("{at:7.3}s  {node:<18} {percent:>3}% {message}");
                }
                EventKind::Log {
                    node,
                    item,
                    level,
                    message,
                    ..
                } => {
                    let item = item.map(|i| format!("[{i}]")).unwrap_or_default();
                    let label = format!("{node}{item}");
                    println!("{at:7.3}s  {label:<18} {level}: {message}");
                }
                EventKind::Run { to, .. } => {
                    println!("{at:7.3}s  run {to}");
                    if to.is_terminal() {
                        break;
                    }
                }
                _ => {}
            }
        }
    });
    let result = engine.run(&workflow, ()).await?;
    printer.await?;
    println!();
    println!("{}", result.table());
    if result.is_success() {
        Ok(())
    } else {
        Err(format!("run {}", result.state).into())
    }
}
