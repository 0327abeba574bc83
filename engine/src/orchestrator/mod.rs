//! The orchestrator: walks a run's DAG, dispatching ready nodes to the executor and
//! recording every transition in the store first.

mod cancel;
mod catalog;
mod driver;
mod engine;
mod enqueue;
mod ops;
mod recurring;
mod resources;
mod result;
mod retry;
mod serve;
mod shared;

pub use engine::{Engine, EngineBuilder, RunHandle};
pub use enqueue::Enqueue;
pub use recurring::{Fire, FireOutcome, Recurring, RecurringSchedule, Schedules};
pub use result::{ItemReport, NodeReport, RunResult};
#[cfg_attr(not(feature = "cli"), allow(unused_imports))]
pub(crate) use retry::RETRY_REASON_PREFIX;
pub use retry::RetryMode;
