//! Live streams under load: 100 clients follow one run of 10,000 nodes over
//! `GET /api/v1/runs/{id}/events`, on the memory store and on SQLite.
//!
//! ```sh
//! cargo bench -p benches --features http --bench sse              # memory and SQLite
//! SSE_BENCH=sqlite SSE_CLIENTS=100 cargo bench -p benches --features http --bench sse
//! ```
//!
//! The run is a gate node and a layered DAG behind it (100 layers of 100 no-op nodes,
//! every node after two of the layer above). The clients connect while the gate holds
//! the run (each has received the run's first events), then the gate opens and the
//! clock starts. Reported, as the median of 3 rounds (with the range):
//!
//! - engine time: gate opened → the run's result, with no client and with the clients
//!   (the same engine, the same server, the clients being the only difference);
//!   throughput is 10,000 nodes over that time;
//! - delivery latency p50 / p99: an event's `at` (set by the engine when it happened)
//!   to the moment a client has read its message, sampled on the last message of
//!   every read of every client, across the rounds;
//! - drained: gate opened → every client has read `end`.
//!
//! The clients are raw HTTP/1.0 loopback connections in the same process, on a
//! runtime of their own (standing for remote browsers; on the 2-core VM of the
//! README's figures they still take CPU from the engine, as the kernel's copying of
//! every client's bytes does). A client sent `overflow`
//! reconnects with its `Last-Event-ID`; the count is reported.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dagforge::RunId;
use dagforge::http::Api;
use dagforge::prelude::*;
use dagforge::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

struct Noop;
impl Job for Noop {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "noop";
    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        Ok(())
    }
}

/// Holds the run until opened.
struct Gate(Arc<Notify>);
impl Job for Gate {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "gate";
    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        self.0.notified().await;
        Ok(())
    }
}

fn workflow(gate: &Arc<Notify>) -> Workflow {
    let mut wf = Workflow::builder("sse-10k");
    let g = wf.add("gate", Gate(Arc::clone(gate))).handle();
    let mut prev: Vec<NodeRef<()>> = Vec::new();
    for l in 0..100 {
        let mut layer = Vec::new();
        for i in 0..100 {
            let mut n = wf.add(format!("n{l}-{i}"), Noop);
            if l == 0 {
                n = n.after(&g);
            } else {
                n = n.after(&prev[i]).after(&prev[(i + 1) % 100]);
            }
            layer.push(n.handle());
        }
        prev = layer;
    }
    wf.build().expect("workflow")
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    latencies_us: Vec<u64>,
    overflows: u32,
    last: u64,
}

