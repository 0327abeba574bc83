//! The SQLite store: the embedded default. One file (WAL mode), survives restarts, for
//! one engine process at a time (or several on one machine: SQLite serializes writers).

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};

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

/// How often an idle engine looks for other processes' commits (see `watch`).
const WATCH_EVERY: Duration = Duration::from_millis(20);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Columns of a run row, in [`RunRow`] order.
const RUN_COLUMNS: &str = "id, workflow_id, workflow, version, inputs, state, created_at, \
                           started_at, finished_at, priority, not_before, idempotency_key, \
                           queue";

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

/// Keeps runs, executions and events in a SQLite database.
///
/// Opens (creating if needed) the file, switches it to WAL with `synchronous=NORMAL`,
/// turns on foreign keys and a busy timeout, and applies the schema migrations. A
/// file from a newer dagforge is refused ([`StoreError::SchemaTooNew`]), a file that
/// is not a database is [`StoreError::Corrupt`], one another process keeps locked is
/// [`StoreError::Locked`].
///
/// ```
/// # use dagforge::store::SqliteStore;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), dagforge::store::StoreError> {
/// let store = SqliteStore::open_memory().await?;
/// // or: SqliteStore::open("sqlite://dagforge.db").await?
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// How to open another connection to the same file (for wake-ups); `None` for an
    /// in-memory database, which no other process can write.
    file: Option<SqliteConnectOptions>,
    specs: Arc<SpecCache>,
    writer: Arc<Combiner<write::Writer>>,
}

/// How to open a [`SqliteStore`]: from [`SqliteStore::options`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SqliteOptions {
    url: String,
    memory: bool,
    busy_timeout: Duration,
    migrate: bool,
    max_connections: u32,
    initialize_foreign: bool,
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

