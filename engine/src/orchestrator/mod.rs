//! The orchestrator: walks a run's DAG, dispatching ready nodes to the executor and
//! recording every transition in the store first.

mod driver;
mod engine;
mod result;
mod retry;

pub use engine::{Engine, EngineBuilder, RunHandle};
pub use result::{ItemReport, NodeReport, RunResult};
pub use retry::RetryMode;
