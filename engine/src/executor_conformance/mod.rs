//! The executor conformance suite (feature `test-util`): checks that an [`Executor`]
//! keeps the contract written on the trait, by running small workflows through a real
//! [`Engine`] over a [`MemoryStore`] — what a user of the executor would see.
//!
//! ```no_run
//! # async fn example() {
//! use dagforge::executor_conformance::Suite;
//! use dagforge::InProcess;
//!
//! Suite::new(InProcess::new).run_all().await.unwrap();
//! # }
//! ```
//!
//! An executor that runs attempts in another binary (a worker, a pod) registers the
//! suite's [`jobs`] there with [`jobs::register`], and declares that its attempts run
//! in child processes with [`Suite::children`], so that the crash check aborts the
//! child instead of panicking. Each check is also a method of its own, for one test
//! per check.

/// Fails the check `$check` with a formatted message unless `$cond` holds.
macro_rules! ensure {
    ($suite:expr, $check:expr, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($suite.violation($check, format!($($msg)+)));
        }
    };
}

pub mod jobs;
mod stopping;
mod watch;
mod wrappers;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use self::jobs::{Crash, Fail, Nap, Report};
use self::watch::Watch;
use self::wrappers::{DropFirst, Timed};
use crate::error::ErrorKind;
use crate::events::EventKind;
use crate::executor::Executor;
use crate::job::Backoff;
use crate::log_level::LogLevel;
use crate::orchestrator::{Engine, RunResult};
use crate::state::{NodeState, RunState};
use crate::store::MemoryStore;
use crate::workflow::Workflow;

/// A broken promise of the contract: which check, which executor, what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The check that failed (its method's name).
    pub check: &'static str,
    /// The executor's [`name`](Executor::name).
    pub executor: &'static str,
    /// What was expected and what happened.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {}: {}", self.executor, self.check, self.message)
    }
}

impl std::error::Error for Violation {}

/// Every violation [`Suite::run_all`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} check(s) failed:", self.0.len())?;
        for v in &self.0 {
            writeln!(f, "- {v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

/// The outcome of one check.
pub type Check = Result<(), Violation>;

/// The suite, over executors made by `make` (one per check, each in an engine of its
/// own).
pub struct Suite<F> {
    make: F,
    children: bool,
    grace: Duration,
    slack: Duration,
}

impl<F> fmt::Debug for Suite<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Suite")
            .field("children", &self.children)
            .field("grace", &self.grace)
            .field("slack", &self.slack)
            .finish_non_exhaustive()
    }
}

