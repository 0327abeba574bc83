//! Settings: flags > `DAGFORGE_*` environment > config file > defaults.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::cli::{ExecutorKind, Global};
use super::error::CliError;
use crate::store::{MemoryStore, Store};

/// The default store URL.
pub(crate) const DEFAULT_STORE: &str = "sqlite://dagforge.db";
/// The config file read when present and no other is named.
const DEFAULT_CONFIG: &str = "dagforge.toml";

/// The config file's keys (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    store: Option<String>,
    executor: Option<ExecutorKind>,
    concurrency: Option<usize>,
    poll_secs: Option<f64>,
}

/// Settings after precedence is applied.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) store: String,
    pub(crate) executor: ExecutorKind,
    pub(crate) concurrency: usize,
    /// From the file only; `serve --poll-secs` (flag or env) overrides it.
    pub(crate) poll_secs: Option<f64>,
}

impl Settings {
    /// Applies the precedence. `global` already merges flags over environment (clap's
    /// `env`); the file fills what both left unset.
    pub(crate) fn resolve(global: &Global) -> Result<Self, CliError> {
        let file = match &global.config {
            Some(path) => read(path)?,
            None if Path::new(DEFAULT_CONFIG).is_file() => read(Path::new(DEFAULT_CONFIG))?,
            None => FileConfig::default(),
        };
        let concurrency = global
            .concurrency
            .or(file.concurrency)
            .unwrap_or(crate::Engine::DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(CliError::usage(
                "concurrency must be at least 1 (--concurrency, DAGFORGE_CONCURRENCY or `concurrency` in the config file)",
            ));
        }
        Ok(Settings {
            store: global
                .store
                .clone()
                .or(file.store)
                .unwrap_or_else(|| DEFAULT_STORE.to_owned()),
            executor: global
                .executor
                .or(file.executor)
                .unwrap_or(ExecutorKind::InProcess),
            concurrency,
            poll_secs: file.poll_secs,
        })
    }

    /// The serve poll interval: `flag` (flag or env) over the file over 5 s.
    pub(crate) fn poll(&self, flag: Option<f64>) -> Result<Duration, CliError> {
        let secs = flag.or(self.poll_secs).unwrap_or(5.0);
        Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                CliError::usage(format!(
                    "poll interval `{secs}` must be a positive number of seconds"
                ))
            })
    }

    /// Opens the store the settings name.
    pub(crate) async fn open_store(&self) -> Result<Arc<dyn Store>, CliError> {
        open_store(&self.store).await
    }
}

fn read(path: &Path) -> Result<FileConfig, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Config {
        path: PathBuf::from(path),
        reason: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| CliError::Config {
        path: PathBuf::from(path),
        reason: e.message().to_owned(),
    })
}

/// Opens a store by URL: `sqlite:`, `postgres://` / `postgresql://`, `memory://`.
pub(crate) async fn open_store(url: &str) -> Result<Arc<dyn Store>, CliError> {
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    let opened: Arc<dyn Store> = match scheme {
        "memory" => Arc::new(MemoryStore::new()),
        #[cfg(feature = "sqlite")]
        "sqlite" => Arc::new(
            crate::store::SqliteStore::open(url)
                .await
                .map_err(|e| CliError::store(url, e))?,
        ),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Arc::new(
            crate::store::PostgresStore::connect(url)
                .await
                .map_err(|e| CliError::store(url, e))?,
        ),
        _ => {
            let mut known = vec!["memory://"];
            if cfg!(feature = "sqlite") {
                known.push("sqlite://FILE");
            }
            if cfg!(feature = "postgres") {
                known.push("postgres://…");
            }
            return Err(CliError::usage(format!(
                "store URL `{url}` is not supported by this build (use {})",
                known.join(", ")
            )));
        }
    };
    Ok(opened)
}
