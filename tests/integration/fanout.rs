//! Fan-out: one execution per item, gathered in item order.

use std::sync::atomic::Ordering;

use dagforge::prelude::*;
use serde_json::json;

use crate::common::*;

async fn squares(n: u32) -> RunResult {
    let mut wf = Workflow::builder("squares");
    let r = wf.add("range", Range(n)).handle();
    let sq = wf.add("square", Square).each_input(r).handle();
    wf.add("sum", Echo)
        .input_from(Source::output_of("square", None))
        .after(&sq);
    Engine::new().run(&wf.build().unwrap(), ()).await.unwrap()
}

#[tokio::test]
async fn zero_items_give_an_empty_result() {
    let r = squares(0).await;
    assert!(r.is_success(), "{}", r.table());
    assert_eq!(r.output::<Vec<u64>>("square").unwrap(), Vec::<u64>::new());
    assert_eq!(state(&r, "sum"), NodeState::Succeeded);
    assert_eq!(r.node("square").unwrap().attempts, 0);
}

#[tokio::test]
async fn one_item() {
    let r = squares(1).await;
    assert_eq!(r.output::<Vec<u64>>("square").unwrap(), vec![0]);
    assert_eq!(r.node("square").unwrap().items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_items_in_order() {
    let r = squares(1000).await;
    assert!(r.is_success());
    let out = r.output::<Vec<u64>>("square").unwrap();
    assert_eq!(out, (0..1000u64).map(|n| n * n).collect::<Vec<_>>());
    assert_eq!(r.node("square").unwrap().attempts, 1000);
    assert_eq!(r.output::<Vec<u64>>("sum").unwrap().len(), 1000);
}

#[tokio::test]
async fn jsonpath_selects_the_items_and_other_inputs_are_shared() {
    let mut wf = Workflow::builder("select");
    let src = wf
        .add(
            "src",
            Emit(json!({"markets": [{"id": "de"}, {"id": "fr"}], "tag": "x"})),
        )
        .handle();
    wf.add("join", Join)
        .each(
            JoinInput::LEFT,
            src.each_at::<serde_json::Value>("$.markets[*].id"),
        )
        .bind(JoinInput::RIGHT, src.select::<serde_json::Value>("$.tag"));
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert_eq!(
        r.output::<serde_json::Value>("join").unwrap(),
        json!([
            {"left": "de", "right": "x", "tag": null},
            {"left": "fr", "right": "x", "tag": null}
        ])
    );
}

#[tokio::test]
async fn fan_out_over_a_non_array_fails_the_node_not_the_engine() {
    let mut wf = Workflow::builder("not-array");
    let src = wf.add("src", Emit(json!({"n": 3}))).handle();
    wf.add("sq", Square).each_input(src.each_at::<u32>("$.n"));
    wf.add("missing", Square)
        .each_input(src.each_at::<u32>("$.nothing"));
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert_eq!(r.state, RunState::Failed);
    let sq = r.node("sq").unwrap();
    assert_eq!(sq.state, NodeState::Failed);
    let msg = &sq.error.as_ref().unwrap().message;
    assert_eq!(
        msg,
        "fan-out over `src` at `$.n`: expected an array, found number"
    );
    let missing = r.node("missing").unwrap();
    assert!(
        missing
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("selects nothing")
    );
}

#[tokio::test(start_paused = true)]
async fn items_retry_independently() {
    let flaky = Flaky {
        fails: 1,
        ..Flaky::default()
    };
    let mut wf = Workflow::builder("item-retries");
    let r = wf.add("range", Range(3)).handle();
    wf.add("f", flaky.clone())
        .each_input(Source::<Vec<serde_json::Value>>::output_of("range", None))
        .after(&r)
        .retries(1)
        .backoff(Backoff::fixed(std::time::Duration::from_secs(1)));
    let res = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(res.is_success(), "{}", res.table());
    let f = res.node("f").unwrap();
    assert_eq!(f.attempts, 6);
    assert!(
        f.items
            .iter()
            .all(|i| i.attempts == 2 && i.state == NodeState::Succeeded)
    );
    assert_eq!(res.output::<Vec<u32>>("f").unwrap(), vec![2, 2, 2]);
}

#[tokio::test]
async fn failed_items_fail_the_node_after_all_items_settle() {
    struct OddFails;
    impl Job for OddFails {
        type Input = u32;
        type Output = u32;
        const NAME: &'static str = "odd-fails";
        async fn run(&self, _: &JobContext, n: u32) -> Result<u32, JobError> {
            if n % 2 == 1 {
                Err(JobError::terminal(format!("{n} is odd")))
            } else {
                Ok(n)
            }
        }
    }
    let mut wf = Workflow::builder("partial");
    let r = wf.add("range", Range(5)).handle();
    let odd = wf.add("odd", OddFails).each_input(r).retries(3).handle();
    wf.add("after", Noop).after(&odd);
    let res = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    let node = res.node("odd").unwrap();
    assert_eq!(node.state, NodeState::Failed);
    assert_eq!(
        node.error.as_ref().unwrap().message,
        "2 of 5 items failed; first: item 1: 1 is odd"
    );
    assert_eq!(node.attempts, 5, "terminal errors are not retried");
    let states: Vec<_> = node.items.iter().map(|i| i.state).collect();
    use NodeState::*;
    assert_eq!(
        states,
        vec![Succeeded, Failed, Succeeded, Failed, Succeeded]
    );
    assert_eq!(state(&res, "after"), Skipped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_cap_per_node() {
    let sleep = Recorder {
        delay_ms: 5,
        ..Recorder::default()
    };
    let mut wf = Workflow::builder("capped");
    let r = wf
        .add("range", Emit(json!(vec![serde_json::Value::Null; 40])))
        .handle();
    wf.add("work", sleep.clone())
        .each_input(r.each_at::<()>("$"))
        .concurrency(3);
    let res = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(res.is_success(), "{}", res.table());
    assert_eq!(sleep.log.lock().unwrap().len(), 40);
    let max = sleep.max_running.load(Ordering::SeqCst);
    assert!((2..=3).contains(&max), "max concurrent items {max}");
}
