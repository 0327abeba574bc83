//! Recurring schedules, behind the [`Schedules`] handle ([`Engine::schedules`]):
//! registering them ([`Schedules::add_or_update`]), reading, enabling, triggering and
//! removing them (this file); their options and how they read back (`options.rs`); and
//! the scheduler that fires them, one turn per [`Engine::serve`] loop
//! ([`Schedules::fire_due`], `fire.rs`).
//!
//! # Exactly once, without a leader
//!
//! Every serving engine looks at the due schedules. For a due fire it enqueues the run
//! with the idempotency key `schedule:<id>@<fire, RFC 3339>` — so the fire is one run
//! however many engines enqueue it, even at the same instant (the store's unique index
//! on keys) — and then moves the schedule's `next_fire` on with a conditional update
//! (`… WHERE id = ? AND next_fire IS NOT DISTINCT FROM <the value it read>`): exactly one
//! engine wins; the others see that they lost and re-read next turn. An engine that
//! dies between the two steps leaves the fire due; whoever handles it next enqueues the
//! same key (getting the same run) and advances.

mod fire;
mod options;

use std::time::SystemTime;

pub use fire::{Fire, FireOutcome};
use options::Policies;
pub use options::{Recurring, RecurringSchedule};

use super::engine::{Engine, bind_params};
use crate::Enqueue;
use crate::error::{Error, Result};
use crate::ids::RunId;
use crate::schedule::{Schedule, ScheduleError};
use crate::store::ScheduleRecord;
use crate::workflow::Workflow;

impl Engine {
    /// The engine's recurring schedules: add, read, enable, disable, trigger and
    /// remove them, fire the due ones ([`Schedules`]).
    pub fn schedules(&self) -> Schedules<'_> {
        Schedules { engine: self }
    }
}

/// The recurring schedules of an engine's store, as [`Engine::schedules`] hands them
/// out: each operation reads or writes the store, so that every engine serving it
/// sees the same schedules. Cheap to copy; it borrows the engine.
///
/// ```
/// # use dagforge::prelude::*;
/// # use dagforge::Recurring;
/// # struct Report;
/// # impl Job for Report {
/// #     type Input = ();
/// #     type Output = ();
/// #     const NAME: &'static str = "report";
/// #     async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), dagforge::Error> {
/// let wf = Workflow::of_job(Report)?;
/// let engine = Engine::builder().workflow(&wf).build();
/// let schedules = engine.schedules();
/// schedules.add_or_update("hourly", &wf, "0 * * * *", Recurring::new()).await?;
/// assert_eq!(schedules.list().await?.len(), 1);
///
/// assert!(!schedules.disable("hourly").await?.enabled);
/// assert!(schedules.enable("hourly").await?.next_fire.is_some());
/// let run = schedules.trigger("hourly").await?; // one run now, the schedule unmoved
/// assert!(engine.store().get_run(run).await?.is_some());
///
/// schedules.remove("hourly").await?;
/// assert!(matches!(
///     schedules.get("hourly").await,
///     Err(dagforge::Error::UnknownSchedule(id)) if id == "hourly"
/// ));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Schedules<'a> {
    engine: &'a Engine,
}

