//! Retention: the artifacts of a run, listed and deleted by run id.

use std::time::SystemTime;

use futures_util::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;

use super::error::{ArtifactError, ArtifactResult};
use super::key;
use super::retry::{classify, retry};
use super::store::ArtifactStore;
use crate::ids::RunId;

/// One stored artifact, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArtifactInfo {
    /// The key, relative to the store's root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: SystemTime,
}

impl ArtifactStore {
    /// Every artifact saved by jobs of `run`, sorted by key.
    pub async fn list_run_artifacts(&self, run: RunId) -> ArtifactResult<Vec<ArtifactInfo>> {
        let prefix_key = key::run_prefix(run);
        let prefix = self.path(&prefix_key)?;
        let inner = self.inner();
        if let Some(local) = &inner.local {
            // Not `object_store`'s listing, which follows symbolic links.
            let mut out: Vec<ArtifactInfo> = local
                .list(&prefix, &prefix_key)
                .await?
                .into_iter()
                .filter_map(|found| {
                    Some(ArtifactInfo {
                        key: key::relative(&inner.root, &found.location)?,
                        size: found.size,
                        last_modified: found.modified,
                    })
                })
                .collect();
            out.sort_by(|a, b| a.key.cmp(&b.key));
            return Ok(out);
        }
        let listed = retry(inner.retry, || async {
            inner
                .store
                .list(Some(&prefix))
                .try_collect::<Vec<_>>()
                .await
        })
        .await;
        let metas = match listed {
            Ok(metas) => metas,
            Err(f) => match classify(f, &prefix_key, "list", &inner.display) {
                // A file store lists a run that saved nothing as missing.
                ArtifactError::NotFound { .. } => Vec::new(),
                other => return Err(other),
            },
        };
        let mut out: Vec<ArtifactInfo> = metas
            .into_iter()
            .filter_map(|meta| {
                Some(ArtifactInfo {
                    key: key::relative(&inner.root, &meta.location)?,
                    size: meta.size,
                    last_modified: meta.last_modified.into(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Deletes every artifact of `run` and returns how many there were.
    ///
    /// Call it when a run is deleted and its artifacts should go with it (what a
    /// retention policy decides); references to them stop resolving. On `file://`
    /// stores the run's folder is removed too, with any upload a crash left half
    /// done. Nothing outside the store's root is ever deleted: symbolic links in the
    /// run's folder are removed, not followed, and a link on the way to the folder
    /// fails with [`ArtifactError::OutsideRoot`].
    pub async fn delete_run_artifacts(&self, run: RunId) -> ArtifactResult<usize> {
        let listed = self.list_run_artifacts(run).await?;
        let inner = self.inner();
        if let Some(local) = &inner.local {
            let prefix_key = key::run_prefix(run);
            let prefix = self.path(&prefix_key)?;
            local.remove_folder(&prefix, &prefix_key).await?;
            return Ok(listed.len());
        }
        let paths: Vec<Path> = listed
            .iter()
            .map(|info| self.path(&info.key))
            .collect::<ArtifactResult<_>>()?;
        let store = &inner.store;
        let deleted = retry(inner.retry, || {
            let locations = futures_util::stream::iter(paths.clone().into_iter().map(Ok)).boxed();
            async move {
                let mut results = store.delete_stream(locations);
                while let Some(result) = results.next().await {
                    match result {
                        Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
        })
        .await;
        if let Err(f) = deleted {
            return Err(classify(f, &key::run_prefix(run), "delete", &inner.display));
        }
        Ok(listed.len())
    }
}
