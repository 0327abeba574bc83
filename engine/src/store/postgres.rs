//! The PostgreSQL store: for several engine processes sharing one database.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use crate::events::Event;
use crate::ids::RunId;
use crate::workflow::{WorkflowSnapshot, WorkflowSpec};

use super::combine::{Append, Combiner, GroupWrite};
use super::sql::{
    Batch, ClaimHead, EncodedSpec, ExecOut, SCHEMA_VERSION, SpecCache, backend, fence, from_json,
    from_micros, micros, millis, parse_run_id, parse_state, to_json,
};
use super::{Claimed, ExecutionRecord, Lease, Page, RunQuery, RunRecord, Store, StoreError};
use super::{ScheduleAdvance, ScheduleRecord};

mod schedules;
mod write;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Columns of a run row, in [`RunRow`] order.
const RUN_COLUMNS: &str = "id::text, workflow_id, workflow, version, inputs::text, state, \
                           created_at, started_at, finished_at, priority, not_before, \
                           idempotency_key, queue";

type RunRow = (
    String,
    i64,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    i32,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// Keeps runs, executions and events in a PostgreSQL database, in a schema of its own
/// (`dagforge` unless told otherwise), so that several engine processes can share the
/// work.
///
/// * Leases expire on the database's clock (`now()`), so engines' clocks need not
///   agree.
/// * [`claim`](Store::claim) picks expired runs with `FOR UPDATE SKIP LOCKED`: engines
///   claiming at once never wait for nor take each other's runs, and each claim bumps
///   the run's fencing token.
/// * Every write checks the lease in the same statement (`WHERE id = … AND
///   lease_owner = … AND fence = …`), so a stale engine's late write is refused with
///   [`StoreError::Fenced`] and changes nothing.
/// * Creating a run and releasing it send a notification on the schema's channel
///   (appending too, [when asked](PostgresOptions::notify_appends)):
///   [`subscribe`](PostgresStore::subscribe) to wake up on them instead of polling.
/// * Appends are grouped: the appends of all the runs this store's engine drives that
///   arrive while one write is in flight go together in the next, one statement and one
///   commit for all of them, each still checked against its own lease.
///
/// ```no_run
/// # use dagforge::store::PostgresStore;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), dagforge::store::StoreError> {
/// let store = PostgresStore::options("postgres://postgres@127.0.0.1:5432/test")
///     .schema("dagforge")
///     .connect()
///     .await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    schema: Arc<str>,
    channel: Arc<str>,
    specs: Arc<SpecCache>,
    writer: Arc<Combiner<write::Writer>>,
}

/// How to connect a [`PostgresStore`]: from [`PostgresStore::options`]. Its `Debug`
/// shows the URL without credentials.
#[derive(Clone)]
#[must_use]
pub struct PostgresOptions {
    url: String,
    schema: String,
    migrate: bool,
    max_connections: u32,
    connect_timeout: Duration,
    notify_appends: bool,
    application_name: String,
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
            .finish()
    }
}

