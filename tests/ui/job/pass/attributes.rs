//! Every `#[job]` attribute ends up in `Job::spec()`; the function stays callable.
use std::time::Duration;

use dagforge::prelude::*;
use dagforge::Resources;

const MAX_RETRIES: u32 = 7;

/// Sums two numbers.
#[job(
    name = "adder",
    retries = 3,
    backoff = exponential(1s, max = 1m, factor = 3, jitter = 0.25),
    timeout = "1m30s",
    priority = -5,
    queue = "cpu",
    resources(cpu = "500m", memory = "256Mi", cpu_limit = "1", memory_limit = "1Gi"),
)]
async fn add(ctx: &JobContext, a: u64, b: u64) -> Result<u64, JobError> {
    ctx.info("adding");
    Ok(a + b)
}

#[job(retries = MAX_RETRIES, backoff = fixed(500ms), timeout = 2.5s)]
async fn constant_retries(x: String) -> Result<String, JobError> {
    Ok(x)
}

#[job(backoff(none))]
async fn no_backoff() -> Result<(), JobError> {
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(add(&JobContext::detached("t"), 2, 3).await.unwrap(), 5);
    assert_eq!(<Add as Job>::NAME, "adder");
    let spec = Add.spec();
    assert_eq!(spec.retries, 3);
    assert_eq!(
        spec.backoff,
        Backoff::exponential(Duration::from_secs(1))
            .max_delay(Duration::from_secs(60))
            .factor(3.0)
            .jitter(0.25)
    );
    assert_eq!(spec.timeout, Some(Duration::from_secs(90)));
    assert_eq!(spec.priority, -5);
    assert_eq!(spec.queue.as_deref(), Some("cpu"));
    assert_eq!(
        spec.resources,
        Resources::new().cpu("500m").memory("256Mi").cpu_limit("1").memory_limit("1Gi")
    );

    let spec = ConstantRetries.spec();
    assert_eq!(spec.retries, 7);
    assert_eq!(spec.backoff, Backoff::fixed(Duration::from_millis(500)));
    assert_eq!(spec.timeout, Some(Duration::from_millis(2500)));
    assert_eq!(<ConstantRetries as Job>::NAME, "constant_retries");
    assert_eq!(NoBackoff.spec().backoff, Backoff::none());

    // The job runs through the trait like any hand-written one.
    let out = Add
        .run(&JobContext::detached("t"), AddInput { a: 40, b: 2 })
        .await
        .unwrap();
    assert_eq!(out, 42);
    let _typed: Field<AddInput, u64> = AddInput::A;
    assert_eq!(AddInput::B.name(), "b");
    assert_eq!(format!("{:?}", AddInput { a: 1, b: 2 }), "AddInput { a: 1, b: 2 }");
}
