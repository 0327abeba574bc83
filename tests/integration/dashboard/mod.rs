//! The dashboard (`dagforge::http`, pages under `/`): its pages over HTTP (escaping,
//! roles, the login form, the security headers) and, in a real headless Chromium
//! driven through chromedriver, the live behaviour (a run watched turning green, the
//! node panel, a live console, cancel, retry from failed, login, a 10,000-node run's
//! first paint).
//!
//! The browser tests need `chromium` and `chromedriver` (`bash scripts/browser.sh`
//! installs them); they fail, not skip, without them.

mod browser;
mod driver;
mod pages;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dagforge::RunId;
use dagforge::http::{Api, Role};
use dagforge::prelude::*;
use dagforge::store::Store;
use serde_json::{Value, json};

/// A string that breaks HTML and attributes wherever it is not escaped.
pub(crate) const HOSTILE: &str =
    "<script>window.__pwned=1</script>\"'><img src=x onerror=\"window.__pwned=2\">";

/// The operator and read-only tokens of the servers that use tokens.
pub(crate) const OPERATOR_TOKEN: &str = "dashboard-operator-token-0123456789";
pub(crate) const READER_TOKEN: &str = "dashboard-reader-token-0123456789";

/// Logs `tick N` every 150 ms, `n` times (cancelled cooperatively), then its input.
pub(crate) struct Ticker;

impl Job for Ticker {
    type Input = u32;
    type Output = u32;
    const NAME: &'static str = "ticker";

    async fn run(&self, ctx: &JobContext, n: u32) -> Result<u32, JobError> {
        for i in 1..=n {
            ctx.info(format!("tick {i}"));
            ctx.progress(
                u8::try_from(i * 100 / n.max(1)).unwrap_or(100),
                format!("tick {i} of {n}"),
            );
            tokio::select! {
                () = ctx.cancelled() => return Err(JobError::msg("cancelled")),
                () = tokio::time::sleep(Duration::from_millis(150)) => {}
            }
        }
        Ok(n)
    }
}

/// Fails while [`BREAK`] is set, then succeeds.
pub(crate) struct Fragile;

/// Whether [`Fragile`] fails.
pub(crate) static BREAK: AtomicBool = AtomicBool::new(true);

impl Job for Fragile {
    type Input = ();
    type Output = String;
    const NAME: &'static str = "fragile";

    async fn run(&self, _: &JobContext, (): ()) -> Result<String, JobError> {
        if BREAK.load(Ordering::SeqCst) {
            Err(JobError::msg("broken on purpose"))
        } else {
            Ok("mended".to_owned())
        }
    }
}

/// Returns its input after logging it (hostile strings go through it).
pub(crate) struct Parrot;

impl Job for Parrot {
    type Input = String;
    type Output = Value;
    const NAME: &'static str = "parrot";

    async fn run(&self, ctx: &JobContext, s: String) -> Result<Value, JobError> {
        ctx.warn(s.clone());
        Ok(json!({ "said": s }))
    }
}

/// Does nothing (the nodes of the large runs).
pub(crate) struct Nop;

impl Job for Nop {
    type Input = ();
    type Output = u8;
    const NAME: &'static str = "nop";

    async fn run(&self, _: &JobContext, (): ()) -> Result<u8, JobError> {
        Ok(1)
    }
}

/// The workflows: the catalog demo, `slow` (a ticker with parameter `n`), `fragile`
/// (`ok` then `fragile`), `parrot` (parameter `text`, logged and returned).
pub(crate) fn workflows() -> Vec<Workflow> {
    let catalog = examples::catalog::macros::catalog().expect("catalog");
    let mut s = Workflow::builder("slow");
    let n = s.param_or::<u32>("n", 40);
    s.add("tick", Ticker).input_from(n);
    let slow = s.build().expect("slow");
    let mut f = Workflow::builder("fragile");
    let ok = f.add("ok", Nop).handle();
    f.add("fragile", Fragile).after(&ok).retries(0);
    let fragile = f.build().expect("fragile");
    let mut p = Workflow::builder("parrot");
    let text = p.param::<String>("text");
    p.add("say", Parrot).input_from(text);
    let parrot = p.build().expect("parrot");
    vec![catalog, slow, fragile, parrot]
}

/// The numbers `0..n`.
pub(crate) struct Numbers;

impl Job for Numbers {
    type Input = u32;
    type Output = Vec<u32>;
    const NAME: &'static str = "numbers";

    async fn run(&self, _: &JobContext, n: u32) -> Result<Vec<u32>, JobError> {
        Ok((0..n).collect())
    }
}

/// Doubles a number.
pub(crate) struct Double;

impl Job for Double {
    type Input = u32;
    type Output = u32;
    const NAME: &'static str = "double";

    async fn run(&self, _: &JobContext, x: u32) -> Result<u32, JobError> {
        Ok(x * 2)
    }
}

