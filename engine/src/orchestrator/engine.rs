//! The engine: configuration, starting runs, handles to running runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio::sync::mpsc::UnboundedSender;
use tracing::Instrument;

use super::driver::Driver;
use super::result::RunResult;
use super::shared::Shared;
use crate::artifact::ArtifactStore;
use crate::error::{Error, Result};
use crate::events::{Event, EventStream};
use crate::executor::{Executor, InProcess};
use crate::ids::RunId;
use crate::limit::Limiter;
use crate::signal::{CONTROL, Signal};
use crate::store::{Lease, MemoryStore, RunRecord, Store, StoreError};
use crate::workflow::Workflow;

/// Runs workflows. Cheap to clone; clones share the store, executor, concurrency
/// limit and event stream.
///
/// ```
/// use dagforge::prelude::*;
///
/// struct Hello;
/// impl Job for Hello {
///     type Input = String;
///     type Output = String;
///     const NAME: &'static str = "hello";
///     async fn run(&self, _: &JobContext, who: String) -> Result<String, JobError> {
///         Ok(format!("hello, {who}"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), dagforge::Error> {
/// let mut wf = Workflow::builder("greet");
/// let who = wf.param::<String>("who");
/// wf.add("hello", Hello).input_from(who);
/// let wf = wf.build()?;
///
/// let engine = Engine::new();
/// let run = engine.run(&wf, serde_json::json!({ "who": "world" })).await?;
/// assert!(run.is_success());
/// assert_eq!(run.output::<String>("hello")?, "hello, world");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Engine {
    pub(super) sh: Arc<Shared>,
}

/// Configures an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    store: Option<Arc<dyn Store>>,
    executor: Option<Arc<dyn Executor>>,
    concurrency: usize,
    grace: Duration,
    event_capacity: usize,
    artifacts: Option<ArtifactStore>,
    id: Option<String>,
    lease_ttl: Duration,
    workflows: HashMap<(String, String), Workflow>,
    max_output: usize,
    max_input: usize,
    clock: Option<Arc<dyn crate::clock::Clock>>,
    max_stalled: u32,
    /// Shared resources for jobs (see `resources.rs`).
    pub(super) resources: crate::resource::ResourceSet,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            store: None,
            executor: None,
            concurrency: Engine::DEFAULT_CONCURRENCY,
            grace: Duration::from_secs(10),
            event_capacity: 4096,
            artifacts: None,
            id: None,
            lease_ttl: Duration::from_secs(30),
            workflows: HashMap::new(),
            max_output: 1 << 20,
            max_input: crate::bounds::DEFAULT_MAX_INPUT_BYTES,
            clock: None,
            max_stalled: Engine::DEFAULT_MAX_STALLED_CLAIMS,
            resources: crate::resource::ResourceSet::new(),
        }
    }
}

impl EngineBuilder {
    /// Where runs are recorded (default: a new [`MemoryStore`]).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Like [`store`](Self::store), for a store that is already shared.
    pub fn shared_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// How attempts run (default: [`InProcess`]).
    pub fn executor(mut self, executor: impl Executor) -> Self {
        self.executor = Some(Arc::new(executor));
        self
    }

