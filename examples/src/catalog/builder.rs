//! The catalog workflow with hand-written `Job` impls and the typed builder.

use std::time::Duration;

use dagforge::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Dataset, MarketList, MarketReport, Published, market_ids, products_of, work_time};

/// Lists the markets to integrate.
#[derive(Debug)]
pub struct Markets;

impl Job for Markets {
    type Input = ();
    type Output = MarketList;
    const NAME: &'static str = "markets";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<MarketList, JobError> {
        ctx.info("querying the market registry");
        tokio::time::sleep(Duration::from_millis(120)).await;
        let market_ids = market_ids();
        ctx.info(format!("found {} markets", market_ids.len()));
        Ok(MarketList { market_ids })
    }
}

/// Prepares the shared dataset and returns a reference to it.
#[derive(Debug)]
pub struct DataProxy;

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
#[derive(Debug)]
pub struct Integration;

/// The input of [`Integration`].
#[derive(Debug, Serialize, Deserialize)]
pub struct IntegrationInput {
    /// Market id.
    pub market: String,
    /// The dataset to read.
    pub dataset_ref: String,
}

impl IntegrationInput {
    /// The `market` field.
    pub const MARKET: Field<Self, String> = Field::new("market");
    /// The `dataset_ref` field.
    pub const DATASET_REF: Field<Self, String> = Field::new("dataset_ref");
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
        let products = products_of(&input.market);
        tokio::time::sleep(work_time(products)).await;
        Ok(MarketReport {
            market: input.market,
            products,
        })
    }
}

/// Publishes the integrated catalog. The first attempt hits a transient error.
#[derive(Debug)]
pub struct Publish;

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
#[derive(Debug)]
pub struct NotifyFailures;

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
#[derive(Debug)]
pub struct Finalizer;

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

/// The catalog-integration workflow.
pub fn catalog() -> Result<Workflow, dagforge::Error> {
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
