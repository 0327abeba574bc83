//! The executor contract: every executor (in-process, process) passes the same suite.
