//! The executor conformance suite over the Kubernetes executor and the fake cluster:
//! one test per check, each with a cluster of its own; no Job or pod is left after.

use dagforge::KubernetesExecutor;
use dagforge::executor_conformance::Suite;

use super::{Fake, executor};

macro_rules! checks {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let fake = Fake::start().await;
                let exec = executor(&fake, |b| b).await;
                let suite = Suite::new(move || -> KubernetesExecutor { exec.clone() }).children(true);
                suite.$check().await.unwrap();
                let clean = fake.until(10, |st| st.jobs.is_empty() && st.pods.is_empty()).await;
                assert!(clean, "left behind: jobs {:?}, pods {:?}", fake.job_names(), fake.pod_names());
            }
        )*
    };
}

checks!(
    start_and_output,
    logs_and_progress,
    error_kinds,
    start_does_not_block,
    cancel_cooperative,
    cancel_deaf_after_grace,
    timeout,
    dropped_execution,
    crash,
    abandoned_run,
);