impl<F, E> Suite<F>
where
    F: Fn() -> E + Send + Sync,
    E: Executor,
{
    /// The suite over the executors `make` returns. Defaults: no child processes, a
    /// 600 ms cancellation grace, 1.5 s of slack on every time bound.
    pub fn new(make: F) -> Self {
        Suite {
            make,
            children: false,
            grace: Duration::from_millis(600),
            slack: Duration::from_millis(1500),
        }
    }

    /// Whether attempts run in child processes (the crash check then aborts the
    /// child; otherwise it panics inside the job).
    pub fn children(mut self, yes: bool) -> Self {
        self.children = yes;
        self
    }

    /// The engine's cancellation grace period in the cancellation checks. An executor
    /// with a grace period of its own should use one no longer than this, and at
    /// least half of it.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How much later than ideal an attempt may start, stop or time out (process
    /// start-up, a loaded machine).
    pub fn slack(mut self, slack: Duration) -> Self {
        self.slack = slack;
        self
    }

    /// Runs every check, in order, and returns all violations.
    pub async fn run_all(&self) -> Result<(), Violations> {
        let mut found = Vec::new();
        let checks = [
            self.start_and_output().await,
            self.logs_and_progress().await,
            self.error_kinds().await,
            self.start_does_not_block().await,
            self.cancel_cooperative().await,
            self.cancel_deaf_after_grace().await,
            self.timeout().await,
            self.dropped_execution().await,
            self.crash().await,
            self.abandoned_run().await,
        ];
        for c in checks {
            if let Err(v) = c {
                found.push(v);
            }
        }
        if found.is_empty() {
            Ok(())
        } else {
            Err(Violations(found))
        }
    }

    fn violation(&self, check: &'static str, message: String) -> Violation {
        Violation {
            check,
            executor: (self.make)().name(),
            message,
        }
    }

    fn engine_with(&self, executor: impl Executor) -> Engine {
        Engine::builder()
            .store(MemoryStore::new())
            .executor(executor)
            .cancel_grace(self.grace)
            .build()
    }

    /// Runs `wf` to its end in a fresh engine over `executor`, with the run's events.
    async fn run_with(
        &self,
        check: &'static str,
        executor: impl Executor,
        wf: &Workflow,
    ) -> Result<(RunResult, Watch), Violation> {
        let engine = self.engine_with(executor);
        let mut watch = Watch::new(&engine);
        let run = engine
            .start(wf, ())
            .await
            .map_err(|e| self.violation(check, format!("the run did not start: {e}")))?;
        watch.follow(run.id());
        let result = self.wait(check, run.wait()).await?;
        watch.drain().await;
        Ok((result, watch))
    }

    async fn wait(
        &self,
        check: &'static str,
        wait: impl Future<Output = crate::Result<RunResult>>,
    ) -> Result<RunResult, Violation> {
        match tokio::time::timeout(Duration::from_secs(30) + self.slack, wait).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.violation(check, format!("the run failed to finish: {e}"))),
            Err(_) => Err(self.violation(check, "the run did not finish within 30 s".into())),
        }
    }

    fn workflow(
        &self,
        check: &'static str,
        wf: crate::WorkflowBuilder,
    ) -> Result<Workflow, Violation> {
        wf.build()
            .map_err(|e| self.violation(check, format!("the suite's workflow is invalid: {e}")))
    }

    /// An attempt runs and its output, built from its input, becomes the node's
    /// output; the run succeeds.
    pub async fn start_and_output(&self) -> Check {
        const C: &str = "start_and_output";
        let input = json!({"text": "héllo", "list": [1, 2.5, null, true], "nested": {"k": "v"}});
        let mut wf = Workflow::builder("conformance-output");
        wf.add("report", Report).input(input.clone());
        let wf = self.workflow(C, wf)?;
        let (r, _) = self.run_with(C, (self.make)(), &wf).await?;
        ensure!(
            self,
            C,
            r.state == RunState::Succeeded,
            "the run ended {} (expected succeeded): {:?}",
            r.state,
            r.nodes
        );
        let out = r.node("report").and_then(|n| n.output.clone());
        let want = json!({"input": input, "attempt": 1});
        ensure!(
            self,
            C,
            out.as_ref() == Some(&want),
            "the output is {out:?}, expected {want}"
        );
        Ok(())
    }

    /// The job's log lines (with their levels) and progress reach the run's events,
    /// attributed to the node and attempt.
    pub async fn logs_and_progress(&self) -> Check {
        const C: &str = "logs_and_progress";
        let mut wf = Workflow::builder("conformance-logs");
        wf.add("report", Report).input(Value::Null);
        let wf = self.workflow(C, wf)?;
        let (r, watch) = self.run_with(C, (self.make)(), &wf).await?;
        ensure!(
            self,
            C,
            r.state == RunState::Succeeded,
            "the run ended {}: {}",
            r.state,
            r.table()
        );
        for (level, line) in [
            (LogLevel::Info, jobs::INFO_LINE),
            (LogLevel::Warn, jobs::WARN_LINE),
        ] {
            let seen = watch.events().iter().any(|k| {
                matches!(k, EventKind::Log { node, attempt: 1, level: l, message, .. }
                    if &**node == "report" && *l == level && message == line)
            });
            ensure!(
                self,
                C,
                seen,
                "no {level:?} log event {line:?} for node `report` attempt 1; events: {:?}",
                watch.events()
            );
        }
        let progress = watch.events().iter().any(|k| {
            matches!(k, EventKind::Progress { node, attempt: 1, percent, message, .. }
                if &**node == "report" && *percent == jobs::PROGRESS_PERCENT && message == jobs::PROGRESS_LINE)
        });
        ensure!(
            self,
            C,
            progress,
            "no progress event for node `report` attempt 1; events: {:?}",
            watch.events()
        );
        Ok(())
    }

    /// A retryable error is retried per the node's policy; a terminal error is not.
    pub async fn error_kinds(&self) -> Check {
        const C: &str = "error_kinds";
        let mut wf = Workflow::builder("conformance-errors");
        wf.add("retryable", Fail)
            .input((false, 1))
            .retries(2)
            .backoff(Backoff::none());
        wf.add("terminal", Fail)
            .input((true, 1))
            .retries(2)
            .backoff(Backoff::none());
        let wf = self.workflow(C, wf)?;
        let (r, _) = self.run_with(C, (self.make)(), &wf).await?;
        let retried = r.node("retryable");
        ensure!(
            self,
            C,
            retried.is_some_and(|n| n.state == NodeState::Succeeded
                && n.attempts == 2
                && n.output == Some(json!(2))),
            "a retryable failure of attempt 1 should be retried and attempt 2 succeed: {retried:?}"
        );
        let terminal = r.node("terminal");
        ensure!(
            self,
            C,
            terminal.is_some_and(|n| n.state == NodeState::Failed
                && n.attempts == 1
                && n.error
                    .as_ref()
                    .is_some_and(|e| e.kind == ErrorKind::Terminal)),
            "a terminal failure should fail the node at once with kind Terminal: {terminal:?}"
        );
        Ok(())
    }

    /// `start` returns at once (each call within 100 ms plus a tenth of the slack)
    /// and attempts run side by side: four 800 ms naps end well before 3.2 s.
    pub async fn start_does_not_block(&self) -> Check {
        const C: &str = "start_does_not_block";
        let longest = Arc::new(AtomicU64::new(0));
        let timed = Timed {
            inner: (self.make)(),
            longest: Arc::clone(&longest),
        };
        let mut wf = Workflow::builder("conformance-parallel");
        for i in 0..4 {
            wf.add(format!("nap{i}"), Nap)
                .input((800, true, None::<String>));
        }
        let wf = self.workflow(C, wf)?;
        let t = Instant::now();
        let (r, _) = self.run_with(C, timed, &wf).await?;
        let took = t.elapsed();
        ensure!(
            self,
            C,
            r.state == RunState::Succeeded,
            "the run ended {}: {}",
            r.state,
            r.table()
        );
        let longest = Duration::from_micros(longest.load(Ordering::SeqCst));
        let bound = Duration::from_millis(100) + self.slack / 10;
        ensure!(
            self,
            C,
            longest <= bound,
            "a call to `start` took {longest:?} (at most {bound:?}): it must spawn the work and return"
        );
        let bound = Duration::from_millis(800) + self.slack;
        ensure!(
            self,
            C,
            took <= bound,
            "four 800 ms attempts took {took:?} (at most {bound:?}): attempts must run side by side"
        );
        Ok(())
    }

    /// An execution that the executor drops without an outcome fails its attempt
    /// with kind Executor naming the executor, and the node's retry policy runs it
    /// again (here through the executor under test).
    pub async fn dropped_execution(&self) -> Check {
        const C: &str = "dropped_execution";
        let dropping = DropFirst {
            inner: (self.make)(),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let mut wf = Workflow::builder("conformance-drop");
        wf.add("report", Report)
            .input(json!("again"))
            .retries(1)
            .backoff(Backoff::none());
        let wf = self.workflow(C, wf)?;
        let (r, watch) = self.run_with(C, dropping, &wf).await?;
        let node = r.node("report");
        ensure!(
            self,
            C,
            node.is_some_and(|n| n.state == NodeState::Succeeded && n.attempts == 2),
            "the dropped attempt should be retried and attempt 2 succeed: {}",
            r.table()
        );
        let first = watch.attempt_error("report", 1);
        ensure!(
            self,
            C,
            first
                .as_ref()
                .is_some_and(|e| e.kind == ErrorKind::Executor && e.message.contains("DropFirst")),
            "attempt 1 should fail with kind Executor naming the executor: {first:?}"
        );
        Ok(())
    }

    /// A crash (the child process dies without an outcome; in process, a panic)
    /// fails the attempt with a retryable kind, and the next attempt runs.
    pub async fn crash(&self) -> Check {
        const C: &str = "crash";
        let mut wf = Workflow::builder("conformance-crash");
        wf.add("crash", Crash)
            .input((self.children, 1))
            .retries(1)
            .backoff(Backoff::none());
        let wf = self.workflow(C, wf)?;
        let (r, watch) = self.run_with(C, (self.make)(), &wf).await?;
        let node = r.node("crash");
        ensure!(
            self,
            C,
            node.is_some_and(|n| n.state == NodeState::Succeeded
                && n.attempts == 2
                && n.output == Some(json!(2))),
            "the crashed attempt should be retried and attempt 2 succeed: {}",
            r.table()
        );
        let first = watch.attempt_error("crash", 1);
        ensure!(
            self,
            C,
            first.as_ref().is_some_and(|e| e.kind.is_retryable()
                && !matches!(e.kind, ErrorKind::Cancelled | ErrorKind::TimedOut)),
            "attempt 1 should fail with a retryable kind (Crashed, Failed, Panicked or Executor): {first:?}"
        );
        Ok(())
    }
}
