//! Which kind of object store a URL names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of object store an artifact lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Provider {
    /// A directory of the local file system (`file:///path`).
    #[serde(rename = "file")]
    File,
    /// The process's memory (`memory://`); gone when the store is dropped.
    #[serde(rename = "memory")]
    Memory,
    /// Amazon S3 or an S3-compatible server (`s3://bucket/prefix`, feature `s3`).
    #[serde(rename = "s3")]
    S3,
    /// Google Cloud Storage (`gs://bucket/prefix`, feature `gcs`).
    #[serde(rename = "gs")]
    Gcs,
    /// Azure Blob Storage (`az://container/prefix`, feature `azure`).
    #[serde(rename = "az")]
    Azure,
}

impl Provider {
    /// The URL scheme, as recorded in [`ArtifactRef`](super::ArtifactRef)s.
    pub const fn scheme(self) -> &'static str {
        match self {
            Provider::File => "file",
            Provider::Memory => "memory",
            Provider::S3 => "s3",
            Provider::Gcs => "gs",
            Provider::Azure => "az",
        }
    }

    pub(super) fn from_scheme(scheme: &str) -> Option<Provider> {
        Some(match scheme {
            "file" => Provider::File,
            "memory" => Provider::Memory,
            "s3" | "s3a" => Provider::S3,
            "gs" => Provider::Gcs,
            "az" | "azure" => Provider::Azure,
            _ => return None,
        })
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.scheme())
    }
}
