//! Connecting a PostgreSQL store: the URL checked, the schema created and migrated
//! under an advisory lock, errors named by their cause.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use super::super::StoreError;
use super::super::combine::Combiner;
use super::super::sql::{backend, needs_migration};
use super::{Durability, PostgresStore, UnknownDurability, write};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How to connect a [`PostgresStore`]: from [`PostgresStore::options`]. Its `Debug`
/// shows the URL without credentials.
#[derive(Clone)]
#[must_use]
pub struct PostgresOptions {
    pub(super) url: String,
    pub(super) schema: String,
    pub(super) migrate: bool,
    pub(super) max_connections: u32,
    pub(super) connect_timeout: Duration,
    pub(super) notify_appends: bool,
    pub(super) application_name: String,
    /// The setting, or the URL's unknown `durability` value (refused at connect).
    pub(super) durability: Result<Durability, UnknownDurability>,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &crate::redact::url(&self.url))
            .field("schema", &self.schema)
            .field("migrate", &self.migrate)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("notify_appends", &self.notify_appends)
            .field("application_name", &self.application_name)
            .field("durability", &self.durability)
            .finish()
    }
}

/// Checks that `url` is a PostgreSQL URL that names its server and its database
/// (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`; the host may also come as a `host=`
/// parameter, the database as `dbname=`), so that an incomplete URL such as
/// `postgres://` is refused instead of connecting to whatever the defaults reach. The
/// error names what is missing, and shows the URL without credentials.
pub(super) fn check_url(url: &str) -> Result<(), String> {
    let shown = crate::redact::url(url);
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(url::ParseError::EmptyHost) => {
            return Err(format!(
                "`{shown}` names no host: use postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            ));
        }
        Err(e) => return Err(format!("`{shown}` is not a URL: {e}")),
    };
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "`{shown}` is not a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
        ));
    }
    let param = |key: &str| {
        parsed
            .query_pairs()
            .any(|(k, v)| k == key && !v.trim().is_empty())
    };
    let host = parsed.host_str().is_some_and(|h| !h.is_empty()) || param("host");
    let database = !parsed.path().trim_matches('/').is_empty() || param("dbname");
    let missing = match (host, database) {
        (true, true) => return Ok(()),
        (false, false) => "no host and no database",
        (false, true) => "no host",
        (true, false) => "no database",
    };
    Err(format!(
        "`{shown}` names {missing}: use postgres://USER:PASSWORD@HOST:PORT/DATABASE"
    ))
}

impl PostgresOptions {
    /// The schema holding the tables (default `dagforge`): letters, digits and `_`,
    /// not starting with a digit, at most 48 characters. Created if missing.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Whether to apply the schema migrations on connect (default `true`). With
    /// `false`, a schema that is missing or older is refused with
    /// [`StoreError::SchemaOutdated`].
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Connections in the pool (default 10).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long to wait for a connection before giving up with
    /// [`StoreError::Unreachable`] (at connect) or [`StoreError::Backend`] (later).
    /// Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The `application_name` of the store's connections (default `dagforge`), which
    /// `pg_stat_activity` shows: to tell engines apart, or to find their connections.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Whether every append notifies [subscribers](super::PostgresStore::subscribe)
    /// ([`NotificationKind::Appended`](super::NotificationKind::Appended); default `false`). Engines do not need these
    /// (they wake on creates and releases); a live view of other processes' runs does.
    /// Each notification costs the writing transaction a turn on PostgreSQL's global
    /// notification queue lock at commit.
    pub fn notify_appends(mut self, notify: bool) -> Self {
        self.notify_appends = notify;
        self
    }

