//! The reads behind the HTTP API over a large store: 1,000,000 recorded runs, a
//! 10,000-node run and a 1,000,000-line log, on SQLite and PostgreSQL.
//!
//! ```sh
//! cargo bench -p benches --bench queries                       # SQLite
//! cargo bench -p benches --features postgres --bench queries   # + PostgreSQL at DATABASE_URL
//! QUERIES_BENCH=postgres cargo bench -p benches --features postgres --bench queries
//! ```
//!
//! The fixture is written straight into the store's tables by one set-based statement
//! per table (a recursive CTE on SQLite, `generate_series` on PostgreSQL), after the
//! store created its schema; it is kept between invocations (SQLite: a file under the
//! target directory; PostgreSQL: schema `bench_queries`) and rebuilt with
//! `QUERIES_FRESH=1`. Runs: 10 workflows, 2 versions, states 90 % succeeded, 5 %
//! failed, 3 % running, 2 % pending, one in ten in lane `lane-a`, one in a hundred
//! with an idempotency key, created one millisecond apart.
//!
//! Each figure is the time of one store call through the public API (what an HTTP
//! handler awaits), p50 / p95 over repeated calls, in milliseconds.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dagforge::RunState;
use dagforge::prelude::*;
use dagforge::store::{ExecutionQuery, LogQuery, RunQuery, Store};
use dagforge::{LogLevel, RunId};

const RUNS: i64 = 1_000_000;
const NODES: i64 = 10_000;
const LINES: i64 = 1_000_000;
/// Creation time of run 1 (µs); run `i` is created `i` ms later.
const BASE_US: i64 = 1_700_000_000_000_000;

struct Noop;
impl Job for Noop {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "noop";
    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        Ok(())
    }
}

/// The id of fixture run `i` (time-ordered like the engine's).
fn run_id(i: i64) -> RunId {
    format!("{:08x}-{:04x}-7000-8000-{:012x}", i >> 16, i & 0xffff, i)
        .parse()
        .expect("uuid")
}

/// Statements that fill a fresh schema, given the `workflows` row id `$wf` and the
/// store's dialect; `{series}` is a row source of `i` from 1 to `{n}`.
struct Fixture {
    /// `FROM …` yielding column `i` from 1 to `n`.
    series: fn(i64) -> String,
    /// The id text of run `i` (an SQL expression over `i`).
    id: &'static str,
    /// Cast of a text to a JSON column.
    json: &'static str,
}

impl Fixture {
    fn runs(&self, wf: i64) -> String {
        format!(
            "INSERT INTO runs (id, workflow_id, workflow, version, inputs, state, created_at, \
             started_at, finished_at, lease_owner, lease_until, fence, last_seq, priority, \
             idempotency_key, queue) \
             SELECT {id}, {wf}, 'wf-' || (i % 10), CASE WHEN i % 3 = 0 THEN '2' ELSE '1' END, \
             '{{}}'{json}, \
             CASE WHEN i % 100 < 90 THEN 'succeeded' WHEN i % 100 < 95 THEN 'failed' \
                  WHEN i % 100 < 98 THEN 'running' ELSE 'pending' END, \
             {BASE_US} + i * 1000, {BASE_US} + i * 1000, NULL, NULL, NULL, 1, 2, 0, \
             CASE WHEN i % 100 = 0 THEN 'key-' || i END, \
             CASE WHEN i % 10 = 0 THEN 'lane-a' END {series}",
            id = self.id,
            json = self.json,
            series = (self.series)(RUNS),
        )
    }

    fn executions(&self, run_pk: i64) -> String {
        format!(
            "INSERT INTO executions (run_pk, node, item, attempt, first_seq, state, output, \
             reason, started_at, updated_at) \
             SELECT {run_pk}, 'node-' || (100000 + i), -1, 1, i, 'succeeded', '{{\"n\":1}}'{json}, \
             NULL, {BASE_US}, {BASE_US} {series}",
            json = self.json,
            series = (self.series)(NODES),
        )
    }

