//! The HTTP API (`dagforge::http`) driven over real HTTP: REST endpoints, errors, auth.
//!
//! Every test starts a real server on `127.0.0.1:0` ([`Api::serve`]) and talks to it
//! with reqwest, on the memory store, and on SQLite and PostgreSQL where the store
//! matters.

mod auth;
mod cli;
mod hostile;
mod login;
mod openapi;
mod parsing;
mod problems;
mod runs;
mod schedules;

use std::sync::Arc;
use std::time::Duration;

use dagforge::http::Api;
use dagforge::prelude::*;
use dagforge::store::Store;
use serde_json::Value;

use crate::common::{Emit, Fail, Range, Square};

/// A server on a free loopback port, and the engine serving the store beside it.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    stop: tokio_util_stop::Stop,
    serving: Option<tokio::task::JoinHandle<()>>,
}

/// A tiny stop signal (a watch channel), so the tests need no extra dependency.
mod tokio_util_stop {
    #[derive(Clone)]
    pub(crate) struct Stop(pub(crate) tokio::sync::watch::Sender<bool>);
    impl Stop {
        pub(crate) fn new() -> Self {
            Stop(tokio::sync::watch::channel(false).0)
        }
        pub(crate) fn fire(&self) {
            let _ = self.0.send(true);
        }
        pub(crate) async fn wait(&self) {
            let mut rx = self.0.subscribe();
            let _ = rx.wait_for(|v| *v).await;
        }
    }
}

/// Logs its message at every level and returns it inside an object.
pub(crate) struct Chatty;

impl Job for Chatty {
    type Input = String;
    type Output = Value;
    const NAME: &'static str = "chatty";

    async fn run(&self, ctx: &JobContext, msg: String) -> Result<Value, JobError> {
        ctx.debug("warming up");
        ctx.info(format!("saying {msg}"));
        ctx.warn("almost done");
        ctx.error(msg.clone());
        Ok(serde_json::json!({ "said": msg }))
    }
}

/// The workflows every test registers: `squares` (a fan-out over 3 items, squared),
/// `broken` (a node that fails), `typed` (a `u32` parameter `x`, squared), `chatty`
/// (parameter `msg`, logged at every level and returned).
pub(crate) fn workflows() -> Vec<Workflow> {
    let mut s = Workflow::builder("squares");
    let items = s.add("items", Range(3)).handle();
    s.add("square", Square).each_input(items).retries(1);
    let squares = s.build().expect("squares");

    let mut b = Workflow::builder("broken");
    b.add("ok", Emit(serde_json::json!("fine")));
    b.add("boom", Fail).retries(0);
    let broken = b.build().expect("broken");

    let mut t = Workflow::builder("typed");
    let x = t.param::<u32>("x");
    t.add("square", Square).input_from(x);
    let typed = t.build().expect("typed");

    let mut c = Workflow::builder("chatty");
    let msg = c.param_or::<String>("msg", "hello".to_owned());
    c.add("talk", Chatty).input_from(msg);
    let chatty = c.build().expect("chatty");
    vec![squares, broken, typed, chatty]
}

impl Server {
    /// A server over `store` with `api` applied to the default [`Api`], an engine
    /// serving the store beside it.
    pub(crate) async fn start(store: Arc<dyn Store>, api: impl FnOnce(Api) -> Api) -> Server {
        let mut b = Engine::builder()
            .shared_store(store)
            .artifacts(dagforge::artifact::ArtifactStore::memory());
        for wf in workflows() {
            b = b.workflow(&wf);
        }
        let engine = b.build();
        Self::with_engine(engine, api, true).await
    }

    /// A server over `engine`, which also serves its store when `serve`.
    pub(crate) async fn with_engine(
        engine: Engine,
        api: impl FnOnce(Api) -> Api,
        serve: bool,
    ) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util_stop::Stop::new();
        let until = stop.clone();
        let server = api(Api::new(engine.clone()));
        tokio::spawn(async move {
            server
                .serve(listener, async move { until.wait().await })
                .await
                .unwrap();
        });
        let serving = serve.then(|| {
            let engine = engine.clone();
            let until = stop.clone();
            tokio::spawn(async move {
                engine
                    .serve(Duration::from_millis(50), async move { until.wait().await })
                    .await
                    .unwrap();
            })
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Server {
            base,
            client,
            stop,
            serving,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// GET `path`, expecting `200` and JSON.
    pub(crate) async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Waits until run `id` has finished and returns its detail.
    pub(crate) async fn finished(&self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let run = self.json(&format!("/api/v1/runs/{id}")).await;
            if ["succeeded", "failed", "cancelled"].contains(&run["state"].as_str().unwrap()) {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} still {run}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Enqueues a run of `workflow` with `inputs` and returns its id.
    pub(crate) async fn enqueue(&self, workflow: &str, inputs: Value) -> String {
        let r = self
            .post(
                "/api/v1/runs",
                &serde_json::json!({ "workflow": workflow, "inputs": inputs }),
            )
            .await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn stop(mut self) {
        self.stop.fire();
        if let Some(s) = self.serving.take() {
            s.await.unwrap();
        }
    }
}

/// Checks that `r` is a problem of `kind` with `status`, and returns its document.
pub(crate) async fn problem(r: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(r.status(), status, "status");
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = r.text().await.unwrap();
    assert_eq!(ct, "application/problem+json", "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        doc["type"],
        format!("urn:dagforge:problem:{kind}"),
        "problem: {doc}"
    );
    assert_eq!(doc["status"], status);
    assert!(
        doc["title"].is_string() && doc["detail"].is_string(),
        "{doc}"
    );
    doc
}

/// The memory store.
pub(crate) fn memory() -> Arc<dyn Store> {
    Arc::new(dagforge::store::MemoryStore::new())
}

/// A SQLite store in a new file.
#[cfg(feature = "sqlite")]
pub(crate) async fn sqlite() -> Arc<dyn Store> {
    let path = crate::store::sqlite_path();
    Arc::new(
        dagforge::store::SqliteStore::open(&path.to_string_lossy())
            .await
            .unwrap(),
    )
}

/// A PostgreSQL store in a schema of its own, and a way to drop it.
#[cfg(feature = "postgres")]
pub(crate) async fn postgres() -> (Arc<dyn Store>, dagforge::store::PostgresStore) {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!(
        "http_{}",
        dagforge::RunId::new().to_uuid_string().replace('-', "")
    );
    let store = dagforge::store::PostgresStore::options(&base)
        .schema(&schema)
        .connect()
        .await
        .unwrap();
    (Arc::new(store.clone()), store)
}
