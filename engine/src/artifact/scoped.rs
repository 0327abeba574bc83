//! `Artifacts`: one attempt's view of the store, saving under its own folder.

use std::ops::Range;

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncRead;

use super::error::{ArtifactResult, BoxError};
use super::key::Scope;
use super::reference::{ArtifactRef, Blob};
use super::store::ArtifactStore;
use super::stream::ArtifactStream;

/// The artifact store as one attempt sees it: what it saves goes under
/// `runs/<run>/<node>[/item-<i>]/attempt-<n>/<name>`, so attempts and fan-out items
/// never overwrite each other, and a retry never sees what a failed attempt was
/// writing. Loading takes any reference.
///
/// Get it from [`JobContext::artifacts`](crate::JobContext::artifacts).
#[derive(Clone, Debug)]
pub struct Artifacts {
    store: ArtifactStore,
    scope: Scope,
}

impl Artifacts {
    pub(crate) fn new(store: ArtifactStore, scope: Scope) -> Self {
        Artifacts { store, scope }
    }

    /// The underlying store.
    pub fn store(&self) -> &ArtifactStore {
        &self.store
    }

    /// Where this attempt's artifacts go.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Saves `data` as the artifact `name` of this attempt.
    pub async fn save_bytes(
        &self,
        name: &str,
        data: impl Into<Bytes>,
    ) -> ArtifactResult<ArtifactRef<Blob>> {
        self.store.save_bytes(&self.scope.key(name)?, data).await
    }

    /// Saves `value` as JSON, as the artifact `name` of this attempt.
    pub async fn save_json<T: Serialize>(
        &self,
        name: &str,
        value: &T,
    ) -> ArtifactResult<ArtifactRef<T>> {
        self.store.save_json(&self.scope.key(name)?, value).await
    }

    /// Saves a stream of chunks in bounded memory (see
    /// [`ArtifactStore::save_stream`]).
    pub async fn save_stream<S, E>(
        &self,
        name: &str,
        stream: S,
    ) -> ArtifactResult<ArtifactRef<Blob>>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        self.store.save_stream(&self.scope.key(name)?, stream).await
    }

    /// Saves what `reader` yields in bounded memory.
    pub async fn save_reader<R>(&self, name: &str, reader: R) -> ArtifactResult<ArtifactRef<Blob>>
    where
        R: AsyncRead + Send,
    {
        self.store.save_reader(&self.scope.key(name)?, reader).await
    }

    /// See [`ArtifactStore::load`].
    pub async fn load<T: DeserializeOwned>(&self, r: &ArtifactRef<T>) -> ArtifactResult<T> {
        self.store.load(r).await
    }

    /// See [`ArtifactStore::load_bytes`].
    pub async fn load_bytes<T>(&self, r: &ArtifactRef<T>) -> ArtifactResult<Bytes> {
        self.store.load_bytes(r).await
    }

    /// See [`ArtifactStore::load_stream`].
    pub async fn load_stream<T>(&self, r: &ArtifactRef<T>) -> ArtifactResult<ArtifactStream> {
        self.store.load_stream(r).await
    }

    /// See [`ArtifactStore::load_range`].
    pub async fn load_range<T>(
        &self,
        r: &ArtifactRef<T>,
        range: Range<u64>,
    ) -> ArtifactResult<Bytes> {
        self.store.load_range(r, range).await
    }
}

impl ArtifactStore {
    /// The handle through which one attempt saves its artifacts.
    pub fn scoped(&self, scope: Scope) -> Artifacts {
        Artifacts::new(self.clone(), scope)
    }
}
