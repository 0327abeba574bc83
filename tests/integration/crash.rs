//! Crash tests with real processes: engines killed with SIGKILL mid-run, the run
//! resumed by another process, and no node that had succeeded before a kill run again.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dagforge::RunId;
use dagforge::prelude::*;
use dagforge::store::Store;

const ENGINE: &str = env!("CARGO_BIN_EXE_dagforge-crash-engine");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dagforge-{name}-{}", fastrand_u64()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

fn engine(url: &str, journal: &Path, mode: &str, nodes: usize) -> Child {
    Command::new(ENGINE)
        .args([url, journal.to_str().unwrap(), mode, &nodes.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the crash engine")
}

/// How many times each node ran (from the journal), and in which process last.
fn journal(path: &Path) -> (HashMap<String, u32>, Option<u32>) {
    let mut runs = HashMap::new();
    let mut last_pid = None;
    let Ok(text) = std::fs::read_to_string(path) else {
        return (runs, None);
    };
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(node), Some(_attempt), Some(pid)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        *runs.entry(node.to_owned()).or_insert(0) += 1;
        last_pid = pid.parse().ok();
    }
    (runs, last_pid)
}

async fn succeeded(store: &dyn Store, run: RunId) -> HashSet<String> {
    store
        .executions(run)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.item.is_none() && e.state == NodeState::Succeeded)
        .map(|e| e.node)
        .collect()
}

async fn wait_for(store: &dyn Store, run: RunId, at_least: usize) -> HashSet<String> {
    let t = Instant::now();
    loop {
        let done = succeeded(store, run).await;
        if done.len() >= at_least {
            return done;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "stuck at {} nodes",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn run_id(child: &mut Child) -> RunId {
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    line.trim().parse().unwrap()
}

fn wait_exit(child: &mut Child, limit: Duration) {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "engine exited with {status}");
            return;
        }
        assert!(t.elapsed() < limit, "engine did not finish in {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What was true right after a kill: the nodes recorded Succeeded, and how often each
/// node had run by then.
struct Snapshot {
    succeeded: HashSet<String>,
    ran: HashMap<String, u32>,
}

async fn snapshot(store: &dyn Store, run: RunId, journal_path: &Path) -> Snapshot {
    Snapshot {
        succeeded: succeeded(store, run).await,
        ran: journal(journal_path).0,
    }
}

/// Asserts the end state: the run succeeded, every node succeeded exactly once in the
/// store, and no node recorded Succeeded at a kill ran again after it.
async fn check(
    store: &dyn Store,
    run: RunId,
    nodes: usize,
    kills: &[Snapshot],
    journal_path: &Path,
) {
    let rec = store.get_run(run).await.unwrap().unwrap();
    assert_eq!(rec.state, RunState::Succeeded);
    let execs = store.executions(run).await.unwrap();
    let mut ok: HashMap<&str, u32> = HashMap::new();
    for e in &execs {
        if e.state == NodeState::Succeeded {
            *ok.entry(&e.node).or_insert(0) += 1;
        }
    }
    assert_eq!(ok.len(), nodes, "every node succeeded");
    assert!(
        ok.values().all(|&n| n == 1),
        "each exactly once in the store"
    );
    let (ran, _) = journal(journal_path);
    for (k, snap) in kills.iter().enumerate() {
        assert!(!snap.succeeded.is_empty() && snap.succeeded.len() < nodes);
        for node in &snap.succeeded {
            assert_eq!(
                ran.get(node),
                snap.ran.get(node),
                "{node} had succeeded at kill {k} and ran again after it"
            );
        }
    }
    assert_eq!(ran.len(), nodes, "every node ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_engine_killed_mid_run_is_resumed() {
    let dir = scratch("crash-sqlite");
    let url = format!("sqlite://{}?mode=rwc", dir.join("runs.db").display());
    let journal_path = dir.join("journal");
    let nodes = 200;
    let mut first = engine(&url, &journal_path, "start", nodes);
    let run = run_id(&mut first);
    let store: Arc<dyn Store> = Arc::new(dagforge::store::SqliteStore::open(&url).await.unwrap());
    wait_for(&*store, run, 60).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let kill = snapshot(&*store, run, &journal_path).await;

    let mut second = engine(&url, &journal_path, "serve", nodes);
    wait_exit(&mut second, Duration::from_secs(120));
    check(&*store, run, nodes, &[kill], &journal_path).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_three_engines_one_killed_twice() {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("crash_{:x}", fastrand_u64());
    let url = format!("{base}#{schema}");
    let store = dagforge::store::PostgresStore::options(&base)
        .schema(&schema)
        .connect()
        .await
        .unwrap();
    let dir = scratch("crash-pg");
    let journal_path = dir.join("journal");
    let nodes = 2000;
    let mut first = engine(&url, &journal_path, "start", nodes);
    let run = run_id(&mut first);
    let mut procs = vec![
        first,
        engine(&url, &journal_path, "serve", nodes),
        engine(&url, &journal_path, "serve", nodes),
    ];
    let mut kills = Vec::new();
    for (kill, at) in [(1, 400), (2, 1100)] {
        wait_for(&store, run, at).await;
        // Kill whichever process is driving the run now (the journal's last writer).
        let (_, pid) = journal(&journal_path);
        let pid = pid.expect("someone is running nodes");
        let i = procs
            .iter()
            .position(|c| c.id() == pid)
            .unwrap_or_else(|| panic!("kill {kill}: the driving process {pid} is not ours"));
        let mut victim = procs.remove(i);
        victim.kill().unwrap();
        victim.wait().unwrap();
        kills.push(snapshot(&store, run, &journal_path).await);
        // Bring a third engine back so three keep sharing the work.
        procs.push(engine(&url, &journal_path, "serve", nodes));
    }
    for c in procs.iter_mut() {
        wait_exit(c, Duration::from_secs(180));
    }
    check(&store, run, nodes, &kills, &journal_path).await;
    store.drop_schema().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
