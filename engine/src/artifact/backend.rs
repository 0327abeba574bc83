//! What every clone of an [`ArtifactStore`](super::ArtifactStore) shares: the opened
//! object store and its settings.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;

use super::local::LocalRoot;
use super::retry::RetryPolicy;
use super::scheme::Provider;

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) root: Path,
    pub(crate) provider: Provider,
    /// The redacted URL, for messages.
    pub(crate) display: String,
    /// For `file://` stores: the root, checked before every operation.
    pub(crate) local: Option<LocalRoot>,
    pub(crate) retry: RetryPolicy,
    pub(crate) part_size: usize,
    pub(crate) upload_concurrency: usize,
}
