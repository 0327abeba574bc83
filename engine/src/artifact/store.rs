//! `ArtifactStore`: saving and loading artifacts in the configured object store.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncRead;

use super::backend::Inner;
use super::config::ArtifactConfig;
use super::error::{ArtifactError, ArtifactResult, BoxError};
use super::key;
use super::local::Access;
use super::provider;
use super::reference::{ArtifactRef, Blob, JSON, OCTET_STREAM};
use super::retry::{classify, retry};
use super::scheme::Provider;
use super::stream::{self, ArtifactStream};

/// Where artifacts are saved and loaded: an object store chosen by URL at run time
/// (see [`ArtifactConfig`]). Cheap to clone; clones share the connection.
///
/// Jobs use it through [`JobContext`](crate::JobContext) (`ctx.save_json(…)`,
/// `ctx.load(&r)`), which saves under the attempt's own folder. Used directly, keys
/// are relative to the store's root, `/`-separated, and may not contain `..`.
///
/// ```
/// use dagforge::artifact::ArtifactStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), dagforge::artifact::ArtifactError> {
/// let store = ArtifactStore::from_url("memory://")?;
/// let r = store.save_bytes("inputs/greeting.txt", "hello").await?;
/// assert_eq!(store.load_bytes(&r).await?, "hello");
/// assert_eq!(store.load_range(&r, 1..3).await?, "el");
///
/// let escape = store.save_bytes("../outside", "x").await.unwrap_err();
/// assert!(escape.to_string().contains("`..`"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ArtifactStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the inner store: provider clients may hold credentials.
        f.debug_struct("ArtifactStore")
            .field("url", &self.inner.display)
            .field("provider", &self.inner.provider)
            .field("retry", &self.inner.retry)
            .field("part_size", &self.inner.part_size)
            .field("upload_concurrency", &self.inner.upload_concurrency)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.display)
    }
}

impl Default for ArtifactStore {
    /// [`ArtifactStore::default_local`].
    fn default() -> Self {
        ArtifactStore::default_local()
    }
}

impl ArtifactStore {
    /// Opens the store a configuration describes.
    ///
    /// A `file://` root that exists must be private to this user (owned by it, not
    /// writable by group or others): otherwise [`ArtifactError::UnsafeDirectory`].
    /// A missing root is created `0700` by the first write.
    pub fn from_config(config: &ArtifactConfig) -> ArtifactResult<Self> {
        Self::open(config, true)
    }

    fn open(config: &ArtifactConfig, check_now: bool) -> ArtifactResult<Self> {
        let opened = provider::open(config, check_now)?;
        Ok(ArtifactStore {
            inner: Arc::new(Inner {
                store: opened.store,
                root: opened.root,
                provider: config.provider,
                display: config.redacted_url(),
                local: opened.local,
                retry: config.retry,
                part_size: config.part_size,
                upload_concurrency: config.upload_concurrency,
            }),
        })
    }

    /// Opens the store at `url` with default settings (see [`ArtifactConfig::new`]).
    pub fn from_url(url: &str) -> ArtifactResult<Self> {
        ArtifactConfig::new(url)?.build()
    }

    /// Opens the store named by `DAGFORGE_ARTIFACTS`, or the default local one (see
    /// [`ArtifactConfig::from_env`]).
    pub fn from_env() -> ArtifactResult<Self> {
        ArtifactConfig::from_env()?.build()
    }

    /// A new, empty store in this process's memory.
    pub fn memory() -> Self {
        ArtifactStore::in_memory(&ArtifactConfig::memory())
    }

    fn in_memory(config: &ArtifactConfig) -> Self {
        ArtifactStore {
            inner: Arc::new(Inner {
                store: Arc::new(object_store::memory::InMemory::new()),
                root: Path::default(),
                provider: Provider::Memory,
                display: config.redacted_url(),
                local: None,
                retry: config.retry,
                part_size: config.part_size,
                upload_concurrency: config.upload_concurrency,
            }),
        }
    }

