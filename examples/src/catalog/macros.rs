//! The catalog workflow with `#[job]` and `#[workflow]`.

use std::time::Duration;

use dagforge::prelude::*;

use super::{Dataset, MarketList, MarketReport, Published, market_ids, products_of, work_time};

/// Lists the markets to integrate.
#[job]
pub async fn markets(ctx: &JobContext) -> Result<MarketList, JobError> {
    ctx.info("querying the market registry");
    tokio::time::sleep(Duration::from_millis(120)).await;
    let market_ids = market_ids();
    ctx.info(format!("found {} markets", market_ids.len()));
    Ok(MarketList { market_ids })
}

/// Prepares the shared dataset and returns a reference to it.
#[job(name = "data-proxy")]
pub async fn data_proxy(ctx: &JobContext) -> Result<Dataset, JobError> {
    for step in 1..=4u8 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        ctx.progress(step * 25, format!("loaded chunk {step}/4"));
    }
    Ok(Dataset {
        dataset_ref: format!("datasets/{}/catalog.parquet", ctx.run_id()),
        rows: 48_000,
    })
}

/// Integrates one market against the dataset.
#[job]
pub async fn integration(
    ctx: &JobContext,
    market: String,
    dataset_ref: String,
) -> Result<MarketReport, JobError> {
    ctx.info(format!("integrating {market} from {dataset_ref}"));
    let products = products_of(&market);
    tokio::time::sleep(work_time(products)).await;
    Ok(MarketReport { market, products })
}

/// Publishes the integrated catalog. The first attempt hits a transient error.
#[job(retries = 2, backoff = fixed(200ms))]
pub async fn publish(ctx: &JobContext, reports: Vec<MarketReport>) -> Result<Published, JobError> {
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

/// Alerts someone; runs only when publishing reported failures.
#[job(name = "notify-failures")]
pub async fn notify_failures(ctx: &JobContext, published: Published) -> Result<(), JobError> {
    ctx.warn(format!("{} markets failed to publish", published.failed));
    Ok(())
}

/// Cleans up the dataset once everything is published.
#[job]
pub async fn finalizer(ctx: &JobContext, dataset_ref: String) -> Result<String, JobError> {
    ctx.info(format!("archiving {dataset_ref}"));
    tokio::time::sleep(Duration::from_millis(40)).await;
    Ok(format!("archived {dataset_ref}"))
}

/// The catalog-integration workflow.
#[workflow(name = "catalog-integration")]
pub fn catalog() {
    let markets = markets();
    let data = data_proxy().id("data-proxy");
    let integration = for market in markets.market_ids {
        integration(market, data.dataset_ref)
    }
    .concurrency(3);
    let publish = publish(integration).retries(2);
    let notify = notify_failures(publish)
        .when("$.failed > 0")
        .id("notify-failures");
    let finalizer = finalizer(data.dataset_ref).after(publish);
}
