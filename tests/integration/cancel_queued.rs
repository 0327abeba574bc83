//! Cancel means no job body runs: queued, delayed and raced cancels, `run --wait` and Ctrl-C.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dagforge::prelude::*;
use dagforge::store::{SqliteStore, Store};
use dagforge::{Enqueue, ErrorKind, Execution, ExecutionHandle, Executor, RetryMode, RunId};

use crate::common::Noop;

/// Counts, per run, the job bodies that started; waits (cooperatively) for a while.
#[derive(Clone, Default)]
struct Counted {
    started: Arc<Mutex<HashMap<RunId, u32>>>,
}

impl Counted {
    fn bodies(&self, run: RunId) -> u32 {
        self.started.lock().unwrap().get(&run).copied().unwrap_or(0)
    }
}

impl Job for Counted {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "counted";

    async fn run(&self, ctx: &JobContext, _: ()) -> Result<(), JobError> {
        *self
            .started
            .lock()
            .unwrap()
            .entry(ctx.run_id())
            .or_default() += 1;
        ctx.info("body ran");
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => Ok(()),
            () = ctx.cancelled() => Err(JobError::cancelled()),
        }
    }
}

/// `root` → `child`, both counted.
fn workflow(c: &Counted) -> Workflow {
    let mut wf = Workflow::builder("cancel-queued");
    let root = wf.add("root", c.clone()).handle();
    wf.add("child", c.clone()).after(&root);
    wf.build().unwrap()
}

async fn terminal(store: &dyn Store, id: RunId, limit: Duration) -> RunState {
    let t = Instant::now();
    loop {
        let state = store.get_run(id).await.unwrap().unwrap().state;
        if state.is_terminal() || t.elapsed() > limit {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The run's recorded node transitions into Running (attempt starts).
async fn starts(store: &dyn Store, id: RunId) -> Vec<String> {
    store
        .events(id, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Node(n) if n.to == NodeState::Running => {
                Some(format!("{} attempt {}", n.node, n.attempt))
            }
            _ => None,
        })
        .collect()
}

/// An engine serving `store` until the returned sender is dropped or fired.
fn serve(
    engine: Engine,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        engine
            .serve(Duration::from_secs(3600), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, task)
}

async fn sqlite() -> Arc<dyn Store> {
    let path = crate::store::sqlite_path();
    Arc::new(SqliteStore::open(&path.to_string_lossy()).await.unwrap())
}

/// Before: the canceller claimed the queued run and drove it far enough to start its
/// root job (its body ran and logged) before the cancel took effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_queued_run_runs_no_job() {
    let c = Counted::default();
    let wf = workflow(&c);
    let engine = Engine::builder().workflow(&wf).build();
    let id = engine.enqueue(&wf, ()).await.unwrap();
    assert_eq!(
        engine.cancel_recorded(id).await.unwrap(),
        RunState::Cancelled
    );
    assert_eq!(c.bodies(id), 0, "a job body ran");
    assert_eq!(starts(&**engine.store(), id).await, Vec::<String>::new());
    let events = engine.store().events(id, 0, 1000).await.unwrap();
    let nodes: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Node(n) => Some((n.node.to_string(), n.from, n.to)),
            _ => None,
        })
        .collect();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(
        nodes.iter().all(|(_, _, to)| *to == NodeState::Cancelled),
        "{nodes:?}"
    );
}

/// Before: a delayed run whose cancel was requested was claimed when it came due, its
/// root job started, and only then did the serving engine cancel it. Then (issue 11)
/// it was cancelled without running, but only once due. Now the canceller takes it at
/// once and ends it: no start, no body, and a serving engine has nothing left to do
/// when it comes due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_delayed_run_is_cancelled_at_once_without_running() {
    let c = Counted::default();
    let wf = workflow(&c);
    let store = sqlite().await;
    let asker = Engine::builder()
        .shared_store(Arc::clone(&store))
        .workflow(&wf)
        .build();
    let id = asker
        .enqueue_with(&wf, (), Enqueue::new().delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    let asked = std::time::Instant::now();
    assert_eq!(
        asker.cancel_recorded(id).await.unwrap(),
        RunState::Cancelled
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "ended at once, not when due: {:?}",
        asked.elapsed()
    );
    assert_eq!(
        store.get_run(id).await.unwrap().unwrap().state,
        RunState::Cancelled
    );
    assert_eq!(c.bodies(id), 0, "a job body ran");
    assert_eq!(starts(&*store, id).await, Vec::<String>::new());
    // A serving engine finds nothing to claim: the run is over.
    let server = Engine::builder()
        .shared_store(Arc::clone(&store))
        .workflow(&wf)
        .build();
    let (stop, task) = serve(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.bodies(id), 0, "a job body ran after the cancel");
    let _ = stop.send(());
    task.await.unwrap();
}

