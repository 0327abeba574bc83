//! Integration tests: one binary, one module per area.

mod artifacts;
mod cancel;
mod common;
mod concurrency;
mod crash;
mod dag;
mod events;
mod fanout;
mod macros;
mod outage;
#[cfg(unix)]
mod process;
mod property;
mod resume;
mod retries;
mod serve;
mod spans;
mod store;
mod triggers;
mod validation;
