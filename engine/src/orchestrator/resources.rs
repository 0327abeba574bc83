//! Shared resources on the engine: registering them on the builder, checking that a
//! workflow's jobs have theirs, building them eagerly and closing them.

use std::future::Future;
use std::sync::Arc;

use super::engine::{Engine, EngineBuilder};
use crate::error::{Error, Result};
use crate::resource::{BoxError, ResourceError, ResourceSet, Settings};
use crate::workflow::Workflow;

impl EngineBuilder {
    /// Registers a ready value that every job run in this process can take by type
    /// (`#[resource] client: &T`, or [`JobContext::resource`](crate::JobContext::resource)).
    /// For jobs run in worker processes (process or Kubernetes executor), register a
    /// factory ([`resource_with`](Self::resource_with)) or the same value in the
    /// worker's `main`: values do not cross processes.
    pub fn resource<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.resources = self.resources.value(value);
        self
    }

    /// Registers an async factory of a `T`, run once per process on first use (or at
    /// [`Engine::check_resources`]) with the engine's [`Settings`]; its error fails the
    /// attempt that asked (retryable), naming the type, and the next attempt runs it
    /// again.
    ///
    /// ```
    /// # use dagforge::prelude::*;
    /// #[derive(Debug)]
    /// struct Api { base: String }
    /// #[derive(Debug)]
    /// struct AppSettings { api: String }
    ///
    /// let engine = Engine::builder()
    ///     .settings(AppSettings { api: "https://api.example".into() })
    ///     .resource_with(|settings| async move {
    ///         let s = settings.get::<AppSettings>()?;
    ///         Ok::<_, dagforge::resource::ResourceError>(Api { base: s.api.clone() })
    ///     })
    ///     .build();
    /// ```
    pub fn resource_with<T, F, Fut, E>(mut self, factory: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(Settings) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.resources = self.resources.factory(factory);
        self
    }

    /// Runs `close` on the `T` at [`Engine::close_resources`], if it was built.
    pub fn on_close<T, F, Fut>(mut self, close: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(Arc<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.resources = self.resources.on_close(close);
        self
    }

    /// Sets the typed settings: factories get them, jobs take them as a resource of
    /// type `S`.
    pub fn settings<S: Send + Sync + 'static>(mut self, settings: S) -> Self {
        self.resources = self.resources.settings(settings);
        self
    }

    /// Uses the registrations of `set`, replacing any made on this builder before.
    pub fn resources(mut self, set: ResourceSet) -> Self {
        self.resources = set;
        self
    }

    /// Builds the engine, and checks that the jobs of every workflow registered with
    /// [`workflow`](Self::workflow) have the resources they take
    /// ([`Error::Resource`] naming the first missing type and its job), when the
    /// executor runs jobs in this process. [`build`](Self::build) leaves that check to
    /// [`Engine::start`].
    pub fn try_build(self) -> Result<Engine> {
        let engine = self.build();
        for workflow in engine.sh.workflows.values() {
            engine.check_uses(workflow)?;
        }
        Ok(engine)
    }
}

impl Engine {
    /// Builds every registered resource not built yet (each factory at most once per
    /// process, as on first use), and returns the first factory error, naming the
    /// type, after trying them all. `serve --check-resources` calls it at start.
    pub async fn check_resources(&self) -> std::result::Result<(), ResourceError> {
        match &self.sh.resources {
            Some(live) => live.build_all().await,
            None => Ok(()),
        }
    }

    /// Runs the close hooks ([`EngineBuilder::on_close`]) of the resources built in
    /// this process, once (later calls do nothing). Call it when the engine stops;
    /// the [`App`](crate::App) does at the end of every command.
    pub async fn close_resources(&self) {
        if let Some(live) = &self.sh.resources {
            live.close().await;
        }
    }

    /// A job of `workflow` takes a resource this engine does not have: the run would
    /// fail at that job, so it is refused before it starts. Only for executors that
    /// run jobs in this process: a worker process registers its own.
    pub(super) fn check_uses(&self, workflow: &Workflow) -> Result<()> {
        if !self.sh.executor.runs_inline() {
            return Ok(());
        }
        for node in &workflow.plan.nodes {
            let uses = node.job.uses();
            if uses.is_empty() {
                continue;
            }
            let job = node.job.name();
            match &self.sh.resources {
                Some(live) => live.check(job, uses)?,
                None => {
                    return Err(Error::Resource(ResourceError::Missing {
                        type_name: uses[0].type_name(),
                        job: Some(job.to_owned()),
                    }));
                }
            }
        }
        Ok(())
    }
}