    /// When writes wait for the disk (default [`Durability::Outcomes`]): see
    /// [`Durability`] for what a database server crash may take under each setting.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = Ok(durability);
        self
    }

    /// Connects, creates the schema if missing, checks its version and migrates it.
    pub async fn connect(self) -> Result<PostgresStore, StoreError> {
        let durability = self
            .durability
            .clone()
            .map_err(|e| StoreError::Unreachable {
                message: format!("store `{}`: {e}", crate::redact::url(&self.url)),
                source: None,
            })?;
        let schema = &self.schema;
        let valid = !schema.is_empty()
            && schema.len() <= 48
            && !schema.starts_with(|c: char| c.is_ascii_digit())
            && schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(StoreError::Backend {
                message: format!(
                    "store: `{schema}` is not a valid schema name (letters, digits, `_`; at \
                     most 48 characters)"
                ),
                source: None,
            });
        }
        check_url(&self.url).map_err(|reason| StoreError::Unreachable {
            message: format!("store: {reason}"),
            source: None,
        })?;
        let opts: PgConnectOptions = self.url.parse().map_err(|e| StoreError::Unreachable {
            message: format!(
                "store: `{}` is not a PostgreSQL URL",
                crate::redact::url(&self.url)
            ),
            source: Some(Box::new(e)),
        })?;
        let opts = opts
            .options([("search_path", schema.as_str())])
            .application_name(&self.application_name);
        // Named in errors: where, never who with which password.
        let server = format!(
            "{}:{}/{}",
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or_default()
        );
        let connect_error = |e| connect_error(&server, e);
        // The schema must exist before pooled connections use it as their search path.
        let mut conn =
            tokio::time::timeout(self.connect_timeout, PgConnection::connect_with(&opts))
                .await
                .map_err(|_| StoreError::Unreachable {
                    message: format!(
                        "store: no connection to PostgreSQL at {server} within {:?}",
                        self.connect_timeout
                    ),
                    source: None,
                })?
                .map_err(connect_error)?;
        let mut found = schema_version(&mut conn, schema)
            .await
            .map_err(connect_error)?;
        if self.migrate {
            // Engines started at once on a fresh schema take turns: one creates and
            // migrates it while the others wait here, then find it done. (`CREATE SCHEMA
            // IF NOT EXISTS` run at once by two sessions fails one of them with a
            // duplicate key.) The lock is this connection's, released when it closes.
            sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
                .bind(MIGRATION_LOCK)
                .bind(schema)
                .execute(&mut conn)
                .await
                .map_err(connect_error)?;
            found = schema_version(&mut conn, schema)
                .await
                .map_err(connect_error)?;
        }
        let mut migrate_now = false;
        if needs_migration(found, self.migrate)? {
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&mut conn)
                .await
                .map_err(connect_error)?;
            migrate_now = true;
        }
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.connect_timeout)
            .connect_lazy_with(opts);
        if migrate_now {
            // Through the pool (its connections use the schema as their search path):
            // migrating through a `&mut PgConnection` would make this future `!Send`.
            MIGRATOR
                .run(&pool)
                .await
                .map_err(|e| migrate_error(&server, e))?;
        }
        if self.migrate {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
                .bind(MIGRATION_LOCK)
                .bind(schema)
                .execute(&mut conn)
                .await;
        }
        // Best effort: the connection is no longer needed (closing it releases the
        // lock too).
        let _ = conn.close().await;
        let channel: Arc<str> = format!("dagforge_{schema}").into();
        Ok(PostgresStore {
            writer: Arc::new(Combiner::new(write::Writer {
                pool: pool.clone(),
                channel: Arc::clone(&channel),
                notify_appends: self.notify_appends,
                durability,
            })),
            pool,
            channel,
            schema: schema.as_str().into(),
            specs: Arc::default(),
        })
    }
}

/// The advisory lock key (with the schema's hash) under which connects migrate.
const MIGRATION_LOCK: i32 = 0x6461_6766; // "dagf"

/// The version in `schema`'s `dagforge_schema` row; `None` when there is no such table.
async fn schema_version(conn: &mut PgConnection, schema: &str) -> Result<Option<i64>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
         WHERE table_schema = $1 AND table_name = 'dagforge_schema')",
    )
    .bind(schema)
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT version::bigint FROM dagforge_schema WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
        .map(Some)
}

/// Classifies an error met while connecting to `server` (`host:port/database`), with
/// the cause in words: authentication failed, no such database, no server there.
fn connect_error(server: &str, e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Configuration(_) => StoreError::Unreachable {
            message: format!("store: cannot reach PostgreSQL at {server}"),
            source: Some(Box::new(e)),
        },
        sqlx::Error::Database(ref db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("28") || c.starts_with("08") || c == "3D000") =>
        {
            let why = match db.code().as_deref() {
                Some("28P01") => "authentication failed (wrong password)",
                Some(c) if c.starts_with("28") => "authentication failed",
                Some("3D000") => "the database does not exist",
                _ => "the server refused the connection",
            };
            StoreError::Unreachable {
                message: format!("store: PostgreSQL at {server}: {why}"),
                source: Some(Box::new(e)),
            }
        }
        e => backend(&format!("connecting to PostgreSQL at {server}"), e),
    }
}

fn migrate_error(server: &str, e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(e)
        | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => connect_error(server, e),
        e => StoreError::Backend {
            message: format!("store: migrating the PostgreSQL schema at {server} failed"),
            source: Some(Box::new(e)),
        },
    }
}