impl Schedules<'_> {
    /// Registers (or updates) the recurring schedule `id`: runs of `workflow` on `cron`
    /// (see [`crate::schedule`] for the syntax), with `options`. Engines serving the
    /// store ([`Engine::serve`]) fire it; each fire is one run, whatever the number
    /// of engines.
    ///
    /// Updating a schedule keeps whether it is enabled (an operator's `disable` survives
    /// a redeploy), and keeps its next fire when the expression and time zone are the
    /// same; otherwise the next fire is computed from now.
    ///
    /// ```
    /// # use dagforge::prelude::*;
    /// # use dagforge::Recurring;
    /// # struct Report;
    /// # impl Job for Report {
    /// #     type Input = ();
    /// #     type Output = ();
    /// #     const NAME: &'static str = "report";
    /// #     async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), dagforge::Error> {
    /// let wf = Workflow::of_job(Report)?;
    /// let engine = Engine::builder().workflow(&wf).build();
    /// engine
    ///     .schedules()
    ///     .add_or_update("nightly", &wf, "0 2 * * *", Recurring::new().time_zone("Europe/Paris"))
    ///     .await?;
    /// let schedule = engine.schedules().get("nightly").await?;
    /// assert!(schedule.enabled && schedule.next_fire.is_some());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Schedule`] for an invalid expression (naming the field), an unknown time
    /// zone, or a schedule that never fires again; [`Error::UnknownWorkflow`] if
    /// `workflow` is not registered with this engine ([`EngineBuilder::workflow`]);
    /// [`Error::Input`] for inputs the workflow does not take; [`Error::Store`].
    ///
    /// [`EngineBuilder::workflow`]: crate::EngineBuilder::workflow
    pub async fn add_or_update(
        &self,
        id: &str,
        workflow: &Workflow,
        cron: &str,
        options: Recurring,
    ) -> Result<()> {
        if id.trim().is_empty() {
            return Err(Error::Input {
                name: "id".to_owned(),
                reason: "a schedule id must not be empty".to_owned(),
            });
        }
        let key = (workflow.name().to_owned(), workflow.version().to_owned());
        if !self.engine.sh.workflows.contains_key(&key) {
            return Err(self.no_such_workflow(workflow.name(), Some(workflow.version())));
        }
        let schedule_error = |source| Error::Schedule {
            id: id.to_owned(),
            source,
        };
        let schedule = Schedule::parse(cron, &options.time_zone).map_err(schedule_error)?;
        let now = self.engine.sh.clock.now();
        let next = schedule
            .next_after(now)
            .ok_or_else(|| schedule_error(ScheduleError::NeverFires(cron.trim().to_owned())))?;
        let inputs = options.inputs.map_err(|reason| Error::Input {
            name: "*".to_owned(),
            reason: format!("inputs cannot be encoded as JSON: {reason}"),
        })?;
        bind_params(workflow, &inputs)?;
        crate::bounds::check_run_inputs(&inputs, self.engine.sh.max_input)?;
        let mut policies = options.policies;
        policies.version = Some(workflow.version().to_owned());
        let options = serde_json::to_value(&policies).map_err(|e| Error::Input {
            name: "options".to_owned(),
            reason: e.to_string(),
        })?;

        let mut record = ScheduleRecord::new(
            id,
            workflow.name(),
            schedule.expression(),
            schedule.time_zone(),
            Some(next.into()),
        );
        if let Some(old) = self.engine.sh.store.get_schedule(id).await? {
            record.enabled = old.enabled;
            record.last_fire = old.last_fire;
            record.last_run = old.last_run;
            let same = old.cron == record.cron && old.time_zone == record.time_zone;
            if same {
                record.next_fire = old.next_fire;
                record.note = old.note;
            } else if !old.enabled {
                record.next_fire = None;
            }
        }
        record.inputs = inputs;
        record.options = options;
        self.engine.sh.store.put_schedule(&record).await?;
        Ok(())
    }

    /// Every recurring schedule in the store, by id.
    pub async fn list(&self) -> Result<Vec<RecurringSchedule>> {
        Ok(self
            .engine
            .sh
            .store
            .list_schedules()
            .await?
            .into_iter()
            .map(RecurringSchedule::of)
            .collect())
    }

    /// One recurring schedule ([`Error::UnknownSchedule`] if there is none).
    pub async fn get(&self, id: &str) -> Result<RecurringSchedule> {
        self.engine
            .sh
            .store
            .get_schedule(id)
            .await?
            .map(RecurringSchedule::of)
            .ok_or_else(|| Error::UnknownSchedule(id.to_owned()))
    }

    /// Turns schedule `id` on: its next fire is the first after now (fires while it was
    /// off are not caught up). A schedule that is on already is left as it is.
    pub async fn enable(&self, id: &str) -> Result<RecurringSchedule> {
        let record = self
            .engine
            .sh
            .store
            .get_schedule(id)
            .await?
            .ok_or_else(|| Error::UnknownSchedule(id.to_owned()))?;
        if record.enabled {
            return Ok(RecurringSchedule::of(record));
        }
        let schedule =
            Schedule::parse(&record.cron, &record.time_zone).map_err(|source| Error::Schedule {
                id: id.to_owned(),
                source,
            })?;
        let next = schedule
            .next_after(self.engine.sh.clock.now())
            .map(SystemTime::from);
        if !self
            .engine
            .sh
            .store
            .set_schedule_enabled(id, true, next)
            .await?
        {
            return Err(Error::UnknownSchedule(id.to_owned()));
        }
        self.get(id).await
    }

    /// Turns schedule `id` off: it fires no more until enabled again.
    pub async fn disable(&self, id: &str) -> Result<RecurringSchedule> {
        if !self
            .engine
            .sh
            .store
            .set_schedule_enabled(id, false, None)
            .await?
        {
            return Err(Error::UnknownSchedule(id.to_owned()));
        }
        self.get(id).await
    }

    /// Deletes schedule `id` (its runs are kept).
    pub async fn remove(&self, id: &str) -> Result<()> {
        if self.engine.sh.store.delete_schedule(id).await? {
            Ok(())
        } else {
            Err(Error::UnknownSchedule(id.to_owned()))
        }
    }

    /// Enqueues one run of schedule `id` now, with its inputs and priority, without
    /// moving the schedule (its next fire stays as it was). Returns the run's id.
    pub async fn trigger(&self, id: &str) -> Result<RunId> {
        let record = self
            .engine
            .sh
            .store
            .get_schedule(id)
            .await?
            .ok_or_else(|| Error::UnknownSchedule(id.to_owned()))?;
        let policies = Policies::of(&record).unwrap_or_default();
        let workflow = self.workflow_of(&record, &policies)?;
        self.engine
            .enqueue_with(
                &workflow,
                &record.inputs,
                Enqueue::new().priority(policies.priority),
            )
            .await
    }

    /// Registers the recurring schedules the engine's workflows declare
    /// ([`WorkflowBuilder::cron`](crate::WorkflowBuilder::cron), `#[workflow(cron =
    /// "…")]`), each under the workflow's name. [`Engine::serve`] does this when
    /// it starts.
    ///
    /// # Errors
    ///
    /// As [`add_or_update`](Self::add_or_update): a declared
    /// expression that is invalid is reported here, naming the field.
    pub async fn register_declared(&self) -> Result<()> {
        let mut declared: Vec<&Workflow> = self
            .engine
            .sh
            .workflows
            .values()
            .filter(|w| w.cron.is_some())
            .collect();
        declared.sort_by(|a, b| (a.name(), a.version()).cmp(&(b.name(), b.version())));
        for wf in declared {
            if let Some((cron, tz)) = wf.cron() {
                let options = match self.engine.sh.store.get_schedule(wf.name()).await? {
                    // Keep what was set on the schedule (inputs, policies) by hand.
                    Some(old) => {
                        let p = Policies::of(&old).unwrap_or_default();
                        Recurring {
                            time_zone: tz.to_owned(),
                            inputs: Ok(old.inputs),
                            policies: p,
                        }
                    }
                    None => Recurring::new().time_zone(tz),
                };
                self.add_or_update(wf.name(), wf, cron, options).await?;
            }
        }
        Ok(())
    }

    /// The workflow a schedule runs: the version it was registered with, else any
    /// registered version of that name (the newest).
    fn workflow_of(&self, record: &ScheduleRecord, policies: &Policies) -> Result<Workflow> {
        if let Some(v) = &policies.version
            && let Some(w) = self
                .engine
                .sh
                .workflows
                .get(&(record.workflow.clone(), v.clone()))
        {
            return Ok(w.clone());
        }
        self.engine
            .sh
            .workflows
            .iter()
            .filter(|((name, _), _)| *name == record.workflow)
            .max_by(|a, b| a.0.1.cmp(&b.0.1))
            .map(|(_, w)| w.clone())
            .ok_or_else(|| self.no_such_workflow(&record.workflow, None))
    }

    fn no_such_workflow(&self, name: &str, version: Option<&str>) -> Error {
        let known: Vec<String> = self
            .engine
            .sh
            .workflows
            .keys()
            .map(|(n, _)| n.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        Error::UnknownWorkflow {
            name: name.to_owned(),
            version: version.map(str::to_owned),
            known,
        }
    }
}
