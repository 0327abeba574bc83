//! The dashboard's pages over plain HTTP: escaping, roles, login, headers, grouping.

use std::time::{Duration, SystemTime};

use dagforge::prelude::*;
use dagforge::store::{Lease, RunRecord};
use dagforge::workflow::WorkflowSnapshot;
use dagforge::{Event, EventKind, NodeEvent, RunId};
use serde_json::json;

use super::{HOSTILE, OPERATOR_TOKEN, READER_TOKEN, Site, pipeline};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn page(
    site: &Site,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut r = client().get(site.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

/// Records a run whose node id, inputs, log line and output are hostile (as a store
/// written by someone else could hold them).
async fn hostile_run(site: &Site) -> RunId {
    let mut wf = Workflow::builder("evil");
    wf.add("n", super::Nop);
    let spec = serde_json::to_value(wf.build().unwrap().spec()).unwrap();
    let spec: WorkflowSnapshot = serde_json::from_str(
        &spec
            .to_string()
            .replace("\"n\"", &serde_json::to_string(HOSTILE).unwrap()),
    )
    .unwrap();
    let id = RunId::new();
    let record = RunRecord::new(id, "evil".into(), "1".into(), spec, json!({ "q": HOSTILE }));
    let lease = Lease::new("test", 1);
    site.store
        .create_run(&record, &lease, Duration::from_secs(30))
        .await
        .unwrap();
    let at = SystemTime::now();
    let kinds = vec![
        EventKind::Run {
            from: RunState::Pending,
            to: RunState::Running,
        },
        EventKind::Node(NodeEvent::new(
            HOSTILE,
            None,
            1,
            NodeState::Ready,
            NodeState::Running,
        )),
        EventKind::Log {
            node: HOSTILE.into(),
            item: None,
            attempt: 1,
            level: LogLevel::Error,
            message: HOSTILE.into(),
        },
        EventKind::Node(
            NodeEvent::new(HOSTILE, None, 1, NodeState::Running, NodeState::Succeeded)
                .with_output(json!({ "html": HOSTILE })),
        ),
    ];
    let events: Vec<Event> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, k)| Event::new(id, i as u64 + 1, at, k))
        .collect();
    site.store.append(id, &lease, &events).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_are_escaped_in_every_page() {
    let site = Site::start(&[], |a| a).await;
    let id = hostile_run(&site).await;
    for path in [
        "/".to_owned(),
        "/?workflow=evil".to_owned(),
        format!("/runs/{id}"),
        format!("/ui/rows/{id}"),
        format!("/?q={}", urlencode(HOSTILE)),
        format!("/workflows/{}", urlencode(HOSTILE)),
    ] {
        let (status, _, body) = page(&site, &path, None).await;
        assert!(status < 500, "{path}: {status}");
        assert!(
            !body.contains("<script>window"),
            "{path} carries the raw script: {body}"
        );
        assert!(!body.contains("<img"), "{path} carries a raw img: {body}");
        assert!(!body.contains("\"'>"), "{path} breaks an attribute");
    }
    let (_, _, run) = page(&site, &format!("/runs/{id}"), None).await;
    assert!(
        run.contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;"),
        "the inputs are shown as text"
    );
    assert!(
        run.contains("\\u003cscript\\u003e"),
        "the node index is JSON with escapes"
    );
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_login_and_a_reader_gets_no_action() {
    let site = Site::with_tokens().await;
    let run = site.enqueue("slow", json!({ "n": 100 })).await;
    let path = format!("/runs/{run}");

    let (status, _, body) = page(&site, &path, None).await;
    assert_eq!(status, 401);
    assert!(body.contains("form class=\"login\""), "{body}");
    assert!(
        body.contains(&format!("value=\"{path}\"")),
        "goes back to the page once in"
    );
    assert!(!body.contains(OPERATOR_TOKEN) && !body.contains(READER_TOKEN));

    let (status, _, body) = page(&site, &path, Some(READER_TOKEN)).await;
    assert_eq!(status, 200);
    assert!(
        !body.contains("act-cancel"),
        "a reader is offered no action"
    );
    assert!(body.contains("read-only"));
    let refused = client()
        .post(site.url(&format!("/api/v1/runs/{run}/cancel")))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let (status, _, body) = page(&site, &path, Some(OPERATOR_TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.contains("act-cancel"));

    // A form login sets the session cookie and goes back to the page.
    let login = client()
        .post(site.url("/api/v1/session"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={READER_TOKEN}&next={}", urlencode(&path)))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()["location"], path.as_str());
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let r = client()
        .get(site.url(&path))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("name=\"csrf-token\""),
        "a session page carries its CSRF token"
    );
    site.engine.cancel_recorded(run).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_security_headers_and_assets_are_embedded() {
    let site = Site::start(&[], |a| a).await;
    for path in [
        "/",
        "/workflows",
        "/workflows/catalog-integration",
        "/schedules",
        "/engines",
    ] {
        let (status, headers, body) = page(&site, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(!body.contains("<script>"), "{path}: no inline script");
    }
    for (file, mime) in [
        ("app.js", "text/javascript"),
        ("run.js", "text/javascript"),
        ("panel.js", "text/javascript"),
        ("timeline.js", "text/javascript"),
        ("app.css", "text/css"),
    ] {
        let r = client()
            .get(site.url(&format!("/ui/assets/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{file}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(mime)
        );
    }
    let r = client()
        .get(site.url("/ui/assets/..%2fmod.rs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (status, _, body) = page(&site, "/?state=bogus", None).await;
    assert_eq!(status, 400);
    assert!(body.contains("a run state is one of"), "{body}");
    let (status, _, _) = page(&site, "/runs/not-a-run", None).await;
    assert_eq!(status, 400);
    let (status, _, _) = page(&site, &format!("/runs/{}", RunId::new()), None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_workflow_draws_grouped() {
    let big = pipeline(10, 1000);
    let site = Site::start(std::slice::from_ref(&big), |a| a).await;
    let started = std::time::Instant::now();
    let (status, _, body) = page(&site, "/workflows/pipeline", None).await;
    let first = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(
        body.matches("<g class=\"n ").count(),
        10,
        "one group per stage"
    );
    assert!(
        body.contains("s3-… × 1000"),
        "a group is named by its ids' common prefix"
    );
    let started = std::time::Instant::now();
    let _ = page(&site, "/workflows/pipeline", None).await;
    let again = started.elapsed();
    println!("pipeline 10×1000 workflow page: {first:?} first, {again:?} with the cached layout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_opens_with_its_item_counters() {
    let site = Site::start(&[], |a| a).await;
    let started = std::time::Instant::now();
    let id = super::record_fan_out(&site, 10_000, 6_000).await;
    let recorded = started.elapsed();
    let started = std::time::Instant::now();
    let (status, _, body) = page(&site, &format!("/runs/{id}"), None).await;
    let served = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("✓ 6000 ✗ 0 ▶ 10 · 6010"), "the item counters");
    println!(
        "10,000-item fan-out (6,010 started): recorded in {recorded:?}, run page served in {served:?}, {} bytes",
        body.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_table_pages_by_cursor_and_filters() {
    let site = Site::start(&[], |a| a).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            site.enqueue("parrot", json!({ "text": format!("run {i}") }))
                .await,
        );
    }
    let rows = |body: &str| -> Vec<String> {
        body.split("<tr data-run=\"")
            .skip(1)
            .map(|r| r[..36].to_owned())
            .collect()
    };
    let (status, _, first) = page(&site, "/?limit=5&workflow=parrot", None).await;
    assert_eq!(status, 200, "{first}");
    let first_rows = rows(&first);
    assert_eq!(first_rows.len(), 5, "{first}");
    let newest: Vec<String> = ids.iter().rev().take(5).map(ToString::to_string).collect();
    assert_eq!(first_rows, newest, "newest first");
    let next = first
        .split("id=\"next\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("an `older` link")
        .replace("&amp;", "&");
    assert!(next.contains("cursor="), "{next}");
    assert!(next.contains("limit=5"), "the page size is kept: {next}");
    let (status, _, second) = page(&site, &next, None).await;
    assert_eq!(status, 200, "{second}");
    let second_rows = rows(&second);
    let oldest: Vec<String> = ids.iter().rev().skip(5).map(ToString::to_string).collect();
    assert_eq!(second_rows, oldest, "the rest, no repeat");
    assert!(!second.contains("id=\"next\""), "the last page");
    let (_, _, none) = page(&site, "/?workflow=slow", None).await;
    assert!(rows(&none).is_empty() && none.contains("No runs match."));
    let (status, _, bad) = page(&site, "/?cursor=nonsense", None).await;
    assert_eq!(status, 400, "{bad}");
}
