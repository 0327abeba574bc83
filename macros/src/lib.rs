//! Procedural macros for [dagforge](https://docs.rs/dagforge).
//!
//! Use them through the `dagforge` crate, which re-exports them; this crate is an
//! implementation detail and its version always matches `dagforge`'s.
//!
//! The `#[job]` and `#[workflow]` attributes are being built (see the project's
//! issue tracker); until then, jobs implement [`dagforge::Job`] by hand and
//! workflows use the builder.
