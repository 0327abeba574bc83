//! Remote workers: attempts through the store's execution queue to `work` processes (issue 16).

mod conformance;
mod local;
mod stores;
