//! What can go wrong with an artifact, naming the artifact concerned.

use crate::error::JobError;

/// A boxed error from a provider or from a caller's data stream.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result type of the artifact layer.
pub type ArtifactResult<T, E = ArtifactError> = std::result::Result<T, E>;

/// An error of the artifact layer. Every variant about one artifact names its key.
///
/// Whether another try may help is a property of the variant: see
/// [`is_retryable`](ArtifactError::is_retryable) and
/// [`into_job_error`](ArtifactError::into_job_error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// The store URL cannot be used.
    #[error("artifact store URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, with any credentials and query removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL names a provider that this build does not include.
    #[error(
        "artifact provider `{scheme}://` is not compiled in: enable the `{feature}` feature of dagforge"
    )]
    ProviderNotEnabled {
        /// The URL scheme.
        scheme: &'static str,
        /// The cargo feature that adds it.
        feature: &'static str,
    },
    /// The provider rejected its configuration (unknown option, missing bucket, …).
    #[error("artifact store {store}: invalid configuration")]
    Config {
        /// The store, as its redacted URL.
        store: String,
        /// The provider's error.
        #[source]
        source: BoxError,
    },
    /// A key or artifact name is not acceptable (`..`, empty segment, control
    /// character, …). Keys never leave the store's root.
    #[error("artifact key `{key}` is invalid: {reason}")]
    InvalidKey {
        /// The key or name as given.
        key: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The `file://` store's directory is not private to this user: owned by
    /// another user, writable by group or others, a symbolic link planted by
    /// another user, or not a directory. Nothing is written, read or deleted there.
    #[error("artifact directory {dir} cannot be used: {reason}")]
    UnsafeDirectory {
        /// The directory.
        dir: String,
        /// What is wrong with it, and how to fix it.
        reason: String,
    },
    /// A path of a `file://` store passes through a symbolic link that leads out of
    /// the store's root (or nowhere): the operation is refused.
    #[error(
        "artifact `{key}`: {operation} refused: `{link}` is a symbolic link out of the store's root"
    )]
    OutsideRoot {
        /// The artifact's key (or prefix, for a run's folder).
        key: String,
        /// What was being done: `put`, `get`, `delete`, ….
        operation: &'static str,
        /// The link, as a path on disk.
        link: String,
    },
    /// No artifact exists under this key.
    #[error("artifact `{key}` not found in {store}")]
    NotFound {
        /// The artifact's key.
        key: String,
        /// The store, as its redacted URL.
        store: String,
    },
    /// The reference was written by another kind of provider than this store.
    #[error("artifact `{key}` was written to a `{found}` store; this store is `{expected}`")]
    ProviderMismatch {
        /// The artifact's key.
        key: String,
        /// The provider recorded in the reference.
        found: String,
        /// This store's provider.
        expected: &'static str,
    },
    /// A value could not be encoded as JSON.
    #[error("artifact `{key}`: the value cannot be encoded as JSON")]
    Encode {
        /// The artifact's key.
        key: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The artifact's content is not a valid `ty`.
    #[error("artifact `{key}` cannot be decoded as `{ty}`")]
    Decode {
        /// The artifact's key.
        key: String,
        /// The requested type.
        ty: &'static str,
        /// The deserializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The stored content does not match the reference's size or hash.
    #[error("artifact `{key}` is corrupt: {reason}")]
    Corrupt {
        /// The artifact's key.
        key: String,
        /// What does not match.
        reason: String,
    },
    /// A byte range outside the artifact was requested.
    #[error("artifact `{key}`: range {start}..{end} is outside its {size} bytes")]
    Range {
        /// The artifact's key.
        key: String,
        /// Start of the requested range.
        start: u64,
        /// End (exclusive) of the requested range.
        end: u64,
        /// The artifact's size.
        size: u64,
    },
    /// The data a caller streamed into an artifact failed; nothing was stored.
    #[error("artifact `{key}`: the data source failed")]
    Source {
        /// The artifact's key.
        key: String,
        /// The stream's error.
        #[source]
        source: BoxError,
    },
    /// The provider kept failing; the operation was tried `attempts` times with
    /// backoff.
    #[error("artifact `{key}`: {operation} failed on {store} after {attempts} attempt(s)")]
    Unavailable {
        /// The artifact's key (or prefix, for listings).
        key: String,
        /// What was being done: `put`, `get`, `list`, ….
        operation: &'static str,
        /// The store, as its redacted URL.
        store: String,
        /// How many times it was tried.
        attempts: u32,
        /// The last error.
        #[source]
        source: BoxError,
    },
    /// The provider refused the operation for a reason another try will not fix
    /// (permission denied, unsupported, …).
    #[error("artifact `{key}`: {operation} refused by {store}")]
    Provider {
        /// The artifact's key (or prefix, for listings).
        key: String,
        /// What was being done.
        operation: &'static str,
        /// The store, as its redacted URL.
        store: String,
        /// The provider's error.
        #[source]
        source: BoxError,
    },
}

impl ArtifactError {
    /// The key of the artifact concerned, when the error is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ArtifactError::InvalidKey { key, .. }
            | ArtifactError::NotFound { key, .. }
            | ArtifactError::ProviderMismatch { key, .. }
            | ArtifactError::Encode { key, .. }
            | ArtifactError::Decode { key, .. }
            | ArtifactError::Corrupt { key, .. }
            | ArtifactError::Range { key, .. }
            | ArtifactError::Source { key, .. }
            | ArtifactError::Unavailable { key, .. }
            | ArtifactError::Provider { key, .. }
            | ArtifactError::OutsideRoot { key, .. } => Some(key),
            ArtifactError::InvalidUrl { .. }
            | ArtifactError::UnsafeDirectory { .. }
            | ArtifactError::ProviderNotEnabled { .. }
            | ArtifactError::Config { .. } => None,
        }
    }

    /// Whether a later attempt of the node may succeed: true for a provider that
    /// kept failing, a failed data source and a corrupt read; false for bad keys,
    /// missing objects, wrong types and configuration errors.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ArtifactError::Unavailable { .. }
                | ArtifactError::Source { .. }
                | ArtifactError::Corrupt { .. }
        )
    }

    /// The [`JobError`] a job should return for this error: retryable or terminal
    /// according to [`is_retryable`](Self::is_retryable). (`?` also works, and
    /// always gives a retryable error.)
    pub fn into_job_error(self) -> JobError {
        if self.is_retryable() {
            JobError::from(self)
        } else {
            JobError::terminal_from(self)
        }
    }
}

impl From<ArtifactError> for std::io::Error {
    fn from(err: ArtifactError) -> Self {
        let kind = match &err {
            ArtifactError::NotFound { .. } => std::io::ErrorKind::NotFound,
            ArtifactError::Corrupt { .. } | ArtifactError::Decode { .. } => {
                std::io::ErrorKind::InvalidData
            }
            ArtifactError::InvalidKey { .. } | ArtifactError::Range { .. } => {
                std::io::ErrorKind::InvalidInput
            }
            ArtifactError::UnsafeDirectory { .. } | ArtifactError::OutsideRoot { .. } => {
                std::io::ErrorKind::PermissionDenied
            }
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, err)
    }
}
