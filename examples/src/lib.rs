//! Workspace member holding examples; see the crate's targets.
//!
//! The examples' workflows live here so that the tests crate can check them too.

pub mod catalog;
