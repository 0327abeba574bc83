//! The database server itself crashing (every PostgreSQL process killed with SIGKILL,
//! then started again on the same data directory) under each [`Durability`] setting,
//! with a real engine process driving a run through it.
//!
//! The test runs a PostgreSQL server of its own (initdb into a scratch directory, as
//! the `postgres` user; the machine's server is left alone), so that it can be killed
//! without disturbing other tests.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dagforge::RunId;
use dagforge::prelude::*;
use dagforge::store::{Durability, PostgresStore, Store};

use super::procs::{Proc, scratch, wait_state, wait_succeeded};

/// PostgreSQL 15's programs, as Debian installs them.
const BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL server of the test's own, on a free port; killed when dropped.
struct PrivatePg {
    dir: PathBuf,
    port: u16,
    server: Option<Child>,
}

impl PrivatePg {
    /// A new cluster in a scratch directory (trust auth, user `postgres`), started.
    fn init() -> PrivatePg {
        let dir = scratch("pgcrash");
        let data = dir.join("data");
        run(Command::new("chown").args(["postgres:", dir.to_str().unwrap()]));
        run(Command::new("runuser").args([
            "-u",
            "postgres",
            "--",
            &format!("{BIN}/initdb"),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut pg = PrivatePg {
            dir,
            port,
            server: None,
        };
        pg.start();
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server on the data directory (in a process group of its own, so
    /// that a crash can take every one of its processes at once) and waits until it
    /// takes connections.
    fn start(&mut self) {
        let data = self.dir.join("data");
        let child = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &format!("{BIN}/postgres"),
                "-D",
                data.to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-k",
                self.dir.to_str().unwrap(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=60",
            ])
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.join("server.log"))
                    .map_or_else(|_| Stdio::null(), Stdio::from),
            )
            .process_group(0)
            .spawn()
            .expect("start postgres (as the postgres user, with runuser)");
        self.server = Some(child);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "postgres did not start: {}",
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Accepting connections is not the same as having finished crash recovery
        // (pg_isready answers 1 while the server rejects connections as it starts).
        loop {
            let ready = Command::new(format!("{BIN}/pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .unwrap();
            if ready.success() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "postgres did not become ready: {}",
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every server process killed at once (SIGKILL to the process group): what the
    /// database sees of a power cut, but for the operating system's page cache.
    fn crash(&mut self) {
        // runuser starts the server in a session of its own: its group is found from
        // the postmaster's pid, which the server writes first in `postmaster.pid`.
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            let group = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // pid (comm) state ppid pgrp …: the fields after the last ')'.
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(2)?.parse::<i32>().ok()
                });
            if let Some(group) = group.filter(|g| *g > 1) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(group),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let t = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists()
                && t.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The killed server's postmaster.pid stays behind, as after a real crash;
        // postgres sees that its pid is gone and starts.
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a set-up command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Nodes recorded as succeeded, with their attempt.
async fn recorded(store: &dyn Store, run: RunId) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    for e in store.executions(run).await.unwrap() {
        if e.item.is_none() && e.state == NodeState::Succeeded {
            let before = out.insert(e.node.to_string(), e.attempt);
            assert!(before.is_none(), "{} recorded as succeeded twice", e.node);
        }
    }
    out
}

/// How many times each node's body ran to its end (the journal the engine's jobs
/// write before reporting success).
fn ran(journal: &Path) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for line in std::fs::read_to_string(journal).unwrap_or_default().lines() {
        if let Some(node) = line.split_whitespace().next() {
            *out.entry(node.to_owned()).or_insert(0) += 1;
        }
    }
    out
}

/// One run of 300 nodes through a real engine process; the server crashes when about
/// a third are recorded, and comes back 0.2 s later. Returns how many of the outcomes
/// recorded before the crash were lost by it (and so ran again).
async fn crash_mid_run(pg: &mut PrivatePg, durability: Durability) -> usize {
    let nodes = 300;
    let schema = format!("crash_{durability}");
    let store = PostgresStore::options(&pg.url())
        .schema(&schema)
        .connect()
        .await
        .unwrap();
    let dir = scratch(&format!("pgcrash-{durability}"));
    let journal = dir.join("journal");
    let url = format!("{}?durability={durability}#{schema}", pg.url());
    let run = Proc::enqueue(&url, &journal, "enqueue", nodes, 10);
    let engine = Proc::spawn(&url, &journal, "supervise", nodes, 10);
    wait_succeeded(&store, run, nodes / 3, Duration::from_secs(60)).await;
    let before = recorded(&store, run).await;
    pg.crash();
    pg.start();
    assert_eq!(
        wait_state(&store, run, Duration::from_secs(120)).await,
        RunState::Succeeded,
        "{durability}: the run ends after the crash"
    );
    drop(engine);
    let after = recorded(&store, run).await;
    assert_eq!(
        after.len(),
        nodes,
        "{durability}: every node succeeded once"
    );
    let runs = ran(&journal);
    let mut lost = 0;
    for (node, attempt) in &before {
        // Seen recorded before the crash, then lost by it: recorded again later, by
        // a later attempt, after the node ran again.
        if after.get(node) != Some(attempt) {
            lost += 1;
            assert!(
                runs.get(node).copied().unwrap_or(0) >= 2,
                "{durability}: {node}'s outcome changed without the node running again"
            );
        }
    }
    let _ = store.drop_schema().await;
    let _ = std::fs::remove_dir_all(dir);
    println!(
        "{durability}: {} outcomes recorded before the crash, {lost} lost by it",
        before.len()
    );
    lost
}

/// Under the default durability an outcome seen recorded is never lost, even when the
/// database server crashes; under `relaxed` the last ones may be, and their nodes run
/// again. Under both, the run ends with every node recorded as succeeded exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_server_crash_loses_no_recorded_outcome_by_default() {
    let mut pg = PrivatePg::init();
    assert_eq!(crash_mid_run(&mut pg, Durability::Outcomes).await, 0);
    crash_mid_run(&mut pg, Durability::Relaxed).await;
}
