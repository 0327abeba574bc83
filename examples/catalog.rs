//! The "catalog-integration" workflow, written with `#[job]` and `#[workflow]`: see
//! `examples/src/catalog/macros.rs` (the same graph built by hand is in
//! `examples/src/catalog/builder.rs`, run by `cargo run --example catalog_builder`).
//!
//! `markets` and `data-proxy` run in parallel; `integration` fans out over the market
//! ids (one execution per market); `publish` retries once after a transient failure;
//! `finalizer` reads a field of `data-proxy`'s output; `notify-failures` only runs
//! when some market failed, so here it is skipped.
//!
//! `publish` goes through a shared API client (`examples/src/catalog/api.rs`): a
//! resource built by a factory from the app's settings (`[settings]` in
//! `dagforge.toml`, `DAGFORGE_SETTING_ENDPOINT`), once per process — shared by every
//! attempt in process, built by each worker with `--executor process`.
//!
//! The binary is a dagforge [`App`]: `cargo run --example catalog` runs the workflow
//! and prints its table (the same as `… -- run catalog-integration --wait`);
//! `cargo run --example catalog -- --help` lists the other commands, e.g.
//! `… -- run catalog-integration --executor process --wait` (each attempt in a child
//! process) or `… -- graph catalog-integration --format svg > g.svg`.

use std::process::ExitCode;

use dagforge::App;
use examples::catalog;
use examples::catalog::api::{CatalogApi, CatalogSettings};

#[tokio::main]
async fn main() -> ExitCode {
    let workflow = match catalog::api::catalog_with_api() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    App::new()
        .name("catalog")
        .about("The catalog-integration demo (#[job]/#[workflow]) as a dagforge app.")
        .settings::<CatalogSettings>()
        .resource_with(CatalogApi::connect)
        .workflow(workflow)
        .default_args(["run", "catalog-integration", "--wait"])
        .run()
        .await
}
