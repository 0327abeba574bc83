//! Every run endpoint over each store: enqueue, list with filters and cursors, detail,
//! nodes, items, history, logs, artifacts, graphs, cancel, retry, the run's event
//! stream.

use std::sync::Arc;

use dagforge::store::Store;
use serde_json::{Value, json};

use super::{Server, problem};

/// The tour every store takes.
async fn tour(store: Arc<dyn Store>) {
    let s = Server::start(store, |a| a).await;

    // Catalogue.
    let wfs = s.json("/api/v1/workflows").await;
    let names: Vec<&str> = wfs
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["broken", "chatty", "squares", "typed"]);
    let typed = s.json("/api/v1/workflows/typed").await;
    assert_eq!(typed["params"][0], json!({"name": "x", "required": true}));
    assert_eq!(typed["versions"], json!(["1"]));
    assert_eq!(typed["spec"]["nodes"][0]["id"], "square");
    let jobs = s.json("/api/v1/jobs").await;
    let square = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "square")
        .unwrap();
    assert_eq!(square["workflows"], json!(["squares v1", "typed v1"]));
    assert!(square["spec"].is_object(), "{square}");
    let graph = s.json("/api/v1/workflows/squares/graph").await;
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 2, "{graph}");

    // Enqueue and follow.
    let ok = s.enqueue("squares", json!({})).await;
    let bad = s.enqueue("broken", Value::Null).await;
    let talk = s.enqueue("chatty", json!({"msg": "hi"})).await;
    let done = s.finished(&ok).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["workflow"], "squares");
    assert_eq!(done["version"], "1");
    assert_eq!(done["nodes_total"], 2);
    assert_eq!(done["nodes_by_state"], json!({"succeeded": 2}));
    assert!(
        done["duration_ms"].is_u64() && done["started_at"].is_string(),
        "{done}"
    );
    assert_eq!(s.finished(&bad).await["state"], "failed");
    assert_eq!(s.finished(&talk).await["state"], "succeeded");

    // Nodes, a node, items.
    let nodes = s.json(&format!("/api/v1/runs/{ok}/nodes")).await;
    assert_eq!(nodes["total"], 2);
    let square = &nodes["items"][1];
    assert_eq!(square["id"], "square");
    assert_eq!(square["fan_out"], true);
    assert_eq!(square["items"], json!({"succeeded": 3}));
    assert_eq!(square["output"], json!([0, 1, 4]), "{square}");
    assert_eq!(square["output_bytes"], 7);
    let paged = s.json(&format!("/api/v1/runs/{ok}/nodes?limit=1")).await;
    assert_eq!(paged["items"].as_array().unwrap().len(), 1);
    let next = paged["next_cursor"].as_str().unwrap();
    let rest = s
        .json(&format!("/api/v1/runs/{ok}/nodes?limit=1&cursor={next}"))
        .await;
    assert_eq!(rest["items"][0]["id"], "square");
    assert!(rest.get("next_cursor").is_none(), "{rest}");
    let items = s
        .json(&format!("/api/v1/runs/{ok}/nodes/square/items?limit=2"))
        .await;
    assert_eq!(items["items"][1]["item"], 1);
    assert_eq!(items["items"][1]["output"], 1);
    assert_eq!(items["items"][1]["attempts"], 1);
    let c = items["next_cursor"].as_str().unwrap();
    let last = s
        .json(&format!("/api/v1/runs/{ok}/nodes/square/items?cursor={c}"))
        .await;
    assert_eq!(last["items"][0]["output"], 4);
    let mut seen = Vec::new();
    let mut url = format!("/api/v1/runs/{ok}/nodes/square/items?limit=1");
    loop {
        let page = s.json(&url).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["item"].as_u64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/runs/{ok}/nodes/square/items?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, [0, 1, 2], "every item once, in order");
    let boom = s.json(&format!("/api/v1/runs/{bad}/nodes/boom")).await;
    assert_eq!(boom["state"], "failed");
    assert_eq!(boom["error"]["message"], "boom", "{boom}");
    assert_eq!(boom["attempt_list"][0]["attempt"], 1);
    assert_eq!(boom["attempt_list"][0]["state"], "failed");

    // Every attempt (a timeline), paged.
    let all = s.json(&format!("/api/v1/runs/{bad}/attempts")).await;
    let rows = all["items"].as_array().unwrap().len();
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["node"] == "boom" && a["attempt"] == 1 && a["state"] == "failed"),
        "{all}"
    );
    let mut paged = 0;
    let mut url = format!("/api/v1/runs/{bad}/attempts?limit=1");
    loop {
        let page = s.json(&url).await;
        paged += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/runs/{bad}/attempts?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, rows);

    // History and logs.
    let h = s
        .json(&format!("/api/v1/runs/{talk}/history?limit=3"))
        .await;
    let seqs: Vec<u64> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(h["items"][0]["event"]["type"], "run");
    let after = h["next_after"].as_u64().unwrap();
    let h2 = s
        .json(&format!(
            "/api/v1/runs/{talk}/history?after={after}&limit=5000"
        ))
        .await;
    assert_eq!(h2["items"][0]["seq"], 4);
    let logs = s.json(&format!("/api/v1/runs/{talk}/logs")).await;
    let lines: Vec<&str> = logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["warming up", "saying hi", "almost done", "hi"]);
    let warn = s
        .json(&format!(
            "/api/v1/runs/{talk}/logs?level=warn&node=talk&attempt=1"
        ))
        .await;
    let levels: Vec<&str> = warn["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["warn", "error"]);
    let tail = s.json(&format!("/api/v1/runs/{talk}/logs?tail=1")).await;
    assert_eq!(tail["items"][0]["message"], "hi");
    let page = s.json(&format!("/api/v1/runs/{talk}/logs?limit=2")).await;
    let from = page["next_after"].as_u64().unwrap();
    let more = s
        .json(&format!("/api/v1/runs/{talk}/logs?after={from}"))
        .await;
    assert_eq!(more["items"][0]["message"], "almost done");
    assert_eq!(
        s.json(&format!("/api/v1/runs/{talk}/logs?node=nope")).await["items"],
        json!([])
    );
    assert_eq!(
        s.json(&format!("/api/v1/runs/{talk}/artifacts")).await,
        json!([])
    );

    // The run's graph, coloured.
    let svg = s
        .get(&format!("/api/v1/workflows/broken/graph.svg?run={bad}"))
        .await;
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    let text = svg.text().await.unwrap();
    assert!(
        text.starts_with("<?xml") && text.contains("failed"),
        "{text}"
    );
    let coloured = s
        .json(&format!("/api/v1/workflows/broken/graph?run={bad}"))
        .await;
    assert_eq!(
        coloured["states"],
        json!({"ok": "succeeded", "boom": "failed"})
    );

    // The list: filters and keyset paging.
    let all = s.json("/api/v1/runs").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    assert_eq!(all["items"][0]["id"], talk.as_str(), "newest first");
    let failed = s.json("/api/v1/runs?state=failed").await;
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);
    assert_eq!(failed["items"][0]["id"], bad.as_str());
    let squares = s
        .json("/api/v1/runs?workflow=squares&state=SUCCEEDED")
        .await;
    assert_eq!(squares["items"][0]["id"], ok.as_str());
    let first = s.json("/api/v1/runs?limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = s
        .json(&format!("/api/v1/runs?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second["items"][0]["id"], ok.as_str());

    // Actions: cancel (finished: its final state), retry.
    let c = s
        .post(&format!("/api/v1/runs/{ok}/cancel"), &json!({}))
        .await;
    assert_eq!(c.status(), 200);
    assert_eq!(c.json::<Value>().await.unwrap()["state"], "succeeded");
    problem(
        s.post(
            &format!("/api/v1/runs/{ok}/retry"),
            &json!({"mode": "from_failed"}),
        )
        .await,
        409,
        "nothing-to-retry",
    )
    .await;
    let r = s
        .post(
            &format!("/api/v1/runs/{bad}/retry"),
            &json!({"mode": "from_failed"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let again = r.json::<Value>().await.unwrap();
    let again = again["id"].as_str().unwrap();
    let retried = s.finished(again).await;
    assert_eq!(retried["state"], "failed");
    let boom = s.json(&format!("/api/v1/runs/{again}/nodes/boom")).await;
    assert_eq!(
        boom["attempt_list"].as_array().unwrap().len(),
        2,
        "the first attempt stays on record: {boom}"
    );
    let fresh = s
        .post(&format!("/api/v1/runs/{ok}/retry"), &json!({}))
        .await;
    assert_eq!(fresh.status(), 201);
    let loc = fresh.headers()["location"].to_str().unwrap().to_owned();
    assert!(loc.starts_with("/api/v1/runs/"), "{loc}");
    let id = fresh.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.finished(&id).await["state"], "succeeded");

    // Enqueue options: later, priority, key, lane.
    let later = s
        .post(
            "/api/v1/runs",
            &json!({"workflow": "typed", "inputs": {"x": 4}, "delay_ms": 3_600_000, "priority": 7, "key": "k-1", "lane": "slow"}),
        )
        .await;
    assert_eq!(later.status(), 201);
    let later = later.json::<Value>().await.unwrap();
    assert!(later["not_before"].is_string(), "{later}");
    let id = later["id"].as_str().unwrap();
    let run = s.json(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(
        (
            run["priority"].clone(),
            run["idempotency_key"].clone(),
            run["lane"].clone(),
            run["state"].clone()
        ),
        (json!(7), json!("k-1"), json!("slow"), json!("pending"))
    );
    assert_eq!(run["inputs"], json!({"x": 4}));
    assert_eq!(s.json("/api/v1/runs?key=k-1").await["items"][0]["id"], id);
    assert_eq!(s.json("/api/v1/runs?lane=slow").await["items"][0]["id"], id);
    let same = s
        .post(
            "/api/v1/runs",
            &json!({"workflow": "typed", "inputs": {"x": 4}, "key": "k-1"}),
        )
        .await;
    assert_eq!(
        same.json::<Value>().await.unwrap()["id"],
        id,
        "one run per key"
    );
    // Delayed: taken by the canceller at once and cancelled, not when it comes due.
    let c = s
        .post(&format!("/api/v1/runs/{id}/cancel"), &json!({}))
        .await;
    let c = c.json::<Value>().await.unwrap();
    assert_eq!(c["state"].as_str(), Some("cancelled"), "{c}");
    let now = s.enqueue("chatty", json!({})).await;
    let c = s
        .post(&format!("/api/v1/runs/{now}/cancel"), &json!({}))
        .await;
    let c = c.json::<Value>().await.unwrap();
    // Cancelled at once, or asked of the engine driving it, or it was done already.
    let state = c["state"].as_str().unwrap();
    assert_eq!(
        c["requested"],
        state == "pending" || state == "running",
        "{c}"
    );
    let end = s.finished(&now).await;
    assert!(
        ["cancelled", "succeeded"].contains(&end["state"].as_str().unwrap()),
        "{end}"
    );

    // The engine serving the store, from its heartbeat.
    let engines = s.json("/api/v1/engines").await;
    let e = &engines[0];
    assert_eq!(e["pid"], std::process::id());
    assert!(e["heartbeat_age_ms"].as_u64().unwrap() < 60_000, "{e}");
    assert!(e["runs_owned"].is_u64() && e["host"].is_string(), "{e}");

    // The run's event stream: a finished run's events, each with its id, then the end.
    let sse = s.get(&format!("/api/v1/runs/{talk}/events")).await;
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let text = sse.text().await.unwrap();
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|n| n.parse().unwrap())
        .collect();
    let total = s
        .json(&format!("/api/v1/runs/{talk}/history?limit=5000"))
        .await["items"]
        .as_array()
        .unwrap()
        .len() as u64;
    assert_eq!(ids, (1..=total).collect::<Vec<_>>());
    let resumed = s
        .client
        .get(s.url(&format!("/api/v1/runs/{talk}/events")))
        .header("last-event-id", "3")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let first = resumed
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap();
    assert_eq!(first, "4");

    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_endpoint_on_memory() {
    tour(super::memory()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_endpoint_on_sqlite() {
    tour(super::sqlite().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_endpoint_on_postgres() {
    let (store, pg) = super::postgres().await;
    tour(store).await;
    pg.drop_schema().await.unwrap();
}
