//! The user guide, from the repository's `docs/guide/`. Its examples are compiled and run
//! as doctests.
#![doc = ""]
#![doc = include_str!("../../docs/guide/writing-jobs-and-workflows.md")]