    fn lines(&self, run_pk: i64) -> String {
        format!(
            "INSERT INTO events (run_pk, seq, at, kind, node, item, attempt, level) \
             SELECT {run_pk}, i, {BASE_US} + i, \
             ('{{\"type\":\"log\",\"node\":\"n' || (i % 100) || '\",\"item\":null,\
             \"attempt\":1,\"level\":\"' || CASE WHEN i % 50 = 0 THEN 'error' ELSE 'info' END \
             || '\",\"message\":\"line ' || i || ' of a long log\"}}'){json}, \
             'n' || (i % 100), NULL, 1, CASE WHEN i % 50 = 0 THEN 4 ELSE 2 END {series}",
            json = self.json,
            series = (self.series)(LINES),
        )
    }
}

/// A store holding the fixture: (the store, the 10,000-node run, the long-log run).
async fn sqlite() -> (Arc<dyn Store>, RunId, RunId) {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("queries-bench.db");
    let fresh = std::env::var_os("QUERIES_FRESH").is_some();
    if fresh {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
    }
    let url = path.to_string_lossy().into_owned();
    let store = dagforge::store::SqliteStore::open(&url)
        .await
        .expect("sqlite");
    let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path))
        .await
        .expect("sqlite pool");
    let fixture = Fixture {
        series: |n| {
            format!(
                "FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c \
                 WHERE i < {n}) SELECT i FROM c)"
            )
        },
        id: "printf('%08x-%04x-7000-8000-%012x', i >> 16, i & 65535, i)",
        json: "",
    };
    let store: Arc<dyn Store> = Arc::new(store);
    let (big, log) = fill(&store, &pool, &fixture).await;
    (store, big, log)
}

#[cfg(feature = "postgres")]
async fn postgres() -> (Arc<dyn Store>, RunId, RunId) {
    use sqlx::ConnectOptions as _;
    use sqlx::postgres::{PgConnectOptions, PgPool};
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let admin = PgPool::connect(&url).await.expect("postgres");
    if std::env::var_os("QUERIES_FRESH").is_some() {
        sqlx::query("DROP SCHEMA IF EXISTS bench_queries CASCADE")
            .execute(&admin)
            .await
            .expect("drop");
    }
    let store = dagforge::store::PostgresStore::options(&url)
        .schema("bench_queries")
        .connect()
        .await
        .expect("postgres store");
    let opts: PgConnectOptions = url.parse().expect("url");
    let opts = opts
        .options([("search_path", "bench_queries")])
        .disable_statement_logging();
    let pool = PgPool::connect_with(opts).await.expect("pool");
    let fixture = Fixture {
        series: |n| format!("FROM generate_series(1, {n}) AS s (i)"),
        id: "(lpad(to_hex(i >> 16), 8, '0') || '-' || lpad(to_hex(i & 65535), 4, '0') \
             || '-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid",
        json: "::json",
    };
    let store: Arc<dyn Store> = Arc::new(store);
    let (big, log) = fill(&store, &pool, &fixture).await;
    sqlx::query("ANALYZE")
        .execute(&pool)
        .await
        .expect("analyze");
    (store, big, log)
}

/// Fills the fixture unless it is there; returns the 10,000-node run and the
/// long-log run (fixture runs 1 and 2).
async fn fill<DB: sqlx::Database>(
    store: &Arc<dyn Store>,
    pool: &sqlx::Pool<DB>,
    fixture: &Fixture,
) -> (RunId, RunId)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let have = store
        .count_runs(&RunQuery::new().workflow("wf-0"))
        .await
        .expect("count")
        .total();
    if have == 0 {
        write(store, pool, fixture).await;
    }
    // Fixture runs 1 and 2: the first of workflows wf-1 and wf-2.
    let mut runs = Vec::new();
    for wf in ["wf-1", "wf-2"] {
        let page = store
            .list_runs(
                &RunQuery::new()
                    .workflow(wf)
                    .created_to(UNIX_EPOCH + Duration::from_micros((BASE_US + 3000) as u64)),
            )
            .await
            .expect("list");
        runs.push(page.items[0].id);
    }
    (runs[0], runs[1])
}

