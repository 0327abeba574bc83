//! What every run of an engine shares: the store, the executor, the concurrency
//! limit, the event stream and the engine's settings. The driver of a run and the
//! engine's operations read it; nothing in it reaches back up to them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::sync::mpsc::UnboundedSender;

use crate::artifact::ArtifactStore;
use crate::clock::Clock;
use crate::events::Event;
use crate::executor::Executor;
use crate::ids::RunId;
use crate::limit::Limiter;
use crate::signal::Signal;
use crate::store::Store;
use crate::workflow::Workflow;

/// What every run of an engine shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) executor: Arc<dyn Executor>,
    /// `executor.name()`, worked out once (each attempt's drop guard names it).
    pub(crate) executor_name: &'static str,
    pub(crate) permits: Arc<Limiter>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) grace: Duration,
    pub(crate) artifacts: ArtifactStore,
    /// This engine's name in leases.
    pub(crate) owner: Arc<str>,
    /// How long a run's lease lasts without renewal.
    pub(crate) lease_ttl: Duration,
    /// Largest JSON output an attempt may return.
    pub(crate) max_output: usize,
    /// Largest run inputs, as JSON.
    pub(crate) max_input: usize,
    /// Workflows this engine can resume runs of, by (name, version).
    pub(super) workflows: HashMap<(String, String), Workflow>,
    /// Where the scheduler reads the time.
    pub(crate) clock: Arc<dyn Clock>,
    /// Most runs this engine drives at once from claims (its concurrency).
    pub(super) capacity: usize,
    /// Claims without progress past which a claimed run is failed (0: never).
    pub(super) max_stalled: u32,
    /// Metrics and health marks (`telemetry`).
    pub(crate) telemetry: Arc<crate::telemetry::Telemetry>,
    /// The shared resources of jobs run in this process; `None` when none are
    /// registered (contexts then carry nothing).
    pub(crate) resources: Option<crate::resource::Live>,
    /// The runs this engine drives now, by id: where to send their signals.
    pub(super) active: Mutex<HashMap<RunId, UnboundedSender<(u32, Signal)>>>,
}
