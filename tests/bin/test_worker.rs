//! A worker binary for the process executor tests (`tests/integration/process.rs`):
//! started by a `ProcessExecutor` with the `DAGFORGE_WORKER_*` variables, it runs one
//! job of [`jobs::registry`] through `dagforge::worker::run`.

use std::process::ExitCode;

#[path = "worker_jobs.rs"]
mod jobs;

#[tokio::main]
async fn main() -> ExitCode {
    let registry = match jobs::registry() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dagforge-test-worker: {e}");
            return ExitCode::from(2);
        }
    };
    if dagforge::worker::is_worker_invocation() {
        return dagforge::worker::run(&registry).await;
    }
    eprintln!(
        "dagforge-test-worker: start me through a ProcessExecutor (DAGFORGE_WORKER=1); jobs: {}",
        registry.names().join(", ")
    );
    ExitCode::from(2)
}
