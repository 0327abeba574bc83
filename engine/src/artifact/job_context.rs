//! `JobContext`'s shortcuts for the common artifact operations.

use std::ops::Range;

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncRead;

use super::error::{ArtifactResult, BoxError};
use super::reference::{ArtifactRef, Blob};
use super::stream::ArtifactStream;
use crate::context::JobContext;

/// Shortcuts for [`JobContext::artifacts`]: save under this attempt's folder, load
/// any reference.
///
/// ```
/// use dagforge::artifact::{ArtifactRef, ArtifactStore};
/// use dagforge::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), dagforge::artifact::ArtifactError> {
/// let ctx = JobContext::detached("report").with_artifacts(ArtifactStore::memory());
/// let r: ArtifactRef<Vec<String>> = ctx.save_json("rows.json", &vec!["a".to_owned()]).await?;
/// assert!(r.key().ends_with("/report/attempt-1/rows.json"));
/// assert_eq!(ctx.load(&r).await?, ["a"]);
/// # Ok(())
/// # }
/// ```
impl JobContext {
    /// Saves `value` as JSON, as the artifact `name` of this attempt.
    pub async fn save_json<T: Serialize>(
        &self,
        name: &str,
        value: &T,
    ) -> ArtifactResult<ArtifactRef<T>> {
        self.artifacts().save_json(name, value).await
    }

    /// Saves `data` as the artifact `name` of this attempt.
    pub async fn save_bytes(
        &self,
        name: &str,
        data: impl Into<Bytes>,
    ) -> ArtifactResult<ArtifactRef<Blob>> {
        self.artifacts().save_bytes(name, data).await
    }

    /// Saves a stream of chunks as the artifact `name` of this attempt, in bounded
    /// memory (multipart past one part).
    pub async fn save_stream<S, E>(
        &self,
        name: &str,
        stream: S,
    ) -> ArtifactResult<ArtifactRef<Blob>>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        self.artifacts().save_stream(name, stream).await
    }

    /// Saves what `reader` yields as the artifact `name` of this attempt.
    pub async fn save_reader<R>(&self, name: &str, reader: R) -> ArtifactResult<ArtifactRef<Blob>>
    where
        R: AsyncRead + Send,
    {
        self.artifacts().save_reader(name, reader).await
    }

    /// Loads a JSON artifact as `T`.
    pub async fn load<T: DeserializeOwned>(&self, r: &ArtifactRef<T>) -> ArtifactResult<T> {
        self.artifact_store().load(r).await
    }

    /// Loads an artifact's bytes.
    pub async fn load_bytes<T>(&self, r: &ArtifactRef<T>) -> ArtifactResult<Bytes> {
        self.artifact_store().load_bytes(r).await
    }

    /// Streams an artifact's bytes.
    pub async fn load_stream<T>(&self, r: &ArtifactRef<T>) -> ArtifactResult<ArtifactStream> {
        self.artifact_store().load_stream(r).await
    }

    /// Loads the bytes `range` of an artifact.
    pub async fn load_range<T>(
        &self,
        r: &ArtifactRef<T>,
        range: Range<u64>,
    ) -> ArtifactResult<Bytes> {
        self.artifact_store().load_range(r, range).await
    }
}
