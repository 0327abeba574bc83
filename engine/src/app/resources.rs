//! Shared resources and typed settings of an [`App`]: registered on the app, handed to
//! its engine and to its worker mode, with the settings read from the `[settings]`
//! table of the config file and `DAGFORGE_SETTING_<KEY>` variables.

use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::App;
use super::config::{MAX_CONFIG_BYTES, read_capped};
use super::error::CliError;
use crate::resource::{BoxError, ResourceSet, Settings};

/// The prefix of the variables that set (or override) one key of the settings.
pub(super) const ENV_SETTING: &str = "DAGFORGE_SETTING_";
/// The config file variable, passed on to process workers so that they read the same
/// `[settings]`.
const ENV_CONFIG: &str = "DAGFORGE_CONFIG";

/// Turns the settings table into the typed settings, registered on a resource set.
type Load = dyn Fn(ResourceSet, toml::Table) -> Result<ResourceSet, String> + Send + Sync;

/// [`App::settings`]' loader.
#[derive(Clone)]
pub(super) struct SettingsLoader {
    load: Arc<Load>,
    type_name: &'static str,
}

impl fmt::Debug for SettingsLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SettingsLoader({})", self.type_name)
    }
}

impl App {
    /// Registers a ready value jobs take by type (`#[resource] client: &T`): see
    /// [`EngineBuilder::resource`](crate::EngineBuilder::resource). A worker process
    /// of this binary has the same registration (its own copy of the value).
    pub fn resource<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.resources = self.resources.value(value);
        self
    }

    /// Registers an async factory of a `T`, run once per process (the engine's, each
    /// worker's) on first use, or at start with `--check-resources`: see
    /// [`EngineBuilder::resource_with`](crate::EngineBuilder::resource_with).
    pub fn resource_with<T, F, Fut, E>(mut self, factory: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(Settings) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.resources = self.resources.factory(factory);
        self
    }

    /// Runs `close` on the `T`, if it was built, when a command or a worker ends.
    pub fn on_close<T, F, Fut>(mut self, close: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(Arc<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.resources = self.resources.on_close(close);
        self
    }

    /// Reads typed settings `S` when a command (or a worker) starts: the `[settings]`
    /// table of the config file (`--config`, `DAGFORGE_CONFIG` or `./dagforge.toml`),
    /// each key overridden by a `DAGFORGE_SETTING_<KEY>` variable (the key in capitals;
    /// the value read as a TOML value — `8`, `true`, `"8"` — and as a string when it
    /// is not one). Factories get them ([`Settings::get`]), jobs take them as a
    /// resource (`#[resource] settings: &S`). Keep passwords in
    /// [`Secret`](crate::resource::Secret) fields: they never show in `Debug`, logs or
    /// outputs, and errors about the settings never quote a value.
    ///
    /// Settings that do not deserialize stop the command with a usage error naming
    /// the problem (exit code 2). Process workers get the same config file and
    /// `DAGFORGE_SETTING_*` variables.
    pub fn settings<S: DeserializeOwned + Send + Sync + 'static>(mut self) -> Self {
        let load = |set: ResourceSet, table: toml::Table| {
            S::deserialize(toml::Value::Table(table))
                .map(|s| set.settings(s))
                .map_err(|e| without_values(&e.to_string()))
        };
        self.settings_loader = Some(SettingsLoader {
            load: Arc::new(load),
            type_name: std::any::type_name::<S>(),
        });
        self
    }

    /// The app's resources with its settings read from `file` (the config file's
    /// `[settings]`) and the environment.
    pub(super) fn resource_set(&self, file: Option<&toml::Table>) -> Result<ResourceSet, CliError> {
        let Some(loader) = &self.settings_loader else {
            return Ok(self.resources.clone());
        };
        let table = merged(file.cloned().unwrap_or_default(), std::env::vars_os());
        (loader.load)(self.resources.clone(), table).map_err(|e| {
            CliError::usage(format!(
                "settings `{}` ([settings] in the config file, {ENV_SETTING}* variables): {e}",
                loader.type_name
            ))
        })
    }

    /// The resources of a worker process: the settings read as the engine that started
    /// it read them (it passes `DAGFORGE_CONFIG` and the `DAGFORGE_SETTING_*`
    /// variables on). Settings that cannot be read are left out, said on stderr (the
    /// attempt's console): what takes them then fails naming them.
    pub(super) fn worker_resources(&self) -> ResourceSet {
        let path = std::env::var_os(ENV_CONFIG)
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("dagforge.toml")).filter(|p| p.is_file()));
        let file = match path.as_deref().map(settings_table).transpose() {
            Ok(t) => t.flatten(),
            Err(e) => {
                eprintln!("dagforge worker: {e}");
                None
            }
        };
        self.resource_set(file.as_ref()).unwrap_or_else(|e| {
            eprintln!("dagforge worker: {e}");
            self.resources.clone()
        })
    }

    /// The first job of a workflow that takes a resource nobody registered, as a
    /// problem to report before any command runs.
    pub(super) fn missing_resources(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let has_settings = self.settings_loader.is_some();
        for name in self.registry.names() {
            let Some(job) = self.registry.get(name) else {
                continue;
            };
            if let Err(e) = self.resources.check(name, job.uses()) {
                // Settings are registered when the command starts, once they are read.
                let settings = self.settings_loader.as_ref().map(|l| l.type_name);
                if !(has_settings && settings == Some(e.type_name())) {
                    problems.push(e.to_string());
                }
            }
        }
        problems
    }
}

