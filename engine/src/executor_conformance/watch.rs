//! The events of the run a check follows, as the engine published them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::ErrorInfo;
use crate::events::{Event, EventKind};
use crate::ids::RunId;
use crate::orchestrator::Engine;

/// Collects an engine's events from its creation on; reads those of one run.
pub(super) struct Watch {
    seen: Arc<Mutex<Vec<Event>>>,
    run: Option<RunId>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watch {
    /// Subscribes to `engine`'s events (before the run starts, so none is missed).
    pub(super) fn new(engine: &Engine) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let mut events = engine.subscribe();
        let task = tokio::spawn(async move {
            while let Some(e) = events.next().await {
                if let Ok(mut v) = sink.lock() {
                    v.push(e);
                }
            }
        });
        Watch {
            seen,
            run: None,
            task,
        }
    }

    /// Reads the events of `run` from here on.
    pub(super) fn follow(&mut self, run: RunId) {
        self.run = Some(run);
    }

    /// The followed run's events so far.
    pub(super) fn events(&self) -> Vec<EventKind> {
        let Ok(v) = self.seen.lock() else {
            return Vec::new();
        };
        v.iter()
            .filter(|e| Some(e.run) == self.run)
            .map(|e| e.kind.clone())
            .collect()
    }

    /// Waits (at most 2 s) for the event of the run's end to arrive.
    pub(super) async fn drain(&self) {
        for _ in 0..200 {
            let ended = self
                .events()
                .iter()
                .any(|k| matches!(k, EventKind::Run { to, .. } if to.is_terminal()));
            if ended {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits at most `within` for a log line `line`; whether it came.
    pub(super) async fn wait_for_log(&self, line: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let seen = self
                .events()
                .iter()
                .any(|k| matches!(k, EventKind::Log { message, .. } if message == line));
            if seen {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The error node `node`'s attempt `attempt` failed with, from its node events.
    pub(super) fn attempt_error(&self, node: &str, attempt: u32) -> Option<ErrorInfo> {
        self.events().into_iter().find_map(|k| match k {
            EventKind::Node(n) if &*n.node == node && n.attempt == attempt => n.error.map(|e| *e),
            _ => None,
        })
    }
}
