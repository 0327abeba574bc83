//! The Kubernetes executor against the in-repo fake API server (`fake/`): the executor
//! conformance suite, each behaviour of the executor, the Jobs it renders, an engine
//! killed mid-run and replaced, and the command-line app with `--executor kubernetes`.

mod adopt;
mod behaviours;
mod cli;
mod conformance;
mod fake;
mod render;

use std::time::Duration;

use dagforge::{KubernetesExecutor, KubernetesExecutorBuilder};

pub(crate) use fake::Fake;

/// The test worker binary: the "image" every fake pod runs.
pub(crate) const WORKER: &str = env!("CARGO_BIN_EXE_dagforge-test-worker");

/// An executor against `fake` with test timings, adjusted by `f`.
pub(crate) async fn executor(
    fake: &Fake,
    f: impl FnOnce(KubernetesExecutorBuilder) -> KubernetesExecutorBuilder,
) -> KubernetesExecutor {
    let b = KubernetesExecutor::builder()
        .api_url(&fake.url)
        .namespace("jobs")
        .image("registry.example.com/test-worker:1")
        .command([WORKER])
        .args(Vec::<String>::new())
        .heartbeat_interval(Duration::from_millis(100))
        .heartbeat_timeout(Duration::from_secs(3))
        // No longer than the conformance suite's grace (600 ms).
        .grace_period(Duration::from_millis(500))
        .pending_timeout(Duration::from_secs(5));
    f(b).build().await.expect("a valid executor")
}
