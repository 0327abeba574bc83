//! Recurring schedules: the store layer (conformance on every store), the engine's
//! scheduler and its policies, exactly-once firing across processes.

#[cfg(feature = "sqlite")]
mod cli;
mod engine;
#[cfg(feature = "postgres")]
mod processes;
mod store;
