//! Integration tests: one binary, one module per area.

mod artifacts;
mod bounds;
mod cancel;
mod cancel_queued;
mod cli;
mod common;
mod concurrency;
mod crash;
mod dag;
#[cfg(feature = "http")]
mod dashboard;
mod data_dags;
mod events;
mod executor_contract;
mod fanout;
mod faults;
mod fleet;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "http")]
mod http_sse;
mod hygiene;
#[cfg(feature = "kubernetes")]
mod kubernetes;
mod macros;
mod ops;
mod outage;
#[cfg(unix)]
mod process;
mod property;
mod queries;
mod recurring;
mod resources;
mod resume;
mod retries;
mod retry_run;
mod serve;
mod spans;
mod store;
mod triggers;
mod usability;
mod validation;
