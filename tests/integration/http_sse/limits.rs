//! The streams' limits: slow clients, the cap on open streams, keep-alives, bad ids,
//! authentication.

use std::sync::Arc;
use std::time::Duration;

use dagforge::RunId;
use dagforge::http::Role;
use dagforge::http::sse::Streams;
use dagforge::prelude::*;
use dagforge::store::Store;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Chunky, Server, engine, parse, recorded, wide};

/// A client that stops reading falls more than its buffer behind the live events: it
/// gets `event: overflow` with the id to resume from after what it had, and the
/// stream closes; resuming from that id loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_sent_overflow_and_closed() {
    // ~12 MB of log lines, after a 300 ms gate that lets the client go live first.
    let wf = wide(
        "chatty",
        100,
        300,
        Chunky {
            lines: 60,
            size: 2_000,
            ms: 0,
        },
    );
    let store: Arc<dyn Store> = Arc::new(dagforge::store::MemoryStore::new());
    let engine = engine(Arc::clone(&store), &[&wf]);
    let server = Server::start(&engine, Streams::new().buffer(16), |a| a).await;
    let run = engine.start(&wf, ()).await.unwrap();

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = server.base.trim_start_matches("http://").parse().unwrap();
    let mut conn = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /api/v1/runs/{}/events HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
        run.id()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    // Read until the gate's start is seen, then stop reading until the run is over.
    let mut raw = Vec::new();
    let mut buf = vec![0; 4096];
    while !String::from_utf8_lossy(&raw).contains("\"node\":\"gate\"") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early");
        raw.extend_from_slice(&buf[..n]);
    }
    let id = run.id();
    run.wait().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), conn.read_to_end(&mut raw))
        .await
        .expect("the server closes the stream")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let messages: Vec<_> = body.split("\n\n").filter_map(parse).collect();
    let (last, before) = messages.split_last().unwrap();
    assert_eq!(last.event, "overflow", "{:?}", &last);
    let resume = last.id.clone().unwrap();
    assert_eq!(last.data["resume_after"], resume);
    let seqs: Vec<u64> = before.iter().map(super::Msg::seq).collect();
    let n = recorded(&store, id).await;
    assert!((seqs.len() as u64) < n, "it did fall behind");
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(resume, seqs.len().to_string());

    // Resumed: exactly the rest.
    let mut r = server
        .stream(&format!("/api/v1/runs/{id}/events"), Some(&resume))
        .await;
    let mut next = seqs.len() as u64 + 1;
    loop {
        let m = r.next().await.unwrap();
        if m.event == "end" {
            break;
        }
        assert_eq!(m.seq(), next);
        next += 1;
    }
    assert_eq!(next, n + 1);
}

/// Beyond the cap a stream is refused with a `503` problem; a closed stream gives its
/// place back.
#[tokio::test]
async fn the_cap_on_open_streams() {
    let engine = Engine::builder()
        .store(dagforge::store::MemoryStore::new())
        .build();
    let streams = Streams::new().max_streams(2);
    let server = Server::start(&engine, streams.clone(), |a| a).await;
    let first = server.stream("/api/v1/events", None).await;
    let _second = server.stream("/api/v1/events", None).await;
    let r = server.get("/api/v1/events").send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["type"], "urn:dagforge:problem:too-many-streams");
    assert_eq!(streams.open_streams(), 2);
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = server.get("/api/v1/events").send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no place given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A quiet stream sends keep-alive comments.
#[tokio::test]
async fn keep_alives_on_a_quiet_stream() {
    let engine = Engine::builder()
        .store(dagforge::store::MemoryStore::new())
        .build();
    let server = Server::start(
        &engine,
        Streams::new().keep_alive(Duration::from_millis(30)),
        |a| a,
    )
    .await;
    let mut r = server.get("/api/v1/events").send().await.unwrap();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while text.matches(": keep-alive\n\n").count() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "{text:?}");
        let c = r.chunk().await.unwrap().unwrap();
        text.push_str(std::str::from_utf8(&c).unwrap());
    }
    assert!(text.starts_with("retry: "), "{text:?}");
}

