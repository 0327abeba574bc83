//! The "catalog-integration" workflow, written with `#[job]` and `#[workflow]`: see
//! `examples/src/catalog/macros.rs` (the same graph built by hand is in
//! `examples/src/catalog/builder.rs`, run by `cargo run --example catalog_builder`).
//!
//! `markets` and `data-proxy` run in parallel; `integration` fans out over the market
//! ids (one execution per market); `publish` retries once after a transient failure;
//! `finalizer` reads a field of `data-proxy`'s output; `notify-failures` only runs
//! when some market failed, so here it is skipped.
//!
//! The binary is a dagforge [`App`]: `cargo run --example catalog` runs the workflow
//! and prints its table (the same as `… -- run catalog-integration --wait`);
//! `cargo run --example catalog -- --help` lists the other commands, e.g.
//! `… -- run catalog-integration --executor process --wait` (each attempt in a child
//! process) or `… -- graph catalog-integration --format svg > g.svg`.

use std::process::ExitCode;

use dagforge::App;
use examples::catalog;

#[tokio::main]
async fn main() -> ExitCode {
    let workflow = match catalog::macros::catalog() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    App::new()
        .name("catalog")
        .about("The catalog-integration demo (#[job]/#[workflow]) as a dagforge app.")
        .workflow(workflow)
        .default_args(["run", "catalog-integration", "--wait"])
        .run()
        .await
}