/// A delayed run cancelled from a process that does not know its workflow (the
/// request is recorded, the run given back) ends cancelled without running once an
/// engine that knows it serves, before its start time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_run_cancelled_by_a_stranger_ends_before_it_is_due() {
    let c = Counted::default();
    let wf = workflow(&c);
    let store = sqlite().await;
    let producer = Engine::builder()
        .shared_store(Arc::clone(&store))
        .workflow(&wf)
        .build();
    let id = producer
        .enqueue_with(&wf, (), Enqueue::new().delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    let stranger = Engine::builder().shared_store(Arc::clone(&store)).build();
    assert!(
        stranger.cancel_recorded(id).await.is_err(),
        "it cannot drive the run"
    );
    let server = Engine::builder()
        .shared_store(Arc::clone(&store))
        .workflow(&wf)
        .build();
    let (stop, task) = serve(server);
    assert_eq!(
        terminal(&*store, id, Duration::from_secs(10)).await,
        RunState::Cancelled
    );
    assert_eq!(c.bodies(id), 0, "a job body ran");
    assert_eq!(starts(&*store, id).await, Vec::<String>::new());
    let _ = stop.send(());
    task.await.unwrap();
}

/// Three engines serve a store (each with a connection of its own, as three processes
/// would) while a fourth cancels every queued run at the same time. A cancel that
/// found the run still queued (`Pending`) or cancelled it (`Cancelled`) means none of
/// its jobs ran; only a run some engine had already recorded as started (`Running`)
/// may have run one before it stopped.
async fn race(canceller: Arc<dyn Store>, servers: Vec<Arc<dyn Store>>) {
    let c = Counted::default();
    let wf = workflow(&c);
    let store = Arc::clone(&canceller);
    let canceller = Engine::builder()
        .shared_store(canceller)
        .id("canceller")
        .workflow(&wf)
        .build();
    // Rounds until some cancel got in before an engine started its run (the serving
    // engines may win every race of a round).
    let mut checked = 0;
    for round in 0..8 {
        let mut ids = Vec::new();
        for _ in 0..24 {
            ids.push(canceller.enqueue(&wf, ()).await.unwrap());
        }
        // The cancels go first, the engines start while they run.
        let cancels: Vec<_> = ids
            .iter()
            .map(|&id| {
                let canceller = canceller.clone();
                tokio::spawn(async move { (id, canceller.cancel_recorded(id).await.unwrap()) })
            })
            .collect();
        let mut serving = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            let e = Engine::builder()
                .shared_store(Arc::clone(s))
                .id(format!("server-{round}-{i}"))
                .workflow(&wf)
                .build();
            serving.push(serve(e));
        }
        for t in cancels {
            let (id, said) = t.await.unwrap();
            assert_eq!(
                terminal(&*store, id, Duration::from_secs(20)).await,
                RunState::Cancelled,
                "run {id} (cancel said {said})"
            );
            if said != RunState::Running {
                checked += 1;
                assert_eq!(
                    c.bodies(id),
                    0,
                    "run {id}: cancel said {said}, yet a job ran"
                );
                assert_eq!(starts(&*store, id).await, Vec::<String>::new(), "run {id}");
            }
        }
        for (stop, task) in serving {
            let _ = stop.send(());
            task.await.unwrap();
        }
        if checked > 0 {
            return;
        }
    }
    panic!("in every round, every cancel came too late to check anything");
}

/// On SQLite the engines share one store (one pool): with a pool each, the servers'
/// claims win every race and nothing would be left to check.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engines_racing_for_cancelled_runs_start_none_of_them() {
    let store = sqlite().await;
    let servers = vec![Arc::clone(&store), Arc::clone(&store), Arc::clone(&store)];
    race(store, servers).await;
}

