//! The fake API server's routes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::kubelet::{create_pod, delete_pod, uuid_hex};
use super::{Fake, matches};

type Q = Query<HashMap<String, String>>;

pub(crate) fn router(fake: Fake) -> Router {
    Router::new()
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs",
            get(list_jobs).post(create_job),
        )
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
            get(get_job).delete(delete_job),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods",
            get(list_pods).delete(delete_pods),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}", get(get_pod))
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(log))
        .with_state(fake)
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn seen(fake: &Fake, method: &str, path: String) {
    fake.lock().requests.push((method.into(), path));
}

async fn create_job(
    AxumState(fake): AxumState<Fake>,
    Path(ns): Path<String>,
    axum::Json(mut job): axum::Json<Value>,
) -> Response {
    seen(&fake, "POST", format!("jobs/{ns}"));
    let name = job["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let mut st = fake.lock();
    if st.switches.forbid_create {
        let msg = format!(
            "jobs.batch is forbidden: User \"system:serviceaccount:{ns}:default\" cannot create \
             resource \"jobs\" in API group \"batch\" in the namespace \"{ns}\""
        );
        return status(403, "Forbidden", &msg);
    }
    if st.jobs.contains_key(&name) {
        return status(
            409,
            "AlreadyExists",
            &format!("jobs.batch \"{name}\" already exists"),
        );
    }
    job["metadata"]["uid"] = json!(uuid_hex());
    job["metadata"]["creationTimestamp"] =
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    job["status"] = json!({});
    fake.record(&mut st, "jobs", "ADDED", &mut job);
    st.jobs.insert(name.clone(), job.clone());
    st.created.push(name.clone());
    create_pod(&fake, &mut st, &job);
    if st.switches.conflict_on_create {
        return status(
            409,
            "AlreadyExists",
            &format!("jobs.batch \"{name}\" already exists"),
        );
    }
    (StatusCode::CREATED, axum::Json(job)).into_response()
}

fn list(fake: &Fake, kind: &'static str, q: &HashMap<String, String>) -> Value {
    let st = fake.lock();
    let sel = q.get("labelSelector").map(String::as_str);
    let items: Vec<Value> = if kind == "jobs" {
        st.jobs
            .values()
            .filter(|j| matches(sel, &j["metadata"]["labels"]))
            .cloned()
            .collect()
    } else {
        st.pods
            .values()
            .map(|p| &p.object)
            .filter(|p| matches(sel, &p["metadata"]["labels"]))
            .cloned()
            .collect()
    };
    let (api, list_kind) = if kind == "jobs" {
        ("batch/v1", "JobList")
    } else {
        ("v1", "PodList")
    };
    json!({"apiVersion": api, "kind": list_kind,
        "metadata": {"resourceVersion": st.rv.to_string()}, "items": items})
}

async fn list_jobs(
    AxumState(fake): AxumState<Fake>,
    Path(ns): Path<String>,
    Query(q): Q,
) -> Response {
    seen(&fake, "GET", format!("jobs/{ns}"));
    if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return watch(fake, "jobs", &q);
    }
    axum::Json(list(&fake, "jobs", &q)).into_response()
}

async fn list_pods(
    AxumState(fake): AxumState<Fake>,
    Path(ns): Path<String>,
    Query(q): Q,
) -> Response {
    seen(&fake, "GET", format!("pods/{ns}"));
    if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return watch(fake, "pods", &q);
    }
    axum::Json(list(&fake, "pods", &q)).into_response()
}

async fn get_job(
    AxumState(fake): AxumState<Fake>,
    Path((_, name)): Path<(String, String)>,
) -> Response {
    match fake.job(&name) {
        Some(j) => axum::Json(j).into_response(),
        None => status(404, "NotFound", &format!("jobs.batch \"{name}\" not found")),
    }
}

async fn get_pod(
    AxumState(fake): AxumState<Fake>,
    Path((_, name)): Path<(String, String)>,
) -> Response {
    match fake.lock().pods.get(&name) {
        Some(p) => axum::Json(p.object.clone()).into_response(),
        None => status(404, "NotFound", &format!("pods \"{name}\" not found")),
    }
}

/// `gracePeriodSeconds` and `propagationPolicy` of a delete, from its body or query.
fn delete_options(q: &HashMap<String, String>, body: &Bytes) -> (Option<u64>, String) {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let grace = body["gracePeriodSeconds"]
        .as_u64()
        .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()));
    let policy = body["propagationPolicy"]
        .as_str()
        .or(q.get("propagationPolicy").map(String::as_str))
        .unwrap_or("Background")
        .to_owned();
    (grace, policy)
}

async fn delete_job(
    AxumState(fake): AxumState<Fake>,
    Path((_, name)): Path<(String, String)>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let (grace, policy) = delete_options(&q, &body);
    seen(&fake, "DELETE", format!("jobs/{name}?{policy}"));
    let mut st = fake.lock();
    let Some(mut job) = st.jobs.get(&name).cloned() else {
        return status(404, "NotFound", &format!("jobs.batch \"{name}\" not found"));
    };
    let pods: Vec<String> = st
        .pods
        .iter()
        .filter(|(_, p)| p.object["metadata"]["labels"]["job-name"] == json!(name))
        .map(|(n, _)| n.clone())
        .collect();
    // The pods keep their own grace period (a Job's delete options are not theirs),
    // unless the Job is deleted with none at all.
    let pod_grace = grace.filter(|g| *g == 0);
    if policy == "Foreground" && !pods.is_empty() {
        if job["metadata"]["deletionTimestamp"].is_null() {
            job["metadata"]["deletionTimestamp"] =
                json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            fake.record(&mut st, "jobs", "MODIFIED", &mut job);
            st.jobs.insert(name.clone(), job.clone());
        }
    } else if let Some(mut j) = st.jobs.remove(&name) {
        fake.record(&mut st, "jobs", "DELETED", &mut j);
    }
    for pod in pods {
        delete_pod(&fake, &mut st, &pod, pod_grace);
    }
    axum::Json(job).into_response()
}

