//! Every kind of problem the API answers with, as RFC 9457 documents naming the
//! culprit.

use serde_json::json;

use super::{Server, memory, problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_problem_kind_names_its_culprit() {
    let s = Server::start(memory(), |a| a.body_limit(4096)).await;
    let unknown = dagforge::RunId::new();

    let p = problem(s.get("/api/v1/nope").await, 404, "not-found").await;
    assert_eq!(p["value"], "/api/v1/nope");
    problem(
        s.client.patch(s.url("/api/v1/runs")).send().await.unwrap(),
        405,
        "method-not-allowed",
    )
    .await;
    // Path tricks: data, never a path.
    let p = problem(
        s.get("/api/v1/runs/..%2F..%2Fetc%2Fpasswd").await,
        400,
        "bad-run-id",
    )
    .await;
    assert_eq!(p["value"], "../../etc/passwd");
    problem(s.get("/api/v1//runs").await, 404, "not-found").await;
    let long = format!("/api/v1/{}", "x".repeat(5000));
    let p = problem(s.get(&long).await, 404, "not-found").await;
    assert!(p["value"].as_str().unwrap().chars().count() <= 201, "cut");
    let p = problem(s.get("/api/v1/runs/not-a-uuid").await, 400, "bad-run-id").await;
    assert_eq!(
        (p["culprit"].as_str(), p["value"].as_str()),
        (Some("path.id"), Some("not-a-uuid"))
    );
    let p = problem(s.get("/api/v1/runs?cursor=xyz").await, 400, "bad-cursor").await;
    assert_eq!(p["culprit"], "query.cursor");
    let p = problem(
        s.get(&format!("/api/v1/runs/{unknown}/nodes?cursor=q1"))
            .await,
        400,
        "bad-cursor",
    )
    .await;
    assert_eq!(p["value"], "q1");
    let p = problem(s.get("/api/v1/runs?state=bogus").await, 400, "bad-query").await;
    assert_eq!(
        (p["culprit"].as_str(), p["value"].as_str()),
        (Some("query.state"), Some("bogus"))
    );
    let p = problem(s.get("/api/v1/runs?limit=0").await, 400, "bad-query").await;
    assert_eq!(p["culprit"], "query.limit");
    let p = problem(
        s.get("/api/v1/runs?created_from=yesterday").await,
        400,
        "bad-query",
    )
    .await;
    assert_eq!(p["culprit"], "query.created_from");
    let p = problem(s.get("/api/v1/runs?q=not-hex!").await, 400, "bad-query").await;
    assert_eq!(p["culprit"], "query.q");
    let p = problem(
        s.get("/api/v1/runs?cursor=12_nope").await,
        400,
        "bad-cursor",
    )
    .await;
    assert_eq!(p["value"], "12_nope");
    problem(s.get("/api/v1/runs/counts?state=x").await, 400, "bad-query").await;
    let p = problem(s.get("/api/v1/runs?colour=red").await, 400, "bad-query").await;
    assert!(p["detail"].as_str().unwrap().contains("colour"), "{p}");
    let p = problem(
        s.get(&format!("/api/v1/runs/{unknown}/logs?level=loud"))
            .await,
        400,
        "bad-query",
    )
    .await;
    assert_eq!(p["culprit"], "query.level");
    let p = problem(
        s.client
            .get(s.url(&format!("/api/v1/runs/{unknown}/events")))
            .header("last-event-id", "abc")
            .send()
            .await
            .unwrap(),
        400,
        "bad-cursor",
    )
    .await;
    assert_eq!(p["culprit"], "header.last-event-id");

    let p = problem(
        s.get(&format!("/api/v1/runs/{unknown}")).await,
        404,
        "run-not-found",
    )
    .await;
    assert_eq!(p["value"], unknown.to_string());
    for path in [
        "nodes",
        "history",
        "logs",
        "artifacts",
        "events",
        "nodes/x",
        "nodes/x/items",
    ] {
        problem(
            s.get(&format!("/api/v1/runs/{unknown}/{path}")).await,
            404,
            "run-not-found",
        )
        .await;
    }
    problem(
        s.post(&format!("/api/v1/runs/{unknown}/cancel"), &json!({}))
            .await,
        404,
        "run-not-found",
    )
    .await;
    problem(
        s.post(&format!("/api/v1/runs/{unknown}/retry"), &json!({}))
            .await,
        404,
        "run-not-found",
    )
    .await;
    let id = s.enqueue("squares", json!({})).await;
    s.finished(&id).await;
    let p = problem(
        s.get(&format!("/api/v1/runs/{id}/nodes/ghost")).await,
        404,
        "node-not-found",
    )
    .await;
    assert_eq!(p["value"], "ghost");
    let p = problem(
        s.get("/api/v1/workflows/ghost").await,
        404,
        "workflow-not-found",
    )
    .await;
    assert_eq!(p["value"], "ghost");
    problem(
        s.get("/api/v1/workflows/typed?version=9").await,
        404,
        "workflow-not-found",
    )
    .await;
    problem(
        s.post("/api/v1/runs", &json!({"workflow": "ghost"})).await,
        404,
        "workflow-not-found",
    )
    .await;
    let p = problem(
        s.get("/api/v1/schedules/ghost").await,
        404,
        "schedule-not-found",
    )
    .await;
    assert_eq!(p["value"], "ghost");

    // Bodies.
    let p = problem(
        s.client
            .post(s.url("/api/v1/runs"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
        400,
        "bad-body",
    )
    .await;
    assert_eq!(p["culprit"], "body");
    let p = problem(
        s.post("/api/v1/runs", &json!({"workflow": 7})).await,
        400,
        "bad-body",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("workflow"), "{p}");
    problem(
        s.post("/api/v1/runs", &json!({"workflow": "typed", "surprise": 1}))
            .await,
        400,
        "bad-body",
    )
    .await;
    problem(
        s.client
            .post(s.url("/api/v1/runs"))
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap(),
        415,
        "unsupported-media-type",
    )
    .await;
    let big = json!({"workflow": "typed", "inputs": {"x": "y".repeat(10_000)}});
    problem(s.post("/api/v1/runs", &big).await, 413, "body-too-large").await;
    let chunks =
        futures_util::stream::iter((0..6).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    problem(
        s.client
            .post(s.url("/api/v1/runs"))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .unwrap(),
        413,
        "body-too-large",
    )
    .await;

    // JSON nested past serde_json's limit is a bad body, not a stack overflow.
    let deep = format!(
        "{{\"workflow\": \"typed\", \"inputs\": {{\"x\": {}1{}}}}}",
        "[".repeat(1500),
        "]".repeat(1500)
    );
    problem(
        s.client
            .post(s.url("/api/v1/runs"))
            .header("content-type", "application/json")
            .body(deep)
            .send()
            .await
            .unwrap(),
        400,
        "bad-body",
    )
    .await;

    // Inputs against the workflow's parameters.
    let p = problem(
        s.post(
            "/api/v1/runs",
            &json!({"workflow": "typed", "inputs": {"x": "abc"}}),
        )
        .await,
        422,
        "invalid-inputs",
    )
    .await;
    assert_eq!(p["culprit"], "body.inputs.x", "{p}");
    let p = problem(
        s.post(
            "/api/v1/runs",
            &json!({"workflow": "typed", "inputs": {"y": 1}}),
        )
        .await,
        422,
        "invalid-inputs",
    )
    .await;
    assert_eq!(p["culprit"], "body.inputs.y", "{p}");
    let p = problem(
        s.post("/api/v1/runs", &json!({"workflow": "typed", "inputs": {}}))
            .await,
        422,
        "invalid-inputs",
    )
    .await;
    assert_eq!(p["culprit"], "body.inputs.x", "{p}");
    problem(
        s.post("/api/v1/runs", &json!({"workflow": "typed", "inputs": [1]}))
            .await,
        422,
        "invalid-inputs",
    )
    .await;

    // Schedules.
    let p = problem(
        s.client
            .put(s.url("/api/v1/schedules/nightly"))
            .json(&json!({"workflow": "squares", "cron": "61 * * * *"}))
            .send()
            .await
            .unwrap(),
        422,
        "invalid-schedule",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("61"), "{p}");
    problem(
        s.client
            .put(s.url("/api/v1/schedules/nightly"))
            .json(&json!({"workflow": "squares", "cron": "0 2 * * *", "time_zone": "Mars/Olympus"}))
            .send()
            .await
            .unwrap(),
        422,
        "invalid-schedule",
    )
    .await;
    problem(
        s.client
            .put(s.url("/api/v1/schedules/nightly"))
            .json(&json!({"workflow": "squares", "cron": "0 2 * * *", "overlap": "sometimes"}))
            .send()
            .await
            .unwrap(),
        400,
        "bad-body",
    )
    .await;

    // Retries of runs in the wrong state.
    let later = s
        .post(
            "/api/v1/runs",
            &json!({"workflow": "typed", "inputs": {"x": 1}, "delay_ms": 3_600_000}),
        )
        .await;
    let later = later.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = problem(
        s.post(&format!("/api/v1/runs/{later}/retry"), &json!({}))
            .await,
        409,
        "run-not-finished",
    )
    .await;
    assert_eq!(p["value"], later);
    problem(
        s.post(
            &format!("/api/v1/runs/{id}/retry"),
            &json!({"mode": "from_failed"}),
        )
        .await,
        409,
        "nothing-to-retry",
    )
    .await;
    let p = problem(
        s.post(
            &format!("/api/v1/runs/{id}/retry"),
            &json!({"mode": "sideways"}),
        )
        .await,
        400,
        "bad-body",
    )
    .await;
    assert_eq!(p["culprit"], "body.mode");
    s.stop().await;
}
