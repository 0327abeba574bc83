//! Server-Sent Events of the HTTP API: replay with `Last-Event-ID`, live events, cross-process streams, slow clients.
//!
//! Every test serves the API on `127.0.0.1:0` and reads the streams with reqwest (a raw
//! socket for the slow client) through a small SSE parser.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dagforge::RunId;
use dagforge::http::Api;
use dagforge::http::sse::Streams;
use dagforge::prelude::*;
use dagforge::store::Store;
use serde_json::Value;

/// Logs `lines` lines of `size` bytes, after sleeping `ms`.
#[derive(Clone, Copy)]
struct Chunky {
    lines: u32,
    size: usize,
    ms: u64,
}

impl Job for Chunky {
    type Input = ();
    type Output = u32;
    const NAME: &'static str = "chunky";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<u32, JobError> {
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        for i in 0..self.lines {
            ctx.info(format!("{i}:{}", "x".repeat(self.size)));
        }
        Ok(self.lines)
    }
}

/// `name`: a gate node (sleeping `gate_ms`), then `n` nodes after it, each a `job`.
fn wide(name: &str, n: usize, gate_ms: u64, job: Chunky) -> Workflow {
    let mut b = Workflow::builder(name);
    b.add(
        "gate",
        Chunky {
            lines: 0,
            size: 0,
            ms: gate_ms,
        },
    );
    for i in 0..n {
        b.add(format!("n{i:04}"), job).after_named("gate");
    }
    b.build().unwrap()
}

/// The 1,000-node run: nodes of 2 ms logging one line.
fn thousand() -> Workflow {
    wide(
        "thousand",
        999,
        50,
        Chunky {
            lines: 1,
            size: 10,
            ms: 2,
        },
    )
}

/// A server of `engine`'s API with `streams`, stopped when dropped.
struct Server {
    base: String,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(engine: &Engine, streams: Streams, api: impl FnOnce(Api) -> Api) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = api(Api::new(engine.clone()))
            .router()
            .layer(streams.layer());
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Server {
            base,
            client: reqwest::Client::new(),
            task,
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.base))
    }

    async fn stream(&self, path: &str, last: Option<&str>) -> Reader {
        let mut req = self.get(path);
        if let Some(l) = last {
            req = req.header("Last-Event-ID", l);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        Reader {
            resp: r,
            buf: Vec::new(),
            comments: 0,
        }
    }
}

/// One SSE message.
#[derive(Clone, Debug, PartialEq)]
struct Msg {
    id: Option<String>,
    event: String,
    data: Value,
}

impl Msg {
    fn seq(&self) -> u64 {
        self.data["seq"].as_u64().unwrap()
    }
}

/// Parses a response body into messages.
struct Reader {
    resp: reqwest::Response,
    buf: Vec<u8>,
    comments: usize,
}

impl Reader {
    /// The next message; `None` at the end of the stream. Panics after 30 s of nothing.
    async fn next(&mut self) -> Option<Msg> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                if let Some(m) = parse(&String::from_utf8(block).unwrap()) {
                    return Some(m);
                }
                self.comments += 1;
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.resp.chunk())
                .await
                .expect("a message within 30 s")
                .unwrap();
            match chunk {
                Some(c) => self.buf.extend_from_slice(&c),
                None => {
                    assert!(self.buf.is_empty(), "a partial message at the end");
                    return None;
                }
            }
        }
    }
}

/// A message block (`None` for comments and `retry:` lines only).
fn parse(block: &str) -> Option<Msg> {
    let (mut id, mut event, mut data) = (None, None, None);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            assert!(data.is_none(), "one data line per message: {block}");
            data = Some(serde_json::from_str(v).unwrap());
        } else {
            assert!(
                line.is_empty() || line.starts_with(':') || line.starts_with("retry: "),
                "unexpected line {line:?}"
            );
        }
    }
    Some(Msg {
        id,
        event: event?,
        data: data.expect("data"),
    })
}

/// How many events run `run` has in `store`.
async fn recorded(store: &Arc<dyn Store>, run: RunId) -> u64 {
    let mut after = 0;
    loop {
        let page = store.events(run, after, 10_000).await.unwrap();
        match page.last() {
            Some(e) => after = e.seq,
            None => return after,
        }
    }
}

fn engine(store: Arc<dyn Store>, workflows: &[&Workflow]) -> Engine {
    let mut b = Engine::builder().shared_store(store).concurrency(16);
    for w in workflows {
        b = b.workflow(w);
    }
    b.build()
}

