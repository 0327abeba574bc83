//! The Prometheus metrics: the text passes `promtool check metrics`, and the
//! counters agree with the run's recorded history.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};

use dagforge::prelude::*;
use dagforge::{EventKind, NodeState};
use serde_json::json;

use crate::common::{Emit, Flaky};

/// One sample: the metric's name and its labels, sorted.
type Series = (String, BTreeMap<String, String>);

/// The samples of a text exposition (comments left out).
fn parse(text: &str) -> HashMap<Series, f64> {
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").expect("label=value");
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        out.insert((name, labels), value.parse().expect("a number"));
    }
    out
}

fn value(samples: &HashMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key = (
        name.to_owned(),
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    samples.get(&key).copied().unwrap_or(0.0)
}

/// `promtool check metrics` on `text`: its complaints, or `None` when promtool is not
/// installed (scripts/promtool.sh installs it) and the environment does not require it.
fn promtool(text: &str) -> Option<String> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var("DAGFORGE_TEST_PROMTOOL").as_deref() == Ok("required") => {
            panic!("promtool: {e} (scripts/promtool.sh installs it)")
        }
        Err(_) => {
            eprintln!("promtool not installed: skipping its check (scripts/promtool.sh)");
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() {
        said
    } else {
        format!("exit {}: {said}", out.status)
    })
}

/// A fan-out whose items fail once each, and a single node that fails once: the
/// attempt counters, the run counters and the histograms' counts equal what the
/// store recorded, and the whole text passes promtool's lint.
#[tokio::test]
async fn counters_match_the_runs_history_and_pass_promtool() {
    let mut wf = Workflow::builder("ops-metrics");
    let numbers = wf.add("numbers", Emit(json!([1, 2, 3]))).handle();
    wf.add(
        "per_item",
        Flaky {
            fails: 1,
            ..Flaky::default()
        },
    )
    .each_input(numbers.each_at::<serde_json::Value>("$[*]"))
    .retries(2);
    wf.add(
        "single",
        Flaky {
            fails: 1,
            ..Flaky::default()
        },
    )
    .retries(2);
    let wf = wf.build().unwrap();
    let engine = Engine::new();
    let run = engine.run(&wf, ()).await.unwrap();
    assert!(run.is_success(), "{}", run.table());
    let again = engine.run(&wf, ()).await.unwrap();
    assert!(again.is_success());

    let text = engine.metrics_text().await;
    let samples = parse(&text);

    // The history: every attempt the store recorded, by job and outcome.
    let mut expected: HashMap<(&str, &str), f64> = HashMap::new();
    let mut attempts = 0.0;
    for r in [run.id, again.id] {
        for e in engine.store().events(r, 0, 10_000).await.unwrap() {
            let EventKind::Node(n) = &e.kind else {
                continue;
            };
            if n.from != NodeState::Running || (&*n.node == "per_item" && n.item.is_none()) {
                continue; // not an attempt's end (the fan-out node itself runs none)
            }
            let job = if &*n.node == "numbers" {
                "emit"
            } else {
                "flaky"
            };
            let outcome = match n.to {
                NodeState::Succeeded => "succeeded",
                NodeState::Failed | NodeState::Retrying => "failed",
                other => panic!("unexpected end of an attempt: {other:?}"),
            };
            *expected.entry((job, outcome)).or_default() += 1.0;
            attempts += 1.0;
        }
    }
    // Per run: emit once, 3 items and 1 single node each failing once then succeeding.
    assert_eq!(expected[&("flaky", "failed")], 8.0, "{expected:?}");
    for ((job, outcome), n) in &expected {
        assert_eq!(
            value(
                &samples,
                "dagforge_attempts_total",
                &[("job", job), ("outcome", outcome)]
            ),
            *n,
            "attempts of {job} {outcome}\n{text}"
        );
    }
    let durations: f64 = ["emit", "flaky"]
        .iter()
        .map(|j| {
            value(
                &samples,
                "dagforge_attempt_duration_seconds_count",
                &[("job", j)],
            )
        })
        .sum();
    assert_eq!(durations, attempts, "{text}");
    // Queue waits: every attempt went from ready to running (retries too, after
    // their backoff).
    let waits = value(
        &samples,
        "dagforge_attempt_queue_wait_seconds_count",
        &[("job", "flaky")],
    );
    assert_eq!(
        waits,
        expected[&("flaky", "failed")] + expected[&("flaky", "succeeded")],
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "dagforge_runs_started_total",
            &[("workflow", "ops-metrics")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "dagforge_runs_finished_total",
            &[("state", "succeeded"), ("workflow", "ops-metrics")]
        ),
        2.0
    );
    // Nothing left waiting or running; the store answered; writes were timed.
    assert_eq!(value(&samples, "dagforge_workers_alive", &[]), 0.0);
    assert_eq!(
        value(
            &samples,
            "dagforge_attempts_running",
            &[("lane", "default")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &samples,
            "dagforge_attempts_waiting",
            &[("lane", "default")]
        ),
        0.0
    );
    assert_eq!(value(&samples, "dagforge_store_up", &[]), 1.0);
    assert!(value(&samples, "dagforge_store_write_seconds_count", &[]) >= 2.0);
    // No run id anywhere in the text.
    for r in [run.id, again.id] {
        assert!(!text.contains(&r.to_string()), "run id in the metrics");
    }
    if let Some(complaints) = promtool(&text) {
        assert!(
            complaints.trim().is_empty(),
            "promtool: {complaints}\n{text}"
        );
    }
}

/// Runs enqueued and not yet claimed show as waiting in their lane.
#[tokio::test]
async fn enqueued_runs_are_waiting_in_their_lane() {
    let mut wf = Workflow::builder("ops-waiting");
    wf.add("numbers", Emit(json!([1])));
    let wf = wf.build().unwrap();
    let engine = Engine::builder().workflow(&wf).build();
    engine
        .store()
        .set_queue_limit("batch", Some(1))
        .await
        .unwrap();
    engine
        .enqueue_with(&wf, (), dagforge::Enqueue::new().queue("batch"))
        .await
        .unwrap();
    engine
        .enqueue_with(&wf, (), dagforge::Enqueue::new())
        .await
        .unwrap();
    engine
        .enqueue_with(&wf, (), dagforge::Enqueue::new())
        .await
        .unwrap();
    let samples = parse(&engine.metrics_text().await);
    assert_eq!(
        value(&samples, "dagforge_runs_waiting", &[("lane", "batch")]),
        1.0
    );
    assert_eq!(
        value(&samples, "dagforge_runs_waiting", &[("lane", "default")]),
        2.0
    );
}
