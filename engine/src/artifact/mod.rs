//! Artifacts: large payloads between nodes, in an object store chosen by URL.
//!
//! Node outputs are recorded in the store and must stay small. A node that produces
//! a dataset, an image or a model saves it as an *artifact* and returns a small
//! typed [`ArtifactRef<T>`] (provider, key, size, SHA-256, content type); the
//! downstream node takes the reference as an ordinary input and loads the content
//! back — whole, as a stream, by byte range, or as a `T` for JSON values.
//!
//! The store is an [`object_store`](https://docs.rs/object_store) backend picked at
//! run time from a URL ([`ArtifactConfig`]): `file://` (the default: a directory
//! private to the user, see [`ArtifactConfig::default_local`]) and `memory://` always,
//! `s3://`, `gs://` and
//! `az://` with the `s3`, `gcs` and `azure` features. Configure it with
//! [`EngineBuilder::artifacts`](crate::EngineBuilder::artifacts); jobs reach it
//! through [`JobContext`](crate::JobContext).
//!
//! - **Keys** are namespaced by run, node, fan-out item and attempt
//!   ([`Scope`]); a key may not leave the store's root (`..` is refused).
//! - **Private local stores**: a `file://` root is created `0700`; an existing one
//!   owned by another user or writable by group or others is refused, and nothing
//!   is written, read or deleted through a symbolic link out of the root.
//! - **Atomic writes**: an artifact appears under its key only once completely
//!   written (the providers stage uploads and publish them in one step: a
//!   staged file renamed into place, a multipart upload completed). A failed or
//!   interrupted save leaves nothing under the key.
//! - **Streaming** saves buffer at most one part before switching to a multipart
//!   upload with a bounded number of parts in flight; streaming loads check the size
//!   and hash as the bytes pass.
//! - **Failures** of the provider are retried with backoff ([`RetryPolicy`]),
//!   then reported as [`ArtifactError::Unavailable`]; every error names the
//!   artifact's key.
//! - **Retention**: [`ArtifactStore::list_run_artifacts`] and
//!   [`ArtifactStore::delete_run_artifacts`].
//!
//! The guide's chapter: [`crate::guide::artifacts`].

mod backend;
mod config;
mod error;
mod job_context;
mod key;
mod local;
mod provider;
mod reference;
mod retention;
mod retry;
mod scheme;
mod scoped;
mod store;
mod stream;

use std::sync::OnceLock;

pub use bytes::Bytes;
pub use config::{ArtifactConfig, ENV_URL};
pub use error::{ArtifactError, ArtifactResult};
pub use key::Scope;
pub use reference::{ArtifactRef, Blob, ContentHash, JSON, OCTET_STREAM, ParseContentHashError};
pub use retention::ArtifactInfo;
pub use retry::RetryPolicy;
pub use scheme::Provider;
pub use scoped::Artifacts;
pub use store::ArtifactStore;
pub use stream::ArtifactStream;

/// The store of contexts that were given none: the default local store, opened once.
pub(crate) fn process_default() -> &'static ArtifactStore {
    static DEFAULT: OnceLock<ArtifactStore> = OnceLock::new();
    DEFAULT.get_or_init(ArtifactStore::default_local)
}
