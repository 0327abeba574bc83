//! The jobs the executor conformance suite runs. An executor whose attempts run in
//! another binary (a worker, a pod) must register them there too: see [`register`].

use std::time::Duration;

use serde_json::{Value, json};

use crate::context::JobContext;
use crate::error::{Error, JobError};
use crate::job::Job;
use crate::registry::Registry;

/// The info line [`Report`] logs.
pub const INFO_LINE: &str = "conformance: an info line";
/// The warn line [`Report`] logs.
pub const WARN_LINE: &str = "conformance: a warn line";
/// The progress message [`Report`] reports, at [`PROGRESS_PERCENT`].
pub const PROGRESS_LINE: &str = "conformance: half way";
/// The percentage [`Report`] reports.
pub const PROGRESS_PERCENT: u8 = 40;
/// The line [`Nap`] logs once it runs.
pub const NAP_STARTED: &str = "conformance: nap started";

/// Registers every job of the suite (for a worker binary that runs them).
pub fn register(registry: &mut Registry) -> Result<&mut Registry, Error> {
    registry
        .register(Report)?
        .register(Fail)?
        .register(Nap)?
        .register(Crash)
}

/// Logs [`INFO_LINE`] and [`WARN_LINE`], reports progress, and returns
/// `{"input": <its input>, "attempt": <the attempt number>}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report;

impl Job for Report {
    type Input = Value;
    type Output = Value;
    const NAME: &'static str = "conformance-report";

    async fn run(&self, ctx: &JobContext, input: Value) -> Result<Value, JobError> {
        ctx.info(INFO_LINE);
        ctx.warn(WARN_LINE);
        ctx.progress(PROGRESS_PERCENT, PROGRESS_LINE);
        Ok(json!({ "input": input, "attempt": ctx.attempt() }))
    }
}

/// Fails its attempts up to `until` (with a terminal error if `terminal`, a retryable
/// one otherwise); later attempts return their attempt number.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fail;

impl Job for Fail {
    type Input = (bool, u32);
    type Output = u32;
    const NAME: &'static str = "conformance-fail";

    async fn run(&self, ctx: &JobContext, (terminal, until): (bool, u32)) -> Result<u32, JobError> {
        if ctx.attempt() <= until {
            let message = format!("conformance: attempt {} fails", ctx.attempt());
            return Err(if terminal {
                JobError::terminal(message)
            } else {
                JobError::msg(message)
            });
        }
        Ok(ctx.attempt())
    }
}

/// Logs [`NAP_STARTED`], sleeps `ms` milliseconds and returns `ms`. A cooperative nap
/// ends (cancelled) when its cancellation token fires; a deaf one ignores it. When
/// the nap runs to its end and `marker` is a path, it creates that file: an attempt
/// that was stopped never does.
#[derive(Clone, Copy, Debug, Default)]
pub struct Nap;

impl Job for Nap {
    type Input = (u64, bool, Option<String>);
    type Output = u64;
    const NAME: &'static str = "conformance-nap";

    async fn run(
        &self,
        ctx: &JobContext,
        (ms, cooperative, marker): (u64, bool, Option<String>),
    ) -> Result<u64, JobError> {
        ctx.info(NAP_STARTED);
        let nap = tokio::time::sleep(Duration::from_millis(ms));
        if cooperative {
            tokio::select! {
                () = nap => {}
                () = ctx.cancelled() => return Err(JobError::cancelled()),
            }
        } else {
            nap.await;
        }
        if let Some(path) = marker {
            std::fs::write(path, b"the nap ran to its end")?;
        }
        Ok(ms)
    }
}

/// Crashes its attempts up to `until`; later attempts return their attempt number.
/// With `child` set and inside a worker process (see
/// [`worker::is_worker_invocation`](crate::worker::is_worker_invocation)), the crash
/// aborts the process (SIGABRT, no outcome reported); otherwise it is a panic, the
/// in-process analogue — so it never takes down the engine's own process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Crash;

impl Job for Crash {
    type Input = (bool, u32);
    type Output = u32;
    const NAME: &'static str = "conformance-crash";

    async fn run(&self, ctx: &JobContext, (child, until): (bool, u32)) -> Result<u32, JobError> {
        if ctx.attempt() <= until {
            if child && in_worker() {
                std::process::abort();
            }
            panic!("conformance: attempt {} crashes", ctx.attempt());
        }
        Ok(ctx.attempt())
    }
}

#[cfg(all(feature = "process", unix))]
fn in_worker() -> bool {
    crate::worker::is_worker_invocation()
}

#[cfg(not(all(feature = "process", unix)))]
fn in_worker() -> bool {
    false
}
