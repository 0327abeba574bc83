//! What can go wrong when a job asks for a shared resource.

/// An error a factory returns, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A shared resource could not be had.
///
/// Converted into a [`JobError`](crate::JobError) with `?` in a job, a
/// [`Missing`](ResourceError::Missing) resource is *terminal* (no retry can register
/// it) and a failed [`Factory`](ResourceError::Factory) is *retryable* (the factory
/// runs again on the next attempt that asks).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// Nothing of this type was registered with the engine, the app or the worker.
    #[error(
        "resource `{type_name}` is not registered{}: register it with \
         `resource(value)` or `resource_with(factory)` on the engine builder or the app",
        job.as_deref().map(|j| format!(" (job `{j}` takes it)")).unwrap_or_default()
    )]
    Missing {
        /// The type asked for, as `std::any::type_name` spells it.
        type_name: &'static str,
        /// The job that takes it, when known.
        job: Option<String>,
    },
    /// The resource's factory returned an error.
    #[error("resource `{type_name}`: its factory failed")]
    Factory {
        /// The resource's type.
        type_name: &'static str,
        /// What the factory returned.
        #[source]
        source: BoxError,
    },
    /// The settings asked for by type are not the ones registered.
    #[error(
        "settings `{asked}` are not registered{}",
        registered.map(|r| format!(" (the settings are a `{r}`)")).unwrap_or_else(|| ": register them with `settings(value)`".to_owned())
    )]
    Settings {
        /// The settings type asked for.
        asked: &'static str,
        /// The type of the settings that are registered, if any.
        registered: Option<&'static str>,
    },
}

impl ResourceError {
    /// Whether another attempt may succeed: only a failed factory may (it runs again).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ResourceError::Factory { .. })
    }

    /// The type of the resource (or settings) concerned.
    pub fn type_name(&self) -> &'static str {
        match self {
            ResourceError::Missing { type_name, .. } | ResourceError::Factory { type_name, .. } => {
                type_name
            }
            ResourceError::Settings { asked, .. } => asked,
        }
    }
}
