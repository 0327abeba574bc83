//! Workspace member holding examples; see the crate's targets.
