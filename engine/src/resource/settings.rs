//! The process's typed settings, as factories see them, and [`Secret`] values that
//! never show.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::ResourceError;

/// The typed settings registered with [`settings`](super::ResourceSet::settings), handed
/// to every factory. Cheap to clone.
///
/// ```
/// use dagforge::resource::Settings;
///
/// #[derive(Debug)]
/// struct AppSettings { region: String }
///
/// let settings = Settings::new(AppSettings { region: "eu".into() });
/// assert_eq!(settings.get::<AppSettings>()?.region, "eu");
/// assert!(settings.get::<u32>().is_err()); // names both types
/// # Ok::<_, dagforge::resource::ResourceError>(())
/// ```
#[derive(Clone, Default)]
pub struct Settings {
    value: Option<(Arc<dyn Any + Send + Sync>, &'static str, TypeId)>,
}

impl Settings {
    /// Settings holding `value`.
    pub fn new<S: Send + Sync + 'static>(value: S) -> Self {
        Settings {
            value: Some((
                Arc::new(value),
                std::any::type_name::<S>(),
                TypeId::of::<S>(),
            )),
        }
    }

    /// No settings: [`get`](Self::get) fails for every type.
    pub fn none() -> Self {
        Settings::default()
    }

    /// The settings, if they are an `S`.
    pub fn get<S: 'static>(&self) -> Result<&S, ResourceError> {
        let asked = std::any::type_name::<S>();
        match &self.value {
            Some((v, name, _)) => v.downcast_ref::<S>().ok_or(ResourceError::Settings {
                asked,
                registered: Some(name),
            }),
            None => Err(ResourceError::Settings {
                asked,
                registered: None,
            }),
        }
    }

    /// The settings as a shared value, for registering them as a resource too.
    pub(super) fn erased(&self) -> Option<(Arc<dyn Any + Send + Sync>, &'static str, TypeId)> {
        self.value.clone()
    }
}

impl fmt::Debug for Settings {
    /// The settings' type only: their values may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some((_, name, _)) => write!(f, "Settings({name})"),
            None => f.write_str("Settings(none)"),
        }
    }
}

/// A value that is never shown: `Debug` prints `"***"` and serializing it writes
/// `"***"`, so a password in a settings struct stays out of logs, `{:?}` dumps and job
/// outputs. Deserializes as the value itself; read it with [`expose`](Self::expose).
///
/// ```
/// use dagforge::resource::Secret;
///
/// #[derive(Debug, serde::Deserialize, serde::Serialize)]
/// struct Db { url: Secret<String>, pool_size: u32 }
///
/// let db: Db = serde_json::from_str(r#"{ "url": "postgres://app:pw@db/app", "pool_size": 4 }"#)?;
/// assert_eq!(db.url.expose(), "postgres://app:pw@db/app");
/// assert_eq!(format!("{db:?}"), r#"Db { url: "***", pool_size: 4 }"#);
/// assert_eq!(serde_json::to_string(&db)?, r#"{"url":"***","pool_size":4}"#);
/// # Ok::<_, serde_json::Error>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself: to use, never to print.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}
