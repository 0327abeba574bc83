//! Dependencies, bindings, parameters and outputs.

use dagforge::prelude::*;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn data_and_order_edges_are_respected() {
    let rec = Recorder::default();
    let mut wf = Workflow::builder("order");
    let a = wf.add("a", rec.clone()).handle();
    let b = wf.add("b", rec.clone()).after(&a).handle();
    let c = wf.add("c", rec.clone()).after(&a).handle();
    wf.add("d", rec.clone()).after(&b).after(&c);
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert_eq!(r.state, RunState::Succeeded);
    let log = rec.log.lock().unwrap().clone();
    assert_eq!(log.first().map(String::as_str), Some("a"));
    assert_eq!(log.last().map(String::as_str), Some("d"));
    assert_eq!(log.len(), 4);
}

#[tokio::test]
async fn bindings_whole_field_path_param_and_const() {
    let mut wf = Workflow::builder("bind");
    let tag = wf.param_or::<Option<String>>("tag", None);
    let src = wf
        .add("src", Emit(json!({"id": 7, "nested": {"xs": [1, 2, 3]}})))
        .handle();
    let whole = wf.add("whole", Echo).input_from(src).handle();
    wf.add("join", Join)
        .bind(
            JoinInput::LEFT,
            whole.select::<serde_json::Value>("$.nested.xs[1]"),
        )
        .bind(JoinInput::RIGHT, Source::value(json!("const")))
        .bind(JoinInput::TAG, tag);
    wf.add("named", Echo)
        .input_from(Source::output_of("src", Some("$.id")));
    let wf = wf.build().unwrap();
    let r = Engine::new().run(&wf, json!({"tag": "t1"})).await.unwrap();
    assert!(r.is_success(), "{}", r.table());
    assert_eq!(r.output::<serde_json::Value>("whole").unwrap()["id"], 7);
    assert_eq!(
        r.output::<serde_json::Value>("join").unwrap(),
        json!({"left": 2, "right": "const", "tag": "t1"})
    );
    assert_eq!(r.output::<u32>("named").unwrap(), 7);
}

#[tokio::test]
async fn field_of_an_output_binds_typed() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Out {
        count: u32,
    }
    impl Out {
        const COUNT: Field<Self, u32> = Field::new("count");
    }
    struct Counter;
    impl Job for Counter {
        type Input = ();
        type Output = Out;
        const NAME: &'static str = "counter";
        async fn run(&self, _: &JobContext, _: ()) -> Result<Out, JobError> {
            Ok(Out { count: 12 })
        }
    }
    let mut wf = Workflow::builder("typed-field");
    let c = wf.add("c", Counter).handle();
    wf.add("sq", Square).input_from(c.field(Out::COUNT));
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert_eq!(r.output::<u64>("sq").unwrap(), 144);
}

#[tokio::test]
async fn parameters_are_checked_at_start() {
    let mut wf = Workflow::builder("params");
    let n = wf.param::<u32>("n");
    wf.add("sq", Square).input_from(n);
    let wf = wf.build().unwrap();
    let engine = Engine::new();

    let err = engine.run(&wf, ()).await.unwrap_err();
    assert_eq!(err.to_string(), "run input `n`: required and not given");
    let err = engine.run(&wf, json!({"n": 2, "m": 3})).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "run input `m`: workflow `params` has no such parameter"
    );
    let err = engine.run(&wf, json!([1])).await.unwrap_err();
    assert!(err.to_string().contains("must be an object"), "{err}");

    let r = engine.run(&wf, json!({"n": 9})).await.unwrap();
    assert_eq!(r.output::<u64>("sq").unwrap(), 81);
}

#[tokio::test]
async fn input_that_does_not_decode_fails_the_node_clearly() {
    let mut wf = Workflow::builder("mismatch");
    let src = wf.add("src", Emit(json!("not a number"))).handle();
    wf.add("sq", Square).input_from(src.select::<u32>("$"));
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert_eq!(r.state, RunState::Failed);
    let sq = r.node("sq").unwrap();
    assert_eq!(sq.state, NodeState::Failed);
    assert_eq!(sq.attempts, 1, "input errors are not retried");
    let e = sq.error.as_ref().unwrap();
    assert_eq!(e.kind, dagforge::ErrorKind::Input);
    assert!(e.message.contains("job `square`"), "{}", e.message);
}

#[tokio::test]
async fn panics_become_failed_attempts() {
    struct Panics;
    impl Job for Panics {
        type Input = ();
        type Output = ();
        const NAME: &'static str = "panics";
        async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
            panic!("kaboom")
        }
    }
    let mut wf = Workflow::builder("panic");
    wf.add("p", Panics).retries(1).backoff(Backoff::none());
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    let p = r.node("p").unwrap();
    assert_eq!(p.state, NodeState::Failed);
    assert_eq!(p.attempts, 2);
    assert!(p.error.as_ref().unwrap().message.contains("kaboom"));
}

#[tokio::test]
async fn report_has_durations_and_outputs() {
    let mut wf = Workflow::builder("report");
    wf.add("s", Sleep::default()).input(20);
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    let s = r.node("s").unwrap();
    assert_eq!(s.output, Some(json!(20)));
    assert!(s.duration.unwrap() >= std::time::Duration::from_millis(20));
    assert!(r.duration >= s.duration.unwrap());
    assert!(r.table().contains("succeeded"));
}

#[tokio::test]
async fn registry_runs_jobs_by_name() {
    let mut reg = Registry::new();
    reg.register(Square).unwrap().register(Echo).unwrap();
    assert_eq!(reg.names(), vec!["echo", "square"]);
    let out = reg
        .run("square", JobContext::detached("t"), json!(5))
        .await
        .unwrap();
    assert_eq!(out.unwrap(), json!(25));
    let bad = reg
        .run("square", JobContext::detached("t"), json!("x"))
        .await
        .unwrap();
    assert_eq!(bad.unwrap_err().kind, dagforge::ErrorKind::Input);
    assert!(matches!(
        reg.run("nope", JobContext::detached("t"), json!(null)).await,
        Err(dagforge::Error::UnknownJob(n)) if n == "nope"
    ));
    // A different job type under a taken name is refused.
    struct FakeSquare;
    impl Job for FakeSquare {
        type Input = ();
        type Output = ();
        const NAME: &'static str = "square";
        async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
            Ok(())
        }
    }
    assert!(matches!(
        reg.register(FakeSquare),
        Err(dagforge::Error::DuplicateJob(_))
    ));
}

#[tokio::test]
async fn outputs_over_the_size_limit_fail_without_retry() {
    let mut wf = Workflow::builder("big");
    wf.add("big", Emit(json!("x".repeat(2000)))).retries(3);
    wf.add("small", Emit(json!("x".repeat(100))));
    let engine = Engine::builder().max_output_bytes(1024).build();
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();
    let big = r.node("big").unwrap();
    assert_eq!((big.state, big.attempts), (NodeState::Failed, 1));
    let e = big.error.as_ref().unwrap();
    assert_eq!(e.kind, dagforge::ErrorKind::Output);
    assert!(
        e.message.contains("1024-byte limit") && e.message.contains("artifact"),
        "{}",
        e.message
    );
    assert_eq!(state(&r, "small"), NodeState::Succeeded);
}
