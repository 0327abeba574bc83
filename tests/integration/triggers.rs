//! Conditions and trigger rules: what runs, what is skipped, and why.

use dagforge::prelude::*;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn false_condition_skips_and_dependents_follow_their_rule() {
    let mut wf = Workflow::builder("cond");
    let src = wf
        .add("src", Emit(json!({"count": 0, "region": "eu"})))
        .handle();
    let yes = wf
        .add("yes", Noop)
        .when(&src, "$.region == \"eu\"")
        .handle();
    let no = wf.add("no", Noop).when(&src, "$.count > 0").handle();
    wf.add("after-no", Noop).after(&no); // all_success: skipped
    wf.add("none-failed", Noop)
        .after(&no)
        .after(&yes)
        .trigger(TriggerRule::NoneFailed);
    wf.add("all-done", Noop)
        .after(&no)
        .trigger(TriggerRule::AllDone);
    wf.add("all", Noop).after(&src).when_all("$.src.count == 0");
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    use NodeState::*;
    assert_eq!(state(&r, "yes"), Succeeded);
    assert_eq!(state(&r, "no"), Skipped);
    assert_eq!(
        r.node("no").unwrap().reason.as_deref(),
        Some("condition `$.count > 0` is false")
    );
    assert_eq!(state(&r, "after-no"), Skipped);
    assert_eq!(
        r.node("after-no").unwrap().reason.as_deref(),
        Some("upstream `no` skipped")
    );
    assert_eq!(state(&r, "none-failed"), Succeeded);
    assert_eq!(state(&r, "all-done"), Succeeded);
    assert_eq!(state(&r, "all"), Succeeded);
    assert_eq!(r.state, RunState::Succeeded, "skips are benign");
}

#[tokio::test]
async fn failure_propagates_through_trigger_rules() {
    let mut wf = Workflow::builder("fail-chain");
    let f = wf.add("f", Fail).handle();
    let ok = wf.add("ok", Noop).handle();
    let skipped = wf.add("skipped", Noop).after(&f).after(&ok).handle();
    let deep = wf.add("deep", Noop).after(&skipped).handle();
    wf.add("handler", Noop)
        .after(&f)
        .after(&ok)
        .trigger(TriggerRule::OneFailed);
    wf.add("no-handler", Noop)
        .after(&ok)
        .trigger(TriggerRule::OneFailed);
    wf.add("cleanup", Noop)
        .after(&deep)
        .after(&f)
        .trigger(TriggerRule::AllDone);
    wf.add("nf", Noop)
        .after(&f)
        .trigger(TriggerRule::NoneFailed);
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    use NodeState::*;
    assert_eq!(r.state, RunState::Failed);
    assert_eq!(state(&r, "f"), Failed);
    assert_eq!(state(&r, "skipped"), Skipped);
    assert_eq!(
        r.node("skipped").unwrap().reason.as_deref(),
        Some("upstream `f` failed")
    );
    assert_eq!(state(&r, "deep"), Skipped);
    assert_eq!(state(&r, "handler"), Succeeded);
    assert_eq!(state(&r, "no-handler"), Skipped);
    assert_eq!(state(&r, "cleanup"), Succeeded);
    assert_eq!(state(&r, "nf"), Skipped);
}

#[tokio::test]
async fn skip_cascades_down_a_long_chain_without_recursion() {
    let mut wf = Workflow::builder("long-skip");
    let root = wf.add("root", Emit(json!(false))).handle();
    let first = wf.add("n0", Noop).when(&root, "$").handle();
    let mut last = first;
    for i in 1..20_000 {
        last = wf.add(format!("n{i}"), Noop).after(&last).handle();
    }
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(r.is_success());
    assert!(r.nodes[1..].iter().all(|n| n.state == NodeState::Skipped));
}

#[tokio::test]
async fn condition_over_a_skipped_upstream_sees_null() {
    let mut wf = Workflow::builder("null-cond");
    let src = wf.add("src", Emit(json!(1))).handle();
    let skipped = wf
        .add("skipped", Emit(json!({"x": 1})))
        .when(&src, "$ > 5")
        .handle();
    wf.add("c", Noop)
        .when(&skipped, "$.x == 1")
        .trigger(TriggerRule::AllDone);
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert_eq!(state(&r, "skipped"), NodeState::Skipped);
    assert_eq!(state(&r, "c"), NodeState::Skipped);
}
