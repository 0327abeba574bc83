//! The "catalog-integration" workflow, built with the typed builder and hand-written
//! `Job` impls: see `examples/src/catalog/builder.rs`. `cargo run --example catalog`
//! runs the same workflow written with `#[job]` and `#[workflow]`.
//!
//! Run with `cargo run --example catalog_builder`.

use examples::catalog;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let workflow = catalog::builder::catalog()?;
    catalog::run_and_print(&workflow).await
}
