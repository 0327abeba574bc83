//! The event stream and what the store records.

use dagforge::prelude::*;
use serde_json::json;

use crate::common::*;

struct Chatty;

impl Job for Chatty {
    type Input = ();
    type Output = u32;
    const NAME: &'static str = "chatty";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<u32, JobError> {
        ctx.info("starting");
        ctx.progress(50, "halfway");
        ctx.progress(150, "clamped");
        ctx.warn("almost done");
        Ok(42)
    }
}

#[tokio::test]
async fn lifecycle_log_and_progress_events_in_order() {
    let engine = Engine::new();
    let mut events = engine.subscribe();
    let mut wf = Workflow::builder("chatty");
    let c = wf.add("c", Chatty).handle();
    wf.add("d", Noop).after(&c);
    let r = engine.run(&wf.build().unwrap(), ()).await.unwrap();

    let mut seen = Vec::new();
    while let Some(e) = events.next().await {
        assert_eq!(e.run, r.id);
        let done = matches!(e.kind, EventKind::Run { to, .. } if to.is_terminal());
        seen.push(e);
        if done {
            break;
        }
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seen.len() as u64).collect::<Vec<_>>(),
        "dense sequence"
    );
    let describe: Vec<String> = seen
        .iter()
        .map(|e| match &e.kind {
            EventKind::Run { to, .. } => format!("run {to}"),
            EventKind::Node(n) => format!("{} {}", n.node, n.to),
            EventKind::Log {
                node,
                level,
                message,
                ..
            } => format!("{node} {level} {message}"),
            EventKind::Progress { node, percent, .. } => format!("{node} {percent}%"),
            _ => "other".into(),
        })
        .collect();
    assert_eq!(
        describe,
        vec![
            "run running",
            "c ready",
            "c running",
            "c info starting",
            "c 50%",
            "c 100%",
            "c warn almost done",
            "c succeeded",
            "d ready",
            "d running",
            "d succeeded",
            "run succeeded",
        ]
    );
    let ok = seen.iter().find_map(|e| match &e.kind {
        EventKind::Node(n) if n.to == NodeState::Succeeded && &*n.node == "c" => n.output.clone(),
        _ => None,
    });
    assert_eq!(ok.as_deref(), Some(&json!(42)));
    assert_eq!(events.missed(), 0);
}

#[tokio::test]
async fn store_has_the_run_its_executions_and_events() {
    let engine = Engine::new();
    let mut wf = Workflow::builder("stored");
    wf.add("f", Fail).retries(1).backoff(Backoff::none());
    wf.add("c", Chatty);
    let wf = wf.build().unwrap();
    let r = engine.run(&wf, ()).await.unwrap();
    let store = engine.store();

    let run = store.get_run(r.id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.workflow, "stored");
    assert!(run.started_at.is_some() && run.finished_at.is_some());
    assert_eq!(run.spec.spec().nodes[0].retries, 1);

    let execs = store.executions(r.id).await.unwrap();
    let f: Vec<_> = execs.iter().filter(|e| e.node == "f").collect();
    // attempt 0 (pending → ready) plus the two attempts.
    assert_eq!(
        f.iter().map(|e| (e.attempt, e.state)).collect::<Vec<_>>(),
        vec![
            (0, NodeState::Ready),
            (1, NodeState::Retrying),
            (2, NodeState::Failed)
        ]
    );
    assert_eq!(
        f[1].error.as_ref().unwrap().message,
        "boom",
        "failed attempt history kept"
    );
    let c = execs
        .iter()
        .find(|e| e.node == "c" && e.attempt == 1)
        .unwrap();
    assert_eq!(c.output, Some(json!(42)));
    assert!(c.started_at.is_some());

    let all = store.events(r.id, 0, 1000).await.unwrap();
    let tail = store.events(r.id, 3, 2).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(tail[0], all[3]);
    assert!(
        store
            .events(r.id, all.len() as u64, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
