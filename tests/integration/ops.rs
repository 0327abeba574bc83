//! Operations: traces, metrics, health checks, retention (issue 17).

mod health;
mod metrics;
mod proxy;
