//! Workspace member holding benches; see the crate's targets.
