//! The executor contract: every executor (in-process, process) passes the same suite,
//! `dagforge::executor_conformance`, one test per check and executor.

use std::time::Duration;

use dagforge::executor_conformance::Suite;
use dagforge::{
    ErrorInfo, ErrorKind, Execution, ExecutionHandle, Executor, InProcess, ProcessExecutor,
};

/// The process executor's test worker (`tests/bin/test_worker.rs`), which registers
/// the suite's jobs.
const WORKER: &str = env!("CARGO_BIN_EXE_dagforge-test-worker");

fn in_process() -> Suite<fn() -> InProcess> {
    Suite::new(InProcess::new as fn() -> InProcess)
}

fn process_executor() -> ProcessExecutor {
    ProcessExecutor::builder()
        .program(WORKER)
        .args(Vec::<String>::new())
        .heartbeat_interval(Duration::from_millis(100))
        .heartbeat_timeout(Duration::from_secs(2))
        // No longer than the suite's grace (600 ms).
        .grace_period(Duration::from_millis(500))
        .build()
}

fn process() -> Suite<fn() -> ProcessExecutor> {
    Suite::new(process_executor as fn() -> ProcessExecutor).children(true)
}

/// One test per check and executor.
macro_rules! checks {
    ($($check:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::in_process().$check().await.unwrap();
                }
            )*
        }
        mod process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::process().$check().await.unwrap();
                }
            )*
        }
    };
}

checks!(
    start_and_output,
    logs_and_progress,
    error_kinds,
    start_does_not_block,
    cancel_cooperative,
    cancel_deaf_after_grace,
    timeout,
    dropped_execution,
    crash,
    abandoned_run,
);

/// `run_all` runs every check and reports none for a conforming executor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes_for_the_in_process_executor() {
    if let Err(v) = in_process().run_all().await {
        panic!("{v}");
    }
}

/// The suite does find broken executors: each check below fails, naming the check
/// and the executor, for an executor that breaks the promise it checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_an_executor_that_loses_its_executions() {
    let v = Suite::new(|| Hoarder).start_and_output().await.unwrap_err();
    assert_eq!(v.check, "start_and_output");
    assert_eq!(v.executor, "Hoarder");
    assert!(v.message.contains("Executor"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_an_executor_that_blocks_in_start() {
    let v = Suite::new(|| Blocking)
        .start_does_not_block()
        .await
        .unwrap_err();
    assert_eq!((v.check, v.executor), ("start_does_not_block", "Blocking"));
    assert!(v.message.contains("`start`"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_an_executor_that_cannot_stop_an_attempt() {
    let v = Suite::new(|| Unstoppable)
        .cancel_deaf_after_grace()
        .await
        .unwrap_err();
    assert_eq!(v.check, "cancel_deaf_after_grace");
    assert!(v.message.contains("not stopped"), "{v}");
    let v = Suite::new(|| Unstoppable)
        .abandoned_run()
        .await
        .unwrap_err();
    assert_eq!((v.check, v.executor), ("abandoned_run", "Unstoppable"));
    assert!(v.message.contains("not stopped"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_an_executor_that_ignores_timeouts() {
    let v = Suite::new(|| Timeless).timeout().await.unwrap_err();
    assert_eq!((v.check, v.executor), ("timeout", "Timeless"));
    assert!(v.message.contains("ended succeeded"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_an_executor_that_kills_at_once_on_cancel() {
    let v = Suite::new(|| Impatient)
        .cancel_deaf_after_grace()
        .await
        .unwrap_err();
    assert_eq!(
        (v.check, v.executor),
        ("cancel_deaf_after_grace", "Impatient")
    );
    assert!(v.message.contains("grace period"), "{v}");
}

/// Drops every execution it gets without an outcome.
#[derive(Debug)]
struct Hoarder;

impl Executor for Hoarder {
    fn start(&self, execution: Execution) -> ExecutionHandle {
        drop(execution);
        ExecutionHandle::detached()
    }
}

/// Runs each attempt in a task, but only after blocking the caller for 300 ms.
#[derive(Debug)]
struct Blocking;

impl Executor for Blocking {
    fn start(&self, execution: Execution) -> ExecutionHandle {
        std::thread::sleep(Duration::from_millis(300));
        let task = tokio::spawn(execution.run_here());
        ExecutionHandle::from_task(task.abort_handle())
    }
}

/// Runs each attempt in a task it cannot abort.
#[derive(Debug)]
struct Unstoppable;

impl Executor for Unstoppable {
    fn start(&self, execution: Execution) -> ExecutionHandle {
        tokio::spawn(execution.run_here());
        ExecutionHandle::detached()
    }
}

/// Runs each attempt's job directly, without its timeout.
#[derive(Debug)]
struct Timeless;

impl Executor for Timeless {
    fn start(&self, execution: Execution) -> ExecutionHandle {
        let task = tokio::spawn(async move {
            let run = execution
                .job()
                .call(execution.context().clone(), execution.input().clone());
            let outcome = run.await;
            execution.complete(outcome);
        });
        ExecutionHandle::from_task(task.abort_handle())
    }
}

/// Stops an attempt the moment its run is cancelled, without a grace period.
#[derive(Debug)]
struct Impatient;

impl Executor for Impatient {
    fn start(&self, execution: Execution) -> ExecutionHandle {
        let task = tokio::spawn(async move {
            let ctx = execution.context().clone();
            let run = execution.job().call(ctx.clone(), execution.input().clone());
            let outcome = tokio::select! {
                outcome = run => outcome,
                () = ctx.cancelled() => Err(ErrorInfo::new(ErrorKind::Cancelled, "killed at once")),
            };
            execution.complete(outcome);
        });
        ExecutionHandle::from_task(task.abort_handle())
    }
}
