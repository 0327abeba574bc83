//! Opening a SQLite store: the file's setup (WAL, foreign keys, busy timeout), a
//! foreign file refused, the schema's version checked and migrated.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::super::StoreError;
use super::super::combine::Combiner;
use super::super::sql::needs_migration;
use super::{SqliteStore, write};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How to open a [`SqliteStore`]: from [`SqliteStore::options`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SqliteOptions {
    pub(super) url: String,
    pub(super) memory: bool,
    pub(super) busy_timeout: Duration,
    pub(super) migrate: bool,
    pub(super) max_connections: u32,
    pub(super) initialize_foreign: bool,
}

impl SqliteOptions {
    /// How long to wait for another connection's or process's lock before giving up
    /// with [`StoreError::Locked`] (at open) or [`StoreError::Backend`] (later).
    /// Default 5 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Whether to apply the schema migrations on open (default `true`). With `false`,
    /// a database without the current schema is refused with
    /// [`StoreError::SchemaOutdated`].
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Whether a database that holds other tables and no dagforge schema (another
    /// application's file) may be given dagforge's tables (default `false`: it is
    /// refused with [`StoreError::Foreign`] and left untouched, its journal mode
    /// included). An empty or new file is always set up.
    pub fn initialize_foreign(mut self, initialize: bool) -> Self {
        self.initialize_foreign = initialize;
        self
    }

    /// Connections in the pool (default 4; an in-memory database always uses one).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Opens the store. A file another process holds locked is waited for up to the
    /// busy timeout (processes opening one new file at once take turns setting it up).
    pub async fn open(self) -> Result<SqliteStore, StoreError> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            match self.clone().open_once().await {
                Err(StoreError::Locked { .. }) if started.elapsed() < self.busy_timeout => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    async fn open_once(self) -> Result<SqliteStore, StoreError> {
        let shown = crate::redact::url(&self.url);
        let base = if self.memory {
            SqliteConnectOptions::from_str("sqlite::memory:")
        } else if self.url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(&self.url)
        } else {
            Ok(SqliteConnectOptions::new().filename(&self.url))
        }
        .map_err(|e| StoreError::Unreachable {
            message: format!("store: `{shown}` is not a SQLite URL or path"),
            source: Some(Box::new(e)),
        })?;
        if !self.memory && !self.initialize_foreign {
            refuse_foreign(&base, &shown).await?;
        }
        let opts = base
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(self.busy_timeout);
        let file = (!self.memory).then(|| opts.clone());
        let pool = if self.memory {
            // Each in-memory connection would be its own database: keep exactly one.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(self.max_connections)
        }
        .acquire_timeout(self.busy_timeout + Duration::from_secs(5))
        .connect_with(opts)
        .await
        .map_err(|e| open_error(&shown, e))?;
        let found: Option<i64> = match sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'dagforge_schema'",
        )
        .fetch_one(&pool)
        .await
        .map_err(|e| open_error(&shown, e))?
        {
            0 => None,
            _ => Some(
                sqlx::query_scalar("SELECT version FROM dagforge_schema WHERE id = 1")
                    .fetch_one(&pool)
                    .await
                    .map_err(|e| open_error(&shown, e))?,
            ),
        };
        if needs_migration(found, self.migrate)? {
            // Two processes opening a new file at once both try to migrate it; the
            // one that waited for the other's lock then fails on what the other
            // created. Trying again reads the applied migrations afresh.
            let mut tries = 0;
            loop {
                match MIGRATOR.run(&pool).await {
                    Ok(()) => break,
                    Err(_) if tries < 3 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                    }
                    Err(e) => return Err(migrate_error(&shown, e)),
                }
            }
        }
        Ok(SqliteStore {
            file,
            writer: Arc::new(Combiner::new(write::Writer { pool: pool.clone() })),
            pool,
            specs: Arc::default(),
        })
    }
}

/// Refuses a database file that holds tables and no dagforge schema: another
/// application's. Read through a connection of its own that changes nothing (no
/// journal mode, no file created); a missing or empty file passes.
async fn refuse_foreign(base: &SqliteConnectOptions, shown: &str) -> Result<(), StoreError> {
    use sqlx::ConnectOptions;
    let path = base.get_filename();
    if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        return Ok(());
    }
    let mut conn = base
        .clone()
        .create_if_missing(false)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| open_error(shown, e))?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| open_error(shown, e))?;
    let _ = sqlx::Connection::close(conn).await;
    // `_sqlx_migrations` alone: another process is setting the file up right now.
    let theirs: Vec<&str> = tables
        .iter()
        .map(String::as_str)
        .filter(|t| *t != "_sqlx_migrations")
        .collect();
    if theirs.is_empty() || tables.iter().any(|t| t == "dagforge_schema") {
        return Ok(());
    }
    const SHOWN: usize = 5;
    let more = theirs.len().saturating_sub(SHOWN);
    Err(StoreError::Foreign {
        message: format!(
            "store: `{shown}` is not a dagforge database: it holds other tables ({}{}) and no \
             dagforge schema; it was left untouched. Use a file of its own, or ask for \
             dagforge's tables to be added to it (`--init-store`, \
             `SqliteOptions::initialize_foreign`)",
            theirs[..theirs.len().min(SHOWN)].join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ),
    })
}

/// Classifies an error met while opening `url`.
fn open_error(url: &str, e: sqlx::Error) -> StoreError {
    let code = match &e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .map(|c| c & 0xff),
        _ => None,
    };
    let source = Some(Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
    match code {
        // SQLITE_CORRUPT, SQLITE_NOTADB
        Some(11 | 26) => StoreError::Corrupt {
            message: format!("store: `{url}` is not a SQLite database or is damaged"),
            source,
        },
        // SQLITE_BUSY, SQLITE_LOCKED
        Some(5 | 6) => StoreError::Locked {
            message: format!("store: `{url}` is locked by another connection or process"),
            source,
        },
        // SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_AUTH
        Some(3 | 8 | 10 | 14 | 23) | None => StoreError::Unreachable {
            message: format!("store: cannot open `{url}`"),
            source,
        },
        Some(_) => StoreError::Backend {
            message: format!("store: opening `{url}` failed"),
            source,
        },
    }
}

fn migrate_error(url: &str, e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(e)
        | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => open_error(url, e),
        e => StoreError::Backend {
            message: format!("store: migrating `{url}` failed"),
            source: Some(Box::new(e)),
        },
    }
}
