//! Shared resources for jobs: database pools, HTTP clients, SDK clients and settings,
//! registered once and built at most once per process.
//!
//! Register a ready value with `resource(value)`, or an async factory with
//! `resource_with(|settings| async { … })` for a value each process must build itself
//! (a connection pool cannot cross into a child process: a worker of the process or
//! Kubernetes executor builds its own from the same registration, since it runs the
//! same binary). A factory runs on first use — once per process, however many
//! attempts ask, and again only if it failed — or at start with
//! [`Engine::check_resources`](crate::Engine::check_resources) (`--check-resources`
//! in the CLI). Jobs take resources by type: `#[resource] db: &Pool` in a `#[job]`
//! function, or [`JobContext::resource`](crate::JobContext::resource) in a
//! hand-written job.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use dagforge::prelude::*;
//!
//! /// A client every attempt shares (here, a counter standing in for a pool).
//! #[derive(Debug, Default)]
//! struct Client { calls: AtomicU64 }
//!
//! #[job]
//! async fn fetch(ctx: &JobContext, #[resource] client: &Client, id: u32) -> Result<u64, JobError> {
//!     ctx.info(format!("fetching {id}"));
//!     Ok(client.calls.fetch_add(1, Ordering::Relaxed) + 1)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), dagforge::Error> {
//! let engine = Engine::builder()
//!     .resource_with(|_settings| async { Ok::<_, std::io::Error>(Client::default()) })
//!     .build();
//! let mut wf = Workflow::builder("fetch");
//! wf.add("a", Fetch).input(FetchInput { id: 1 });
//! wf.add("b", Fetch).input(FetchInput { id: 2 });
//! let run = engine.run(&wf.build()?, ()).await?;
//! let mut counts = [run.output::<u64>("a")?, run.output::<u64>("b")?];
//! counts.sort();
//! assert_eq!(counts, [1, 2]); // one client, built once, shared by both nodes
//! engine.close_resources().await;
//! # Ok(())
//! # }
//! ```
//!
//! The guide's section "Sharing clients and pools between jobs"
//! (`docs/guide/writing-jobs-and-workflows.md`) covers settings, closing and the other
//! executors.

mod error;
mod live;
mod settings;

use std::any::{Any, TypeId};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

pub use error::{BoxError, ResourceError};
pub(crate) use live::Live;
pub use settings::{Secret, Settings};

use crate::registry::BoxFuture;

/// A value shared by every attempt, type-erased.
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;
/// A registered factory, type-erased.
type Factory = dyn Fn(Settings) -> BoxFuture<Result<Shared, BoxError>> + Send + Sync;
/// A registered close hook, type-erased.
type Closer = dyn Fn(Shared) -> BoxFuture<()> + Send + Sync;

/// A resource type a job takes: what [`Job::USES`](crate::Job::USES) lists, so that a
/// missing registration is found before anything runs.
///
/// ```
/// use dagforge::resource::ResourceKey;
/// const KEYS: &[ResourceKey] = &[ResourceKey::of::<String>()];
/// assert_eq!(KEYS[0].type_name(), "alloc::string::String");
/// ```
#[derive(Clone, Copy)]
pub struct ResourceKey {
    id: fn() -> TypeId,
    name: fn() -> &'static str,
}

impl ResourceKey {
    /// The key of resources of type `T`. A resource is shared by every attempt running
    /// at once, so it must be `Send + Sync + 'static`.
    pub const fn of<T: Send + Sync + 'static>() -> Self {
        ResourceKey {
            id: TypeId::of::<T>,
            name: std::any::type_name::<T>,
        }
    }

    /// The type's id.
    pub fn id(&self) -> TypeId {
        (self.id)()
    }

    /// The type's name, as `std::any::type_name` spells it.
    pub fn type_name(&self) -> &'static str {
        (self.name)()
    }
}

impl PartialEq for ResourceKey {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for ResourceKey {}

impl fmt::Debug for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceKey({})", self.type_name())
    }
}

/// How a registered resource is had.
#[derive(Clone)]
enum Source {
    /// A ready value.
    Value(Shared),
    /// A factory, run once per process on first use.
    Factory(Arc<Factory>),
}

/// One registration.
#[derive(Clone)]
struct Registration {
    key: ResourceKey,
    source: Source,
}

