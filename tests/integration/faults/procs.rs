//! Faults with real engine processes (`dagforge-crash-engine`): a database cut off
//! for longer than the connection wait (through a TCP proxy of the test's own), an
//! engine frozen past its lease (SIGSTOP, SIGCONT), a poison run that kills every
//! engine driving it.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dagforge::RunId;
use dagforge::prelude::*;
use dagforge::store::Store;

const ENGINE: &str = env!("CARGO_BIN_EXE_dagforge-crash-engine");

pub(super) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dagforge-{name}-{}", RunId::new()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An engine process; killed when dropped.
pub(super) struct Proc(Child);

impl Proc {
    pub(super) fn spawn(url: &str, journal: &Path, mode: &str, nodes: usize, width: usize) -> Proc {
        Proc(
            Command::new(ENGINE)
                .args([url, journal.to_str().unwrap(), mode, &nodes.to_string()])
                .env("DAGFORGE_CRASH_WIDTH", width.to_string())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start the crash engine"),
        )
    }

    /// Runs `mode` (`enqueue`, `poison`) to its end; the run id it printed.
    pub(super) fn enqueue(
        url: &str,
        journal: &Path,
        mode: &str,
        nodes: usize,
        width: usize,
    ) -> RunId {
        let mut p = Proc::spawn(url, journal, mode, nodes, width);
        let mut line = String::new();
        BufReader::new(p.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(p.0.wait().unwrap().success());
        line.trim().parse().expect("a run id")
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `node attempt pid unix-ms` lines of the starts journal.
fn starts(journal: &Path) -> Vec<(String, u32, u32, u128)> {
    let path = PathBuf::from(format!("{}.starts", journal.display()));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((
                p.next()?.to_owned(),
                p.next()?.parse().ok()?,
                p.next()?.parse().ok()?,
                p.next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// No node started twice with one attempt number (by any two engines).
fn attempts_never_repeat(journal: &Path) {
    let mut seen = HashSet::new();
    for (node, attempt, pid, _) in starts(journal) {
        assert!(
            seen.insert((node.clone(), attempt)),
            "{node} attempt {attempt} started twice (again by {pid})"
        );
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

async fn succeeded(store: &dyn Store, run: RunId) -> usize {
    store
        .executions(run)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.item.is_none() && e.state == NodeState::Succeeded)
        .count()
}

pub(super) async fn wait_succeeded(
    store: &dyn Store,
    run: RunId,
    at_least: usize,
    limit: Duration,
) {
    let t = Instant::now();
    loop {
        let n = succeeded(store, run).await;
        if n >= at_least {
            return;
        }
        assert!(t.elapsed() < limit, "stuck at {n} nodes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(super) async fn wait_state(store: &dyn Store, run: RunId, limit: Duration) -> RunState {
    let t = Instant::now();
    loop {
        let s = store.get_run(run).await.unwrap().unwrap().state;
        if s.is_terminal() || t.elapsed() > limit {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP proxy that can cut every connection through it and refuse new ones (a
/// database that went away), then let them through again.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (target, up2, open2) = (target.to_owned(), Arc::clone(&up), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    // Refused: closed at once.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut list = open2.lock().unwrap();
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        list.push(c);
                    }
                }
                drop(list);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, up, open }
    }

    /// Cuts every connection and refuses new ones.
    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Two engines on PostgreSQL through a proxy; the database is cut off for 15 s
/// (longer than the 10 s connection wait). Both engines ride it out, the run resumes
/// within about a second of the database coming back, and no node ran twice with
/// one attempt number.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_longer_than_the_connection_wait() {
    let base = crate::store::pg::url();
    let schema = format!("faults_{}", RunId::new().to_uuid_string().replace('-', ""));
    let store = dagforge::store::PostgresStore::options(&base)
        .schema(&schema)
        .connect()
        .await
        .unwrap();
    let target = base
        .split('@')
        .nth(1)
        .and_then(|h| h.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    let proxy = Proxy::start(&target);
    let proxied = base.replacen(&target, &format!("127.0.0.1:{}", proxy.port), 1);
    let dir = scratch("outage-pg");
    let journal = dir.join("journal");
    let nodes = 600;
    let run = Proc::enqueue(&format!("{base}#{schema}"), &journal, "enqueue", nodes, 10);
    let url = format!("{proxied}#{schema}");
    let mut engines = [
        Proc::spawn(&url, &journal, "supervise", nodes, 10),
        Proc::spawn(&url, &journal, "supervise", nodes, 10),
    ];
    wait_succeeded(&store, run, 60, Duration::from_secs(60)).await;
    proxy.down();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let before = succeeded(&store, run).await;
    for e in &mut engines {
        assert!(e.alive(), "an engine ended during the outage");
    }
    assert!(before < nodes, "the run finished during the outage");
    proxy.up();
    let back = Instant::now();
    wait_succeeded(&store, run, before + 1, Duration::from_secs(30)).await;
    let resumed = back.elapsed();
    println!("database back → first node recorded: {resumed:?}");
    assert!(resumed < Duration::from_secs(3), "{resumed:?}");
    assert_eq!(
        wait_state(&store, run, Duration::from_secs(120)).await,
        RunState::Succeeded
    );
    attempts_never_repeat(&journal);
    for e in &mut engines {
        assert!(e.alive(), "an engine ended");
    }
    drop(engines);
    store.drop_schema().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// An engine frozen (SIGSTOP) past its lease while driving a chain of nodes: another
/// engine takes the run over and finishes it. Resumed (SIGCONT), the frozen engine
/// finds its lease lost and starts nothing more.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_frozen_past_its_lease_starts_nothing_after() {
    use nix::sys::signal::Signal::{SIGCONT, SIGSTOP};
    let dir = scratch("frozen");
    let url = format!("sqlite://{}?mode=rwc", dir.join("runs.db").display());
    let journal = dir.join("journal");
    let nodes = 300;
    let run = Proc::enqueue(&url, &journal, "enqueue", nodes, 1);
    let store = dagforge::store::SqliteStore::open(&url).await.unwrap();
    let frozen = Proc::spawn(&url, &journal, "supervise", nodes, 1);
    wait_succeeded(&store, run, 20, Duration::from_secs(60)).await;
    frozen.signal(SIGSTOP);
    let at_freeze = succeeded(&store, run).await;
    // Past the 2 s lease; another engine takes over and gets well ahead.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let other = Proc::spawn(&url, &journal, "supervise", nodes, 1);
    wait_succeeded(&store, run, at_freeze + 30, Duration::from_secs(60)).await;
    let thawed = now_ms();
    frozen.signal(SIGCONT);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let late: Vec<_> = starts(&journal)
        .into_iter()
        .filter(|(_, _, pid, ms)| *pid == frozen.pid() && *ms >= thawed)
        .collect();
    assert!(
        late.is_empty(),
        "the frozen engine started attempts after its lease was lost: {late:?}"
    );
    assert_eq!(
        wait_state(&store, run, Duration::from_secs(60)).await,
        RunState::Succeeded
    );
    attempts_never_repeat(&journal);
    drop((frozen, other));
    let _ = std::fs::remove_dir_all(dir);
}

/// A run whose one job aborts every engine that drives it: after five engines died on
/// it, the sixth fails it with a reason instead of dying too, and serves on.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_run_is_failed_after_five_engines_died_on_it() {
    let dir = scratch("poison");
    let url = format!("sqlite://{}?mode=rwc", dir.join("runs.db").display());
    let journal = dir.join("journal");
    let poison = Proc::enqueue(&url, &journal, "poison", 20, 10);
    let store = dagforge::store::SqliteStore::open(&url).await.unwrap();
    // A supervisor: one engine serves at any time; one that dies is replaced.
    let mut deaths = 0;
    let mut engine = Proc::spawn(&url, &journal, "supervise", 20, 10);
    let t = Instant::now();
    while !store
        .get_run(poison)
        .await
        .unwrap()
        .unwrap()
        .state
        .is_terminal()
    {
        assert!(
            deaths <= 8 && t.elapsed() < Duration::from_secs(90),
            "{deaths} engines died on the poison run and it is still claimable"
        );
        if !engine.alive() {
            deaths += 1;
            engine = Proc::spawn(&url, &journal, "supervise", 20, 10);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(deaths, Engine::DEFAULT_MAX_STALLED_CLAIMS);
    let rec = store.get_run(poison).await.unwrap().unwrap();
    assert_eq!(rec.state, RunState::Failed);
    let execs = store.executions(poison).await.unwrap();
    let failed: HashMap<u32, String> = execs
        .iter()
        .filter(|e| e.state == NodeState::Failed)
        .map(|e| (e.attempt, e.error.as_ref().unwrap().message.clone()))
        .collect();
    assert!(
        failed
            .values()
            .any(|m| m.contains("claimed 6 times") && m.contains("max_stalled_claims")),
        "{execs:?}"
    );
    let fine = Proc::enqueue(&url, &journal, "enqueue", 20, 10);
    assert_eq!(
        wait_state(&store, fine, Duration::from_secs(60)).await,
        RunState::Succeeded
    );
    assert!(
        engine.alive(),
        "the engine that failed the poison run serves on"
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(dir);
}
