//! The HTTP API's time on a large run: one run of a 10,000-node layered DAG (100 × 100,
//! every node after two of the layer above), recorded on each store, then its detail
//! (`GET /api/v1/runs/{id}`) and its whole node list (`GET /api/v1/runs/{id}/nodes?limit=10000`)
//! asked 30 times each over loopback HTTP/1.1, one request at a time.
//!
//! ```sh
//! cargo bench -p benches --features http --bench http                   # memory and SQLite
//! cargo bench -p benches --features http,postgres --bench http          # + PostgreSQL at DATABASE_URL
//! ```
//!
//! The time is the client's: from writing the request to reading the last byte of the
//! response (`Connection: close`), so it is the server's time plus a loopback round
//! trip. Target (issue 13): ≤ 300 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dagforge::RunId;
use dagforge::http::Api;
use dagforge::prelude::*;
use dagforge::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Noop;
impl Job for Noop {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "noop";
    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        Ok(())
    }
}

fn layered(layers: usize, width: usize) -> Workflow {
    let mut wf = Workflow::builder("layered-10k");
    let mut prev: Vec<NodeRef<()>> = Vec::new();
    for l in 0..layers {
        let mut layer = Vec::new();
        for i in 0..width {
            let mut n = wf.add(format!("n{l}-{i}"), Noop);
            if !prev.is_empty() {
                n = n.after(&prev[i]).after(&prev[(i * 7 + 3) % width]);
            }
            layer.push(n.handle());
        }
        prev = layer;
    }
    wf.build().expect("valid")
}

/// `GET path` on `addr` over a new connection: the status line and the body's size.
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, usize) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf);
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len());
    (status, body)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn measure(addr: std::net::SocketAddr, label: &str, path: &str) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..30 {
        let t = Instant::now();
        let (status, body) = get(addr, path).await;
        times.push(t.elapsed());
        assert!(status.contains(" 200 "), "{path}: {status}");
        size = body;
    }
    times.sort();
    println!(
        "  {label:<28} p50 {:>7.1} ms   p95 {:>7.1} ms   max {:>7.1} ms   ({:.1} MiB)",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 95 / 100]),
        ms(times[times.len() - 1]),
        size as f64 / (1024.0 * 1024.0)
    );
}

async fn bench(kind: &str, store: Arc<dyn Store>) {
    let wf = layered(100, 100);
    let engine = Engine::builder().shared_store(store).workflow(&wf).build();
    let t = Instant::now();
    let run = engine.run(&wf, ()).await.expect("run");
    assert!(run.is_success());
    println!(
        "{kind}: recorded a {}-node run in {:.1} s",
        wf.len(),
        t.elapsed().as_secs_f64()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(Api::new(engine).serve(listener, async move {
        let _ = stopped.await;
    }));
    let id = run.id;
    measure(addr, "run detail", &format!("/api/v1/runs/{id}")).await;
    measure(
        addr,
        "node list (10,000)",
        &format!("/api/v1/runs/{id}/nodes?limit=10000"),
    )
    .await;
    measure(
        addr,
        "node list, first page (1,000)",
        &format!("/api/v1/runs/{id}/nodes"),
    )
    .await;
    let _ = stop.send(());
    server.await.expect("join").expect("serve");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    bench("memory", Arc::new(MemoryStore::new())).await;
    let path = std::env::temp_dir().join(format!("dagforge-http-bench-{}.db", RunId::new()));
    let sqlite = dagforge::store::SqliteStore::open(&path.to_string_lossy())
        .await
        .expect("sqlite");
    bench("sqlite", Arc::new(sqlite.clone())).await;
    sqlite.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    #[cfg(feature = "postgres")]
    {
        let base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let schema = format!(
            "httpbench_{}",
            RunId::new().to_uuid_string().replace('-', "")
        );
        let pg = dagforge::store::PostgresStore::options(&base)
            .schema(&schema)
            .connect()
            .await
            .expect("postgres");
        bench("postgres", Arc::new(pg.clone())).await;
        pg.drop_schema().await.expect("drop");
    }
}