/// Reads run `run`'s stream through disconnects after a random number of messages,
/// reconnecting with `Last-Event-ID`, to `end`; returns the sequence numbers and the
/// number of connections.
async fn read_with_disconnects(server: &Server, run: RunId) -> (Vec<u64>, usize) {
    let path = format!("/api/v1/runs/{run}/events");
    let (mut seqs, mut last, mut connections) = (Vec::new(), None::<String>, 0);
    let mut rng = 0x2545_f491_u64;
    loop {
        connections += 1;
        let mut r = server.stream(&path, last.as_deref()).await;
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let take = 50 + (rng >> 33) % 400;
        for _ in 0..take {
            let m = r.next().await.expect("no end before `end`");
            if m.event == "end" {
                assert_eq!(m.data["last"].as_u64(), seqs.last().copied());
                return (seqs, connections);
            }
            let id = m.id.clone().expect("an id");
            assert_eq!(id.parse::<u64>().unwrap(), m.seq());
            assert_eq!(m.data["run"], run.to_string());
            seqs.push(m.seq());
            last = Some(id);
        }
    }
}

async fn replay_across_disconnects(store: Arc<dyn Store>) {
    let wf = thousand();
    let engine = engine(Arc::clone(&store), &[&wf]);
    let server = Server::start(&engine, Streams::new(), |a| a).await;
    let run = engine.start(&wf, ()).await.unwrap();
    let (seqs, connections) = read_with_disconnects(&server, run.id()).await;
    let n = recorded(&store, run.id()).await;
    assert!(n > 3_000, "{n} events");
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "no gap, no duplicate");
    assert!(connections >= 8, "{connections} connections");
    run.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_across_forced_disconnects_memory() {
    replay_across_disconnects(Arc::new(dagforge::store::MemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_across_forced_disconnects_sqlite() {
    replay_across_disconnects(sqlite(&sqlite_file()).await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_across_forced_disconnects_postgres() {
    let (store, pg) = postgres(&pg_schema()).await;
    replay_across_disconnects(store).await;
    pg.drop_schema().await.unwrap();
}

/// `after` and `Last-Event-ID` (which wins) start a finished run's stream where asked.
#[tokio::test]
async fn a_stream_starts_after_the_given_event_and_ends() {
    let wf = wide(
        "small",
        3,
        0,
        Chunky {
            lines: 2,
            size: 5,
            ms: 0,
        },
    );
    let store: Arc<dyn Store> = Arc::new(dagforge::store::MemoryStore::new());
    let engine = engine(Arc::clone(&store), &[&wf]);
    let server = Server::start(&engine, Streams::new(), |a| a).await;
    let handle = engine.start(&wf, ()).await.unwrap();
    let run = handle.id();
    handle.wait().await.unwrap();
    let n = recorded(&store, run).await;
    for (path, last, first) in [
        (format!("/api/v1/runs/{run}/events"), None, 1),
        (format!("/api/v1/runs/{run}/events?after=5"), None, 6),
        (format!("/api/v1/runs/{run}/events?after=5"), Some("9"), 10),
    ] {
        let mut r = server.stream(&path, last).await;
        let mut seqs = Vec::new();
        let end = loop {
            let m = r.next().await.unwrap();
            if m.event == "end" {
                break m;
            }
            seqs.push(m.seq());
        };
        assert_eq!(seqs, (first..=n).collect::<Vec<_>>(), "{path}");
        assert_eq!(end.data["last"], n);
        assert!(r.next().await.is_none(), "closed after `end`");
    }
}

/// `(group, row, seq)` of a feed cursor.
fn cursor(id: &str) -> (u64, u64, u64) {
    let p: Vec<u64> = id.split('-').map(|x| x.parse().unwrap()).collect();
    (p[0], p[1], p[2])
}

/// Reads the all-runs stream until every run in `runs` sent its final event; checks
/// that ids grow and each run's events come in sequence, and returns the messages.
async fn read_all(r: &mut Reader, runs: &[RunId]) -> Vec<Msg> {
    let mut out: Vec<Msg> = Vec::new();
    let mut ended = std::collections::HashSet::new();
    let mut next_seq = std::collections::HashMap::new();
    while ended.len() < runs.len() {
        let m = r.next().await.unwrap();
        if let Some(prev) = out.last() {
            assert!(cursor(m.id.as_ref().unwrap()) > cursor(prev.id.as_ref().unwrap()));
        }
        let run = m.data["run"].as_str().unwrap().to_owned();
        let expect = next_seq.entry(run.clone()).or_insert(1);
        assert_eq!(m.seq(), *expect, "run {run} in sequence");
        *expect += 1;
        let final_state = ["succeeded", "failed", "cancelled"]
            .contains(&m.data["event"]["to"].as_str().unwrap_or(""));
        if m.event == "run" && final_state {
            ended.insert(run);
        }
        out.push(m);
    }
    out
}

/// The all-runs stream: from now, every run, or one workflow's runs only; resumed from
/// a cursor.
#[tokio::test]
async fn all_runs_stream_with_a_workflow_filter() {
    let small = Chunky {
        lines: 1,
        size: 5,
        ms: 1,
    };
    let alpha = wide("alpha", 5, 0, small);
    let beta = wide("beta", 7, 0, small);
    let store: Arc<dyn Store> = Arc::new(dagforge::store::MemoryStore::new());
    let engine = engine(Arc::clone(&store), &[&alpha, &beta]);
    let server = Server::start(&engine, Streams::new(), |a| a).await;
    // A run before the streams start: not in them.
    engine
        .start(&alpha, ())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let mut every = server.stream("/api/v1/events", None).await;
    let mut only = server.stream("/api/v1/events?workflow=alpha", None).await;
    let a = engine.start(&alpha, ()).await.unwrap();
    let b = engine.start(&beta, ()).await.unwrap();
    let all = read_all(&mut every, &[a.id(), b.id()]).await;
    let n_a = recorded(&store, a.id()).await;
    let n_b = recorded(&store, b.id()).await;
    assert_eq!(all.len() as u64, n_a + n_b);
    let filtered = read_all(&mut only, &[a.id()]).await;
    assert_eq!(filtered.len() as u64, n_a);
    assert!(filtered.iter().all(|m| m.data["run"] == a.id().to_string()));

    // Resumed after the tenth: exactly the rest.
    let from = all[9].id.clone().unwrap();
    let mut again = server.stream("/api/v1/events", Some(&from)).await;
    for expected in &all[10..] {
        assert_eq!(&again.next().await.unwrap(), expected);
    }
    let mut again = server
        .stream(&format!("/api/v1/events?after={from}"), None)
        .await;
    assert_eq!(again.next().await.as_ref(), Some(&all[10]));
}

#[cfg(feature = "sqlite")]
fn sqlite_file() -> String {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sse-{}.db", RunId::new().to_uuid_string()))
        .to_string_lossy()
        .into_owned()
}

#[cfg(feature = "sqlite")]
async fn sqlite(file: &str) -> Arc<dyn Store> {
    Arc::new(dagforge::store::SqliteStore::open(file).await.unwrap())
}

#[cfg(feature = "postgres")]
fn pg_schema() -> String {
    format!("sse_{}", RunId::new().to_uuid_string().replace('-', ""))
}

#[cfg(feature = "postgres")]
async fn postgres(schema: &str) -> (Arc<dyn Store>, dagforge::store::PostgresStore) {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let store = dagforge::store::PostgresStore::options(&base)
        .schema(schema)
        .connect()
        .await
        .unwrap();
    (Arc::new(store.clone()), store)
}

/// One engine drives a run through `driving`; another, on its own handle `serving` of
/// the same store, serves the streams: the client gets every event of both streams.
async fn cross_process(driving: Arc<dyn Store>, serving: Arc<dyn Store>) {
    let wf = wide(
        "remote",
        60,
        100,
        Chunky {
            lines: 2,
            size: 20,
            ms: 5,
        },
    );
    let driver = engine(Arc::clone(&driving), &[&wf]);
    let server_engine = Engine::builder().shared_store(Arc::clone(&serving)).build();
    let server = Server::start(
        &server_engine,
        Streams::new().poll(Duration::from_millis(100)),
        |a| a,
    )
    .await;
    let mut every = server.stream("/api/v1/events?workflow=remote", None).await;
    let run = driver.start(&wf, ()).await.unwrap();
    let mut one = server
        .stream(&format!("/api/v1/runs/{}/events", run.id()), None)
        .await;
    let mut seqs = Vec::new();
    loop {
        let m = one.next().await.unwrap();
        if m.event == "end" {
            break;
        }
        seqs.push(m.seq());
    }
    let id = run.id();
    run.wait().await.unwrap();
    let n = recorded(&serving, id).await;
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    let all = read_all(&mut every, &[id]).await;
    assert_eq!(all.len() as u64, n);
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_events_reach_the_client_sqlite() {
    let file = sqlite_file();
    cross_process(sqlite(&file).await, sqlite(&file).await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_events_reach_the_client_postgres() {
    let schema = pg_schema();
    let (driving, pg) = postgres(&schema).await;
    let (serving, _) = postgres(&schema).await;
    cross_process(driving, serving).await;
    pg.drop_schema().await.unwrap();
}

mod limits;
