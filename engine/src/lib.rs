//! # dagforge
//!
//! A code-first workflow engine: write jobs as typed Rust, compose them into DAG
//! workflows, and run them with retries, fan-out, conditions and durable state.
//!
//! ```
//! use dagforge::prelude::*;
//!
//! struct Markets;
//! impl Job for Markets {
//!     type Input = ();
//!     type Output = Vec<String>;
//!     const NAME: &'static str = "markets";
//!     async fn run(&self, _: &JobContext, _: ()) -> Result<Vec<String>, JobError> {
//!         Ok(vec!["eu".into(), "us".into()])
//!     }
//! }
//!
//! struct Integrate;
//! impl Job for Integrate {
//!     type Input = String;
//!     type Output = usize;
//!     const NAME: &'static str = "integrate";
//!     async fn run(&self, ctx: &JobContext, market: String) -> Result<usize, JobError> {
//!         ctx.info(format!("integrating {market}"));
//!         Ok(market.len())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), dagforge::Error> {
//! let mut wf = Workflow::builder("catalog");
//! let markets = wf.add("markets", Markets).handle();
//! wf.add("integrate", Integrate).each_input(markets).retries(2);
//! let wf = wf.build()?;
//!
//! let result = Engine::new().run(&wf, ()).await?;
//! assert_eq!(result.output::<Vec<usize>>("integrate")?, vec![2, 2]);
//! # Ok(())
//! # }
//! ```
//!
//! Start with the [`prelude`]; the guide lives in the repository's `docs/`.

#![warn(missing_docs)]

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
#[cfg(feature = "cli")]
mod app;
pub mod artifact;
pub mod bounds;
mod clock;
mod context;
mod error;
mod events;
mod executor;
#[cfg(feature = "test-util")]
pub mod executor_conformance;
pub mod fleet;
pub mod guide;
#[cfg(feature = "http")]
pub mod http;
mod ids;
mod job;
mod limit;
mod log_level;
mod orchestrator;
pub mod redact;
mod registry;
pub mod resource;
pub mod schedule;
mod signal;
mod state;
pub mod store;
pub mod telemetry;
#[cfg(all(feature = "process", unix))]
pub mod worker;
pub mod workflow;

#[cfg(feature = "cli")]
pub use app::{App, AppOutput};
pub use clock::{Clock, ManualClock, SystemClock};
pub use context::JobContext;
pub use error::{Error, ErrorInfo, ErrorKind, JobError, Result};
pub use events::{Event, EventKind, EventStream, NodeEvent};
pub use executor::{Execution, ExecutionHandle, Executor, InProcess};
#[cfg(feature = "kubernetes")]
pub use executor::{
    KubernetesConfig, KubernetesConfigError, KubernetesExecutor, KubernetesExecutorBuilder,
    Propagation, Reaped,
};
#[cfg(all(feature = "process", unix))]
pub use executor::{ProcessExecutor, ProcessExecutorBuilder, WorkerCommand};
pub use executor::{QueueExecutor, QueueExecutorBuilder, Route};
pub use ids::{ParseRunIdError, RunId};
pub use job::{Backoff, Job, JobSpec, Resources};
pub use log_level::LogLevel;
pub use orchestrator::{
    Engine, EngineBuilder, Enqueue, ItemReport, NodeReport, RetryMode, RunHandle, RunResult,
};
pub use orchestrator::{Fire, FireOutcome, Recurring, RecurringSchedule, Schedules};
pub use registry::{DynJob, Registry};
pub use state::{InvalidTransition, NodeState, RunState};
pub use workflow::{
    DagError, DagLimits, DagSpec, DynNode, Field, Items, NodeRef, Source, TriggerRule, Workflow,
    WorkflowBuilder,
};

#[doc(inline)]
pub use dagforge_macros::{job, workflow};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}

/// The types most programs need.
pub mod prelude {
    pub use crate::store::MemoryStore;
    pub use crate::{
        Backoff, DagLimits, DagSpec, DynJob, Engine, Event, EventKind, Field, Job, JobContext,
        JobError, JobSpec, LogLevel, NodeRef, NodeState, Registry, RunResult, RunState, Source,
        TriggerRule, Workflow, job, workflow,
    };
}
