//! Engine heartbeats: every engine process serving a store records who it is and
//! when it was last alive ([`EngineRegistry`]), so that an operator (the HTTP API,
//! the dashboard, the CLI) can list the engines and tell live ones from stale ones.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::StoreError;

/// One engine process serving a store, as its last heartbeat recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EngineRecord {
    /// The engine's id: the owner name on the leases it holds
    /// ([`EngineBuilder::id`](crate::EngineBuilder::id)).
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id on that host.
    pub pid: u32,
    /// The dagforge version it runs.
    pub version: String,
    /// When it started serving.
    pub started_at: SystemTime,
    /// When it last recorded a heartbeat. An engine beats every lease-renewal
    /// interval (a third of its lease TTL); one whose last beat is older than its
    /// lease TTL has stopped or lost touch with the store.
    pub last_beat: SystemTime,
    /// How many unfinished runs it holds under a live lease, counted by the store when
    /// the record is read (the value passed to [`EngineRegistry::beat`] is ignored).
    pub runs_owned: u64,
}

impl EngineRecord {
    /// Engine `id` on `host` (process `pid`, dagforge `version`), started at
    /// `started_at`, beating now, owning no runs yet.
    pub fn new(
        id: impl Into<String>,
        host: impl Into<String>,
        pid: u32,
        version: impl Into<String>,
        started_at: SystemTime,
    ) -> Self {
        EngineRecord {
            id: id.into(),
            host: host.into(),
            pid,
            version: version.into(),
            started_at,
            last_beat: SystemTime::now(),
            runs_owned: 0,
        }
    }

    /// The same record, beating at `at`.
    pub fn beat_at(mut self, at: SystemTime) -> Self {
        self.last_beat = at;
        self
    }

    /// The same record, owning `runs` runs (what a store reports when read).
    pub fn with_runs_owned(mut self, runs: u64) -> Self {
        self.runs_owned = runs;
        self
    }
}

/// The engines serving a store and their heartbeats.
///
/// Every method has a default: a store that keeps no engine records drops the beats
/// and lists no engines. The memory, SQLite and PostgreSQL stores keep them.
#[async_trait::async_trait]
pub trait EngineRegistry: Send + Sync + std::fmt::Debug + 'static {
    /// Records engine `engine.id`'s heartbeat: inserts its record, or replaces every
    /// field of it (host, pid, version, start, last beat). Its `runs_owned` is not
    /// stored: the store counts the runs when the record is read.
    async fn beat(&self, engine: &EngineRecord) -> Result<(), StoreError> {
        let _ = engine;
        Ok(())
    }

    /// Every recorded engine, by id, each with its last beat (an engine whose beat is
    /// older than its lease TTL is stale) and the unfinished runs it holds under a
    /// live lease now.
    async fn engines(&self) -> Result<Vec<EngineRecord>, StoreError> {
        Ok(Vec::new())
    }

    /// Removes engine `id`'s record (a clean shutdown); whether there was one.
    async fn forget_engine(&self, id: &str) -> Result<bool, StoreError> {
        let _ = id;
        Ok(false)
    }

    /// Removes the records of engines whose last beat is before `before` (engines
    /// gone for good); how many were removed.
    async fn forget_engines_before(&self, before: SystemTime) -> Result<u64, StoreError> {
        let _ = before;
        Ok(0)
    }
}
