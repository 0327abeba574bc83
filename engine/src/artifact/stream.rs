//! Streaming transfers: uploads in bounded memory (multipart past one part), and
//! downloads checked against the reference's size and hash as they go.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;

use super::backend::Inner;
use super::error::{ArtifactError, ArtifactResult, BoxError};
use super::reference::ContentHash;
use super::retry::{Exhausted, classify, retry};

/// Hashes and counts what passes through.
#[derive(Default)]
pub(crate) struct Digester {
    hasher: Sha256,
    size: u64,
}

impl Digester {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
    }

    pub(crate) fn finish(self) -> (u64, ContentHash) {
        (
            self.size,
            ContentHash::from_digest(self.hasher.finalize().into()),
        )
    }
}

/// Digest of a buffer.
pub(crate) fn digest(bytes: &[u8]) -> (u64, ContentHash) {
    let mut d = Digester::default();
    d.update(bytes);
    d.finish()
}

/// Uploads `stream` to `path`. Up to one part is buffered; a longer stream becomes
/// a multipart upload with at most `upload_concurrency` parts in flight. The
/// object appears at `path` only once complete: a failure (of the stream or of the
/// provider) aborts the upload and leaves nothing behind.
pub(crate) async fn upload<S, E>(
    inner: &Inner,
    path: &Path,
    key: &str,
    stream: S,
) -> ArtifactResult<(u64, ContentHash)>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<BoxError>,
{
    let mut stream = std::pin::pin!(stream);
    let mut digester = Digester::default();
    let mut head: Vec<Bytes> = Vec::new();
    let mut head_len = 0usize;
    let mut writer: Option<WriteMultipart> = None;

    while let Some(item) = stream.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(e) => {
                if let Some(w) = writer {
                    abort(w, key).await;
                }
                return Err(ArtifactError::Source {
                    key: key.to_owned(),
                    source: e.into(),
                });
            }
        };
        digester.update(&chunk);
        if let Some(w) = writer.as_mut() {
            if let Err(error) = w.wait_for_capacity(inner.upload_concurrency).await {
                if let Some(w) = writer.take() {
                    abort(w, key).await;
                }
                return Err(part_error(inner, key, error));
            }
            w.put(chunk);
            continue;
        }
        head_len += chunk.len();
        head.push(chunk);
        if head_len >= inner.part_size {
            let upload = retry(inner.retry, || inner.store.put_multipart(path))
                .await
                .map_err(|f| classify(f, key, "put", &inner.display))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, inner.part_size);
            for chunk in head.drain(..) {
                w.put(chunk);
            }
            head_len = 0;
            writer = Some(w);
        }
    }

    match writer {
        Some(w) => {
            w.finish()
                .await
                .map_err(|error| part_error(inner, key, error))?;
        }
        None => {
            let payload: PutPayload = head.into_iter().collect();
            retry(inner.retry, || inner.store.put(path, payload.clone()))
                .await
                .map_err(|f| classify(f, key, "put", &inner.display))?;
        }
    }
    Ok(digester.finish())
}

/// A part of a multipart upload failed (after the provider client's own retries).
fn part_error(inner: &Inner, key: &str, error: object_store::Error) -> ArtifactError {
    let attempts = inner.retry.retries() + 1;
    classify(Exhausted { error, attempts }, key, "put", &inner.display)
}

async fn abort(writer: WriteMultipart, key: &str) {
    if let Err(error) = writer.abort().await {
        tracing::warn!(key, %error, "could not abort a multipart upload; parts may be left over");
    }
}

/// Size of the reads of a local file behind a streamed load (object_store reads
/// 8 KiB per blocking task, which caps a local stream near 100 MiB/s).
const FILE_READ: u64 = 1 << 20;

/// The stream of a `get`: for a local file, reads of [`FILE_READ`] bytes, each in a
/// blocking task; otherwise the provider's stream.
pub(crate) fn body(
    result: object_store::GetResult,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    match result.payload {
        object_store::GetResultPayload::File(file, _) => file_stream(file, result.range),
        payload @ object_store::GetResultPayload::Stream(_) => {
            object_store::GetResult { payload, ..result }.into_stream()
        }
    }
}

