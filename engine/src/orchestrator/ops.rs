//! The engine's operations face: readiness and the metrics' text, with the gauges
//! read from the store when asked.

use std::time::{Duration, SystemTime};

use super::engine::Engine;
use crate::ids::RunId;
use crate::state::RunState;
use crate::store::{RunQuery, StoreError};
use crate::telemetry::{DEFAULT_LANE, Readiness};

/// How long readiness and a scrape wait for the store before calling it unreachable.
const STORE_WAIT: Duration = Duration::from_secs(2);

impl Engine {
    /// Whether this engine can do its work, with the reasons when it cannot: the store
    /// answers a read within two seconds, and, while the engine
    /// [serves](Engine::serve), a turn of its loop reached the store within about two
    /// poll intervals and its heartbeat or a lease renewal was recorded within about
    /// two renewal intervals. What `/readyz` answers.
    pub async fn readiness(&self) -> Readiness {
        let mut reasons = Vec::new();
        if let Err(e) = self.ping_store().await {
            reasons.push(format!("store: {}", chain(&e)));
        }
        reasons.extend(self.sh.telemetry.liveness.behind());
        Readiness::from_reasons(reasons)
    }

    /// One cheap read of the store (a run by id), bounded in time.
    async fn ping_store(&self) -> Result<(), StoreError> {
        // The nil id, which no run has: a lookup by primary key.
        let probe: RunId = "00000000-0000-0000-0000-000000000000"
            .parse()
            .unwrap_or_default();
        match tokio::time::timeout(STORE_WAIT, self.sh.store.get_run(probe)).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(StoreError::Unreachable {
                message: format!("no answer within {} s", STORE_WAIT.as_secs()),
                source: None,
            }),
        }
    }

    /// This engine's metrics in the Prometheus text format (version 0.0.4; content type
    /// [`CONTENT_TYPE`](crate::telemetry::CONTENT_TYPE)), the gauges that describe the
    /// store (runs waiting per lane, engines alive, `dagforge_store_up`) read from it
    /// first. A store that does not answer sets `dagforge_store_up` to 0 and leaves
    /// those gauges as last read. What `/metrics` serves.
    pub async fn metrics_text(&self) -> String {
        let up = match tokio::time::timeout(STORE_WAIT, self.read_store_gauges()).await {
            Ok(Ok(())) => 1,
            Ok(Err(e)) => {
                tracing::debug!(error = %chain(&e), "metrics: the store's gauges not read");
                0
            }
            Err(_) => 0,
        };
        self.sh.telemetry.metrics.store_up.set(up);
        self.sh.telemetry.metrics.encode()
    }

    async fn read_store_gauges(&self) -> Result<(), StoreError> {
        let m = &self.sh.telemetry.metrics;
        let store = &self.sh.store;
        let pending = store
            .count_runs(&RunQuery::new().state(RunState::Pending))
            .await?
            .get(RunState::Pending);
        let mut in_lanes = 0;
        for (lane, _) in store.queue_limits().await? {
            let n = store
                .count_runs(&RunQuery::new().state(RunState::Pending).queue(&lane))
                .await?
                .get(RunState::Pending);
            in_lanes += n;
            let label = m.lanes.admit(&lane);
            m.runs_waiting
                .with_label_values(&[label])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        m.runs_waiting
            .with_label_values(&[DEFAULT_LANE])
            .set(i64::try_from(pending.saturating_sub(in_lanes)).unwrap_or(i64::MAX));
        // Alive: beat within two lease TTLs (beats come every third of one).
        let fresh = SystemTime::now()
            .checked_sub(self.sh.lease_ttl * 2)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let alive = store
            .engines()
            .await?
            .iter()
            .filter(|e| e.last_beat >= fresh)
            .count();
        m.engines_alive
            .set(i64::try_from(alive).unwrap_or(i64::MAX));
        Ok(())
    }
}

/// An error with its causes, `: `-separated.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