/// Checks that `url` is a PostgreSQL URL that names its server and its database
/// (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`; the host may also come as a `host=`
/// parameter, the database as `dbname=`), so that an incomplete URL such as
/// `postgres://` is refused instead of connecting to whatever the defaults reach. The
/// error names what is missing, and shows the URL without credentials.
fn check_url(url: &str) -> Result<(), String> {
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

    /// Whether every append notifies [subscribers](PostgresStore::subscribe)
    /// ([`NotificationKind::Appended`]; default `false`). Engines do not need these
    /// (they wake on creates and releases); a live view of other processes' runs does.
    /// Each notification costs the writing transaction a turn on PostgreSQL's global
    /// notification queue lock at commit.
    pub fn notify_appends(mut self, notify: bool) -> Self {
        self.notify_appends = notify;
        self
    }

    /// Connects, creates the schema if missing, checks its version and migrates it.
    pub async fn connect(self) -> Result<PostgresStore, StoreError> {
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
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(SCHEMA_VERSION) if !self.migrate => {}
            _ if !self.migrate => {
                return Err(StoreError::SchemaOutdated {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            _ => {
                sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                    .execute(&mut conn)
                    .await
                    .map_err(connect_error)?;
                migrate_now = true;
            }
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

/// What a [`Notification`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotificationKind {
    /// A run was created.
    Created,
    /// Events were appended to a run.
    Appended,
    /// A run's lease was released: it can be claimed now.
    Released,
    /// A run finished (its lane, if capped, has room for another).
    Finished,
    /// Someone asked for a run to be cancelled.
    CancelRequested,
}

/// A change to a run, from [`Notifications`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Notification {
    /// The run.
    pub run: RunId,
    /// What happened.
    pub kind: NotificationKind,
}

/// Notifications of creates, appends and releases in one store's schema, by any engine
/// process: from [`PostgresStore::subscribe`].
///
/// Notifications are wake-up calls, not a log: PostgreSQL drops them while the
/// listening connection is down (it reconnects by itself), so after an error or on a
/// long silence, re-read the store.
#[derive(Debug)]
pub struct Notifications {
    listener: PgListener,
}

impl Notifications {
    /// The next notification. An error means the connection was lost (it reconnects
    /// on the next call); notifications sent meanwhile are gone.
    pub async fn next(&mut self) -> Result<Notification, StoreError> {
        loop {
            let n = self
                .listener
                .recv()
                .await
                .map_err(|e| backend("receiving a notification", e))?;
            let Some((kind, run)) = n.payload().split_once(':') else {
                continue;
            };
            let kind = match kind {
                "created" => NotificationKind::Created,
                "appended" => NotificationKind::Appended,
                "released" => NotificationKind::Released,
                "finished" => NotificationKind::Finished,
                "cancel" => NotificationKind::CancelRequested,
                _ => continue,
            };
            if let Ok(run) = run.parse() {
                return Ok(Notification { run, kind });
            }
        }
    }
}

impl PostgresStore {
    /// Connects to the database at `url` with default
    /// [options](PostgresStore::options) (schema `dagforge`, migrations applied).
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        Self::options(url).connect().await
    }

    /// Whether `url` names a server and a database (what [`connect`] checks first):
    /// the error names what is missing, without the URL's credentials.
    ///
    /// [`connect`]: PostgresStore::connect
    pub(crate) fn check_url(url: &str) -> Result<(), String> {
        check_url(url)
    }

    /// Options for connecting to `url`; finish with
    /// [`connect`](PostgresOptions::connect).
    pub fn options(url: &str) -> PostgresOptions {
        PostgresOptions {
            url: url.to_owned(),
            schema: "dagforge".to_owned(),
            migrate: true,
            max_connections: 10,
            connect_timeout: Duration::from_secs(10),
            notify_appends: false,
            application_name: "dagforge".to_owned(),
        }
    }

    /// The schema holding this store's tables.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// Listens for runs created, appended to or released in this store's schema (by
    /// any process). The engine does not use this yet: it is the wake-up signal for
    /// idle engines waiting for work.
    pub async fn subscribe(&self) -> Result<Notifications, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(|e| backend("listening for notifications", e))?;
        listener
            .listen(&self.channel)
            .await
            .map_err(|e| backend("listening for notifications", e))?;
        Ok(Notifications { listener })
    }

    /// Drops this store's schema and everything in it (all runs and events). For
    /// tests and teardown; the store is unusable afterwards.
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.schema
        ))
        .execute(&self.pool)
        .await
        .map_err(|e| backend("dropping the schema", e))?;
        Ok(())
    }

    /// Closes the connections (waiting for those in use to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn notify(
        &self,
        conn: &mut PgConnection,
        kind: &str,
        run: RunId,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&*self.channel)
            .bind(format!("{kind}:{run}"))
            .execute(conn)
            .await
            .map_err(|e| backend("notifying", e))?;
        Ok(())
    }

    /// The `workflows` row of `spec`, inserting it if new.
    async fn workflow_row(
        &self,
        conn: &mut PgConnection,
        run: &RunRecord,
        spec: &Arc<WorkflowSpec>,
    ) -> Result<(i64, bool), StoreError> {
        if let Some(id) = self.specs.row_of(spec) {
            return Ok((id, false));
        }
        let enc = EncodedSpec::new(spec)?;
        // Inserted, or (when another engine got there first) looked up.
        let id = sqlx::query_scalar(
            "WITH ins AS (INSERT INTO workflows (name, version, hash, spec) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name, version, hash) DO NOTHING RETURNING id) \
             SELECT id FROM ins UNION ALL \
             SELECT id FROM workflows WHERE name = $1 AND version = $2 AND hash = $3 LIMIT 1",
        )
        .bind(&run.workflow)
        .bind(&run.version)
        .bind(&enc.hash)
        .bind(&enc.json)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| backend("storing a workflow spec", e))?;
        match id {
            Some(id) => Ok((id, true)),
            // A concurrent insert not yet visible to this statement's snapshot.
            None => {
                let id = sqlx::query_scalar(
                    "SELECT id FROM workflows WHERE name = $1 AND version = $2 AND hash = $3",
                )
                .bind(&run.workflow)
                .bind(&run.version)
                .bind(&enc.hash)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| backend("storing a workflow spec", e))?;
                Ok((id, true))
            }
        }
    }

    /// Run records from rows, with their specs (cached, else read).
    async fn records(&self, rows: Vec<RunRow>) -> Result<Vec<RunRecord>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (id, wf, workflow, version, inputs, state, created, started, finished) = (
                row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8,
            );
            let spec = match self.specs.spec(wf) {
                Some(s) => s,
                None => {
                    let json: String =
                        sqlx::query_scalar("SELECT spec FROM workflows WHERE id = $1")
                            .bind(wf)
                            .fetch_one(&self.pool)
                            .await
                            .map_err(|e| backend("reading a workflow spec", e))?;
                    let spec: Arc<WorkflowSpec> = Arc::new(from_json("workflow spec", &json)?);
                    self.specs.remember(&spec, wf);
                    spec
                }
            };
            out.push(RunRecord {
                id: parse_run_id(&id)?,
                workflow,
                version,
                spec: WorkflowSnapshot::stored(spec),
                inputs: from_json("run inputs", &inputs)?,
                state: parse_state("run state", &state)?,
                created_at: from_micros(created),
                started_at: started.map(from_micros),
                finished_at: finished.map(from_micros),
                priority: row.9,
                not_before: row.10.map(from_micros),
                idempotency_key: row.11,
                queue: row.12,
            });
        }
        Ok(out)
    }

    /// Why a lease check on `run` failed: no such run, or a stale lease.
    async fn refused(&self, run: RunId, lease: &Lease) -> StoreError {
        GroupWrite::refused(self.writer.flusher(), run, lease).await
    }

    /// Inserts `run` (spec row `wf`) and notifies its creation, in one statement;
    /// `false` if a run with its id exists.
    async fn insert_run<'e, E: sqlx::PgExecutor<'e>>(
        &self,
        conn: E,
        run: &RunRecord,
        wf: i64,
        inputs: String,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let finished = run.state.is_terminal();
        let inserted: i64 = sqlx::query_scalar(
            "WITH ins AS (INSERT INTO runs (id, workflow_id, workflow, version, inputs, state, \
             created_at, started_at, finished_at, lease_owner, lease_until, fence, priority, \
             not_before, idempotency_key, queue) \
             VALUES ($1::uuid, $2, $3, $4, $5::json, $6, $7, $8, $9, $10, \
             CASE WHEN $10 IS NULL THEN NULL ELSE now() + $11 * interval '1 millisecond' END, \
             $12, $14, $15, $16, $17) ON CONFLICT DO NOTHING RETURNING id) \
             SELECT count(*) FROM ins, \
             LATERAL (SELECT pg_notify($13, 'created:' || ins.id::text)) AS n",
        )
        .bind(run.id.to_uuid_string())
        .bind(wf)
        .bind(&run.workflow)
        .bind(&run.version)
        .bind(inputs)
        .bind(run.state.as_str())
        .bind(micros(run.created_at))
        .bind(run.started_at.map(micros))
        .bind(run.finished_at.map(micros))
        .bind((!finished).then_some(&*lease.owner))
        .bind(millis(ttl))
        .bind(fence(lease))
        .bind(&*self.channel)
        .bind(run.priority)
        .bind(run.not_before.map(micros))
        .bind(run.idempotency_key.as_deref())
        .bind(run.queue.as_deref())
        .fetch_one(conn)
        .await
        .map_err(|e| backend("creating a run", e))?;
        Ok(inserted > 0)
    }

    /// Why `run` could not be inserted: its idempotency key or its id is taken.
    async fn conflict(&self, run: &RunRecord) -> StoreError {
        if let Some(key) = &run.idempotency_key {
            let holder: Result<Option<(String, i64)>, _> =
                sqlx::query_as("SELECT id::text, created_at FROM runs WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await;
            match holder {
                Ok(Some((id, created))) => {
                    return match parse_run_id(&id) {
                        Ok(holder) => StoreError::KeyExists {
                            key: key.clone(),
                            run: holder,
                            created_at: from_micros(created),
                        },
                        Err(e) => e,
                    };
                }
                Ok(None) => {}
                Err(e) => return backend("creating a run", e),
            }
        }
        StoreError::RunExists(run.id)
    }

    /// [`Store::claim`], of any workflow (`None`) or of those named.
    async fn claim_of(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
        workflows: Option<&[String]>,
        except: &[RunId],
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Runs in uncapped lanes: one statement.
        let mut rows = claim_rows(
            &self.pool,
            owner,
            ttl,
            limit,
            Pick::Uncapped,
            workflows,
            except,
        )
        .await?;
        // Capped lanes with claimable runs, each under its `queues` row lock (claimers
        // of one lane take turns, so together they never exceed the cap).
        if rows.len() < limit {
            let lanes: Vec<(String, i32)> = sqlx::query_as(
                "SELECT q.name, q.max_running FROM queues q WHERE EXISTS (SELECT 1 FROM runs \
                 WHERE queue = q.name AND lease_owner IS NOT NULL AND lease_until <= now())",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(|e| backend("claiming runs", e))?;
            for (lane, max) in lanes {
                let want = limit - rows.len();
                if want == 0 {
                    break;
                }
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(|e| backend("claiming runs", e))?;
                // The lane's row lock first, in a statement of its own: the count
                // below then reads (with a fresh snapshot) every claim committed by
                // the claimer that held the lock before.
                sqlx::query("SELECT 1 FROM queues WHERE name = $1 FOR UPDATE")
                    .bind(&lane)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| backend("claiming runs", e))?;
                let live: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM runs WHERE queue = $1 \
                     AND lease_owner IS NOT NULL AND lease_until > now()",
                )
                .bind(&lane)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| backend("claiming runs", e))?;
                let room = usize::try_from(i64::from(max) - live).unwrap_or(0);
                if room > 0 {
                    rows.extend(
                        claim_rows(
                            &mut *tx,
                            owner,
                            ttl,
                            room.min(want),
                            Pick::Lane(&lane),
                            workflows,
                            except,
                        )
                        .await?,
                    );
                }
                tx.commit().await.map_err(|e| backend("claiming runs", e))?;
            }
        }
        self.claimed(owner, rows).await
    }

    /// Claims from claimed rows (fence, event count, stalled claims, run row).
    async fn claimed(
        &self,
        owner: &str,
        rows: Vec<(ClaimHead, RunRow)>,
    ) -> Result<Vec<Claimed>, StoreError> {
        let owner: Arc<str> = owner.into();
        let heads: Vec<ClaimHead> = rows.iter().map(|r| r.0).collect();
        let records = self
            .records(rows.into_iter().map(|(_, row)| row).collect())
            .await?;
        Ok(records
            .into_iter()
            .zip(heads)
            .map(|(run, head)| head.claimed(run, &owner))
            .collect())
    }

    async fn run_pk(&self, run: RunId) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT pk FROM runs WHERE id = $1::uuid")
            .bind(run.to_uuid_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| backend("reading a run", e))?
            .ok_or(StoreError::UnknownRun(run))
    }
}

