//! Tests of `#[job]` and `#[workflow]` (being built).