/// Resources registered for jobs: ready values, factories, close hooks and the typed
/// settings. Cheap to clone (registrations are shared); nothing is built until a
/// process uses it (see [the module](self)).
///
/// [`EngineBuilder`](crate::EngineBuilder) and [`App`](crate::App) have the same
/// methods; a `ResourceSet` is for passing the same registrations to several places,
/// such as an engine and [`worker::run_with`](crate::worker::run_with), or a
/// [`JobContext`](crate::JobContext) in a unit test.
///
/// Registering a second resource of the same type replaces the first.
#[derive(Clone, Default)]
pub struct ResourceSet {
    entries: Vec<Registration>,
    closers: Vec<(TypeId, Arc<Closer>)>,
    settings: Settings,
}

impl ResourceSet {
    /// No resources.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a ready value, shared by every attempt of this process. It is
    /// moved into this process's jobs only: a worker process (process or Kubernetes
    /// executor) needs a factory instead, or the same registration in its own `main`.
    pub fn value<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.insert(Registration {
            key: ResourceKey::of::<T>(),
            source: Source::Value(Arc::new(value)),
        });
        self
    }

    /// Registers an async factory of a `T`: run in each process on the first use (or
    /// at [`check`](crate::Engine::check_resources)), at most once as long as it
    /// succeeds; an error is reported as [`ResourceError::Factory`] naming the type,
    /// and the next attempt that asks runs it again.
    pub fn factory<T, F, Fut, E>(mut self, factory: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(Settings) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let erased = move |settings: Settings| -> BoxFuture<Result<Shared, BoxError>> {
            let fut = factory(settings);
            Box::pin(async move {
                match fut.await {
                    Ok(v) => Ok(Arc::new(v) as Shared),
                    Err(e) => Err(e.into()),
                }
            })
        };
        self.insert(Registration {
            key: ResourceKey::of::<T>(),
            source: Source::Factory(Arc::new(erased)),
        });
        self
    }

    /// Runs `close` on the `T` when the process shuts its resources down
    /// ([`Engine::close_resources`](crate::Engine::close_resources), the end of a
    /// worker, the end of an [`App`](crate::App) command) — only if it was built.
    pub fn on_close<T, F, Fut>(mut self, close: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(Arc<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let erased = move |shared: Shared| -> BoxFuture<()> {
            match shared.downcast::<T>() {
                Ok(value) => Box::pin(close(value)),
                // Registered under `T`'s id, so always a `T`.
                Err(_) => Box::pin(async {}),
            }
        };
        let id = TypeId::of::<T>();
        self.closers.retain(|(t, _)| *t != id);
        self.closers.push((id, Arc::new(erased)));
        self
    }

    /// Sets the typed settings: factories get them ([`Settings::get`]), and jobs take
    /// them as a resource of type `S` (`#[resource] settings: &S`).
    pub fn settings<S: Send + Sync + 'static>(mut self, settings: S) -> Self {
        self.settings = Settings::new(settings);
        self
    }

    /// The typed settings.
    pub fn get_settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether a resource of type `T` is registered (settings included).
    pub fn contains<T: 'static>(&self) -> bool {
        self.contains_id(TypeId::of::<T>())
    }

    fn contains_id(&self, id: TypeId) -> bool {
        self.entries.iter().any(|e| e.key.id() == id)
            || self.settings.erased().is_some_and(|(_, _, t)| t == id)
    }

    /// The registered types, in registration order (settings last).
    pub fn type_names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.entries.iter().map(|e| e.key.type_name()).collect();
        names.extend(self.settings.erased().map(|(_, n, _)| n));
        names
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.settings.erased().is_none()
    }

    /// The first of `keys` that is not registered, as a [`ResourceError::Missing`]
    /// naming `job`.
    pub fn check(&self, job: &str, keys: &[ResourceKey]) -> Result<(), ResourceError> {
        match keys.iter().find(|k| !self.contains_id(k.id())) {
            Some(k) => Err(ResourceError::Missing {
                type_name: k.type_name(),
                job: Some(job.to_owned()),
            }),
            None => Ok(()),
        }
    }

    fn insert(&mut self, r: Registration) {
        let id = r.key.id();
        self.entries.retain(|e| e.key.id() != id);
        self.entries.push(r);
    }

    /// The live resources of one process (nothing built yet); `None` when nothing is
    /// registered, so that contexts then carry nothing.
    pub(crate) fn start(&self) -> Option<Live> {
        (!self.is_empty()).then(|| Live::new(self))
    }
}

impl fmt::Debug for ResourceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceSet")
            .field("types", &self.type_names())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
