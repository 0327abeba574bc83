//! Operations: traces, metrics, health checks, retention (issue 17).
