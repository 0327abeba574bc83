//! Cancelling a run: cooperative first, aborted after the grace period.

use std::sync::atomic::Ordering;
use std::time::Duration;

use dagforge::prelude::*;

use crate::common::*;

#[tokio::test(start_paused = true)]
async fn cooperative_cancel_mid_run() {
    let sleep = Sleep {
        cooperative: true,
        ..Sleep::default()
    };
    let mut wf = Workflow::builder("cancel");
    let quick = wf.add("quick", sleep.clone()).input(10).handle();
    let long = wf
        .add("long", sleep.clone())
        .input(60_000)
        .after(&quick)
        .handle();
    wf.add("after", Noop).after(&long);
    wf.add("parallel", sleep.clone()).input(60_000);
    let engine = Engine::new();
    let run = engine.start(&wf.build().unwrap(), ()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = tokio::time::Instant::now();
    run.cancel();
    let r = run.wait().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(10),
        "cooperative jobs stop at once"
    );
    use NodeState::*;
    assert_eq!(r.state, RunState::Cancelled);
    assert_eq!(state(&r, "quick"), Succeeded);
    assert_eq!(state(&r, "long"), Cancelled);
    assert_eq!(state(&r, "after"), Cancelled);
    assert_eq!(state(&r, "parallel"), Cancelled);
    assert_eq!(sleep.finished.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn uncooperative_jobs_are_aborted_after_the_grace_period() {
    let sleep = Sleep::default(); // ignores the token
    let mut wf = Workflow::builder("stubborn");
    wf.add("stubborn", sleep.clone()).input(60_000);
    let engine = Engine::builder()
        .cancel_grace(Duration::from_secs(3))
        .build();
    let run = engine.start(&wf.build().unwrap(), ()).await.unwrap();
    let id = run.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = tokio::time::Instant::now();
    assert!(engine.cancel(id));
    let r = run.wait().await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_secs(3));
    assert_eq!(r.state, RunState::Cancelled);
    let n = r.node("stubborn").unwrap();
    assert_eq!(n.state, NodeState::Cancelled);
    assert!(n.error.as_ref().unwrap().message.contains("grace period"));
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        sleep.finished.load(Ordering::SeqCst),
        0,
        "aborted task never finished"
    );
    assert!(
        !engine.cancel(id),
        "finished runs are no longer cancellable"
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_during_fan_out_and_retry_backoff() {
    let sleep = Sleep {
        cooperative: true,
        ..Sleep::default()
    };
    let mut wf = Workflow::builder("cancel-fan");
    let items = wf
        .add("items", Emit(serde_json::json!(vec![60_000; 10])))
        .handle();
    wf.add("each", sleep.clone())
        .each_input(items.each_at::<u64>("$"))
        .concurrency(2);
    wf.add("flaky", Fail)
        .retries(3)
        .backoff(Backoff::fixed(Duration::from_secs(600)));
    let engine = Engine::new();
    let run = engine.start(&wf.build().unwrap(), ()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    run.cancel();
    let r = run.wait().await.unwrap();
    assert_eq!(r.state, RunState::Cancelled);
    let each = r.node("each").unwrap();
    assert_eq!(each.state, NodeState::Cancelled);
    assert_eq!(each.items.len(), 10);
    assert!(each.items.iter().all(|i| i.state == NodeState::Cancelled));
    assert_eq!(each.attempts, 2, "only the two running items had started");
    assert_eq!(state(&r, "flaky"), NodeState::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn cancel_reaches_a_lone_node_too() {
    // A node with nothing else to run beside it may execute inside the run's own task;
    // cancellation and its grace period must work the same.
    let sleep = Sleep {
        cooperative: true,
        ..Sleep::default()
    };
    let mut wf = Workflow::builder("lone");
    let first = wf.add("first", sleep.clone()).input(10).handle();
    wf.add("second", sleep.clone()).input(60_000).after(&first);
    let engine = Engine::new();
    let run = engine.start(&wf.build().unwrap(), ()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = tokio::time::Instant::now();
    run.cancel();
    let r = run.wait().await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(10));
    assert_eq!(state(&r, "first"), NodeState::Succeeded);
    assert_eq!(state(&r, "second"), NodeState::Cancelled);
    assert_eq!(r.state, RunState::Cancelled);
}