fn now_ms() -> i64 {
    millis(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path/to.db`,
    /// `sqlite:path`, or a plain path) with default [options](SqliteStore::options).
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        Self::options(url).open().await
    }

    /// A fresh in-memory database: nothing survives the store.
    pub async fn open_memory() -> Result<SqliteStore, StoreError> {
        let mut o = Self::options(":memory:");
        o.memory = true;
        o.open().await
    }

    /// Options for opening the database at `url`; finish with
    /// [`open`](SqliteOptions::open).
    pub fn options(url: &str) -> SqliteOptions {
        SqliteOptions {
            url: url.to_owned(),
            memory: false,
            busy_timeout: Duration::from_secs(5),
            migrate: true,
            max_connections: 4,
            initialize_foreign: false,
        }
    }

    /// Moves everything in the write-ahead log into the database file and empties the
    /// log (`PRAGMA wal_checkpoint(TRUNCATE)`): afterwards the `.db` file alone holds
    /// every committed write. Fails with [`StoreError::Locked`] while another
    /// connection reads or writes.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        // (busy, log frames, frames checkpointed); busy = 1: readers kept it from
        // finishing.
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| backend("checkpointing the write-ahead log", e))?;
        if busy != 0 {
            return Err(StoreError::Locked {
                message: "store: checkpointing the write-ahead log: another connection is \
                          using the database"
                    .to_owned(),
                source: None,
            });
        }
        Ok(())
    }

    /// Checkpoints the write-ahead log ([`checkpoint`](SqliteStore::checkpoint), best
    /// effort: another process may be using the file) and closes the connections
    /// (waiting for those in use to be returned). The CLI does this before it exits.
    pub async fn close(&self) {
        if self.file.is_some()
            && let Err(e) = self.checkpoint().await
        {
            tracing::debug!(error = %e, "store: no checkpoint at close");
        }
        self.pool.close().await;
    }

    /// The `workflows` row of `spec`, inserting it if new.
    async fn workflow_row(
        &self,
        tx: &mut sqlx::SqliteConnection,
        run: &RunRecord,
        spec: &Arc<WorkflowSpec>,
    ) -> Result<(i64, bool), StoreError> {
        if let Some(id) = self.specs.row_of(spec) {
            return Ok((id, false));
        }
        let enc = EncodedSpec::new(spec)?;
        sqlx::query(
            "INSERT INTO workflows (name, version, hash, spec) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name, version, hash) DO NOTHING",
        )
        .bind(&run.workflow)
        .bind(&run.version)
        .bind(&enc.hash)
        .bind(&enc.json)
        .execute(&mut *tx)
        .await
        .map_err(|e| backend("storing a workflow spec", e))?;
        let id = sqlx::query_scalar(
            "SELECT id FROM workflows WHERE name = ? AND version = ? AND hash = ?",
        )
        .bind(&run.workflow)
        .bind(&run.version)
        .bind(&enc.hash)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| backend("storing a workflow spec", e))?;
        Ok((id, true))
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
                        sqlx::query_scalar("SELECT spec FROM workflows WHERE id = ?")
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
    /// Moves a lease's expiry, if `lease` is still the run's lease (else `Fenced` or
    /// `UnknownRun`).
    async fn set_lease_until(
        &self,
        run: RunId,
        lease: &Lease,
        until_ms: i64,
        doing: &'static str,
    ) -> Result<(), StoreError> {
        // A lease given back (`release`: `until_ms` is now) does not count as a stalled
        // claim: take back the count its claim added.
        let done = sqlx::query(
            "UPDATE runs SET lease_until = ?1, \
             stalls = CASE WHEN ?1 <= ?5 THEN MAX(stalls - 1, 0) ELSE stalls END \
             WHERE id = ?2 AND lease_owner = ?3 AND fence = ?4",
        )
        .bind(until_ms)
        .bind(run.to_uuid_string())
        .bind(&*lease.owner)
        .bind(fence(lease))
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|e| backend(doing, e))?
        .rows_affected();
        if done == 0 {
            return Err(self.refused(run, lease).await);
        }
        Ok(())
    }

    async fn refused(&self, run: RunId, lease: &Lease) -> StoreError {
        GroupWrite::refused(self.writer.flusher(), run, lease).await
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
        // Runs in uncapped lanes: one statement. SQLite runs it under the write lock, so
        // two engines never pick the same run, and each pick increments the fence.
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
        // Capped lanes with claimable runs: the count and the claim in one transaction,
        // which SQLite serializes with every other writer.
        if rows.len() < limit {
            let lanes: Vec<(String, i64)> = sqlx::query_as(
                "SELECT q.name, q.max_running FROM queues q WHERE EXISTS (SELECT 1 FROM runs \
                 WHERE queue = q.name AND lease_owner IS NOT NULL AND lease_until <= ?)",
            )
            .bind(now_ms())
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
                // Take the write lock first, so the count cannot go stale.
                sqlx::query("UPDATE queues SET max_running = max_running WHERE name = ?")
                    .bind(&lane)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| backend("claiming runs", e))?;
                let live: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM runs WHERE queue = ? AND lease_owner IS NOT NULL \
                     AND lease_until > ?",
                )
                .bind(&lane)
                .bind(now_ms())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| backend("claiming runs", e))?;
                let room = usize::try_from(max - live).unwrap_or(0);
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
        sqlx::query_scalar("SELECT pk FROM runs WHERE id = ?")
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
/// lanes without a cap, leaving the runs in `except` alone. Returns each run's new
/// fence, its event count, its stalled claims and its row.
///
/// A claim counts as stalled (`stalls` + 1) unless executions settled since the last
/// claim (`settled` remembers how many had then), which resets the count to 1.
async fn claim_rows<'e, E: sqlx::SqliteExecutor<'e>>(
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
        i64,
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
    let now = now_ms();
    let rows: Vec<Row> = sqlx::query_as(
        "UPDATE runs SET fence = fence + 1, lease_owner = ?1, lease_until = ?2, \
         stalls = CASE WHEN (SELECT count(*) FROM executions x WHERE x.run_pk = runs.pk \
             AND x.state IN ('succeeded', 'failed', 'timed_out', 'skipped', 'cancelled')) \
             > settled THEN 1 ELSE stalls + 1 END, \
         settled = (SELECT count(*) FROM executions x WHERE x.run_pk = runs.pk \
             AND x.state IN ('succeeded', 'failed', 'timed_out', 'skipped', 'cancelled')) \
         WHERE pk IN (SELECT pk FROM runs WHERE lease_owner IS NOT NULL \
         AND lease_until <= ?3 AND (CASE WHEN ?7 IS NOT NULL THEN id = ?7 WHEN ?5 IS NULL \
             THEN queue IS NULL OR queue NOT IN (SELECT name FROM queues) \
             ELSE queue = ?5 END) \
         AND (?6 IS NULL OR workflow IN (SELECT value FROM json_each(?6))) \
         AND (?8 IS NULL OR id NOT IN (SELECT value FROM json_each(?8))) \
         ORDER BY priority DESC, lease_until LIMIT ?4) \
         RETURNING fence, last_seq, stalls, id, workflow_id, workflow, version, inputs, state, \
         created_at, started_at, finished_at, priority, not_before, idempotency_key, queue",
    )
    .bind(owner)
    .bind(now.saturating_add(millis(ttl)))
    .bind(now)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .bind(lane)
    .bind(workflows.map(|w| serde_json::Value::from(w.to_vec()).to_string()))
    .bind(run)
    .bind((!except.is_empty()).then(|| {
        serde_json::Value::from(
            except
                .iter()
                .map(|r| r.to_uuid_string())
                .collect::<Vec<_>>(),
        )
        .to_string()
    }))
    .fetch_all(conn)
    .await
    .map_err(|e| backend("claiming runs", e))?;
    Ok(rows
        .into_iter()
        .map(|(f, last, stalls, a, b, c, d, e, g, h, i, j, k, l, m, n)| {
            (
                ClaimHead::new(f, last, stalls),
                (a, b, c, d, e, g, h, i, j, k, l, m, n),
            )
        })
        .collect())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create_run(
        &self,
        run: &RunRecord,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let spec = run.spec.spec();
        let inputs = to_json("encoding run inputs", &run.inputs)?;
        let finished = run.state.is_terminal();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| backend("creating a run", e))?;
        let (wf, new) = self.workflow_row(&mut tx, run, &spec).await?;
        let inserted = sqlx::query(
            "INSERT INTO runs (id, workflow_id, workflow, version, inputs, state, created_at, \
             started_at, finished_at, lease_owner, lease_until, fence, priority, not_before, \
             idempotency_key, queue) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
        .bind((!finished).then(|| now_ms().saturating_add(millis(ttl))))
        .bind(fence(lease))
        .bind(run.priority)
        .bind(run.not_before.map(micros))
        .bind(run.idempotency_key.as_deref())
        .bind(run.queue.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|e| backend("creating a run", e))?
        .rows_affected();
        if inserted == 0 {
            // The id, or the idempotency key, is taken.
            if let Some(key) = &run.idempotency_key {
                let holder: Option<(String, i64)> =
                    sqlx::query_as("SELECT id, created_at FROM runs WHERE idempotency_key = ?")
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(|e| backend("creating a run", e))?;
                if let Some((id, created)) = holder {
                    return Err(StoreError::KeyExists {
                        key: key.clone(),
                        run: parse_run_id(&id)?,
                        created_at: from_micros(created),
                    });
                }
            }
            return Err(StoreError::RunExists(run.id));
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
        self.set_lease_until(
            run,
            lease,
            now_ms().saturating_add(millis(ttl)),
            "renewing a lease",
        )
        .await
    }

    async fn release(&self, run: RunId, lease: &Lease) -> Result<(), StoreError> {
        self.set_lease_until(run, lease, now_ms(), "releasing a lease")
            .await
    }

    async fn release_key(&self, key: &str, holder: RunId) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET idempotency_key = NULL WHERE idempotency_key = ? AND id = ?")
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
        // Other processes' commits, seen through `PRAGMA data_version` on a connection
        // of its own (the value changes when another connection committed), looked at
        // every 20 ms: wake-ups within 20 ms for fifty cheap reads a second, instead of
        // the engine's poll interval.
        let Some(opts) = self.file.clone() else {
            return Ok(None);
        };
        let mut conn = sqlx::ConnectOptions::connect(&opts)
            .await
            .map_err(|e| backend("watching for changes", e))?;
        let last: i64 = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| backend("watching for changes", e))?;
        Ok(Some(Box::pin(futures_util::stream::unfold(
            (conn, last),
            |(mut conn, mut last)| async move {
                loop {
                    tokio::time::sleep(WATCH_EVERY).await;
                    match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                        .fetch_one(&mut conn)
                        .await
                    {
                        Ok(v) if v == last => {}
                        Ok(v) => {
                            last = v;
                            return Some(((), (conn, last)));
                        }
                        // The file went away or stays locked: wake, and let the
                        // engine's own reads report it.
                        Err(_) => return Some(((), (conn, last))),
                    }
                }
            },
        ))))
    }

    async fn next_start(&self) -> Result<Option<SystemTime>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT min(lease_until) FROM runs WHERE lease_owner = 'queue' AND lease_until > ?",
        )
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| backend("reading the next start", e))?;
        Ok(next.map(|ms| {
            SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        }))
    }

    async fn request_cancel(&self, run: RunId) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET cancel_requested = COALESCE(cancel_requested, ?) \
             WHERE id = ? AND state NOT IN ('succeeded', 'failed', 'cancelled')",
        )
        .bind(micros(SystemTime::now()))
        .bind(run.to_uuid_string())
        .execute(&self.pool)
        .await
        .map_err(|e| backend("requesting a cancellation", e))?
        .rows_affected();
        Ok(done > 0)
    }

    async fn cancel_requests(&self, owner: &str) -> Result<Vec<RunId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE lease_owner = ? AND cancel_requested IS NOT NULL",
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
                "INSERT INTO queues (name, max_running) VALUES (?, ?) \
                 ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running",
            )
            .bind(queue)
            .bind(i64::from(max)),
            None => sqlx::query("DELETE FROM queues WHERE name = ?").bind(queue),
        };
        q.execute(&self.pool)
            .await
            .map_err(|e| backend("setting a queue limit", e))?;
        Ok(())
    }

    async fn queue_limits(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, max_running FROM queues ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| backend("reading queue limits", e))?;
        Ok(rows
            .into_iter()
            .map(|(n, m)| (n, u32::try_from(m).unwrap_or(0)))
            .collect())
    }

    async fn get_run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        let row: Option<RunRow> =
            sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"))
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
        let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1"));
        if let Some(w) = &query.workflow {
            q.push(" AND workflow = ").push_bind(w);
        }
        if let Some(s) = query.state {
            q.push(" AND state = ").push_bind(s.as_str());
        }
        if let Some(b) = query.before {
            q.push(" AND id < ").push_bind(b.to_uuid_string());
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX));
        let mut rows: Vec<RunRow> = q
            .build_query_as()
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
            "SELECT node, item, attempt, state, output, error, reason, started_at, updated_at \
             FROM executions WHERE run_pk = ? ORDER BY first_seq",
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
            "SELECT seq, at, kind FROM events WHERE run_pk = ? AND seq > ? ORDER BY seq LIMIT ?",
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

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "dagforge-{name}-{}-{}.db",
            std::process::id(),
            RunId::new().to_uuid_string()
        ))
    }

    fn cleanup(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }

    #[tokio::test]
    async fn a_corrupt_file_is_refused() {
        let path = temp_path("corrupt");
        std::fs::write(&path, vec![0xA5_u8; 64 * 1024]).unwrap();
        let err = SqliteStore::open(&path.to_string_lossy())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("not a SQLite database"), "{err}");
        cleanup(&path);
    }

    #[tokio::test]
    async fn a_locked_file_is_refused() {
        let path = temp_path("locked");
        let url = path.to_string_lossy().into_owned();
        drop(SqliteStore::open(&url).await.unwrap());
        // Another process's exclusive lock: nobody else may read or write.
        let holder = SqliteStore::options(&url)
            .max_connections(1)
            .open()
            .await
            .unwrap();
        let mut conn = holder.pool.acquire().await.unwrap();
        sqlx::query("PRAGMA locking_mode = EXCLUSIVE")
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query("UPDATE dagforge_schema SET version = version")
            .execute(&mut *conn)
            .await
            .unwrap();
        let err = SqliteStore::options(&url)
            .busy_timeout(Duration::from_millis(100))
            .open()
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        drop(conn);
        holder.close().await;
        cleanup(&path);
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_and_migrations_can_be_off() {
        let path = temp_path("newer");
        let url = format!("sqlite://{}", path.display());
        let err = SqliteStore::options(&url).migrate(false).open().await;
        assert!(
            matches!(
                err,
                Err(StoreError::SchemaOutdated {
                    found: None,
                    supported: SCHEMA_VERSION
                })
            ),
            "{err:?}"
        );
        let store = SqliteStore::open(&url).await.unwrap();
        sqlx::query("UPDATE dagforge_schema SET version = 99")
            .execute(&store.pool)
            .await
            .unwrap();
        store.close().await;
        let err = SqliteStore::open(&url).await.unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 99, supported } if supported == SCHEMA_VERSION),
            "{err:?}"
        );
        assert!(err.to_string().contains("newer"), "{err}");
        cleanup(&path);
    }

    #[tokio::test]
    async fn a_missing_directory_is_unreachable() {
        let path = std::env::temp_dir()
            .join(format!(
                "dagforge-missing-{}",
                RunId::new().to_uuid_string()
            ))
            .join("x.db");
        let err = SqliteStore::open(&path.to_string_lossy())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_closed_pool_fails_appends_as_backend_errors() {
        let store = SqliteStore::open_memory().await.unwrap();
        store.close().await;
        let err = store
            .append(RunId::new(), &Lease::new("e", 1), &[])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    }
}

#[cfg(test)]
mod send_checks {
    fn is_send<T: Send>(_: &T) {}

    #[test]
    fn futures_are_send() {
        let f = super::SqliteStore::open("sqlite://x.db");
        is_send(&f);
    }
}
