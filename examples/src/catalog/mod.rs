//! The "catalog-integration" workflow, written twice: with `#[job]` and `#[workflow]`
//! ([`macros`]) and with the typed builder ([`builder`]). Both build the same graph.
//!
//! `markets` and `data-proxy` run in parallel; `integration` fans out over the market
//! ids (one execution per market); `publish` retries once after a transient failure;
//! `finalizer` reads a field of `data-proxy`'s output; `notify-failures` only runs
//! when some market failed, so here it is skipped.

pub mod api;
pub mod builder;
pub mod macros;

use std::time::{Duration, Instant};

use dagforge::prelude::*;
use serde::{Deserialize, Serialize};

/// The markets to integrate.
#[derive(Debug, Serialize, Deserialize)]
pub struct MarketList {
    /// Market ids.
    pub market_ids: Vec<String>,
}

/// The shared dataset.
#[derive(Debug, Serialize, Deserialize)]
pub struct Dataset {
    /// Where it is stored.
    pub dataset_ref: String,
    /// Its size.
    pub rows: u64,
}

impl Dataset {
    /// The `dataset_ref` field, for the builder.
    pub const DATASET_REF: Field<Self, String> = Field::new("dataset_ref");
}

/// What integrating one market produced.
#[derive(Debug, Serialize, Deserialize)]
pub struct MarketReport {
    /// Market id.
    pub market: String,
    /// Products integrated.
    pub products: u32,
}

/// What publishing produced.
#[derive(Debug, Serialize, Deserialize)]
pub struct Published {
    /// Products published.
    pub products: u32,
    /// Markets that failed.
    pub failed: u32,
}

/// The market ids the `markets` job finds.
pub fn market_ids() -> Vec<String> {
    ["de", "fr", "it", "es", "nl", "pl"]
        .map(String::from)
        .to_vec()
}

/// How many products a market has (deterministic, for the demo).
pub fn products_of(market: &str) -> u32 {
    1000 + 37 * market.bytes().map(u32::from).sum::<u32>() % 500
}

/// Simulated work time for a market.
pub fn work_time(products: u32) -> Duration {
    Duration::from_millis(80 + u64::from(products % 7) * 20)
}

/// Runs `workflow`, printing every event as it happens and the final table.
pub async fn run_and_print(workflow: &Workflow) -> Result<(), Box<dyn std::error::Error>> {
    // The embedded default store: runs survive the process in `dagforge.db`
    // (`DAGFORGE_STORE` picks another SQLite file).
    let url = std::env::var("DAGFORGE_STORE").unwrap_or_else(|_| "sqlite://dagforge.db".to_owned());
    let store = dagforge::store::SqliteStore::open(&url).await?;
    let engine = Engine::builder().store(store).workflow(workflow).build();
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
    let result = engine.run(workflow, ()).await?;
    printer.await?;
    println!();
    println!("{}", result.table());
    if result.is_success() {
        Ok(())
    } else {
        Err(format!("run {}", result.state).into())
    }
}
