//! The catalog workflow publishing through a shared API client: a resource built once
//! per process by a factory from the app's settings (`examples/catalog.rs`).
//!
//! The graph is [`macros::catalog`](super::macros::catalog)'s; only `publish` differs:
//! it takes the client as `#[resource] api: &CatalogApi` instead of simulating the
//! call. In process, every attempt of the run shares one client; with
//! `--executor process`, each worker process builds its own from the same
//! registration, on first use.

use std::sync::atomic::{AtomicU32, Ordering};

use dagforge::prelude::*;
use dagforge::resource::{Secret, Settings};
use serde::Deserialize;

use super::macros::{data_proxy, finalizer, integration, markets, notify_failures};
use super::{MarketReport, Published};

/// The catalog app's settings: `[settings]` in `dagforge.toml`, or
/// `DAGFORGE_SETTING_ENDPOINT` / `DAGFORGE_SETTING_TOKEN`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct CatalogSettings {
    /// Where the catalog API lives.
    pub endpoint: String,
    /// The API token: never shown (`Debug` and serialization print `***`).
    pub token: Secret<String>,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        CatalogSettings {
            endpoint: "https://catalog.example/api".to_owned(),
            token: Secret::new("demo-token".to_owned()),
        }
    }
}

/// A client of the catalog API, shared by every attempt in a process (a real one
/// would hold a connection pool and the token).
#[derive(Debug)]
pub struct CatalogApi {
    endpoint: String,
    token: Secret<String>,
    /// The process that built it.
    pid: u32,
    requests: AtomicU32,
}

impl CatalogApi {
    /// The factory registered with `App::resource_with`: builds the client from the
    /// settings (once per process).
    pub async fn connect(
        settings: Settings,
    ) -> Result<CatalogApi, dagforge::resource::ResourceError> {
        let s = settings.get::<CatalogSettings>()?;
        Ok(CatalogApi {
            endpoint: s.endpoint.clone(),
            token: s.token.clone(),
            pid: std::process::id(),
            requests: AtomicU32::new(0),
        })
    }

    /// Sends one request; says which client (process) sent it and how many it sent.
    pub fn send(&self, what: &str) -> String {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let authorized = !self.token.expose().is_empty();
        format!(
            "{what} → {} (authorized: {authorized}; request {n} of the client built in process {})",
            self.endpoint, self.pid
        )
    }
}

/// Publishes the integrated catalog through the shared client. The API answers 503 to
/// the first attempt, which is retried.
#[job(name = "publish", type_name = PublishViaApi, retries = 2, backoff = fixed(200ms))]
pub async fn publish_via_api(
    ctx: &JobContext,
    #[resource] api: &CatalogApi,
    reports: Vec<MarketReport>,
) -> Result<Published, JobError> {
    let products: u32 = reports.iter().map(|r| r.products).sum();
    let sent = api.send(&format!("publish {products} products"));
    if ctx.attempt() == 1 {
        ctx.warn(format!("{sent}: 503"));
        return Err(JobError::msg("catalog API unavailable (503)"));
    }
    ctx.info(format!("{sent}: 200"));
    Ok(Published {
        products,
        failed: 0,
    })
}

/// The catalog-integration workflow, publishing through the API client.
#[workflow(name = "catalog-integration")]
pub fn catalog_with_api() {
    let markets = markets();
    let data = data_proxy().id("data-proxy");
    let integration = for market in markets.market_ids {
        integration(market, data.dataset_ref)
    }
    .concurrency(3);
    let publish = publish_via_api(integration).id("publish").retries(2);
    let notify = notify_failures(publish)
        .when("$.failed > 0")
        .id("notify-failures");
    let finalizer = finalizer(data.dataset_ref).after(publish);
}
