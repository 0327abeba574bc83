//! Recurring schedules over HTTP: add, show (next fires in the schedule's time zone),
//! list, disable, enable, trigger, update, remove; on each store.

use std::sync::Arc;

use dagforge::store::Store;
use serde_json::{Value, json};

use super::{Server, problem};

async fn schedules(store: Arc<dyn Store>) {
    let s = Server::start(store, |a| a).await;
    let c = &s.client;
    let r = c
        .put(s.url("/api/v1/schedules/nightly"))
        .json(&json!({"workflow": "typed", "cron": "0 2 * * *", "time_zone": "Europe/Paris", "inputs": {"x": 3}, "overlap": "queue", "missed": {"catch_up": {"max": 2}}, "jitter_ms": 1000, "priority": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["id"], "nightly");
    assert_eq!(d["enabled"], true);
    assert_eq!(
        (
            d["overlap"].clone(),
            d["missed"].clone(),
            d["jitter_ms"].clone(),
            d["priority"].clone()
        ),
        (
            json!("queue"),
            json!({"catch_up": {"max": 2}}),
            json!(1000),
            json!(4)
        )
    );
    let fires: Vec<&str> = d["next_fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(fires.len(), 5, "{d}");
    for f in &fires {
        assert!(
            f.contains("T02:00:00+0"),
            "02:00 Paris time, with its offset: {f}"
        );
    }
    problem(
        c.put(s.url("/api/v1/schedules/bad"))
            .json(&json!({"workflow": "typed", "cron": "0 2 * * *", "inputs": {"x": "three"}}))
            .send()
            .await
            .unwrap(),
        422,
        "invalid-inputs",
    )
    .await;

    let list = s.json("/api/v1/schedules").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let off = s
        .post("/api/v1/schedules/nightly/disable", &json!({}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        (off["enabled"].clone(), off["next_fire"].clone()),
        (json!(false), Value::Null)
    );
    assert_eq!(off["next_fires"], json!([]));
    let on = s
        .post("/api/v1/schedules/nightly/enable", &json!({}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(on["enabled"], true);
    assert!(on["next_fire"].is_string());

    let r = s
        .post("/api/v1/schedules/nightly/trigger", &json!({}))
        .await;
    assert_eq!(r.status(), 201);
    let run = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = s.finished(&run).await;
    assert_eq!(done["state"], "succeeded");
    assert_eq!(done["inputs"], json!({"x": 3}));
    assert_eq!(done["priority"], 4);

    // An update keeps it enabled, changes its cron.
    let r = c
        .put(s.url("/api/v1/schedules/nightly"))
        .json(&json!({"workflow": "typed", "cron": "30 4 * * *", "inputs": {"x": 1}}))
        .send()
        .await
        .unwrap();
    let d: Value = r.json().await.unwrap();
    assert_eq!(
        (d["cron"].clone(), d["time_zone"].clone()),
        (json!("30 4 * * *"), json!("UTC"))
    );
    assert!(
        d["next_fires"][0]
            .as_str()
            .unwrap()
            .contains("T04:30:00+00:00"),
        "{d}"
    );

    let r = c
        .delete(s.url("/api/v1/schedules/nightly"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    problem(
        s.get("/api/v1/schedules/nightly").await,
        404,
        "schedule-not-found",
    )
    .await;
    problem(
        s.post("/api/v1/schedules/nightly/trigger", &json!({}))
            .await,
        404,
        "schedule-not-found",
    )
    .await;
    problem(
        c.delete(s.url("/api/v1/schedules/nightly"))
            .send()
            .await
            .unwrap(),
        404,
        "schedule-not-found",
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_on_memory() {
    schedules(super::memory()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_on_sqlite() {
    schedules(super::sqlite().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_on_postgres() {
    let (store, pg) = super::postgres().await;
    schedules(store).await;
    pg.drop_schema().await.unwrap();
}