/// The variables a process worker gets so that it reads the same settings: the config
/// file's path, and every `DAGFORGE_SETTING_*` (the executor passes no other
/// `DAGFORGE_*` variable on).
pub(super) fn worker_env(config: Option<&Path>) -> Vec<(OsString, OsString)> {
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| k.to_str().is_some_and(|k| k.starts_with(ENV_SETTING)))
        .collect();
    if let Some(path) = config {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        vars.push((ENV_CONFIG.into(), path.into_os_string()));
    }
    vars
}

/// The `[settings]` table of the config file at `path`.
pub(super) fn settings_table(path: &Path) -> Result<Option<toml::Table>, CliError> {
    let text = read_capped(path, MAX_CONFIG_BYTES).map_err(|reason| CliError::Config {
        path: path.to_owned(),
        reason,
    })?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| CliError::Config {
        path: path.to_owned(),
        reason: without_values(e.message()),
    })?;
    match table.remove("settings") {
        None => Ok(None),
        Some(toml::Value::Table(t)) => Ok(Some(t)),
        Some(_) => Err(CliError::Config {
            path: path.to_owned(),
            reason: "`settings` must be a table ([settings])".to_owned(),
        }),
    }
}

/// `file` with each `DAGFORGE_SETTING_<KEY>` of `vars` set on it, under `<key>` in
/// lower case.
fn merged(mut file: toml::Table, vars: impl Iterator<Item = (OsString, OsString)>) -> toml::Table {
    for (k, v) in vars {
        let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else {
            continue;
        };
        let Some(key) = k.strip_prefix(ENV_SETTING).filter(|k| !k.is_empty()) else {
            continue;
        };
        file.insert(key.to_ascii_lowercase(), env_value(v));
    }
    file
}

/// A variable's value: a TOML value when it is one (`8`, `true`, `"x"`, `[1, 2]`),
/// else the text itself.
fn env_value(v: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {v}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|_| !v.contains('\n'))
        .unwrap_or_else(|| toml::Value::String(v.to_owned()))
}

/// `message` with every quoted value replaced by `"…"`: deserialization errors quote
/// the value they could not take (`invalid type: string "hunter2"`), which may be a
/// secret. Keys are quoted with backticks and stay.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                out.push_str("\"…");
                quoted = true;
            }
            ('"', true) => {
                out.push('"');
                quoted = false;
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_override_the_file_and_read_as_toml_values() {
        let file: toml::Table = toml::from_str("region = \"eu\"\nworkers = 2").unwrap();
        let vars = [
            ("DAGFORGE_SETTING_WORKERS", "8"),
            ("DAGFORGE_SETTING_API_TOKEN", "s3cr3t word"),
            ("DAGFORGE_SETTING_", "ignored"),
            ("OTHER", "ignored"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let t = merged(file, vars.into_iter());
        assert_eq!(t["region"].as_str(), Some("eu"));
        assert_eq!(t["workers"].as_integer(), Some(8));
        assert_eq!(t["api_token"].as_str(), Some("s3cr3t word"));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn errors_never_quote_a_value() {
        let text = without_values(r#"invalid type: string "hunter2", expected u32 for key `port`"#);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("`port`"), "{text}");
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct S {
            port: u32,
        }
        let table: toml::Table = toml::from_str("port = \"hunter2\"").unwrap();
        let app = App::new().settings::<S>();
        let e = app.resource_set(Some(&table)).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("settings"), "{e}");
    }
}
