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
    artifacts: Option<String>,
    /// The HTTP API's address (`serve`, `http`).
    http: Option<String>,
    /// `[kubernetes]`: the Kubernetes executor's settings (read by `kubernetes.rs`).
    kubernetes: Option<toml::Table>,
    /// `[jobs.<name>]`: per-job settings (`resources`, read by `kubernetes.rs`).
    jobs: Option<toml::Table>,
    /// `[settings]`: the app's typed settings (`App::settings`, read by `resources.rs`).
    settings: Option<toml::Table>,
}

/// The most a config file may hold: it is a handful of keys.
pub(crate) const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Settings after precedence is applied.
pub(crate) struct Settings {
    /// The store URL, credentials included: to connect with, never to show (see
    /// [`Settings::shown_store`]).
    pub(crate) store: String,
    pub(crate) executor: ExecutorKind,
    pub(crate) concurrency: usize,
    /// From the file only; `serve --poll-secs` (flag or env) overrides it.
    pub(crate) poll_secs: Option<f64>,
    /// The artifact store named by `--artifacts`, `DAGFORGE_ARTIFACTS` or the file;
    /// `None`: beside a SQLite store's file, else the user's private default.
    pub(crate) artifacts: Option<crate::artifact::ArtifactConfig>,
    /// Whether a SQLite file holding another application's tables may be initialised
    /// as a dagforge store (`--init-store`).
    pub(crate) init_store: bool,
    /// The HTTP API's address from the file (`serve --http` and `http ADDR` win).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) http: Option<String>,
    /// `[kubernetes]` of the file.
    #[cfg_attr(not(feature = "kubernetes"), allow(dead_code))]
    pub(crate) kubernetes: Option<toml::Table>,
    /// `[jobs]` of the file.
    #[cfg_attr(not(feature = "kubernetes"), allow(dead_code))]
    pub(crate) jobs: Option<toml::Table>,
    /// `[settings]` of the file: the app's typed settings (`App::settings`).
    pub(crate) app_settings: Option<toml::Table>,
    /// The config file read, if any (passed on to process workers).
    pub(crate) config_path: Option<PathBuf>,
    /// The SQLite stores opened, checkpointed and closed by [`Settings::close`].
    #[cfg(feature = "sqlite")]
    opened: std::sync::Mutex<Vec<crate::store::SqliteStore>>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("store", &self.shown_store())
            .field("executor", &self.executor)
            .field("concurrency", &self.concurrency)
            .field("poll_secs", &self.poll_secs)
            .field("init_store", &self.init_store)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Applies the precedence. `global` already merges flags over environment (clap's
    /// `env`); the file fills what both left unset.
    pub(crate) fn resolve(global: &Global) -> Result<Self, CliError> {
        let config_path = match &global.config {
            Some(path) => Some(path.clone()),
            None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.is_file()),
        };
        let file = match &config_path {
            Some(path) => read(path)?,
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
        let artifacts = match global.artifacts.clone().or(file.artifacts.clone()) {
            Some(url) if !url.trim().is_empty() => Some(
                crate::artifact::ArtifactConfig::new(url.trim())
                    .map_err(|e| artifacts_error(&e))?,
            ),
            _ => None,
        };
        Ok(Settings {
            artifacts,
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
            init_store: global.init_store,
            http: file.http,
            kubernetes: file.kubernetes,
            jobs: file.jobs,
            app_settings: file.settings,
            config_path,
            #[cfg(feature = "sqlite")]
            opened: std::sync::Mutex::default(),
        })
    }

    /// Where artifacts go: the store named by the settings, else the directory beside a
    /// SQLite store's file (`dagforge.db` → `dagforge-artifacts/`), else this user's
    /// private default ([`ArtifactConfig::default_local`](crate::artifact::ArtifactConfig::default_local)).
    /// A `file://` directory that exists must be private to this user.
    pub(crate) fn artifact_store(&self) -> Result<crate::artifact::ArtifactStore, CliError> {
        let config = match (&self.artifacts, sqlite_file(&self.store)) {
            (Some(config), _) => config.clone(),
            (None, Some(file)) => crate::artifact::ArtifactConfig::beside_database(file)
                .map_err(|e| artifacts_error(&e))?,
            (None, None) => crate::artifact::ArtifactConfig::default_local(),
        };
        config.build().map_err(|e| artifacts_error(&e))
    }

    /// The store URL without credentials: what messages show.
    pub(crate) fn shown_store(&self) -> String {
        crate::redact::url(&self.store)
    }

    /// Checkpoints and closes the SQLite stores opened (so the database file holds
    /// everything, and the `-wal` file is empty); the other stores need nothing.
    pub(crate) async fn close(&self) {
        #[cfg(feature = "sqlite")]
        {
            let opened = std::mem::take(
                &mut *self
                    .opened
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            for store in opened {
                store.close().await;
            }
        }
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
        let url = &self.store;
        #[cfg(feature = "sqlite")]
        if url.split_once(':').is_some_and(|(s, _)| s == "sqlite") {
            let store = crate::store::SqliteStore::options(url)
                .initialize_foreign(self.init_store)
                .open()
                .await
                .map_err(|e| CliError::store(url, e))?;
            self.opened
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(store.clone());
            return Ok(Arc::new(store));
        }
        open_store(url).await
    }
}

/// An artifact store that cannot be used: a usage error naming the setting (the
/// artifact errors show URLs without credentials).
fn artifacts_error(e: &crate::artifact::ArtifactError) -> CliError {
    let mut message = format!(
        "artifacts (--artifacts, DAGFORGE_ARTIFACTS or `artifacts` in the config file): {e}"
    );
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    CliError::usage(message)
}

/// The database file of a SQLite store URL; `None` for other stores and in-memory
/// databases.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    #[cfg(feature = "sqlite")]
    {
        use std::str::FromStr;
        if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
            return None;
        }
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
        Some(options.get_filename().to_path_buf()).filter(|f| !f.as_os_str().is_empty())
    }
    #[cfg(not(feature = "sqlite"))]
    {
        let _ = url;
        None
    }
}

