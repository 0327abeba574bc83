//! Artifacts: one conformance suite run against every provider (memory, file, and
//! S3 through moto_server), plus the file store's own rules, jobs passing artifacts
//! through the engine, streaming in bounded memory, the private root of `file://`
//! stores on a shared machine, and where the CLI puts artifacts.

mod cli;
mod conformance;
mod engine;
mod file;
mod private;
mod s3;
mod streaming;

use std::path::PathBuf;

use dagforge::RunId;
use dagforge::artifact::{ArtifactConfig, ArtifactStore};

/// A fresh directory under the system's temporary directory, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        TempDir(std::env::temp_dir().join(format!("dagforge-test-{}", RunId::new())))
    }

    pub(crate) fn store(&self) -> ArtifactStore {
        ArtifactConfig::local(&self.0).unwrap().build().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