/// Follows run `run` on `addr` to `end`, reconnecting after an overflow; says on
/// `ready` once the first message arrived. Cheap on purpose (it stands for a remote
/// browser): per read, only the last complete message is looked at (its id, and its
/// `at` for the latency sample).
async fn client(addr: std::net::SocketAddr, run: RunId, ready: Arc<tokio::sync::Barrier>) -> Seen {
    let mut seen = Seen::default();
    let mut ready = Some(ready);
    loop {
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!(
            "GET /api/v1/runs/{run}/events HTTP/1.0\r\nHost: 127.0.0.1\r\nLast-Event-ID: {}\r\n\r\n",
            seen.last
        );
        conn.write_all(req.as_bytes()).await.expect("request");
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 17);
        let mut last_msg = String::new();
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let n = conn.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            let now = SystemTime::now();
            buf.extend_from_slice(&chunk[..n]);
            // The last complete message in what was read.
            let Some(end) = rfind(&buf, b"\n\n") else {
                continue;
            };
            let begin = rfind(&buf[..end], b"\n\n").map_or(0, |p| p + 2);
            last_msg.clear();
            last_msg.push_str(std::str::from_utf8(&buf[begin..end]).expect("utf-8"));
            buf.drain(..end + 2);
            if let Some(id) = last_msg.strip_prefix("id: ") {
                seen.last = id[..id.find('\n').unwrap_or(id.len())]
                    .parse()
                    .expect("seq");
                if let Some(r) = ready.take() {
                    r.wait().await;
                }
                if let Some(at) = last_msg.find("\"at\":\"") {
                    let t = &last_msg[at + 6..];
                    let t = &t[..t.find('"').expect("at")];
                    let at: SystemTime = chrono::DateTime::parse_from_rfc3339(t)
                        .expect("rfc3339")
                        .into();
                    let us = now.duration_since(at).unwrap_or_default().as_micros();
                    seen.latencies_us
                        .push(u64::try_from(us).unwrap_or(u64::MAX));
                }
            }
        }
        if last_msg.starts_with("event: end") {
            // `data: {"last":N,…}`: the last event's sequence number.
            let n = &last_msg[last_msg.find("\"last\":").expect("last") + 7..];
            seen.last = n[..n.find([',', '}']).expect("number")]
                .parse()
                .expect("seq");
            return seen;
        }
        assert!(
            last_msg.contains("\nevent: overflow\n"),
            "stream closed without `end` or `overflow`: {last_msg}"
        );
        seen.overflows += 1;
    }
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// One round: a run, `clients` followers; (engine time, drained time, what they saw).
async fn round(
    engine: &Engine,
    wf: &Workflow,
    gate: &Arc<Notify>,
    addr: std::net::SocketAddr,
    clients: usize,
    remote: &tokio::runtime::Handle,
) -> (Duration, Duration, Vec<Seen>) {
    let handle = engine.start(wf, ()).await.expect("start");
    let run = handle.id();
    let ready = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let followers: Vec<_> = (0..clients)
        .map(|_| remote.spawn(client(addr, run, Arc::clone(&ready))))
        .collect();
    if clients > 0 {
        ready.wait().await;
    }
    let t0 = Instant::now();
    gate.notify_one();
    handle.wait().await.expect("run");
    let engine_time = t0.elapsed();
    let mut seen = Vec::new();
    for f in followers {
        seen.push(f.await.expect("client"));
    }
    (engine_time, t0.elapsed(), seen)
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

async fn bench(name: &str, store: Arc<dyn Store>, clients: usize, remote: &tokio::runtime::Handle) {
    let gate = Arc::new(Notify::new());
    let wf = workflow(&gate);
    let engine = Engine::builder().shared_store(store).workflow(&wf).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = Arc::new(Notify::new());
    let stopped = Arc::clone(&stop);
    let api = Api::new(engine.clone());
    let server = tokio::spawn(async move {
        api.serve(listener, async move { stopped.notified().await })
            .await
            .expect("serve");
    });
    // Warm-up, then rounds without and with clients, interleaved.
    round(&engine, &wf, &gate, addr, 0, remote).await;
    let (mut alone, mut with, mut drained) = (Vec::new(), Vec::new(), Vec::new());
    let (mut lat, mut overflows, mut complete) = (Vec::new(), 0, true);
    for _ in 0..3 {
        alone.push(round(&engine, &wf, &gate, addr, 0, remote).await.0);
        let (e, d, seen) = round(&engine, &wf, &gate, addr, clients, remote).await;
        with.push(e);
        drained.push(d);
        let last = seen.iter().map(|s| s.last).max().unwrap_or(0);
        for s in seen {
            complete &= s.last == last;
            overflows += s.overflows;
            lat.extend(s.latencies_us);
        }
    }
    lat.sort_unstable();
    let (a, a_lo, a_hi) = median(alone);
    let (w, w_lo, w_hi) = median(with);
    let (d, _, _) = median(drained);
    let rate = |t: Duration| 10_000.0 / t.as_secs_f64();
    println!(
        "{name:<7} engine alone {:>7.1} ms ({:.1}–{:.1}), {:>8.0} nodes/s | with {clients} clients {:>7.1} ms ({:.1}–{:.1}), {:>8.0} nodes/s, {:+.1} % | latency p50 {:.1} ms p99 {:.1} ms | drained {:.0} ms | overflows {overflows} | every client got every event: {complete}",
        a.as_secs_f64() * 1e3,
        a_lo.as_secs_f64() * 1e3,
        a_hi.as_secs_f64() * 1e3,
        rate(a),
        w.as_secs_f64() * 1e3,
        w_lo.as_secs_f64() * 1e3,
        w_hi.as_secs_f64() * 1e3,
        rate(w),
        (w.as_secs_f64() / a.as_secs_f64() - 1.0) * 100.0,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        d.as_secs_f64() * 1e3,
    );
    stop.notify_one();
    server.abort();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let which = std::env::var("SSE_BENCH").unwrap_or_else(|_| "memory,sqlite".into());
    let clients: usize = std::env::var("SSE_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    // The clients stand for remote browsers: a runtime (threads) of their own, so that
    // the engine's runtime holds only the engine and the server.
    let clients_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let remote = clients_rt.handle().clone();
    rt.block_on(async {
        for name in which.split(',') {
            let store: Arc<dyn Store> = match name {
                "memory" => Arc::new(dagforge::store::MemoryStore::new()),
                "sqlite" => {
                    let dir =
                        std::env::temp_dir().join(format!("dagforge-sse-{}", std::process::id()));
                    std::fs::create_dir_all(&dir).expect("dir");
                    let file = dir.join("sse.db");
                    Arc::new(
                        dagforge::store::SqliteStore::open(&file.to_string_lossy())
                            .await
                            .expect("sqlite"),
                    )
                }
                other => panic!("SSE_BENCH: unknown store {other}"),
            };
            bench(name, store, clients, &remote).await;
        }
    });
}