/// The text of `path`, at most `limit` bytes: a longer file (or `/dev/zero`) is an
/// error, not a read until memory runs out.
pub(crate) fn read_capped(path: &Path, limit: u64) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    read_capped_from(file, limit)
}

/// The text `from` gives, at most `limit` bytes (an error past that, or on bytes that
/// are not UTF-8).
pub(crate) fn read_capped_from(from: impl std::io::Read, limit: u64) -> Result<String, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    from.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than the {} KiB allowed", limit / 1024));
    }
    String::from_utf8(bytes).map_err(|e| format!("not UTF-8 text ({e})"))
}

fn read(path: &Path) -> Result<FileConfig, CliError> {
    let text = read_capped(path, MAX_CONFIG_BYTES).map_err(|reason| CliError::Config {
        path: PathBuf::from(path),
        reason,
    })?;
    toml::from_str(&text).map_err(|e| CliError::Config {
        path: PathBuf::from(path),
        reason: e.message().to_owned(),
    })
}

/// Opens a store by URL other than `sqlite:` (which [`Settings::open_store`] opens):
/// `postgres://` / `postgresql://`, `memory://`.
async fn open_store(url: &str) -> Result<Arc<dyn Store>, CliError> {
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    let opened: Arc<dyn Store> = match scheme {
        "memory" => Arc::new(MemoryStore::new()),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Arc::new({
            crate::store::PostgresStore::check_url(url)
                .map_err(|e| CliError::usage(format!("store URL {}", super::table::escape(&e))))?;
            crate::store::PostgresStore::connect(url)
                .await
                .map_err(|e| CliError::store(url, e))?
        }),
        _ => {
            let mut known = vec!["memory://"];
            if cfg!(feature = "sqlite") {
                known.push("sqlite://FILE");
            }
            if cfg!(feature = "postgres") {
                known.push("postgres://…");
            }
            return Err(CliError::usage(format!(
                "store URL `{}` is not supported by this build (use {})",
                super::table::escape(&crate::redact::url(url)),
                known.join(", ")
            )));
        }
    };
    Ok(opened)
}
