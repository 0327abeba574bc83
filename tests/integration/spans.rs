//! `tracing` spans: one per run, one per attempt, with the ids as fields.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dagforge::prelude::*;
use tracing::field::{Field as TField, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event as TEvent, Metadata, Subscriber};

use crate::common::*;

/// A span's name and its fields.
type SeenSpan = (String, Vec<(String, String)>);

/// Records every span's name and fields.
#[derive(Clone, Default)]
struct Spans {
    next: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<SeenSpan>>>,
    events: Arc<Mutex<Vec<String>>>,
}

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &TField, value: &dyn Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &TField, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl Subscriber for Spans {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Vec::new();
        span.record(&mut Fields(&mut fields));
        self.seen
            .lock()
            .unwrap()
            .push((span.metadata().name().to_owned(), fields));
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &TEvent<'_>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        let msg = fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        self.events.lock().unwrap().push(msg);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

struct Logs;

impl Job for Logs {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "logs";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<(), JobError> {
        ctx.info("hello from the job");
        Ok(())
    }
}

#[tokio::test]
async fn run_and_attempt_spans_carry_ids() {
    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(spans.clone());
    let mut wf = Workflow::builder("traced");
    let a = wf.add("a", Logs).handle();
    wf.add(
        "b",
        Flaky {
            fails: 1,
            ..Flaky::default()
        },
    )
    .after(&a)
    .retries(1)
    .backoff(Backoff::none());
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(r.is_success());

    let seen = spans.seen.lock().unwrap().clone();
    let run_id = r.id.to_string();
    let field = |fields: &[(String, String)], k: &str| {
        fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    };
    let runs: Vec<_> = seen.iter().filter(|(n, _)| n == "run").collect();
    assert_eq!(runs.len(), 1);
    assert_eq!(field(&runs[0].1, "run_id"), Some(run_id.clone()));
    assert_eq!(field(&runs[0].1, "workflow"), Some("traced".to_owned()));

    let mut nodes: Vec<(String, String)> = seen
        .iter()
        .filter(|(n, _)| n == "node")
        .map(|(_, f)| {
            assert_eq!(field(f, "run_id"), Some(run_id.clone()));
            (field(f, "node").unwrap(), field(f, "attempt").unwrap())
        })
        .collect();
    nodes.sort();
    assert_eq!(
        nodes,
        vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]
    );
    let events = spans.events.lock().unwrap().clone();
    assert!(
        events
            .iter()
            .any(|e| e.contains("hello from the job") && e.contains("node=a")),
        "{events:?}"
    );
}
