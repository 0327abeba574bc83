//! The "catalog-integration" workflow, built with the typed builder and hand-written
//! `Job` impls: see `examples/src/catalog/builder.rs`. `cargo run --example catalog`
//! runs the same workflow written with `#[job]` and `#[workflow]`.
//!
//! Like `catalog`, the binary is a dagforge [`App`]: with no arguments it runs the
//! workflow and prints its table; `--help` lists the other commands.
//!
//! Run with `cargo run --example catalog_builder`.

use std::process::ExitCode;

use dagforge::App;
use examples::catalog;

#[tokio::main]
async fn main() -> ExitCode {
    let workflow = match catalog::builder::catalog() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    App::new()
        .name("catalog_builder")
        .about("The catalog-integration demo (typed builder) as a dagforge app.")
        .workflow(workflow)
        .default_args(["run", "catalog-integration", "--wait"])
        .run()
        .await
}