/// Records (as a store written by an engine would hold it) a run of a fan-out over
/// `items` items, `done` of them succeeded and the next ten running; its id.
pub(crate) async fn record_fan_out(site: &Site, items: u32, done: u32) -> RunId {
    use dagforge::store::{Lease, RunRecord};
    use dagforge::{Event, EventKind, NodeEvent};
    let mut b = Workflow::builder("fan");
    let n = b.param::<u32>("n");
    let numbers = b.add("numbers", Numbers).input_from(n).handle();
    b.add("double", Double).each_input(numbers);
    let wf = b.build().expect("fan");
    let id = RunId::new();
    let record = RunRecord::new(
        id,
        "fan".into(),
        wf.version().into(),
        dagforge::workflow::WorkflowSnapshot::of(&wf),
        json!({ "n": items }),
    );
    let lease = Lease::new("dashboard-test", 1);
    site.store
        .create_run(&record, &lease, Duration::from_secs(600))
        .await
        .unwrap();
    let at = std::time::SystemTime::now();
    let mut kinds = vec![
        EventKind::Run {
            from: RunState::Pending,
            to: RunState::Running,
        },
        EventKind::Node(NodeEvent::new(
            "numbers",
            None,
            1,
            NodeState::Ready,
            NodeState::Running,
        )),
        EventKind::Node(
            NodeEvent::new("numbers", None, 1, NodeState::Running, NodeState::Succeeded)
                .with_output(json!((0..items).collect::<Vec<u32>>())),
        ),
        EventKind::Node(NodeEvent::new(
            "double",
            None,
            0,
            NodeState::Pending,
            NodeState::Running,
        )),
    ];
    for i in 0..items.min(done + 10) {
        kinds.push(EventKind::Node(NodeEvent::new(
            "double",
            Some(i),
            1,
            NodeState::Ready,
            NodeState::Running,
        )));
        if i < done {
            kinds.push(EventKind::Node(
                NodeEvent::new(
                    "double",
                    Some(i),
                    1,
                    NodeState::Running,
                    NodeState::Succeeded,
                )
                .with_output(json!(i * 2)),
            ));
        }
    }
    let mut seq = 0;
    for chunk in kinds.chunks(5_000) {
        let events: Vec<Event> = chunk
            .iter()
            .map(|k| {
                seq += 1;
                Event::new(id, seq, at, k.clone())
            })
            .collect();
        site.store.append(id, &lease, &events).await.unwrap();
    }
    id
}

/// `stages` stages of `width` nodes each (node `s{k}-{i}` after `s{k-1}-{i}`): a
/// per-sample pipeline of `stages × width` nodes.
pub(crate) fn pipeline(stages: usize, width: usize) -> Workflow {
    let mut b = Workflow::builder("pipeline");
    let mut prev: Vec<NodeRef<u8>> = Vec::new();
    for k in 0..stages {
        let mut now = Vec::with_capacity(width);
        for i in 0..width {
            let mut n = b.add(format!("s{k}-{i}"), Nop);
            if let Some(p) = prev.get(i) {
                n = n.after(p);
            }
            now.push(n.handle());
        }
        prev = now;
    }
    b.build().expect("pipeline")
}

/// A dashboard server on SQLite (a fresh file), with an engine serving the store.
pub(crate) struct Site {
    pub(crate) base: String,
    pub(crate) engine: Engine,
    pub(crate) store: Arc<dyn Store>,
    stop: tokio::sync::watch::Sender<bool>,
    _dir: TempDir,
}

/// A directory removed on drop.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Site {
    /// Serves the [`workflows`] (and `extra`) with `api` applied to the default API.
    pub(crate) async fn start(extra: &[Workflow], api: impl FnOnce(Api) -> Api) -> Site {
        Site::start_on(std::net::IpAddr::from([127, 0, 0, 1]), extra, api).await
    }

    /// As [`start`](Site::start), listening on `ip`.
    pub(crate) async fn start_on(
        ip: std::net::IpAddr,
        extra: &[Workflow],
        api: impl FnOnce(Api) -> Api,
    ) -> Site {
        let dir = std::env::temp_dir().join(format!("dagforge-dashboard-{}", RunId::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("runs.db").display());
        let store: Arc<dyn Store> =
            Arc::new(dagforge::store::SqliteStore::open(&url).await.unwrap());
        let mut b = Engine::builder()
            .shared_store(Arc::clone(&store))
            .artifacts(dagforge::artifact::ArtifactStore::memory())
            .concurrency(64);
        for wf in workflows().iter().chain(extra) {
            b = b.workflow(wf);
        }
        let engine = b.build();
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, _) = tokio::sync::watch::channel(false);
        let server = api(Api::new(engine.clone()));
        let mut until = stop.subscribe();
        tokio::spawn(async move {
            server
                .serve(listener, async move {
                    let _ = until.wait_for(|v| *v).await;
                })
                .await
                .unwrap();
        });
        let serving = engine.clone();
        let mut until = stop.subscribe();
        tokio::spawn(async move {
            let _ = serving
                .serve(Duration::from_millis(50), async move {
                    let _ = until.wait_for(|v| *v).await;
                })
                .await;
        });
        Site {
            base,
            engine,
            store,
            stop,
            _dir: TempDir(dir),
        }
    }

    /// The server with the operator and read-only tokens, off loopback: on this
    /// machine's network address when it has one (else on loopback).
    pub(crate) async fn with_tokens() -> Site {
        Site::start_on(lan_address().unwrap_or([127, 0, 0, 1].into()), &[], |a| {
            a.token(OPERATOR_TOKEN, Role::Operator)
                .token(READER_TOKEN, Role::ReadOnly)
        })
        .await
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Enqueues `workflow` with `inputs` through the engine; its run id.
    pub(crate) async fn enqueue(&self, workflow: &str, inputs: Value) -> RunId {
        let wf = self
            .engine
            .registered_workflow(workflow, None)
            .expect("registered");
        self.engine.enqueue(&wf, inputs).await.expect("enqueue")
    }

    /// Waits until run `id` is in `state` (20 s at most).
    pub(crate) async fn wait_state(&self, id: RunId, state: RunState) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.store.get_run(id).await.unwrap().unwrap();
            if r.state == state {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} is {}, not {state}",
                r.state
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub(crate) fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// This machine's address on its network (the source address of its route out), if
/// it has one: no packet is sent.
pub(crate) fn lan_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.254.254.254:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop();
    }
}
