//! The "catalog-integration" workflow, written with `#[job]` and `#[workflow]`: see
//! `examples/src/catalog/macros.rs` (the same graph built by hand is in
//! `examples/src/catalog/builder.rs`, run by `cargo run --example catalog_builder`).
//!
//! `markets` and `data-proxy` run in parallel; `integration` fans out over the market
//! ids (one execution per market); `publish` retries once after a transient failure;
//! `finalizer` reads a field of `data-proxy`'s output; `notify-failures` only runs
//! when some market failed, so here it is skipped.
//!
//! Run with `cargo run --example catalog`.

use examples::catalog;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let workflow = catalog::macros::catalog()?;
    catalog::run_and_print(&workflow).await
}
