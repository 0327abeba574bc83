//! The driver's store writes: a step's events under the run's lease, and the lease's
//! renewal.

use std::time::Duration;

use super::Driver;
use crate::events::Event;
use crate::store::StoreError;

impl Driver {
    pub(super) async fn renew_lease(&mut self) {
        let ttl = self.sh.lease_ttl;
        self.renew
            .as_mut()
            .reset(tokio::time::Instant::now() + ttl / 3);
        match self.sh.store.renew(self.run, &self.lease, ttl).await {
            Ok(()) => self.sh.telemetry.liveness.renewed(),
            Err(e @ (StoreError::Fenced { .. } | StoreError::UnknownRun(_))) => self.lost = Some(e),
            Err(e) => {
                tracing::warn!(run_id = %self.run, error = %e, "lease renewal failed; retrying at the next tick");
            }
        }
    }

    pub(super) async fn flush(&mut self) {
        if self.core.events().is_empty() {
            return;
        }
        // Subscribers get copies; the store may take the originals.
        let publish: Vec<Event> = if self.sh.events.receiver_count() > 0 {
            self.core.events().clone()
        } else {
            Vec::new()
        };
        if self.lost.is_some() {
            self.core.events().clear();
            return;
        }
        // Counted as they go to the store (which may take them).
        self.observer.observe(self.core.events());
        let began = std::time::Instant::now();
        let written = match self
            .sh
            .store
            .append_now(self.run, &self.lease, self.core.events())
        {
            Some(Ok(())) => true,
            Some(Err(
                e @ (StoreError::Fenced { .. }
                | StoreError::UnknownRun(_)
                | StoreError::OutOfSequence { .. }),
            )) => {
                self.lost = Some(e);
                self.core.events().clear();
                return;
            }
            Some(Err(e)) => {
                tracing::warn!(run_id = %self.run, error = %e, "store append failed; retrying");
                false
            }
            None => false,
        };
        if !written {
            let mut delay = Duration::from_millis(50);
            loop {
                match self
                    .sh
                    .store
                    .append(self.run, &self.lease, self.core.events())
                    .await
                {
                    Ok(()) => break,
                    Err(
                        e @ (StoreError::Fenced { .. }
                        | StoreError::UnknownRun(_)
                        | StoreError::OutOfSequence { .. }),
                    ) => {
                        self.lost = Some(e);
                        self.core.events().clear();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(run_id = %self.run, error = %e, retry_in = ?delay, "store append failed; retrying");
                        tokio::time::sleep(delay).await;
                        // At most a second apart: the run goes on within about a
                        // second of the store coming back.
                        delay = (delay * 2).min(Duration::from_secs(1));
                    }
                }
            }
        }
        let now = std::time::Instant::now();
        self.observer
            .wrote(now.saturating_duration_since(began), now);
        self.core.events().clear();
        for e in publish {
            let _ = self.sh.events.send(e);
        }
    }
}