/// Writes the fixture.
async fn write<DB: sqlx::Database>(store: &Arc<dyn Store>, pool: &sqlx::Pool<DB>, fixture: &Fixture)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    // One run through the engine, for its workflow row.
    let mut wf = Workflow::builder("seed");
    wf.add("a", Noop);
    let wf = wf.build().expect("valid");
    let engine = Engine::builder().shared_store(Arc::clone(store)).build();
    engine.enqueue(&wf, ()).await.expect("seed");
    let (wf_id,): (i64,) = sqlx::query_as("SELECT MAX(id) FROM workflows")
        .fetch_one(pool)
        .await
        .expect("workflow row");
    let t = Instant::now();
    let step = Instant::now();
    sqlx::query(&fixture.runs(wf_id))
        .execute(pool)
        .await
        .expect("runs");
    eprintln!(
        "  fixture: 1,000,000 runs in {:.1} s",
        step.elapsed().as_secs_f64()
    );
    let mut pks = Vec::new();
    for wf in ["wf-1", "wf-2"] {
        let (pk,): (i64,) =
            sqlx::query_as(&format!("SELECT MIN(pk) FROM runs WHERE workflow = '{wf}'"))
                .fetch_one(pool)
                .await
                .expect("fixture run");
        pks.push(pk);
    }
    for (what, sql) in [
        ("10,000 executions", fixture.executions(pks[0])),
        ("1,000,000 log lines", fixture.lines(pks[1])),
    ] {
        let step = Instant::now();
        sqlx::query(&sql).execute(pool).await.expect(what);
        eprintln!("  fixture: {what} in {:.1} s", step.elapsed().as_secs_f64());
    }
    eprintln!("  fixture written in {:.1} s", t.elapsed().as_secs_f64());
}

/// p50 / p95 of `n` calls of `f`, in ms.
async fn time<F, Fut, T>(n: usize, mut f: F) -> (f64, f64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let _ = f(0).await;
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        std::hint::black_box(f(i).await);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    (ms[n / 2], ms[(n * 95 / 100).min(n - 1)])
}

fn row(store: &str, what: &str, (p50, p95): (f64, f64)) {
    println!("| {store} | {what} | {p50:.2} | {p95:.2} |");
}

