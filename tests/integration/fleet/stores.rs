//! Fresh stores for the fleet tests: memory, a SQLite file, a PostgreSQL schema.

use std::sync::Arc;

use dagforge::store::{MemoryStore, SqliteStore};

/// A SQLite file of its own under the target's temporary directory.
pub(crate) fn sqlite_path(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.db", dagforge::RunId::new()));
    let _ = std::fs::remove_file(&path);
    path
}

/// A fresh SQLite store in a file of its own.
pub(crate) async fn sqlite(name: &str) -> (Arc<SqliteStore>, String) {
    let path = sqlite_path(name);
    let url = format!("sqlite://{}", path.display());
    (Arc::new(SqliteStore::open(&url).await.unwrap()), url)
}

/// A fresh memory store.
pub(crate) fn memory() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new())
}

/// The PostgreSQL server's URL.
#[cfg(feature = "postgres")]
pub(crate) fn pg_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh schema of its own on the test server (dropped by [`drop_pg`]).
#[cfg(feature = "postgres")]
pub(crate) async fn postgres() -> (Arc<dagforge::store::PostgresStore>, String) {
    let schema = format!(
        "fleet_{}",
        dagforge::RunId::new().to_string().replace('-', "")
    );
    let store = dagforge::store::PostgresStore::options(&pg_url())
        .schema(schema.clone())
        .connect()
        .await
        .unwrap();
    (Arc::new(store), schema)
}
