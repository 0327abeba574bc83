//! The SQLite store: the embedded default. One file (WAL mode), survives restarts, for
//! one engine process at a time (or several on one machine: SQLite serializes writers).
//!
//! What it shares with the PostgreSQL store is in [`super::sql`]; here is what is
//! SQLite's own: opening the file ([`open`]), claiming under the write lock
//! ([`claim`]), the group write ([`write`]) and watching other processes' commits.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use crate::ids::RunId;
use crate::workflow::WorkflowSpec;

use super::combine::{Combiner, GroupWrite};
use super::sql::{EncodedSpec, SpecCache, Sql, backend, fence, micros, millis, sql_store, to_json};
use super::{Lease, RunRecord, StoreError};

mod claim;
mod open;
mod queue;
mod write;

pub use open::SqliteOptions;

/// How often an idle engine looks for other processes' commits (see `watch`).
const WATCH_EVERY: Duration = Duration::from_millis(20);

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
    /// The statements shared with the PostgreSQL store, on this store's pool.
    fn sql(&self) -> Sql<'_, Sqlite> {
        Sql::new(&self.pool, &self.specs)
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
}

sql_store!(SqliteStore {
    run_log {
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
                drop(tx);
                return Err(self.sql().conflict(run).await);
            }
            tx.commit()
                .await
                .map_err(|e| backend("creating a run", e))?;
            if new {
                self.specs.remember(&spec, wf);
            }
            Ok(())
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
    }
    watch {
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
    }
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::sql::SCHEMA_VERSION;

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
