//! Property tests of the cursor and filter parsers, through the server: any value of
//! any parameter is answered with data or a `400` problem naming the parameter, never
//! a server error; and cursors handed out page through every run exactly once.

use std::collections::HashSet;

use proptest::prelude::*;
use serde_json::Value;

use super::{Server, memory};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Any text, URL-encoded as a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn any_filter_or_cursor_gets_data_or_a_named_problem() {
    let rt = runtime();
    let (s, run) = rt.block_on(async {
        let s = Server::start(memory(), |a| a).await;
        let run = s.enqueue("chatty", serde_json::json!({})).await;
        s.finished(&run).await;
        (s, run)
    });
    let params = [
        ("/api/v1/runs", "state"),
        ("/api/v1/runs", "cursor"),
        ("/api/v1/runs", "limit"),
        ("/api/v1/runs", "workflow"),
        ("/api/v1/runs/RUN/nodes", "cursor"),
        ("/api/v1/runs/RUN/nodes", "limit"),
        ("/api/v1/runs/RUN/nodes/talk/items", "cursor"),
        ("/api/v1/runs", "created_from"),
        ("/api/v1/runs", "q"),
        ("/api/v1/runs/counts", "state"),
        ("/api/v1/runs/RUN/history", "after"),
        ("/api/v1/runs/RUN/logs", "level"),
        ("/api/v1/runs/RUN/logs", "tail"),
        ("/api/v1/runs/RUN/logs", "item"),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    let strategy = (
        0..params.len(),
        prop_oneof![
            ".{0,40}",
            "[0-9a-f-]{0,40}",
            "-?[0-9]{1,25}",
            "p[0-9]{0,12}"
        ],
    );
    runner
        .run(&strategy, |(i, value)| {
            let (path, name) = params[i];
            let url = format!("{}?{name}={}", path.replace("RUN", &run), encode(&value));
            let (status, body) = rt.block_on(async {
                let r = s.get(&url).await;
                (r.status().as_u16(), r.text().await.unwrap())
            });
            let doc: Value = serde_json::from_str(&body).unwrap();
            prop_assert!(status == 200 || status == 400, "{url}: {status} {body}");
            if status == 400 {
                prop_assert!(
                    doc["culprit"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("query"),
                    "{url}: {body}"
                );
            }
            Ok(())
        })
        .unwrap();
    rt.block_on(s.stop());
}

#[test]
fn cursors_page_through_every_run_once() {
    let rt = runtime();
    let (s, ids) = rt.block_on(async {
        let s = Server::start(memory(), |a| a).await;
        let mut ids = Vec::new();
        for _ in 0..23 {
            ids.push(s.enqueue("typed", serde_json::json!({"x": 1})).await);
        }
        (s, ids)
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    });
    runner
        .run(&(1usize..30), |limit| {
            let seen = rt.block_on(async {
                let mut seen = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let url = match &cursor {
                        Some(c) => format!("/api/v1/runs?workflow=typed&limit={limit}&cursor={c}"),
                        None => format!("/api/v1/runs?workflow=typed&limit={limit}"),
                    };
                    let page = s.json(&url).await;
                    for r in page["items"].as_array().unwrap() {
                        seen.push(r["id"].as_str().unwrap().to_owned());
                    }
                    match page["next_cursor"].as_str() {
                        Some(c) => cursor = Some(c.to_owned()),
                        None => break seen,
                    }
                }
            });
            let unique: HashSet<&String> = seen.iter().collect();
            prop_assert_eq!(unique.len(), seen.len(), "a run twice");
            prop_assert_eq!(unique, ids.iter().collect::<HashSet<_>>());
            let mut sorted = seen.clone();
            sorted.sort_by(|a, b| b.cmp(a));
            prop_assert_eq!(sorted, seen, "newest first");
            Ok(())
        })
        .unwrap();
    rt.block_on(s.stop());
}