/// The same on PostgreSQL, where engines hear cancel requests by notification.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_engines_racing_for_cancelled_runs_start_none_of_them() {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("cancelq_{}", RunId::new().to_uuid_string().replace('-', ""));
    let open = || async {
        dagforge::store::PostgresStore::options(&base)
            .schema(&schema)
            .connect()
            .await
            .unwrap()
    };
    let first = Arc::new(open().await);
    let servers: Vec<Arc<dyn Store>> = vec![
        Arc::new(open().await),
        Arc::new(open().await),
        Arc::new(open().await),
    ];
    race(Arc::clone(&first) as Arc<dyn Store>, servers).await;
    first.drop_schema().await.unwrap();
}

/// `runs cancel`, `runs retry` and `runs cancel` of a queued run at once, with an
/// engine serving: the run is cancelled and none of its jobs runs; a retry that got
/// in (of the cancelled run) is a run of its own, and cancelling it while queued runs
/// none of its jobs either.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_retry_and_cancel_at_once_run_no_job() {
    let c = Counted::default();
    let wf = workflow(&c);
    let store = sqlite().await;
    let engine = |id: &str| {
        Engine::builder()
            .shared_store(Arc::clone(&store))
            .id(id)
            .workflow(&wf)
            .build()
    };
    let (stop, task) = serve(engine("server"));
    for round in 0..5 {
        let (a, b, d) = (engine("a"), engine("b"), engine("d"));
        let id = a.enqueue(&wf, ()).await.unwrap();
        let (first, retried, second) = tokio::join!(
            a.cancel_recorded(id),
            b.enqueue_retry(id, RetryMode::FromFailed),
            d.cancel_recorded(id),
        );
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(
            terminal(&*store, id, Duration::from_secs(10)).await,
            RunState::Cancelled,
            "round {round}"
        );
        if first != RunState::Running && second != RunState::Running {
            assert_eq!(c.bodies(id), 0, "round {round}: {first}, {second}");
            assert_eq!(starts(&*store, id).await, Vec::<String>::new());
        }
        match retried {
            Ok(new) => {
                // Cancelled again at once: queued or claimed, nothing of it runs
                // unless an engine had recorded it started.
                let said = a.cancel_recorded(new).await.unwrap();
                assert_eq!(
                    terminal(&*store, new, Duration::from_secs(10)).await,
                    RunState::Cancelled
                );
                if said != RunState::Running {
                    assert_eq!(c.bodies(new), 0, "round {round}: retry cancelled {said}");
                }
            }
            Err(e) => assert!(
                matches!(e, dagforge::Error::RunNotFinished { .. }),
                "round {round}: {e}"
            ),
        }
    }
    let _ = stop.send(());
    task.await.unwrap();
}

/// Drops the first `drop` executions it is given (or, with `panic`, drops them while
/// a task holding them panics); runs the others in a task.
#[derive(Debug)]
struct Dropper {
    drop: u32,
    panic: bool,
    seen: std::sync::atomic::AtomicU32,
}

impl Executor for Dropper {
    fn start(&self, execution: Execution) -> ExecutionHandle {
        let n = self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n < self.drop {
            if self.panic {
                let task = tokio::spawn(async move {
                    let _held = execution;
                    panic!("the executor's task failed");
                });
                return ExecutionHandle::from_task(task.abort_handle());
            }
            drop(execution);
            return ExecutionHandle::detached();
        }
        let task = tokio::spawn(execution.run_here());
        ExecutionHandle::from_task(task.abort_handle())
    }
}

fn dropper(drop: u32, panic: bool) -> Dropper {
    Dropper {
        drop,
        panic,
        seen: std::sync::atomic::AtomicU32::new(0),
    }
}

/// Before: the run waited forever for an outcome that could never come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_dropped_by_its_executor_fails_the_attempt() {
    for panic in [false, true] {
        let mut wf = Workflow::builder("dropped");
        wf.add("only", Noop);
        let wf = wf.build().unwrap();
        let engine = Engine::builder().executor(dropper(u32::MAX, panic)).build();
        let run = tokio::time::timeout(Duration::from_secs(10), engine.run(&wf, ()))
            .await
            .expect("the run hangs on a dropped execution")
            .unwrap();
        assert_eq!(run.state, RunState::Failed, "{}", run.table());
        let node = run.node("only").unwrap();
        let e = node.error.as_ref().unwrap();
        assert_eq!(e.kind, ErrorKind::Executor, "{e}");
        assert!(
            e.message
                .contains("execution dropped by executor `Dropper` without a result"),
            "{e}"
        );
    }
}

