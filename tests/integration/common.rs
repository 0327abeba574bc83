//! Jobs and helpers shared by the test modules.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dagforge::prelude::*;
use serde::{Deserialize, Serialize};

/// Does nothing.
pub(crate) struct Noop;

impl Job for Noop {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "noop";

    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        Ok(())
    }
}

/// Returns a fixed JSON value.
pub(crate) struct Emit(pub(crate) serde_json::Value);

impl Job for Emit {
    type Input = ();
    type Output = serde_json::Value;
    const NAME: &'static str = "emit";

    async fn run(&self, _: &JobContext, _: ()) -> Result<serde_json::Value, JobError> {
        Ok(self.0.clone())
    }
}

/// Returns its input.
pub(crate) struct Echo;

impl Job for Echo {
    type Input = serde_json::Value;
    type Output = serde_json::Value;
    const NAME: &'static str = "echo";

    async fn run(
        &self,
        _: &JobContext,
        v: serde_json::Value,
    ) -> Result<serde_json::Value, JobError> {
        Ok(v)
    }
}

/// Returns `0..n`.
pub(crate) struct Range(pub(crate) u32);

impl Job for Range {
    type Input = ();
    type Output = Vec<u32>;
    const NAME: &'static str = "range";

    async fn run(&self, _: &JobContext, _: ()) -> Result<Vec<u32>, JobError> {
        Ok((0..self.0).collect())
    }
}

/// Squares a number.
pub(crate) struct Square;

impl Job for Square {
    type Input = u32;
    type Output = u64;
    const NAME: &'static str = "square";

    async fn run(&self, _: &JobContext, n: u32) -> Result<u64, JobError> {
        Ok(u64::from(n) * u64::from(n))
    }
}

/// Always fails (retryable).
pub(crate) struct Fail;

impl Job for Fail {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "fail";

    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        Err(JobError::msg("boom"))
    }
}

/// One recorded attempt: node, item, attempt number, start time.
pub(crate) type Attempt = (String, Option<u32>, u32, tokio::time::Instant);

/// Fails the first `fails` attempts of every (node, item), then succeeds; records
/// every attempt's start time.
#[derive(Clone, Default)]
pub(crate) struct Flaky {
    pub(crate) fails: u32,
    pub(crate) starts: Arc<Mutex<Vec<Attempt>>>,
}

impl Job for Flaky {
    type Input = serde_json::Value;
    type Output = u32;
    const NAME: &'static str = "flaky";

    async fn run(&self, ctx: &JobContext, _: serde_json::Value) -> Result<u32, JobError> {
        self.starts.lock().unwrap().push((
            ctx.node_id().to_owned(),
            ctx.item(),
            ctx.attempt(),
            tokio::time::Instant::now(),
        ));
        if ctx.attempt() <= self.fails {
            Err(JobError::msg(format!(
                "transient failure {}",
                ctx.attempt()
            )))
        } else {
            Ok(ctx.attempt())
        }
    }
}

/// Sleeps for its input in milliseconds (cooperatively cancellable if `cooperative`).
#[derive(Clone, Default)]
pub(crate) struct Sleep {
    pub(crate) cooperative: bool,
    pub(crate) finished: Arc<AtomicU32>,
}

impl Job for Sleep {
    type Input = u64;
    type Output = u64;
    const NAME: &'static str = "sleep";

    async fn run(&self, ctx: &JobContext, ms: u64) -> Result<u64, JobError> {
        let sleep = tokio::time::sleep(Duration::from_millis(ms));
        if self.cooperative {
            tokio::select! {
                _ = sleep => {}
                _ = ctx.cancelled() => return Err(JobError::cancelled()),
            }
        } else {
            sleep.await;
        }
        self.finished.fetch_add(1, Ordering::SeqCst);
        Ok(ms)
    }
}

/// Records the order in which nodes start and finish.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    pub(crate) log: Arc<Mutex<Vec<String>>>,
    pub(crate) running: Arc<AtomicU32>,
    pub(crate) max_running: Arc<AtomicU32>,
    pub(crate) delay_ms: u64,
}

impl Job for Recorder {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "recorder";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<(), JobError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        self.log.lock().unwrap().push(ctx.node_id().to_owned());
        if self.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.delay_ms)).await;
        } else {
            tokio::task::yield_now().await;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A job with a struct input, for field bindings.
pub(crate) struct Join;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JoinInput {
    pub(crate) left: serde_json::Value,
    pub(crate) right: serde_json::Value,
    #[serde(default)]
    pub(crate) tag: Option<String>,
}

impl JoinInput {
    pub(crate) const LEFT: Field<Self, serde_json::Value> = Field::new("left");
    pub(crate) const RIGHT: Field<Self, serde_json::Value> = Field::new("right");
    pub(crate) const TAG: Field<Self, Option<String>> = Field::new("tag");
}

impl Job for Join {
    type Input = JoinInput;
    type Output = serde_json::Value;
    const NAME: &'static str = "join";

    async fn run(&self, _: &JobContext, i: JoinInput) -> Result<serde_json::Value, JobError> {
        Ok(serde_json::json!({ "left": i.left, "right": i.right, "tag": i.tag }))
    }
}

/// Final state of one node.
pub(crate) fn state(r: &RunResult, id: &str) -> NodeState {
    r.node(id).unwrap_or_else(|| panic!("no node {id}")).state
}