async fn problem(r: reqwest::Response, status: u16, kind: &str, culprit: &str) {
    assert_eq!(r.status(), status);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["type"], format!("urn:dagforge:problem:{kind}"), "{doc}");
    assert_eq!(doc["culprit"], culprit, "{doc}");
}

/// Bad ids, cursors and filters are problems before any streaming.
#[tokio::test]
async fn bad_last_event_ids_and_unknown_runs() {
    let wf = wide(
        "w",
        1,
        0,
        Chunky {
            lines: 0,
            size: 0,
            ms: 0,
        },
    );
    let engine = engine(Arc::new(dagforge::store::MemoryStore::new()), &[&wf]);
    let server = Server::start(&engine, Streams::new(), |a| a).await;
    let run = engine.start(&wf, ()).await.unwrap().id();
    let path = format!("/api/v1/runs/{run}/events");
    for bad in [
        "abc",
        "-1",
        "1.5",
        "1-2-3",
        "99999999999999999999999",
        &"9".repeat(70),
    ] {
        let r = server
            .get(&path)
            .header("Last-Event-ID", bad)
            .send()
            .await
            .unwrap();
        problem(r, 400, "bad-cursor", "header.last-event-id").await;
    }
    let r = server.get(&format!("{path}?after=x")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = server
        .get(&format!("/api/v1/runs/{}/events", RunId::new()))
        .send()
        .await
        .unwrap();
    problem(r, 404, "run-not-found", "path.id").await;
    let r = server
        .get("/api/v1/runs/not-a-run/events")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    for bad in ["7", "1-2", "a-b-c", "1-2-3-4"] {
        let r = server
            .get("/api/v1/events")
            .header("Last-Event-ID", bad)
            .send()
            .await
            .unwrap();
        problem(r, 400, "bad-cursor", "header.last-event-id").await;
    }
    let r = server.get("/api/v1/events?after=zz").send().await.unwrap();
    problem(r, 400, "bad-cursor", "query.after").await;
    // A cursor past the feed's end was never handed out.
    let r = server
        .get("/api/v1/events")
        .header("Last-Event-ID", "999999-0-1")
        .send()
        .await
        .unwrap();
    problem(r, 400, "bad-cursor", "header.last-event-id").await;
    // Both streams are in the OpenAPI document.
    let doc: Value = server
        .get("/api/v1/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in ["/api/v1/events", "/api/v1/runs/{id}/events"] {
        assert!(
            doc["paths"][p]["get"]["responses"]["200"].is_object(),
            "{p}"
        );
    }
    let long = "w".repeat(201);
    let r = server
        .get(&format!("/api/v1/events?workflow={long}"))
        .send()
        .await
        .unwrap();
    problem(r, 400, "bad-query", "query.workflow").await;
}

/// The streams follow the API's rules: a token is needed when one is configured, and
/// the read-only role suffices.
#[tokio::test]
async fn streams_need_a_token_and_the_read_role_suffices() {
    let wf = wide(
        "w",
        1,
        0,
        Chunky {
            lines: 0,
            size: 0,
            ms: 0,
        },
    );
    let engine = engine(Arc::new(dagforge::store::MemoryStore::new()), &[&wf]);
    let server = Server::start(&engine, Streams::new(), |a| {
        a.token("reader-token-0123456789", Role::ReadOnly)
    })
    .await;
    let handle = engine.start(&wf, ()).await.unwrap();
    let run = handle.id();
    handle.wait().await.unwrap();
    let path = format!("/api/v1/runs/{run}/events");
    for p in [path.as_str(), "/api/v1/events"] {
        let r = server.get(p).send().await.unwrap();
        assert_eq!(r.status(), 401, "{p}");
        let r = server.get(p).bearer_auth("wrong").send().await.unwrap();
        assert_eq!(r.status(), 401, "{p}");
    }
    let r = server
        .get(&path)
        .bearer_auth("reader-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("event: end\n"), "{text}");
}