/// The dropped attempt is retried per the node's retry policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_execution_is_retried_per_the_retry_policy() {
    let mut wf = Workflow::builder("dropped-once");
    wf.add("only", Noop).retries(1).backoff(Backoff::none());
    let wf = wf.build().unwrap();
    let engine = Engine::builder().executor(dropper(1, false)).build();
    let run = tokio::time::timeout(Duration::from_secs(10), engine.run(&wf, ()))
        .await
        .expect("the run hangs on a dropped execution")
        .unwrap();
    assert_eq!(run.state, RunState::Succeeded, "{}", run.table());
    assert_eq!(run.node("only").unwrap().attempts, 2);
}

// ----- through the CLI, in real processes ---------------------------------------------

#[cfg(unix)]
mod cli {
    use std::io::Read;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "dagforge-cancel-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn command(dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dagforge-cli-app"));
        cmd.current_dir(dir).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("DAGFORGE_") {
                cmd.env_remove(k);
            }
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// Runs the app to the end: (exit code, stdout, stderr).
    fn app(dir: &Path, args: &[&str]) -> (i32, String, String) {
        let out = command(dir, args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A child that is SIGKILLed if the test ends (or fails) before it exits.
    struct Proc(Child);

    impl Drop for Proc {
        fn drop(&mut self) {
            if let Ok(None) = self.0.try_wait() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }

    impl Proc {
        fn spawn(dir: &Path, args: &[&str]) -> Proc {
            Proc(command(dir, args).spawn().unwrap())
        }

        fn sigint(&self) {
            kill(Pid::from_raw(self.0.id() as i32), Signal::SIGINT).unwrap();
        }

        /// Waits up to `limit` for the exit: (exit code, stdout, stderr), or `None`
        /// if it is still running then.
        fn exit_within(&mut self, limit: Duration) -> Option<(i32, String, String)> {
            let t = Instant::now();
            loop {
                if let Some(status) = self.0.try_wait().unwrap() {
                    let (mut out, mut err) = (String::new(), String::new());
                    if let Some(o) = self.0.stdout.as_mut() {
                        o.read_to_string(&mut out).unwrap();
                    }
                    if let Some(e) = self.0.stderr.as_mut() {
                        e.read_to_string(&mut err).unwrap();
                    }
                    return Some((status.code().unwrap_or(-1), out, err));
                }
                if t.elapsed() > limit {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        fn assert_running(&mut self) {
            if let Some((code, out, err)) = self.exit_within(Duration::ZERO) {
                panic!("ended early ({code}): {out}\n{err}");
            }
        }
    }

    /// The id of the first run `runs list` shows in `state`, waiting up to 30 s.
    fn run_in_state(dir: &Path, store: &str, state: &str, p: &mut Proc) -> String {
        let t = Instant::now();
        loop {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no run became {state}"
            );
            p.assert_running();
            let (_, out, _) = app(dir, &["runs", "list", "--store", store]);
            if let Some(line) = out.lines().find(|l| l.contains(state)) {
                return line.split_whitespace().next().unwrap().to_owned();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn show(dir: &Path, store: &str, id: &str) -> String {
        app(dir, &["runs", "show", id, "--store", store]).1
    }

    /// Lines in `started.log`: job bodies of `cli-block` that started.
    fn started(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("started.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Before: `run --wait` never looked at recorded cancels; `runs cancel` said the
    /// driver would stop the run, and the job went on for its full minute.
    #[test]
    fn run_wait_honours_a_cancel_from_another_process() {
        let dir = temp_dir("remote");
        let store = "sqlite://remote.db";
        assert_eq!(app(&dir, &["runs", "list", "--store", store]).0, 0);
        let mut run = Proc::spawn(&dir, &["run", "cli-sleep", "--wait", "--store", store]);
        let id = run_in_state(&dir, store, "running", &mut run);
        let asked = Instant::now();
        let (code, out, err) = app(&dir, &["runs", "cancel", &id, "--store", store]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("cancel recorded"), "{out}");
        let Some((code, out, err)) = run.exit_within(Duration::from_secs(10)) else {
            panic!("`run --wait` ignored the cancel requested by `runs cancel`");
        };
        let took = asked.elapsed();
        assert_eq!(code, 1, "{out}\n{err}");
        assert!(out.contains("cancelled"), "{out}\n{err}");
        assert!(
            took < Duration::from_secs(3),
            "stopped {took:?} after the request"
        );
        assert!(show(&dir, store, &id).contains("state     cancelled"));
    }

    /// Before: jobs blocking their threads made `run --wait` deaf to Ctrl-C (twice),
    /// and the second Ctrl-C, when heard, printed that the run was asked to cancel
    /// while the store recorded nothing: the next `serve` ran the jobs again. Now the
    /// second Ctrl-C records the cancellation and ends the process at once; `serve`
    /// later cancels the run without running a job.
    #[test]
    fn a_second_ctrl_c_ends_a_blocked_run_wait_and_its_cancel_is_recorded() {
        let dir = temp_dir("blocked-wait");
        let store = "sqlite://blocked.db";
        assert_eq!(app(&dir, &["runs", "list", "--store", store]).0, 0);
        let mut run = Proc::spawn(&dir, &["run", "cli-block", "--wait", "--store", store]);
        let id = run_in_state(&dir, store, "running", &mut run);
        let t = Instant::now();
        while started(&dir) == 0 {
            assert!(t.elapsed() < Duration::from_secs(30), "no job started");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Every worker thread that will block is blocked by now.
        std::thread::sleep(Duration::from_millis(300));
        let bodies = started(&dir);
        run.sigint();
        std::thread::sleep(Duration::from_millis(300));
        run.assert_running();
        let second = Instant::now();
        run.sigint();
        let Some((code, out, err)) = run.exit_within(Duration::from_secs(10)) else {
            panic!("a second Ctrl-C did not end `run --wait`");
        };
        let took = second.elapsed();
        assert_eq!(code, 130, "{out}\n{err}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert!(
            err.contains(&format!(
                "run {id} left unfinished with its cancellation recorded in the store"
            )),
            "{err}"
        );
        // What the message says is what the store holds: the engine that takes the
        // run over (once the interrupted process's lease expires) cancels it without
        // running a job again.
        let mut serve = Proc::spawn(&dir, &["serve", "--poll-secs", "1", "--store", store]);
        let t = Instant::now();
        loop {
            serve.assert_running();
            let shown = show(&dir, store, &id);
            if shown.contains("state     cancelled") {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "not cancelled: {shown}"
            );
            assert_eq!(started(&dir), bodies, "a job ran again");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(started(&dir), bodies, "a job ran again");
        serve.sigint();
        let Some((code, _, err)) = serve.exit_within(Duration::from_secs(10)) else {
            panic!("serve did not stop");
        };
        assert_eq!(code, 0, "{err}");
    }

    /// Before: with jobs blocking its threads, `serve` printed `stopped` on Ctrl-C and
    /// then never exited, a second Ctrl-C included.
    #[test]
    fn a_second_ctrl_c_ends_a_serve_blocked_by_its_jobs() {
        let dir = temp_dir("blocked-serve");
        let store = "sqlite://blocked.db";
        assert_eq!(app(&dir, &["runs", "list", "--store", store]).0, 0);
        let mut serve = Proc::spawn(&dir, &["serve", "--poll-secs", "1", "--store", store]);
        let (code, out, err) = app(&dir, &["run", "cli-block", "--store", store]);
        assert_eq!(code, 0, "{out}{err}");
        let t = Instant::now();
        while started(&dir) == 0 {
            assert!(t.elapsed() < Duration::from_secs(30), "no job started");
            serve.assert_running();
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        serve.sigint();
        std::thread::sleep(Duration::from_millis(300));
        let second = Instant::now();
        serve.sigint();
        let Some((code, _, err)) = serve.exit_within(Duration::from_secs(10)) else {
            panic!("a second Ctrl-C did not end `serve`");
        };
        let took = second.elapsed();
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert_eq!(code, 130, "{err}");
        assert!(err.contains("interrupted again"), "{err}");
    }
}