fn file_stream(
    file: std::fs::File,
    range: std::ops::Range<u64>,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    use std::io::{Read, Seek, SeekFrom};
    let io_error = |source: std::io::Error| object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(source),
    };
    let state = (file, range.start, range.end, true);
    futures_util::stream::try_unfold(state, move |(mut file, pos, end, first)| async move {
        if pos >= end {
            return Ok(None);
        }
        let len = (end - pos).min(FILE_READ) as usize;
        let read = tokio::task::spawn_blocking(move || {
            if first {
                file.seek(SeekFrom::Start(pos))?;
            }
            let mut buf = vec![0u8; len];
            file.read_exact(&mut buf)?;
            Ok::<_, std::io::Error>((file, buf))
        })
        .await
        .map_err(|e| object_store::Error::JoinError { source: e })?;
        let (file, buf) = read.map_err(io_error)?;
        Ok(Some((
            Bytes::from(buf),
            (file, pos + len as u64, end, false),
        )))
    })
    .boxed()
}

/// The content of an artifact as a stream of byte chunks.
///
/// The size and SHA-256 are checked as the chunks pass: a stream whose content
/// does not match its reference ends with [`ArtifactError::Corrupt`] instead of
/// ending cleanly. Read it as a `Stream`, or as an `AsyncRead` with
/// [`into_async_read`](Self::into_async_read).
pub struct ArtifactStream {
    inner: BoxStream<'static, object_store::Result<Bytes>>,
    key: String,
    store: String,
    digester: Option<Digester>,
    expected_size: u64,
    expected_hash: ContentHash,
}

impl std::fmt::Debug for ArtifactStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStream")
            .field("key", &self.key)
            .field("size", &self.expected_size)
            .finish_non_exhaustive()
    }
}

impl ArtifactStream {
    pub(crate) fn new(
        inner: BoxStream<'static, object_store::Result<Bytes>>,
        key: String,
        store: String,
        expected_size: u64,
        expected_hash: ContentHash,
    ) -> Self {
        ArtifactStream {
            inner,
            key,
            store,
            digester: Some(Digester::default()),
            expected_size,
            expected_hash,
        }
    }

    /// The artifact's size in bytes.
    pub fn size(&self) -> u64 {
        self.expected_size
    }

    /// The artifact's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The content as an `AsyncRead` (errors become `std::io::Error`s wrapping the
    /// [`ArtifactError`]).
    pub fn into_async_read(self) -> impl AsyncRead + Send + Unpin + 'static {
        tokio_util::io::StreamReader::new(self.map(|r| r.map_err(std::io::Error::from)))
    }

    fn corrupt(&mut self, reason: String) -> Poll<Option<ArtifactResult<Bytes>>> {
        self.digester = None;
        Poll::Ready(Some(Err(ArtifactError::Corrupt {
            key: self.key.clone(),
            reason,
        })))
    }
}

impl Stream for ArtifactStream {
    type Item = ArtifactResult<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(digester) = this.digester.as_mut() else {
            return Poll::Ready(None);
        };
        match this.inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                digester.update(&chunk);
                if digester.size > this.expected_size {
                    let reason = format!(
                        "more than the {} bytes its reference records",
                        this.expected_size
                    );
                    return this.corrupt(reason);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.digester = None;
                let failure = Exhausted { error, attempts: 1 };
                Poll::Ready(Some(Err(classify(failure, &this.key, "get", &this.store))))
            }
            Poll::Ready(None) => {
                let Some(digester) = this.digester.take() else {
                    return Poll::Ready(None);
                };
                let (size, hash) = digester.finish();
                if size != this.expected_size {
                    let reason = format!(
                        "{size} bytes stored, its reference records {}",
                        this.expected_size
                    );
                    return this.corrupt(reason);
                }
                if hash != this.expected_hash {
                    let reason = format!(
                        "content hash {hash}, its reference records {}",
                        this.expected_hash
                    );
                    return this.corrupt(reason);
                }
                Poll::Ready(None)
            }
        }
    }
}