    /// Most attempts running at once, over all runs (default 256, minimum 1).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// How long a cancelled run waits for running attempts to stop on their own before
    /// aborting them (default 10 s).
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How many events a slow subscriber may fall behind (default 4096).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Where jobs save and load artifacts (default:
    /// [`ArtifactStore::default_local`], a directory private to the user:
    /// `$XDG_DATA_HOME/dagforge/artifacts` or `~/.local/share/dagforge/artifacts`,
    /// created `0700`). `ArtifactStore::from_env()?` honours `DAGFORGE_ARTIFACTS`;
    /// `ArtifactConfig::beside_database(file)` keeps them next to a SQLite store, as
    /// the CLI does.
    pub fn artifacts(mut self, store: ArtifactStore) -> Self {
        self.artifacts = Some(store);
        self
    }

    /// The engine's name in run leases (default: `engine-<pid>-<random>`). Engines
    /// sharing a store must have distinct names.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// How long a run's lease lasts without renewal (default 30 s, minimum 1 s). The
    /// engine renews it every third of that; a run whose engine stopped is resumed by
    /// another engine (see [`Engine::resume`]) once its lease expired.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// The largest output, as JSON, an attempt may return (default 1 MiB). Outputs are
    /// stored with the run and passed to dependents; anything bigger belongs in an
    /// artifact. A larger output fails the attempt (not retried) with a message saying
    /// so.
    pub fn max_output_bytes(mut self, limit: usize) -> Self {
        self.max_output = limit;
        self
    }

    /// The largest run inputs, as JSON, a run may be started or enqueued with (default
    /// 1 MiB); larger inputs are refused with [`Error::Input`] naming the largest
    /// parameter, and nothing is recorded. Independently of it, a parameter's value
    /// nested deeper than [`bounds::MAX_DEPTH`](crate::bounds::MAX_DEPTH) levels is
    /// refused.
    pub fn max_input_bytes(mut self, limit: usize) -> Self {
        self.max_input = limit;
        self
    }

    /// Where the scheduler of recurring schedules reads the time (default:
    /// [`SystemClock`](crate::SystemClock)); tests pass a [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl crate::clock::Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// How many times in a row a run may be claimed without progress (no node or item
    /// settled in between) before the engine claiming it fails it instead of driving
    /// it (default [`Engine::DEFAULT_MAX_STALLED_CLAIMS`]; 0: never). This is the
    /// second line of defence against a *poison* run, one that makes every engine
    /// driving it die (an abort, the out-of-memory killer): without it every engine
    /// would claim it in turn, forever, and die with all its other runs. The run ends
    /// Failed, its open attempts failed with a message naming the cause. Claims given
    /// back ([`Store::release`]), as a serving engine does when it stops, do not count.
    /// The count cannot tell the culprit from a run that died with it on the same
    /// engines without settling anything in between: such a run reaches the limit too.
    pub fn max_stalled_claims(mut self, claims: u32) -> Self {
        self.max_stalled = claims;
        self
    }

    /// Registers a workflow whose runs this engine may resume after a restart (and
    /// whose declared recurring schedule, if any, [`Engine::serve`] registers).
    pub fn workflow(mut self, workflow: &Workflow) -> Self {
        self.workflows.insert(
            (workflow.name().to_owned(), workflow.version().to_owned()),
            workflow.clone(),
        );
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Engine {
        let (events, _) = broadcast::channel(self.event_capacity);
        let executor: Arc<dyn Executor> = self.executor.unwrap_or_else(|| Arc::new(InProcess));
        Engine {
            sh: Arc::new(Shared {
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                executor_name: executor.name(),
                executor,
                permits: Limiter::new(self.concurrency),
                events,
                grace: self.grace,
                artifacts: self.artifacts.unwrap_or_default(),
                owner: self.id.unwrap_or_else(default_engine_id).into(),
                lease_ttl: self.lease_ttl,
                max_output: self.max_output,
                max_input: self.max_input,
                workflows: self.workflows,
                clock: self
                    .clock
                    .unwrap_or_else(|| Arc::new(crate::clock::SystemClock)),
                capacity: self.concurrency,
                max_stalled: self.max_stalled,
                resources: self.resources.start(),
                telemetry: crate::telemetry::Telemetry::new(),
                active: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    /// Default for [`EngineBuilder::concurrency`].
    pub const DEFAULT_CONCURRENCY: usize = 256;

    /// Default for [`EngineBuilder::max_stalled_claims`].
    pub const DEFAULT_MAX_STALLED_CLAIMS: u32 = 5;

    /// An engine with a memory store and the in-process executor.
    pub fn new() -> Self {
        EngineBuilder::default().build()
    }

    /// Configures an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The engine's store, for queries.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.sh.store
    }

    /// The engine's artifact store: list or delete a run's artifacts
    /// ([`ArtifactStore::list_run_artifacts`], [`ArtifactStore::delete_run_artifacts`]).
    pub fn artifacts(&self) -> &ArtifactStore {
        &self.sh.artifacts
    }

    /// Subscribes to the events of every run started from now on.
    pub fn subscribe(&self) -> EventStream {
        EventStream::new(self.sh.events.subscribe())
    }

    /// Starts a run of `workflow` with `inputs` (an object of parameter values, or `()`
    /// when the workflow has no parameters) and returns at once.
    pub async fn start(&self, workflow: &Workflow, inputs: impl Serialize) -> Result<RunHandle> {
        self.check_uses(workflow)?;
        let plan = Arc::clone(&workflow.plan);
        let inputs = crate::bounds::run_inputs(&inputs, self.sh.max_input)?;
        let params = bind_params(workflow, &inputs)?;
        let id = RunId::new();
        let spec = crate::workflow::WorkflowSnapshot::of(workflow);
        let record = RunRecord::new(id, plan.name.clone(), plan.version.clone(), spec, inputs);
        let lease = Lease::new(Arc::clone(&self.sh.owner), 1);
        self.sh
            .store
            .create_run(&record, &lease, self.sh.lease_ttl)
            .await?;
        Ok(self.drive(id, plan, params, lease, Vec::new(), false))
    }

    /// Spawns the driver of a run (new, or resumed from its recorded `events`).
    /// `claimed`: the run was claimed from the store (not created here), so a
    /// cancellation requested before the claim cancels it before anything starts.
    pub(super) fn drive(
        &self,
        id: RunId,
        plan: Arc<crate::workflow::plan::Plan>,
        params: Vec<Value>,
        lease: Lease,
        events: Vec<Event>,
        claimed: bool,
    ) -> RunHandle {
        self.spawn_driver(id, plan, params, lease, move |d| {
            d.claimed(claimed).restore(events)
        })
    }

    /// Spawns the driver of a claimed run that is to be failed at once with `reason`
    /// (see [`EngineBuilder::max_stalled_claims`]): rebuilt from its `events` (the
    /// first `recorded` of its log, if they could be read), it starts nothing.
    pub(super) fn drive_given_up(
        &self,
        id: RunId,
        plan: Arc<crate::workflow::plan::Plan>,
        lease: Lease,
        events: Vec<Event>,
        recorded: u64,
        reason: String,
    ) -> RunHandle {
        // No node is evaluated: parameter values are never read.
        let params = vec![Value::Null; plan.params.len()];
        self.spawn_driver(id, plan, params, lease, move |d| {
            d.give_up(events, recorded, &reason)
        })
    }

    fn spawn_driver(
        &self,
        id: RunId,
        plan: Arc<crate::workflow::plan::Plan>,
        params: Vec<Value>,
        lease: Lease,
        prepare: impl FnOnce(Driver) -> Driver + Send + 'static,
    ) -> RunHandle {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.active().insert(id, tx.clone());
        let span = tracing::info_span!("run", run_id = %id, workflow = %plan.name);
        let driver = Driver::new(
            id,
            plan,
            params,
            Arc::clone(&self.sh),
            tx.clone(),
            rx,
            lease,
        );
        let sh = Arc::clone(&self.sh);
        let mine = tx.clone();
        let task = tokio::spawn(
            async move {
                let result = prepare(driver).run().await;
                let mut active = sh.active.lock().unwrap_or_else(|e| e.into_inner());
                // Only this driver's entry: another driver of the same run in this
                // engine (it lost the run and took it back) keeps its own.
                if active.get(&id).is_some_and(|t| t.same_channel(&mine)) {
                    active.remove(&id);
                }
                result
            }
            .instrument(span),
        );
        RunHandle { id, tx, task }
    }

    /// Runs `workflow` to completion.
    pub async fn run(&self, workflow: &Workflow, inputs: impl Serialize) -> Result<RunResult> {
        self.start(workflow, inputs).await?.wait().await
    }

    /// Asks run `run` to cancel **if this engine drives it now** — started here
    /// ([`start`](Engine::start), [`run`](Engine::run), [`retry`](Engine::retry)) or
    /// claimed here ([`serve`](Engine::serve), [`resume`](Engine::resume)) — and
    /// returns whether it does. In memory only: nothing is read from or written to the
    /// store, and `false` (nothing done) for a run this engine does not drive: one
    /// that is enqueued or delayed, driven by another engine or process, orphaned by an
    /// engine that stopped, or finished.
    ///
    /// Which to use: with the run's [`RunHandle`], [`RunHandle::cancel`]; with only
    /// its id, and the run possibly anywhere in the store,
    /// [`cancel_recorded`](Engine::cancel_recorded), which does this first and
    /// otherwise goes through the store. `cancel` is for a caller that knows the run is
    /// this engine's (a Ctrl-C handler beside [`start`](Engine::start)).
    ///
    /// A run asked to cancel: its jobs see their cancellation token fire, nodes not yet
    /// running are cancelled, and attempts still running after the engine's grace
    /// period ([`EngineBuilder::cancel_grace`]) are aborted.
    pub fn cancel(&self, run: RunId) -> bool {
        match self.active().get(&run) {
            Some(tx) => tx.send((CONTROL, Signal::Cancel)).is_ok(),
            None => false,
        }
    }

    pub(super) fn active(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<RunId, UnboundedSender<(u32, Signal)>>> {
        self.sh.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every recorded event of run `run`, read in pages.
    pub(super) async fn all_events(&self, run: RunId) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        loop {
            let page = self
                .sh
                .store
                .events(run, events.len() as u64, 10_000)
                .await?;
            if page.is_empty() {
                return Ok(events);
            }
            events.extend(page);
        }
    }

    /// [`Error::UnknownWorkflow`] for `run`, whose workflow version this engine does
    /// not know, listing those it knows.
    pub(super) fn unknown_workflow(&self, run: &RunRecord) -> Error {
        let mut known: Vec<String> = self
            .sh
            .workflows
            .keys()
            .map(|(n, v)| format!("{n} v{v}"))
            .collect();
        known.sort();
        Error::UnknownWorkflow {
            name: run.workflow.clone(),
            version: Some(run.version.clone()),
            known,
        }
    }

    /// The registered workflow of `run` (its name and version), if any.
    pub(super) fn workflow_of(&self, run: &RunRecord) -> Option<Workflow> {
        self.sh
            .workflows
            .get(&(run.workflow.clone(), run.version.clone()))
            .cloned()
    }
}

/// The run's parameter values in the plan's order: `inputs`, else defaults.
pub(super) fn bind_params(workflow: &Workflow, inputs: &Value) -> Result<Vec<Value>> {
    let plan = &workflow.plan;
    let empty = serde_json::Map::new();
    let given = match inputs {
        Value::Null => &empty,
        Value::Object(m) => m,
        other => {
            return Err(Error::Input {
                name: "*".to_owned(),
                reason: format!(
                    "run inputs must be an object of parameter values, got {}",
                    crate::workflow::plan::kind(other)
                ),
            });
        }
    };
    if let Some(unknown) = given
        .keys()
        .find(|k| !plan.params.iter().any(|p| &*p.name == k.as_str()))
    {
        return Err(Error::Input {
            name: unknown.clone(),
            reason: format!("workflow `{}` has no such parameter", plan.name),
        });
    }
    plan.params
        .iter()
        .map(|p| match (given.get(&*p.name), &p.default) {
            (Some(v), _) => Ok(v.clone()),
            (None, Some(d)) => Ok(d.clone()),
            (None, None) => Err(Error::Input {
                name: p.name.to_string(),
                reason: "required and not given".to_owned(),
            }),
        })
        .collect()
}

fn default_engine_id() -> String {
    format!("engine-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

/// A started run: wait for it or cancel it.
#[derive(Debug)]
pub struct RunHandle {
    id: RunId,
    tx: UnboundedSender<(u32, Signal)>,
    task: tokio::task::JoinHandle<Result<RunResult, StoreError>>,
}

impl RunHandle {
    /// The run's id.
    pub fn id(&self) -> RunId {
        self.id
    }

    /// Stops the run's driver task from outside (see [`abandon`](Self::abandon)).
    pub(super) fn abort_handle(&self) -> tokio::task::AbortHandle {
        self.task.abort_handle()
    }

    /// Asks the run to cancel: jobs see their cancellation token fire, nodes not yet
    /// running are cancelled, and attempts still running after the engine's grace
    /// period are aborted. The handle's run is driven by this engine, so this reaches
    /// it while it runs (as [`Engine::cancel`] with its id would); for a run known by
    /// its id only, see [`Engine::cancel_recorded`].
    pub fn cancel(&self) {
        let _ = self.tx.send((CONTROL, Signal::Cancel));
    }

    /// Stops driving the run in this engine at once, recording nothing more, as if the
    /// process had died: its in-process attempts are aborted and its lease is left to
    /// expire, after which an engine calling [`Engine::resume`] takes the run over.
    pub fn abandon(self) {
        self.task.abort();
    }

    /// Waits for the run to finish.
    pub async fn wait(self) -> Result<RunResult> {
        self.task
            .await
            .map_err(|e| Error::Orchestrator(e.to_string()))?
            .map_err(Error::Store)
    }
}
