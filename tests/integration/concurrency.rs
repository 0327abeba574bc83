//! The global concurrency limit and priorities.

use std::sync::atomic::Ordering;

use dagforge::prelude::*;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_limit_is_never_exceeded_across_runs() {
    let rec = Recorder {
        delay_ms: 2,
        ..Recorder::default()
    };
    let mut wf = Workflow::builder("wide");
    for i in 0..50 {
        wf.add(format!("n{i}"), rec.clone());
    }
    let wf = wf.build().unwrap();
    let engine = Engine::builder().concurrency(4).build();
    let a = engine.start(&wf, ()).await.unwrap();
    let b = engine.start(&wf, ()).await.unwrap();
    assert!(a.wait().await.unwrap().is_success());
    assert!(b.wait().await.unwrap().is_success());
    assert_eq!(rec.log.lock().unwrap().len(), 100);
    let max = rec.max_running.load(Ordering::SeqCst);
    assert!((2..=4).contains(&max), "max running {max}");
}

#[tokio::test]
async fn higher_priority_runs_first_when_capacity_is_short() {
    let rec = Recorder::default();
    let mut wf = Workflow::builder("prio");
    wf.add("low", rec.clone()).priority(-5);
    wf.add("mid", rec.clone());
    wf.add("high", rec.clone()).priority(10);
    wf.add("mid2", rec.clone());
    let engine = Engine::builder().concurrency(1).build();
    engine.run(&wf.build().unwrap(), ()).await.unwrap();
    assert_eq!(*rec.log.lock().unwrap(), vec!["high", "mid", "mid2", "low"]);
}
