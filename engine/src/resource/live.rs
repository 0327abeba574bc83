//! The resources of one process: each built at most once, on first use or at a
//! check, and closed once at shutdown.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::OnceCell;

use super::{Closer, ResourceError, ResourceKey, ResourceSet, Settings, Shared, Source};

/// One process's resources. Cheap to clone (an `Arc`): the engine's shared state and
/// every attempt's context hold one.
#[derive(Clone)]
pub(crate) struct Live(Arc<Inner>);

struct Inner {
    entries: Box<[Entry]>,
    settings: Settings,
    closed: AtomicBool,
}

struct Entry {
    /// The type's id, worked out once: the lookup compares it on every `get`.
    id: TypeId,
    /// The type's name, for messages.
    name: &'static str,
    source: Source,
    cell: OnceCell<Shared>,
    close: Option<Arc<Closer>>,
}

impl Live {
    pub(super) fn new(set: &ResourceSet) -> Self {
        let closer = |id: TypeId| {
            set.closers
                .iter()
                .find(|(t, _)| *t == id)
                .map(|(_, c)| Arc::clone(c))
        };
        let mut entries: Vec<Entry> = set
            .entries
            .iter()
            .map(|r| {
                let id = r.key.id();
                let cell = match &r.source {
                    Source::Value(v) => OnceCell::new_with(Some(Arc::clone(v))),
                    Source::Factory(_) => OnceCell::new(),
                };
                Entry {
                    id,
                    name: r.key.type_name(),
                    source: r.source.clone(),
                    cell,
                    close: closer(id),
                }
            })
            .collect();
        // The settings are a resource of their own type too, unless one was registered.
        if let Some((value, name, id)) = set.settings.erased()
            && !entries.iter().any(|e| e.id == id)
        {
            entries.push(Entry {
                id,
                name,
                source: Source::Value(Arc::clone(&value)),
                cell: OnceCell::new_with(Some(value)),
                close: closer(id),
            });
        }
        Live(Arc::new(Inner {
            entries: entries.into_boxed_slice(),
            settings: set.settings.clone(),
            closed: AtomicBool::new(false),
        }))
    }

    /// The `T`: built now if it has a factory and was not built yet (concurrent callers
    /// wait for the one build). No allocation once built.
    pub(crate) async fn get<T: 'static>(&self) -> Result<&T, ResourceError> {
        let id = TypeId::of::<T>();
        let Some(entry) = self.0.entries.iter().find(|e| e.id == id) else {
            return Err(ResourceError::Missing {
                type_name: std::any::type_name::<T>(),
                job: None,
            });
        };
        let shared = match entry.cell.get() {
            Some(v) => v,
            None => self.build(entry).await?,
        };
        // Stored under `T`'s id, so always a `T`.
        shared
            .downcast_ref::<T>()
            .ok_or_else(|| ResourceError::Missing {
                type_name: std::any::type_name::<T>(),
                job: None,
            })
    }

    async fn build<'a>(&self, entry: &'a Entry) -> Result<&'a Shared, ResourceError> {
        entry
            .cell
            .get_or_try_init(|| async {
                match &entry.source {
                    Source::Value(v) => Ok(Arc::clone(v)),
                    Source::Factory(f) => {
                        let type_name = entry.name;
                        tracing::debug!(resource = type_name, "building the resource");
                        f(self.0.settings.clone())
                            .await
                            .map_err(|source| ResourceError::Factory { type_name, source })
                    }
                }
            })
            .await
    }

    /// Builds every resource not built yet, in registration order; the first failure
    /// is returned after every factory ran.
    pub(crate) async fn build_all(&self) -> Result<(), ResourceError> {
        let mut first = None;
        for entry in self.0.entries.iter() {
            if let Err(e) = self.build(entry).await {
                tracing::warn!(resource = entry.name, error = %e, "resource check failed");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Runs the close hooks of the resources built, once (later calls do nothing), in
    /// the reverse order of registration. Attempts still holding a resource keep it.
    pub(crate) async fn close(&self) {
        if self.0.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        for entry in self.0.entries.iter().rev() {
            if let (Some(close), Some(value)) = (&entry.close, entry.cell.get()) {
                tracing::debug!(resource = entry.name, "closing the resource");
                close(Arc::clone(value)).await;
            }
        }
    }

    /// The first of `keys` that is not registered, naming `job`.
    pub(crate) fn check(&self, job: &str, keys: &[ResourceKey]) -> Result<(), ResourceError> {
        match keys
            .iter()
            .find(|k| !self.0.entries.iter().any(|e| e.id == k.id()))
        {
            Some(k) => Err(ResourceError::Missing {
                type_name: k.type_name(),
                job: Some(job.to_owned()),
            }),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.entries.iter().map(|e| e.name))
            .finish()
    }
}
