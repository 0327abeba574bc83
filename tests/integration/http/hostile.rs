//! Hostile strings (HTML and script in node ids, log lines, outputs) come back as data
//! and are escaped where rendered; no secret appears in any response.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dagforge::prelude::*;
use dagforge::store::{Lease, RunRecord, Store};
use dagforge::workflow::WorkflowSnapshot;
use dagforge::{Event, NodeEvent, RunId};
use serde_json::{Value, json};

use super::{Server, memory};

const SCRIPT: &str = "<script>alert(\"x\")</script>' onload='alert(1)";

/// Records a run whose node id, log line and output are hostile (as a store written
/// by someone else could hold them).
async fn hostile_run(store: &Arc<dyn Store>) -> RunId {
    let mut wf = Workflow::builder("evil");
    wf.add("n", crate::common::Emit(json!(1)));
    let spec = serde_json::to_value(wf.build().unwrap().spec()).unwrap();
    let spec = serde_json::from_str::<WorkflowSnapshot>(
        &spec
            .to_string()
            .replace("\"n\"", &serde_json::to_string(SCRIPT).unwrap()),
    )
    .unwrap();
    let id = RunId::new();
    let record = RunRecord::new(id, "evil".into(), "1".into(), spec, json!({"q": SCRIPT}));
    let lease = Lease::new("test", 1);
    store
        .create_run(&record, &lease, Duration::from_secs(30))
        .await
        .unwrap();
    let at = SystemTime::now();
    let events = vec![
        Event::new(
            id,
            1,
            at,
            dagforge::EventKind::Run {
                from: RunState::Pending,
                to: RunState::Running,
            },
        ),
        Event::new(
            id,
            2,
            at,
            dagforge::EventKind::Node(NodeEvent::new(
                SCRIPT,
                None,
                1,
                NodeState::Ready,
                NodeState::Running,
            )),
        ),
        Event::new(
            id,
            3,
            at,
            dagforge::EventKind::Log {
                node: SCRIPT.into(),
                item: None,
                attempt: 1,
                level: LogLevel::Error,
                message: SCRIPT.into(),
            },
        ),
        Event::new(
            id,
            4,
            at,
            dagforge::EventKind::Node(
                NodeEvent::new(SCRIPT, None, 1, NodeState::Running, NodeState::Succeeded)
                    .with_output(json!({"html": SCRIPT})),
            ),
        ),
        Event::new(
            id,
            5,
            at,
            dagforge::EventKind::Run {
                from: RunState::Running,
                to: RunState::Succeeded,
            },
        ),
    ];
    store.append(id, &lease, &events).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_are_data() {
    let store = memory();
    let id = hostile_run(&store).await;
    let s = Server::start(store, |a| a).await;

    let r = s.get(&format!("/api/v1/runs/{id}/nodes")).await;
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let nodes: Value = r.json().await.unwrap();
    assert_eq!(nodes["items"][0]["id"], SCRIPT);
    assert_eq!(nodes["items"][0]["output"], json!({"html": SCRIPT}));
    let logs = s.json(&format!("/api/v1/runs/{id}/logs")).await;
    assert_eq!(logs["items"][0]["message"], SCRIPT);
    assert_eq!(logs["items"][0]["node"], SCRIPT);
    let run = s.json(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["inputs"]["q"], SCRIPT);
    // A node id with a slash and quotes, through the path.
    let path = format!("/api/v1/runs/{id}/nodes/{}", urlencode(SCRIPT));
    assert_eq!(s.json(&path).await["id"], SCRIPT);

    // Rendered: escaped, and the SVG cannot run script even opened on its own.
    let svg = s.get(&format!("/api/v1/runs/{id}/graph.svg")).await;
    assert_eq!(svg.status(), 200);
    assert!(
        svg.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    let text = svg.text().await.unwrap();
    assert!(!text.contains("<script"), "{text}");
    assert!(text.contains("&lt;script&gt;"), "{text}");

    // The live stream carries it as JSON data, on one line.
    let sse = s
        .get(&format!("/api/v1/runs/{id}/events"))
        .await
        .text()
        .await
        .unwrap();
    let data: Vec<Value> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|d| d.get("seq").is_some())
        .collect();
    assert_eq!(data.len(), 5, "{sse}");
    assert_eq!(data[2]["event"]["message"], SCRIPT);
    s.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_response() {
    const TOKEN: &str = "t0k3n-secret-0123456789abcdefghij";
    let s = Server::start(memory(), |a| a.token(TOKEN, dagforge::http::Role::Operator)).await;
    let auth = format!("Bearer {TOKEN}");
    let id = {
        let r = s
            .client
            .post(s.url("/api/v1/runs"))
            .header("authorization", &auth)
            .json(&json!({"workflow": "chatty", "inputs": {"msg": "x"}}))
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut bodies = Vec::new();
    for path in [
        "/api/v1/runs".to_owned(),
        format!("/api/v1/runs/{id}"),
        format!("/api/v1/runs/{id}/nodes"),
        format!("/api/v1/runs/{id}/history"),
        format!("/api/v1/runs/{id}/logs"),
        "/api/v1/workflows".to_owned(),
        "/api/v1/jobs".to_owned(),
        "/api/v1/schedules".to_owned(),
        "/api/v1/session".to_owned(),
        "/api/v1/openapi.json".to_owned(),
        "/api/v1/nope".to_owned(),
    ] {
        let r = s
            .client
            .get(s.url(&path))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        bodies.push(show(r).await);
    }
    let r = s
        .client
        .post(s.url("/api/v1/session"))
        .json(&json!({"token": TOKEN}))
        .send()
        .await
        .unwrap();
    bodies.push(show(r).await);
    let r = s
        .client
        .get(s.url("/api/v1/runs"))
        .header("authorization", format!("Bearer {TOKEN}x"))
        .send()
        .await
        .unwrap();
    bodies.push(show(r).await);
    for b in &bodies {
        assert!(!b.contains(TOKEN), "{b}");
    }
    s.stop().await;
}

/// A response's headers and body, as text.
async fn show(r: reqwest::Response) -> String {
    let headers = format!("{:?}", r.headers());
    format!("{headers} {}", r.text().await.unwrap())
}

/// A store that fails (its schema dropped under the server) is a `store-unavailable`
/// problem, and the password of its URL appears in no answer.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_is_a_problem_without_its_password() {
    const SECRET: &str = "Http5ecretPw";
    let base = crate::store::pg::url();
    let (scheme, rest) = base.split_once("://").unwrap();
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (user.split(':').next().unwrap_or("postgres"), host),
        None => ("postgres", authority),
    };
    let url = format!("{scheme}://{user}:{SECRET}@{host}/{db}");
    let schema = format!(
        "httpfail_{}",
        RunId::new().to_uuid_string().replace('-', "")
    );
    let store = dagforge::store::PostgresStore::options(&url)
        .schema(&schema)
        .connect()
        .await
        .unwrap();
    let s = Server::with_engine(
        Engine::builder()
            .shared_store(Arc::new(store.clone()))
            .build(),
        |a| a,
        false,
    )
    .await;
    assert_eq!(s.get("/api/v1/runs").await.status(), 200);
    store.drop_schema().await.unwrap();
    for path in [
        "/api/v1/runs".to_owned(),
        format!("/api/v1/runs/{}", RunId::new()),
        "/api/v1/schedules".to_owned(),
        "/api/v1/runs/counts".to_owned(),
    ] {
        let r = s.get(&path).await;
        let text = show_status(r).await;
        assert!(!text.contains(SECRET), "{text}");
        assert!(
            text.contains("urn:dagforge:problem:store-unavailable"),
            "{path}: {text}"
        );
    }
    s.stop().await;
}

/// A response's status, headers and body, as text.
#[cfg(feature = "postgres")]
async fn show_status(r: reqwest::Response) -> String {
    format!("{} {}", r.status(), show(r).await)
}
