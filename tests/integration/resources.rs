//! Shared resources injected into jobs, in every executor (issue 19).