/// Which expired runs a claim takes.
#[derive(Clone, Copy)]
enum Pick<'a> {
    /// Runs of lanes without a cap.
    Uncapped,
    /// Runs of this (capped) lane.
    Lane(&'a str),
    /// This run, whatever its lane.
    Run(RunId),
}

/// Claims up to `limit` expired runs for `owner`: of lane `lane`, or (`None`) of the
/// lanes without a cap. `SKIP LOCKED`: concurrent claimers pass over each other's
/// candidates instead of waiting for them (and never pick the same run). Returns each
/// run's new fence, its event count, its stalled claims and its row. The runs in
/// `except` are left alone.
///
/// A claim counts as stalled (`stalls` + 1) unless executions settled since the last
/// claim (`settled` remembers how many had then), which resets the count to 1.
///
/// The claim commits without waiting for its WAL flush (`synchronous_commit = off`
/// for this transaction only), which takes a disk flush off every pickup. It is safe:
/// the claimer's first append commits synchronously, which flushes the WAL up to and
/// including the claim; and if the server crashes before that, the claim is lost
/// together with nothing else — the claimer's append is then refused (`Fenced`), no
/// job has started (the driver records before it acts), and the run is claimable
/// again.
async fn claim_rows<'e, E: sqlx::PgExecutor<'e>>(
    conn: E,
    owner: &str,
    ttl: Duration,
    limit: usize,
    pick: Pick<'_>,
    workflows: Option<&[String]>,
    except: &[RunId],
) -> Result<Vec<(ClaimHead, RunRow)>, StoreError> {
    let (lane, run) = match pick {
        Pick::Uncapped => (None, None),
        Pick::Lane(lane) => (Some(lane), None),
        Pick::Run(run) => (None, Some(run.to_uuid_string())),
    };
    type Row = (
        i64,
        i64,
        i32,
        String,
        i64,
        String,
        String,
        String,
        String,
        i64,
        Option<i64>,
        Option<i64>,
        i32,
        Option<i64>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "WITH s AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true) AS v) \
         , x AS (SELECT ARRAY['succeeded', 'failed', 'timed_out', 'skipped', 'cancelled'] AS done) \
         UPDATE runs r SET fence = r.fence + 1, lease_owner = $1, \
         lease_until = now() + $2 * interval '1 millisecond', \
         stalls = CASE WHEN (SELECT count(*) FROM executions e WHERE e.run_pk = r.pk \
             AND e.state = ANY(x.done)) > r.settled THEN 1 ELSE r.stalls + 1 END, \
         settled = (SELECT count(*) FROM executions e WHERE e.run_pk = r.pk \
             AND e.state = ANY(x.done)) \
         FROM s, x, (SELECT pk FROM runs WHERE lease_owner IS NOT NULL AND lease_until <= now() \
         AND (CASE WHEN $6::text IS NOT NULL THEN id = $6::uuid \
              WHEN $4::text IS NULL \
              THEN queue IS NULL OR queue NOT IN (SELECT name FROM queues) \
              ELSE queue = $4 END) \
         AND ($5::text[] IS NULL OR workflow = ANY($5)) \
         AND ($7::text[] IS NULL OR NOT (id = ANY($7::text[]::uuid[]))) \
         ORDER BY priority DESC, lease_until LIMIT $3 FOR UPDATE SKIP LOCKED) c \
         WHERE r.pk = c.pk \
         RETURNING r.fence, r.last_seq, r.stalls, r.id::text, r.workflow_id, r.workflow, r.version, \
         r.inputs::text, r.state, r.created_at, r.started_at, r.finished_at, r.priority, \
         r.not_before, r.idempotency_key, r.queue",
    )
    .bind(owner)
    .bind(millis(ttl))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .bind(lane)
    .bind(workflows)
    .bind(run)
    .bind((!except.is_empty()).then(|| {
        except
            .iter()
            .map(|r| r.to_uuid_string())
            .collect::<Vec<_>>()
    }))
    .fetch_all(conn)
    .await
    .map_err(|e| backend("claiming runs", e))?;
    Ok(rows
        .into_iter()
        .map(|(f, last, stalls, a, b, c, d, e, g, h, i, j, k, l, m, n)| {
            (
                ClaimHead::new(f, last, i64::from(stalls)),
                (a, b, c, d, e, g, h, i, j, k, l, m, n),
            )
        })
        .collect())
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn create_run(
        &self,
        run: &RunRecord,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let spec = run.spec.spec();
        let inputs = to_json("encoding run inputs", &run.inputs)?;
        // The common case, a workflow whose spec row is known: one statement (and one
        // round trip) inserts the run and notifies serving engines.
        if let Some(wf) = self.specs.row_of(&spec) {
            let inserted = self
                .insert_run(&self.pool, run, wf, inputs, lease, ttl)
                .await?;
            return if inserted {
                Ok(())
            } else {
                Err(self.conflict(run).await)
            };
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| backend("creating a run", e))?;
        let (wf, new) = self.workflow_row(&mut tx, run, &spec).await?;
        if !self
            .insert_run(&mut *tx, run, wf, inputs, lease, ttl)
            .await?
        {
            drop(tx);
            return Err(self.conflict(run).await);
        }
        tx.commit()
            .await
            .map_err(|e| backend("creating a run", e))?;
        if new {
            self.specs.remember(&spec, wf);
        }
        Ok(())
    }

    async fn append(&self, run: RunId, lease: &Lease, events: &[Event]) -> Result<(), StoreError> {
        // Encoded here, written by the store's writer with whatever else is queued.
        let batch = Batch::encode(events, 1)?;
        let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let first = events
            .first()
            .map_or(0, |e| i64::try_from(e.seq).unwrap_or(i64::MAX));
        self.writer
            .append(Append {
                run,
                lease: lease.clone(),
                batch,
                n,
                first,
            })
            .await
    }

    async fn renew(&self, run: RunId, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET lease_until = now() + $1 * interval '1 millisecond' \
             WHERE id = $2::uuid AND lease_owner = $3 AND fence = $4",
        )
        .bind(millis(ttl))
        .bind(run.to_uuid_string())
        .bind(&*lease.owner)
        .bind(fence(lease))
        .execute(&self.pool)
        .await
        .map_err(|e| backend("renewing a lease", e))?
        .rows_affected();
        if done == 0 {
            return Err(self.refused(run, lease).await);
        }
        Ok(())
    }

    async fn release(&self, run: RunId, lease: &Lease) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| backend("releasing a lease", e))?;
        // Given back, not lost: the claim does not count as a stalled one.
        let done = sqlx::query(
            "UPDATE runs SET lease_until = now(), stalls = GREATEST(stalls - 1, 0) \
             WHERE id = $1::uuid AND lease_owner = $2 AND fence = $3",
        )
        .bind(run.to_uuid_string())
        .bind(&*lease.owner)
        .bind(fence(lease))
        .execute(&mut *tx)
        .await
        .map_err(|e| backend("releasing a lease", e))?
        .rows_affected();
        if done == 0 {
            drop(tx);
            return Err(self.refused(run, lease).await);
        }
        self.notify(&mut tx, "released", run).await?;
        tx.commit()
            .await
            .map_err(|e| backend("releasing a lease", e))
    }

    async fn next_start(&self) -> Result<Option<SystemTime>, StoreError> {
        // How far ahead on the database's clock, applied to ours (leases use the
        // database's clock).
        let wait_ms: Option<f64> = sqlx::query_scalar(
            "SELECT (extract(epoch FROM min(lease_until) - now()) * 1000)::float8 FROM runs \
             WHERE lease_owner = 'queue' AND lease_until > now()",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| backend("reading the next start", e))?;
        Ok(wait_ms.map(|ms| SystemTime::now() + Duration::from_secs_f64(ms.max(0.0) / 1e3)))
    }

    async fn request_cancel(&self, run: RunId) -> Result<bool, StoreError> {
        let done: i64 = sqlx::query_scalar(
            "WITH c AS (UPDATE runs SET cancel_requested = COALESCE(cancel_requested, $1) \
             WHERE id = $2::uuid AND state NOT IN ('succeeded', 'failed', 'cancelled') \
             RETURNING id) \
             SELECT count(*) FROM c, LATERAL (SELECT pg_notify($3, 'cancel:' || c.id::text)) n",
        )
        .bind(micros(std::time::SystemTime::now()))
        .bind(run.to_uuid_string())
        .bind(&*self.channel)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| backend("requesting a cancellation", e))?;
        Ok(done > 0)
    }

    async fn cancel_requests(&self, owner: &str) -> Result<Vec<RunId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id::text FROM runs WHERE lease_owner = $1 AND cancel_requested IS NOT NULL",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend("reading cancellation requests", e))?;
        ids.iter().map(|id| parse_run_id(id)).collect()
    }

    async fn set_queue_limit(
        &self,
        queue: &str,
        max_running: Option<u32>,
    ) -> Result<(), StoreError> {
        let q = match max_running {
            Some(max) => sqlx::query(
                "INSERT INTO queues (name, max_running) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running",
            )
            .bind(queue)
            .bind(i32::try_from(max).unwrap_or(i32::MAX)),
            None => sqlx::query("DELETE FROM queues WHERE name = $1").bind(queue),
        };
        q.execute(&self.pool)
            .await
            .map_err(|e| backend("setting a queue limit", e))?;
        Ok(())
    }

    async fn queue_limits(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let rows: Vec<(String, i32)> =
            sqlx::query_as("SELECT name, max_running FROM queues ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| backend("reading queue limits", e))?;
        Ok(rows
            .into_iter()
            .map(|(n, m)| (n, u32::try_from(m).unwrap_or(0)))
            .collect())
    }

    async fn release_key(&self, key: &str, holder: RunId) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET idempotency_key = NULL WHERE idempotency_key = $1 AND id = $2::uuid",
        )
        .bind(key)
        .bind(holder.to_uuid_string())
        .execute(&self.pool)
        .await
        .map_err(|e| backend("releasing an idempotency key", e))?;
        Ok(())
    }

    async fn claim(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claim_of(owner, ttl, limit, None, &[]).await
    }

    async fn claim_run(
        &self,
        run: RunId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let rows = claim_rows(&self.pool, owner, ttl, 1, Pick::Run(run), None, &[]).await?;
        Ok(self.claimed(owner, rows).await?.pop())
    }

    async fn claim_workflows(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
        workflows: &[String],
        except: &[RunId],
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claim_of(owner, ttl, limit, Some(workflows), except)
            .await
    }

    async fn watch(&self) -> Result<Option<super::Wakeups>, StoreError> {
        let listener = self.subscribe().await?;
        Ok(Some(Box::pin(futures_util::stream::unfold(
            listener,
            |mut l| async move {
                loop {
                    match l.next().await {
                        Ok(n) if n.kind == NotificationKind::Appended => continue,
                        Ok(_) => return Some(((), l)),
                        // Lost connection: wake once so the engine re-reads the store;
                        // the listener reconnects on the next call.
                        Err(_) => {
                            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                            return Some(((), l));
                        }
                    }
                }
            },
        ))))
    }

    async fn get_run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        let row: Option<RunRow> = sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = $1::uuid"
        ))
        .bind(run.to_uuid_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| backend("reading a run", e))?;
        Ok(self
            .records(row.into_iter().collect())
            .await
            .map_err(|e| e.in_run(run))?
            .pop())
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Page<RunRecord>, StoreError> {
        let limit = if query.limit == 0 { 50 } else { query.limit };
        let mut rows: Vec<RunRow> = sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM runs \
             WHERE ($1::text IS NULL OR workflow = $1) AND ($2::text IS NULL OR state = $2) \
             AND ($3::uuid IS NULL OR id < $3::uuid) ORDER BY id DESC LIMIT $4"
        ))
        .bind(query.workflow.as_deref())
        .bind(query.state.map(|s| s.as_str()))
        .bind(query.before.map(RunId::to_uuid_string))
        .bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend("listing runs", e))?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let last = rows.last().and_then(|r| r.0.parse::<RunId>().ok());
        let (items, bad) =
            super::sql::decode_each(rows, |r| r.0.clone(), |r| self.records(vec![r])).await?;
        let next = if more {
            last.or_else(|| items.last().map(|r| r.id))
        } else {
            None
        };
        Ok(Page { items, next, bad })
    }

    async fn executions(&self, run: RunId) -> Result<Vec<ExecutionRecord>, StoreError> {
        let pk = self.run_pk(run).await?;
        let rows: Vec<(
            String,
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
            i64,
        )> = sqlx::query_as(
            "SELECT node, item, attempt, state, output::text, error::text, reason, started_at, \
             updated_at FROM executions WHERE run_pk = $1 ORDER BY first_seq",
        )
        .bind(pk)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend("reading executions", e))?;
        rows.into_iter()
            .map(
                |(node, item, attempt, state, output, error, reason, started_at, updated_at)| {
                    ExecOut {
                        node,
                        item,
                        attempt,
                        state,
                        output,
                        error,
                        reason,
                        started_at,
                        updated_at,
                    }
                    .decode()
                    .map_err(|e| e.in_run(run))
                },
            )
            .collect()
    }

    async fn events(&self, run: RunId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let pk = self.run_pk(run).await?;
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT seq, at, kind::text FROM events WHERE run_pk = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(pk)
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend("reading events", e))?;
        rows.into_iter()
            .map(|(seq, at, kind)| {
                Ok(Event::new(
                    run,
                    u64::try_from(seq).unwrap_or(0),
                    from_micros(at),
                    serde_json::from_str(&kind)
                        .map_err(|e| super::sql::bad_row(&format!("event {seq}"), e).in_run(run))?,
                ))
            })
            .collect()
    }

    async fn put_schedule(&self, schedule: &ScheduleRecord) -> Result<(), StoreError> {
        self.schedule_put(schedule).await
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        self.schedule_get(id).await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.schedule_list().await
    }

    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        self.schedule_delete(id).await
    }

    async fn set_schedule_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_fire: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        self.schedule_enable(id, enabled, next_fire).await
    }

    async fn due_schedules(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.schedule_due(now, limit).await
    }

    async fn next_schedule_fire(
        &self,
        after: SystemTime,
    ) -> Result<Option<SystemTime>, StoreError> {
        self.schedule_next_fire(after).await
    }

    async fn advance_schedule(
        &self,
        id: &str,
        expected: Option<SystemTime>,
        advance: &ScheduleAdvance,
    ) -> Result<bool, StoreError> {
        self.schedule_advance(id, expected, advance).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    fn schema() -> String {
        format!("unit_{}", RunId::new().to_uuid_string().replace('-', ""))
    }

    #[tokio::test]
    async fn an_unreachable_server_is_reported_at_connect() {
        // Port 1 on loopback: nothing listens there.
        let err = PostgresStore::options("postgres://postgres@127.0.0.1:1/test")
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
        let err = PostgresStore::connect("mysql://nope").await.unwrap_err();
        assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_bad_schema_name_is_refused() {
        let err = PostgresStore::options(&url())
            .schema("x; DROP TABLE y")
            .connect()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a valid schema name"), "{err}");
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_and_migrations_can_be_off() {
        let name = schema();
        let err = PostgresStore::options(&url())
            .schema(&name)
            .migrate(false)
            .connect()
            .await;
        assert!(
            matches!(err, Err(StoreError::SchemaOutdated { found: None, .. })),
            "{err:?}"
        );
        let store = PostgresStore::options(&url())
            .schema(&name)
            .connect()
            .await
            .unwrap();
        // Connecting again (migrations already applied) is fine.
        PostgresStore::options(&url())
            .schema(&name)
            .connect()
            .await
            .unwrap()
            .close()
            .await;
        sqlx::query("UPDATE dagforge_schema SET version = 99")
            .execute(&store.pool)
            .await
            .unwrap();
        let err = PostgresStore::options(&url())
            .schema(&name)
            .connect()
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
            "{err:?}"
        );
        store.drop_schema().await.unwrap();
    }

    #[tokio::test]
    async fn a_lost_connection_fails_appends_as_backend_errors() {
        let name = schema();
        let store = PostgresStore::options(&url())
            .schema(&name)
            .connect()
            .await
            .unwrap();
        let probe = store.clone();
        store.close().await;
        let err = probe
            .append(RunId::new(), &Lease::new("e", 1), &[])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
        let cleanup = PostgresStore::options(&url())
            .schema(&name)
            .connect()
            .await
            .unwrap();
        cleanup.drop_schema().await.unwrap();
    }
}

#[cfg(test)]
mod send_checks {
    fn is_send<T: Send>(_: &T) {}

    #[test]
    fn futures_are_send() {
        let f = super::PostgresStore::connect("postgres://localhost/x");
        is_send(&f);
    }
}