    /// The default store: this user's private directory
    /// ([`ArtifactConfig::default_local`]). Nothing is created until the first write,
    /// which makes the directory `0700`; if it exists and is not private, every
    /// operation fails with [`ArtifactError::UnsafeDirectory`].
    pub fn default_local() -> Self {
        let config = ArtifactConfig::default_local();
        ArtifactStore::open(&config, false).unwrap_or_else(|_| ArtifactStore::in_memory(&config))
    }

    /// The kind of store.
    pub fn provider(&self) -> Provider {
        self.inner.provider
    }

    /// The store's URL without credentials (safe to log).
    pub fn url(&self) -> &str {
        &self.inner.display
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn path(&self, key: &str) -> ArtifactResult<Path> {
        key::join(&self.inner.root, key)
    }

    /// For `file://` stores: refuses `path` if it goes through a symbolic link out of
    /// the root (or the root is not private); for writes, creates the root first.
    pub(crate) async fn guard(
        &self,
        path: &Path,
        key: &str,
        operation: &'static str,
        access: Access,
    ) -> ArtifactResult<()> {
        match &self.inner.local {
            Some(local) => local.guard(path, key, operation, access).await,
            None => Ok(()),
        }
    }

    fn make_ref<T>(
        &self,
        key: &str,
        size: u64,
        hash: super::ContentHash,
        ct: &str,
    ) -> ArtifactRef<T> {
        ArtifactRef::new(self.inner.provider, key.to_owned(), size, hash, ct)
    }

    // ----- saving -----------------------------------------------------------------------

    /// Saves `data` under `key` (replacing what was there).
    pub async fn save_bytes(
        &self,
        key: &str,
        data: impl Into<Bytes>,
    ) -> ArtifactResult<ArtifactRef<Blob>> {
        self.put(key, data.into(), OCTET_STREAM).await
    }

    /// Saves `value` as JSON under `key`.
    pub async fn save_json<T: Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> ArtifactResult<ArtifactRef<T>> {
        let data = serde_json::to_vec(value).map_err(|source| ArtifactError::Encode {
            key: key.to_owned(),
            source,
        })?;
        self.put(key, Bytes::from(data), JSON).await
    }

    async fn put<T>(&self, key: &str, data: Bytes, ct: &str) -> ArtifactResult<ArtifactRef<T>> {
        let path = self.path(key)?;
        self.guard(&path, key, "put", Access::Write).await?;
        let (size, hash) = stream::digest(&data);
        let payload = PutPayload::from_bytes(data);
        retry(self.inner.retry, || {
            self.inner.store.put(&path, payload.clone())
        })
        .await
        .map_err(|f| classify(f, key, "put", &self.inner.display))?;
        Ok(self.make_ref(key, size, hash, ct))
    }

    /// Saves a stream of byte chunks under `key`, in bounded memory: past one part
    /// (8 MiB by default) it becomes a multipart upload. If the stream yields an
    /// error, the upload is aborted and nothing is stored
    /// ([`ArtifactError::Source`]).
    pub async fn save_stream<S, E>(&self, key: &str, stream: S) -> ArtifactResult<ArtifactRef<Blob>>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        let path = self.path(key)?;
        self.guard(&path, key, "put", Access::Write).await?;
        let (size, hash) = stream::upload(&self.inner, &path, key, stream).await?;
        Ok(self.make_ref(key, size, hash, OCTET_STREAM))
    }

