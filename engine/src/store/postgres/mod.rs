//! The PostgreSQL store: for several engine processes sharing one database.
//!
//! What it shares with the SQLite store is in [`super::sql`]; here is what is
//! PostgreSQL's own: connecting and migrating a schema ([`connect`]), claiming with
//! `FOR UPDATE SKIP LOCKED` ([`claim`]), the group write ([`write`]) and the
//! notifications engines wake on ([`notify`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::postgres::{PgListener, PgPool};
use sqlx::{PgConnection, Postgres};

use crate::ids::RunId;
use crate::workflow::WorkflowSpec;

use super::combine::{Combiner, GroupWrite};
use super::sql::{EncodedSpec, SpecCache, Sql, backend, fence, micros, millis, sql_store, to_json};
use super::{Lease, RunRecord, StoreError};

mod claim;
mod connect;
mod durability;
mod notify;
mod queue;
mod write;

pub use connect::PostgresOptions;
pub use durability::{Durability, UnknownDurability};
pub use notify::{Notification, NotificationKind, Notifications};

/// Keeps runs, executions and events in a PostgreSQL database, in a schema of its own
/// (`dagforge` unless told otherwise), so that several engine processes can share the
/// work.
///
/// * Leases expire on the database's clock (`now()`), so engines' clocks need not
///   agree.
/// * [`claim`](crate::store::RunLog::claim) picks expired runs with `FOR UPDATE SKIP LOCKED`: engines
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
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn check_url(url: &str) -> Result<(), String> {
        connect::check_url(url)
    }

    /// Options for connecting to `url`; finish with
    /// [`connect`](PostgresOptions::connect).
    ///
    /// A `durability` query parameter in `url` (`?durability=relaxed`) is taken out of
    /// it and sets [`durability`](PostgresOptions::durability); an unknown value is
    /// refused when connecting.
    pub fn options(url: &str) -> PostgresOptions {
        let (url, durability) = durability::take_param(url);
        PostgresOptions {
            durability: durability
                .map(|d| d.parse())
                .unwrap_or(Ok(Durability::Outcomes)),
            url,
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

    /// The statements shared with the SQLite store, on this store's pool.
    fn sql(&self) -> Sql<'_, Postgres> {
        Sql::new(&self.pool, &self.specs)
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
}

sql_store!(PostgresStore {
    run_log {
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
                    Err(self.sql().conflict(run).await)
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
    }
    watch {
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
    }
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

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