async fn delete_pods(
    AxumState(fake): AxumState<Fake>,
    Path(_): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let (grace, _) = delete_options(&q, &body);
    let sel = q.get("labelSelector").cloned();
    seen(
        &fake,
        "DELETE",
        format!("pods?{}", sel.clone().unwrap_or_default()),
    );
    let mut st = fake.lock();
    let names: Vec<String> = st
        .pods
        .iter()
        .filter(|(_, p)| matches(sel.as_deref(), &p.object["metadata"]["labels"]))
        .map(|(n, _)| n.clone())
        .collect();
    for pod in names {
        delete_pod(&fake, &mut st, &pod, grace);
    }
    axum::Json(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}))
        .into_response()
}

fn stream_of(lines: impl futures_util::Stream<Item = Bytes> + Send + 'static) -> Response {
    use futures_util::StreamExt;
    Body::from_stream(lines.map(Ok::<_, Infallible>)).into_response()
}

/// A watch: the changes after `resourceVersion` that match, then new ones as they come;
/// 410 Gone (as an ERROR event) for a version older than the history kept.
fn watch(fake: Fake, kind: &'static str, q: &HashMap<String, String>) -> Response {
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let sel = q.get("labelSelector").cloned();
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(60u64)
        .min(60);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let too_old = from != 0 && from < fake.lock().oldest;
    let rx = fake.changed.subscribe();
    let state = (fake, rx, from, 0usize, too_old, false);
    let events =
        futures_util::stream::unfold(state, move |(fake, mut rx, mut last, sent, gone, done)| {
            let sel = sel.clone();
            async move {
                if done {
                    return None;
                }
                if gone {
                    let e = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                    "metadata": {}, "status": "Failure", "reason": "Expired", "code": 410,
                    "message": format!("too old resource version: {last}")}});
                    return Some((line(&e), (fake, rx, last, sent, false, true)));
                }
                loop {
                    let (next, drop_after) = {
                        let st = fake.lock();
                        let next = st
                            .history
                            .iter()
                            .find(|c| {
                                c.rv > last
                                    && c.kind == kind
                                    && matches(sel.as_deref(), &c.object["metadata"]["labels"])
                            })
                            .cloned();
                        if next.is_none() {
                            last = last.max(st.rv);
                        }
                        (next, st.switches.drop_watches_after)
                    };
                    if drop_after.is_some_and(|n| sent >= n) {
                        return None;
                    }
                    if let Some(c) = next {
                        let e = json!({"type": c.event, "object": c.object});
                        return Some((line(&e), (fake, rx, c.rv, sent + 1, false, false)));
                    }
                    match tokio::time::timeout_at(deadline, rx.changed()).await {
                        Ok(Ok(())) => {}
                        _ => return None,
                    }
                }
            }
        });
    stream_of(events)
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// `pods/{name}/log`: the lines since `sinceTime`, with timestamps if asked, followed
/// until the container ends (or the drop switch cuts the connection).
async fn log(
    AxumState(fake): AxumState<Fake>,
    Path((_, pod)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    seen(
        &fake,
        "GET",
        format!(
            "log/{pod}?since={}",
            q.get("sinceTime").cloned().unwrap_or_default()
        ),
    );
    if !fake.lock().pods.contains_key(&pod) {
        return status(404, "NotFound", &format!("pods \"{pod}\" not found"));
    }
    let follow = q.get("follow").is_some_and(|f| f == "true");
    let stamps = q.get("timestamps").is_some_and(|f| f == "true");
    let since = q
        .get("sinceTime")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    let rx = fake.changed.subscribe();
    let opened = tokio::time::Instant::now();
    let lines = futures_util::stream::unfold(
        (fake, rx, 0usize, 0usize),
        move |(fake, mut rx, mut at, sent)| {
            let pod = pod.clone();
            async move {
                loop {
                    let (next, ended, cut) = {
                        let st = fake.lock();
                        let entry = st.pods.get(&pod)?;
                        while entry
                            .log
                            .get(at)
                            .is_some_and(|l| since.is_some_and(|s| l.at < s))
                        {
                            at += 1;
                        }
                        let cut = st
                            .switches
                            .drop_logs_after
                            .is_some_and(|d| opened.elapsed() >= d)
                            && !entry.ended;
                        (entry.log.get(at).cloned(), entry.ended, cut)
                    };
                    if cut {
                        return None;
                    }
                    if let Some(l) = next {
                        let text = if stamps {
                            format!(
                                "{} {}\n",
                                l.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                                l.text
                            )
                        } else {
                            format!("{}\n", l.text)
                        };
                        return Some((Bytes::from(text), (fake, rx, at + 1, sent + 1)));
                    }
                    if !follow || ended {
                        return None;
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(500), rx.changed()).await;
                }
            }
        },
    );
    stream_of(lines)
}
