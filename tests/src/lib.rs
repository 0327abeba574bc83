//! Workspace member holding tests; see the crate's targets.