    /// Saves everything `reader` yields under `key` (see
    /// [`save_stream`](Self::save_stream)).
    pub async fn save_reader<R>(&self, key: &str, reader: R) -> ArtifactResult<ArtifactRef<Blob>>
    where
        R: AsyncRead + Send,
    {
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024);
        self.save_stream(key, stream).await
    }

    // ----- loading ----------------------------------------------------------------------

    /// Checks that `r` can be read from this store and returns its object path.
    async fn locate<T>(&self, r: &ArtifactRef<T>, operation: &'static str) -> ArtifactResult<Path> {
        if r.provider() != self.inner.provider {
            return Err(ArtifactError::ProviderMismatch {
                key: r.key().to_owned(),
                found: r.provider().to_string(),
                expected: self.inner.provider.scheme(),
            });
        }
        let path = self.path(r.key())?;
        self.guard(&path, r.key(), operation, Access::Read).await?;
        Ok(path)
    }

    /// The whole content, checked against the reference's size and hash.
    pub async fn load_bytes<T>(&self, r: &ArtifactRef<T>) -> ArtifactResult<Bytes> {
        let path = self.locate(r, "get").await?;
        let data = retry(self.inner.retry, || async {
            self.inner.store.get(&path).await?.bytes().await
        })
        .await
        .map_err(|f| classify(f, r.key(), "get", &self.inner.display))?;
        let (size, hash) = stream::digest(&data);
        if size != r.size() {
            return Err(ArtifactError::Corrupt {
                key: r.key().to_owned(),
                reason: format!("{size} bytes stored, its reference records {}", r.size()),
            });
        }
        if &hash != r.sha256() {
            return Err(ArtifactError::Corrupt {
                key: r.key().to_owned(),
                reason: format!("content hash {hash}, its reference records {}", r.sha256()),
            });
        }
        Ok(data)
    }

    /// The value saved by [`save_json`](Self::save_json). A content that is not a
    /// valid `T` fails with [`ArtifactError::Decode`], naming the artifact and `T`.
    pub async fn load<T: DeserializeOwned>(&self, r: &ArtifactRef<T>) -> ArtifactResult<T> {
        let data = self.load_bytes(r).await?;
        serde_json::from_slice(&data).map_err(|source| ArtifactError::Decode {
            key: r.key().to_owned(),
            ty: std::any::type_name::<T>(),
            source,
        })
    }

    /// The content as a stream, in bounded memory, checked as it goes (see
    /// [`ArtifactStream`]).
    pub async fn load_stream<T>(&self, r: &ArtifactRef<T>) -> ArtifactResult<ArtifactStream> {
        let path = self.locate(r, "get").await?;
        let result = retry(self.inner.retry, || self.inner.store.get(&path))
            .await
            .map_err(|f| classify(f, r.key(), "get", &self.inner.display))?;
        Ok(ArtifactStream::new(
            stream::body(result),
            r.key().to_owned(),
            self.inner.display.clone(),
            r.size(),
            *r.sha256(),
        ))
    }

    /// The bytes `range` of the artifact (not checked against the hash, which
    /// covers the whole content).
    pub async fn load_range<T>(
        &self,
        r: &ArtifactRef<T>,
        range: Range<u64>,
    ) -> ArtifactResult<Bytes> {
        if range.start > range.end || range.end > r.size() {
            return Err(ArtifactError::Range {
                key: r.key().to_owned(),
                start: range.start,
                end: range.end,
                size: r.size(),
            });
        }
        if range.start == range.end {
            return Ok(Bytes::new());
        }
        let path = self.locate(r, "get").await?;
        let data = retry(self.inner.retry, || {
            self.inner.store.get_range(&path, range.clone())
        })
        .await
        .map_err(|f| classify(f, r.key(), "get", &self.inner.display))?;
        if data.len() as u64 != range.end - range.start {
            return Err(ArtifactError::Corrupt {
                key: r.key().to_owned(),
                reason: format!(
                    "range {}..{} returned {} bytes",
                    range.start,
                    range.end,
                    data.len()
                ),
            });
        }
        Ok(data)
    }

    /// Whether the artifact exists.
    pub async fn exists<T>(&self, r: &ArtifactRef<T>) -> ArtifactResult<bool> {
        let path = self.locate(r, "head").await?;
        match retry(self.inner.retry, || self.inner.store.head(&path)).await {
            Ok(_) => Ok(true),
            Err(f) => match classify(f, r.key(), "head", &self.inner.display) {
                ArtifactError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Deletes the artifact (deleting a missing one is not an error).
    pub async fn delete<T>(&self, r: &ArtifactRef<T>) -> ArtifactResult<()> {
        let path = self.locate(r, "delete").await?;
        match retry(self.inner.retry, || self.inner.store.delete(&path)).await {
            Ok(()) => Ok(()),
            Err(f) => match classify(f, r.key(), "delete", &self.inner.display) {
                ArtifactError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}

impl ArtifactConfig {
    /// Opens the store.
    pub fn build(&self) -> ArtifactResult<ArtifactStore> {
        ArtifactStore::from_config(self)
    }
}