async fn bench(name: &str, store: Arc<dyn Store>, big: RunId, log: RunId) {
    const N: usize = 40;
    let s = &*store;
    let list = |q: RunQuery| async move { s.list_runs(&q).await.expect("list") };
    row(
        name,
        "runs, first page of 50",
        time(N, |_| list(RunQuery::new())).await,
    );
    // Pages deep in the list, through the cursor.
    let mut q = RunQuery::new();
    let mut cursors = Vec::new();
    for _ in 0..N + 1 {
        let page = s.list_runs(&q).await.expect("list");
        cursors.push(q.clone());
        q = q.cursor(page.cursor.expect("more"));
    }
    row(
        name,
        "runs, pages 1–40 by cursor",
        time(N, |i| list(cursors[i].clone())).await,
    );
    let older = SystemTime::UNIX_EPOCH + Duration::from_micros((BASE_US + 500_000_000) as u64);
    row(
        name,
        "runs, first page created before run 500,000",
        time(N, |_| list(RunQuery::new().created_to(older))).await,
    );
    row(
        name,
        "runs, workflow",
        time(N, |_| list(RunQuery::new().workflow("wf-3"))).await,
    );
    row(
        name,
        "runs, state failed",
        time(N, |_| list(RunQuery::new().state(RunState::Failed))).await,
    );
    row(
        name,
        "runs, workflow + state running",
        time(N, |_| {
            list(RunQuery::new().workflow("wf-7").state(RunState::Running))
        })
        .await,
    );
    row(
        name,
        "runs, states pending + running + failed",
        time(N, |_| {
            list(RunQuery::new().states([RunState::Pending, RunState::Running, RunState::Failed]))
        })
        .await,
    );
    let from = UNIX_EPOCH + Duration::from_micros((BASE_US + 300_000_000) as u64);
    row(
        name,
        "runs, created in a 1-hour window",
        time(N, |_| {
            list(
                RunQuery::new()
                    .created_from(from)
                    .created_to(from + Duration::from_secs(3600)),
            )
        })
        .await,
    );
    row(
        name,
        "runs, lane",
        time(N, |_| list(RunQuery::new().queue("lane-a"))).await,
    );
    row(
        name,
        "runs, idempotency key",
        time(N, |_| list(RunQuery::new().idempotency_key("key-777700"))).await,
    );
    let prefix = &run_id(654_321).to_uuid_string()[..13];
    row(
        name,
        "runs, id prefix",
        time(N, |_| list(RunQuery::new().id_prefix(prefix))).await,
    );
    let count = |q: RunQuery| async move { s.count_runs(&q).await.expect("count") };
    row(
        name,
        "count by state, all runs",
        time(10, |_| count(RunQuery::new())).await,
    );
    row(
        name,
        "count by state, one workflow",
        time(10, |_| count(RunQuery::new().workflow("wf-3"))).await,
    );
    row(
        name,
        "count by state, lane (a COUNT over its index)",
        time(10, |_| count(RunQuery::new().queue("lane-a"))).await,
    );
    let all = s.count_runs(&RunQuery::new()).await.expect("count");
    assert!(
        all.total() > RUNS as u64,
        "the counters hold every run: {all:?}"
    );
    assert_eq!(
        all.get(RunState::Failed),
        RUNS as u64 / 20,
        "the counters agree with the runs"
    );
    row(
        name,
        "count by state, failed + running",
        time(10, |_| {
            count(RunQuery::new().states([RunState::Failed, RunState::Running]))
        })
        .await,
    );
    let execs = |q: ExecutionQuery| async move { s.executions_page(big, &q).await.expect("execs") };
    row(
        name,
        "10,000-node run: executions, first page of 100",
        time(N, |_| execs(ExecutionQuery::new().limit(100))).await,
    );
    let mid = s
        .executions_page(big, &ExecutionQuery::new().limit(5000))
        .await
        .expect("execs")
        .next
        .expect("more");
    row(
        name,
        "10,000-node run: executions, page at node 5,000",
        time(N, |_| {
            execs(ExecutionQuery::new().limit(100).after(mid.clone()))
        })
        .await,
    );
    row(
        name,
        "10,000-node run: count executions",
        time(N, |_| async {
            s.count_executions(big, &ExecutionQuery::new())
                .await
                .expect("count")
        })
        .await,
    );
    let logs = |q: LogQuery| async move { s.logs(log, &q).await.expect("logs") };
    row(
        name,
        "1,000,000-line log: first page of 200",
        time(N, |_| logs(LogQuery::new().limit(200))).await,
    );
    row(
        name,
        "1,000,000-line log: tail 200",
        time(N, |_| logs(LogQuery::new().tail(200))).await,
    );
    row(
        name,
        "1,000,000-line log: one node, first page of 200",
        time(N, |_| logs(LogQuery::new().node("n42").limit(200))).await,
    );
    row(
        name,
        "1,000,000-line log: one node, tail 200",
        time(N, |_| logs(LogQuery::new().node("n42").tail(200))).await,
    );
    row(
        name,
        "1,000,000-line log: errors only, tail 200",
        time(N, |_| {
            logs(LogQuery::new().min_level(LogLevel::Error).tail(200))
        })
        .await,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let which = std::env::var("QUERIES_BENCH").unwrap_or_else(|_| "sqlite,postgres".to_owned());
    println!("| store | query | p50 ms | p95 ms |");
    println!("|---|---|---:|---:|");
    if which.contains("sqlite") {
        eprintln!("sqlite: fixture…");
        let (store, big, log) = sqlite().await;
        bench("SQLite", store, big, log).await;
    }
    #[cfg(feature = "postgres")]
    if which.contains("postgres") {
        eprintln!("postgres: fixture…");
        let (store, big, log) = postgres().await;
        bench("PostgreSQL", store, big, log).await;
    }
}
