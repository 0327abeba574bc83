//! Recurring schedules: registering them ([`Engine::add_or_update_recurring`]), and the
//! scheduler that fires them, one turn per [`Engine::serve`] loop
//! ([`Engine::fire_due_schedules`]).
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

use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::engine::{Engine, bind_params};
use super::enqueue::Enqueue;
use crate::error::{Error, Result};
use crate::ids::RunId;
use crate::schedule::{
    DEFAULT_MISFIRE_GRACE, Jitter, MissedFirePolicy, OverlapPolicy, Schedule, ScheduleError,
    plan_fires_with_grace,
};
use crate::store::{ScheduleAdvance, ScheduleRecord};
use crate::workflow::Workflow;

/// Options of a recurring schedule ([`Engine::add_or_update_recurring`]): time zone,
/// the runs' inputs and priority, overlap and missed-fire policies, jitter.
///
/// ```
/// use std::time::Duration;
/// use dagforge::Recurring;
/// use dagforge::schedule::{MissedFirePolicy, OverlapPolicy};
///
/// let options = Recurring::new()
///     .time_zone("Europe/Paris")
///     .inputs(serde_json::json!({"region": "eu"}))
///     .overlap(OverlapPolicy::Queue)
///     .missed(MissedFirePolicy::CatchUp { max: 3 })
///     .jitter(Duration::from_secs(30))
///     .priority(5);
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Recurring {
    time_zone: String,
    inputs: std::result::Result<Value, String>,
    policies: Policies,
}

impl Default for Recurring {
    fn default() -> Self {
        Recurring {
            time_zone: "UTC".to_owned(),
            inputs: Ok(Value::Null),
            policies: Policies::default(),
        }
    }
}

impl Recurring {
    /// UTC, no inputs, overlap [`Skip`](OverlapPolicy::Skip), missed fires
    /// [`FireOnce`](MissedFirePolicy::FireOnce), no jitter, priority 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The IANA time zone the expression is read in (default `UTC`).
    pub fn time_zone(mut self, time_zone: impl Into<String>) -> Self {
        self.time_zone = time_zone.into();
        self
    }

    /// The runs' inputs (the workflow's parameters), as for [`Engine::enqueue`].
    pub fn inputs(mut self, inputs: impl Serialize) -> Self {
        self.inputs = crate::bounds::to_value(&inputs, crate::bounds::MAX_DEPTH + 1)
            .map_err(|e| e.to_string());
        self
    }

    /// What to do when a fire comes while the previous run is still going.
    pub fn overlap(mut self, policy: OverlapPolicy) -> Self {
        self.policies.overlap = policy;
        self
    }

    /// What to do with fires missed while no engine was running.
    pub fn missed(mut self, policy: MissedFirePolicy) -> Self {
        self.policies.missed = policy;
        self
    }

    /// Delays each run by a deterministic amount up to `max` (see [`Jitter`]).
    pub fn jitter(mut self, max: Duration) -> Self {
        self.policies.jitter = Jitter::up_to(max);
        self
    }

    /// The runs' priority (see [`Enqueue::priority`]).
    pub fn priority(mut self, priority: i32) -> Self {
        self.policies.priority = priority;
        self
    }
}

/// What a schedule row keeps in its `options` column.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct Policies {
    /// The workflow version registered with the schedule.
    version: Option<String>,
    overlap: OverlapPolicy,
    missed: MissedFirePolicy,
    jitter: Jitter,
    priority: i32,
}

impl Policies {
    fn of(record: &ScheduleRecord) -> std::result::Result<Policies, String> {
        serde_json::from_value(record.options.clone()).map_err(|e| e.to_string())
    }
}

/// A recurring schedule as an engine sees it: [`Engine::recurring`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RecurringSchedule {
    /// The schedule's id.
    pub id: String,
    /// The workflow it runs.
    pub workflow: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone.
    pub time_zone: String,
    /// The runs' inputs.
    pub inputs: Value,
    /// The overlap policy.
    pub overlap: OverlapPolicy,
    /// The missed-fire policy.
    pub missed: MissedFirePolicy,
    /// The jitter.
    pub jitter: Jitter,
    /// The runs' priority.
    pub priority: i32,
    /// Whether it fires.
    pub enabled: bool,
    /// The next fire (`None` when disabled or when it never fires again).
    pub next_fire: Option<DateTime<Utc>>,
    /// The last fire handled (run or skipped).
    pub last_fire: Option<DateTime<Utc>>,
    /// The last run it started.
    pub last_run: Option<RunId>,
    /// Why the last due fire started no run (`skipped: previous run … still running`),
    /// or what it waits for.
    pub note: Option<String>,
}

impl RecurringSchedule {
    fn of(r: ScheduleRecord) -> Self {
        let p = Policies::of(&r).unwrap_or_default();
        RecurringSchedule {
            next_fire: r.next_fire.map(DateTime::from),
            last_fire: r.last_fire.map(DateTime::from),
            id: r.id,
            workflow: r.workflow,
            cron: r.cron,
            time_zone: r.time_zone,
            inputs: r.inputs,
            overlap: p.overlap,
            missed: p.missed,
            jitter: p.jitter,
            priority: p.priority,
            enabled: r.enabled,
            last_run: r.last_run,
            note: r.note,
        }
    }
}

/// One fire handled by [`Engine::fire_due_schedules`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fire {
    /// The schedule.
    pub schedule: String,
    /// The fire's nominal time (from the cron expression).
    pub at: DateTime<Utc>,
    /// What became of it.
    pub outcome: FireOutcome,
}

/// What became of a [`Fire`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FireOutcome {
    /// A run was enqueued, at `start`: the fire time plus its jitter.
    Enqueued {
        /// The run.
        run: RunId,
        /// The fire's jittered instant.
        start: DateTime<Utc>,
    },
    /// Skipped by the overlap policy: run `running` was still going.
    Skipped {
        /// The schedule's previous run.
        running: RunId,
    },
}

/// The note on a schedule whose fire waits for its previous run (overlap `queue`).
const WAITING: &str = "waiting: previous run ";

/// The idempotency key of a fire: one run per schedule and fire time.
pub(crate) fn fire_key(schedule: &str, fire: DateTime<Utc>) -> String {
    format!(
        "schedule:{schedule}@{}",
        fire.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    )
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// How often `serve` looks again at a fire waiting for its previous run (overlap
/// `queue`).
const QUEUE_RECHECK: TimeDelta = TimeDelta::seconds(1);

/// Schedules handled per turn (the rest wait for the next one).
const DUE_PER_TURN: usize = 256;

impl Engine {
    /// Registers (or updates) the recurring schedule `id`: runs of `workflow` on `cron`
    /// (see [`crate::schedule`] for the syntax), with `options`. Engines serving the
    /// store ([`serve`](Engine::serve)) fire it; each fire is one run, whatever the number
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
    ///     .add_or_update_recurring("nightly", &wf, "0 2 * * *", Recurring::new().time_zone("Europe/Paris"))
    ///     .await?;
    /// let schedule = engine.recurring_schedule("nightly").await?;
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
    pub async fn add_or_update_recurring(
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
        if !self.sh.workflows.contains_key(&key) {
            return Err(self.no_such_workflow(workflow.name(), Some(workflow.version())));
        }
        let schedule_error = |source| Error::Schedule {
            id: id.to_owned(),
            source,
        };
        let schedule = Schedule::parse(cron, &options.time_zone).map_err(schedule_error)?;
        let now = self.sh.clock.now();
        let next = schedule
            .next_after(now)
            .ok_or_else(|| schedule_error(ScheduleError::NeverFires(cron.trim().to_owned())))?;
        let inputs = options.inputs.map_err(|reason| Error::Input {
            name: "*".to_owned(),
            reason: format!("inputs cannot be encoded as JSON: {reason}"),
        })?;
        bind_params(workflow, &inputs)?;
        crate::bounds::check_run_inputs(&inputs, self.sh.max_input)?;
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
        if let Some(old) = self.sh.store.get_schedule(id).await? {
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
        self.sh.store.put_schedule(&record).await?;
        Ok(())
    }

    /// Every recurring schedule in the store, by id.
    pub async fn recurring(&self) -> Result<Vec<RecurringSchedule>> {
        Ok(self
            .sh
            .store
            .list_schedules()
            .await?
            .into_iter()
            .map(RecurringSchedule::of)
            .collect())
    }

    /// One recurring schedule ([`Error::UnknownSchedule`] if there is none).
    pub async fn recurring_schedule(&self, id: &str) -> Result<RecurringSchedule> {
        self.sh
            .store
            .get_schedule(id)
            .await?
            .map(RecurringSchedule::of)
            .ok_or_else(|| Error::UnknownSchedule(id.to_owned()))
    }

    /// Turns schedule `id` on: its next fire is the first after now (fires while it was
    /// off are not caught up). A schedule that is on already is left as it is.
    pub async fn enable_recurring(&self, id: &str) -> Result<RecurringSchedule> {
        let record = self
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
            .next_after(self.sh.clock.now())
            .map(SystemTime::from);
        if !self.sh.store.set_schedule_enabled(id, true, next).await? {
            return Err(Error::UnknownSchedule(id.to_owned()));
        }
        self.recurring_schedule(id).await
    }

    /// Turns schedule `id` off: it fires no more until enabled again.
    pub async fn disable_recurring(&self, id: &str) -> Result<RecurringSchedule> {
        if !self.sh.store.set_schedule_enabled(id, false, None).await? {
            return Err(Error::UnknownSchedule(id.to_owned()));
        }
        self.recurring_schedule(id).await
    }

    /// Deletes schedule `id` (its runs are kept).
    pub async fn remove_recurring(&self, id: &str) -> Result<()> {
        if self.sh.store.delete_schedule(id).await? {
            Ok(())
        } else {
            Err(Error::UnknownSchedule(id.to_owned()))
        }
    }

    /// Enqueues one run of schedule `id` now, with its inputs and priority, without
    /// moving the schedule (its next fire stays as it was). Returns the run's id.
    pub async fn trigger_recurring(&self, id: &str) -> Result<RunId> {
        let record = self
            .sh
            .store
            .get_schedule(id)
            .await?
            .ok_or_else(|| Error::UnknownSchedule(id.to_owned()))?;
        let policies = Policies::of(&record).unwrap_or_default();
        let workflow = self.schedule_workflow(&record, &policies)?;
        self.enqueue_with(
            &workflow,
            &record.inputs,
            Enqueue::new().priority(policies.priority),
        )
        .await
    }

    /// Registers the recurring schedules the engine's workflows declare
    /// ([`WorkflowBuilder::cron`](crate::WorkflowBuilder::cron), `#[workflow(cron =
    /// "…")]`), each under the workflow's name. [`serve`](Engine::serve) does this when
    /// it starts.
    ///
    /// # Errors
    ///
    /// As [`add_or_update_recurring`](Engine::add_or_update_recurring): a declared
    /// expression that is invalid is reported here, naming the field.
    pub async fn register_declared_recurring(&self) -> Result<()> {
        let mut declared: Vec<&Workflow> = self
            .sh
            .workflows
            .values()
            .filter(|w| w.cron.is_some())
            .collect();
        declared.sort_by(|a, b| (a.name(), a.version()).cmp(&(b.name(), b.version())));
        for wf in declared {
            if let Some((cron, tz)) = wf.cron() {
                let options = match self.sh.store.get_schedule(wf.name()).await? {
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
                self.add_or_update_recurring(wf.name(), wf, cron, options)
                    .await?;
            }
        }
        Ok(())
    }

    /// One turn of the scheduler (what [`serve`](Engine::serve) does on every loop): for
    /// each enabled schedule whose next fire has come, applies the missed-fire policy,
    /// the overlap policy and the jitter, enqueues one run per fire (idempotency key
    /// `schedule:<id>@<fire>`) and moves the schedule on — if no other engine did first.
    /// Returns the fires this engine handled (fires another engine won are not listed).
    ///
    /// A fire with jitter is handled at its delayed instant (the fire time plus the
    /// schedule's [`Jitter`] offset): until then it stays due and nothing is enqueued.
    pub async fn fire_due_schedules(&self) -> Result<Vec<Fire>> {
        Ok(self.scheduler_turn().await?.0)
    }

    /// [`fire_due_schedules`](Engine::fire_due_schedules), and the earliest instant a
    /// due fire waits for (its jitter).
    async fn scheduler_turn(&self) -> Result<(Vec<Fire>, Option<DateTime<Utc>>)> {
        let now = self.sh.clock.now();
        let due = self
            .sh
            .store
            .due_schedules(now.into(), DUE_PER_TURN)
            .await?;
        let mut fires = Vec::new();
        let mut wake: Option<DateTime<Utc>> = None;
        for record in due {
            match self.fire_one(&record, now, &mut fires).await {
                Ok(Some(at)) => wake = Some(wake.map_or(at, |w| w.min(at))),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(schedule = %record.id, error = %e, "schedule not fired");
                }
            }
        }
        Ok((fires, wake))
    }

    /// The earliest next fire of the enabled schedules after now.
    pub(crate) async fn next_schedule_fire(&self) -> Result<Option<DateTime<Utc>>> {
        let now = self.sh.clock.now();
        Ok(self
            .sh
            .store
            .next_schedule_fire(now.into())
            .await?
            .map(DateTime::from))
    }

    /// Fires what is due, then says how long [`serve`](Engine::serve) may sleep: until
    /// the next fire (or a due fire's jittered instant), at most `poll`. Before `*at`
    /// (the instant the previous turn said to come back) it reads nothing: `serve` loops
    /// on every store notification, and a busy store sends many.
    pub(crate) async fn schedule_turn(
        &self,
        poll: Duration,
        at: &mut tokio::time::Instant,
    ) -> Result<Duration> {
        let now = tokio::time::Instant::now();
        if now < *at {
            return Ok((*at - now).min(poll));
        }
        // On failure `at` stays in the past: the next turn tries again.
        let sleep = self.schedule_sleep(poll).await?;
        *at = now + sleep;
        Ok(sleep)
    }

    async fn schedule_sleep(&self, poll: Duration) -> Result<Duration> {
        let (_, waiting) = self.scheduler_turn().await?;
        let next = self.next_schedule_fire().await?;
        let wake = match (waiting, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(wake.map_or(poll, |at| {
            (at - self.sh.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(poll)
        }))
    }

    /// Handles schedule `record`'s due fires; `Some(instant)` when they wait for their
    /// jitter until then.
    async fn fire_one(
        &self,
        record: &ScheduleRecord,
        now: DateTime<Utc>,
        fires: &mut Vec<Fire>,
    ) -> Result<Option<DateTime<Utc>>> {
        let Some(expected) = record.next_fire else {
            return Ok(None);
        };
        let id = record.id.as_str();
        let next_fire: DateTime<Utc> = expected.into();
        let schedule = match Schedule::parse(&record.cron, &record.time_zone) {
            Ok(s) => s,
            Err(e) => {
                // Cannot happen for a schedule registered through the engine; stop it
                // rather than retrying it every turn.
                let note = format!("stopped: {e}");
                self.sh
                    .store
                    .advance_schedule(id, Some(expected), &ScheduleAdvance::to(None).note(note))
                    .await?;
                return Err(Error::Schedule {
                    id: id.to_owned(),
                    source: e,
                });
            }
        };
        let policies = Policies::of(record).map_err(|reason| Error::Input {
            name: "options".to_owned(),
            reason,
        })?;
        let workflow = self.schedule_workflow(record, &policies)?;

        // Is the previous run still going?
        let running = match record.last_run {
            Some(run) => self
                .sh
                .store
                .get_run(run)
                .await?
                .filter(|r| !r.state.is_terminal())
                .map(|_| run),
            None => None,
        };
        // A fire is on time for the grace period after its jittered instant; and a fire
        // that waited for the previous run (overlap `queue`) is on time when it ends.
        let mut grace = DEFAULT_MISFIRE_GRACE + policies.jitter.max();
        let waited = record
            .note
            .as_deref()
            .is_some_and(|n| n.starts_with(WAITING));
        if waited && running.is_none() {
            grace += (now - next_fire).to_std().unwrap_or(Duration::ZERO);
        }
        let plan = plan_fires_with_grace(
            &schedule,
            next_fire - TimeDelta::nanoseconds(1),
            now,
            policies.missed,
            grace,
        );
        // Jitter: the fires wait until the latest one's delayed instant.
        if let Some(last) = plan.to_fire.last() {
            let start = policies.jitter.apply(id, *last);
            if start > now {
                return Ok(Some(start));
            }
        }

        if let Some(prev) = running {
            match policies.overlap {
                OverlapPolicy::Queue => {
                    let note = format!("{WAITING}{prev} still running");
                    if !plan.to_fire.is_empty() && record.note.as_deref() != Some(note.as_str()) {
                        tracing::info!(schedule = %id, fire = %rfc3339(next_fire), run_id = %prev,
                            "fire waits for the previous run");
                        let wait = ScheduleAdvance::to(Some(expected)).note(note);
                        self.sh
                            .store
                            .advance_schedule(id, Some(expected), &wait)
                            .await?;
                    }
                    if !plan.to_fire.is_empty() {
                        // Look again soon: the fire goes as the previous run ends.
                        return Ok(Some(now + QUEUE_RECHECK));
                    }
                }
                OverlapPolicy::Allow => {}
                OverlapPolicy::Skip => {
                    let mut step = ScheduleAdvance::to(plan.next.map(SystemTime::from));
                    if let Some(last) = plan.to_fire.last() {
                        step = step.fired((*last).into()).note(format!(
                            "skipped {}: previous run {prev} still running",
                            rfc3339(*last)
                        ));
                    }
                    if self
                        .sh
                        .store
                        .advance_schedule(id, Some(expected), &step)
                        .await?
                    {
                        for at in plan.to_fire {
                            tracing::info!(schedule = %id, fire = %rfc3339(at), run_id = %prev,
                                "fire skipped: previous run still running");
                            fires.push(Fire {
                                schedule: id.to_owned(),
                                at,
                                outcome: FireOutcome::Skipped { running: prev },
                            });
                        }
                    }
                    return Ok(None);
                }
            }
        }

        let mut to_fire = plan.to_fire;
        let mut next = plan.next;
        if policies.overlap == OverlapPolicy::Queue && to_fire.len() > 1 {
            // One at a time: the next waits for this one.
            next = Some(to_fire[1]);
            to_fire.truncate(1);
        }
        let mut step = ScheduleAdvance::to(next.map(SystemTime::from));
        if to_fire.is_empty() {
            step = step.note(format!(
                "missed fires from {} (missed-fire policy: skip)",
                rfc3339(next_fire)
            ));
        }
        let mut handled = Vec::with_capacity(to_fire.len());
        for at in to_fire {
            let start = policies.jitter.apply(id, at);
            let run = self
                .enqueue_with(
                    &workflow,
                    &record.inputs,
                    Enqueue::new()
                        .priority(policies.priority)
                        .idempotency_key(fire_key(id, at)),
                )
                .await?;
            step = step.fired(at.into()).run(run);
            handled.push(Fire {
                schedule: id.to_owned(),
                at,
                outcome: FireOutcome::Enqueued { run, start },
            });
        }
        if self
            .sh
            .store
            .advance_schedule(id, Some(expected), &step)
            .await?
        {
            for f in &handled {
                if let FireOutcome::Enqueued { run, start } = &f.outcome {
                    tracing::info!(schedule = %id, fire = %rfc3339(f.at), start = %rfc3339(*start),
                        run_id = %run, "schedule fired");
                }
            }
            fires.extend(handled);
        }
        Ok(None)
    }

    /// The workflow a schedule runs: the version it was registered with, else any
    /// registered version of that name (the newest).
    fn schedule_workflow(&self, record: &ScheduleRecord, policies: &Policies) -> Result<Workflow> {
        if let Some(v) = &policies.version
            && let Some(w) = self.sh.workflows.get(&(record.workflow.clone(), v.clone()))
        {
            return Ok(w.clone());
        }
        self.sh
            .workflows
            .iter()
            .filter(|((name, _), _)| *name == record.workflow)
            .max_by(|a, b| a.0.1.cmp(&b.0.1))
            .map(|(_, w)| w.clone())
            .ok_or_else(|| self.no_such_workflow(&record.workflow, None))
    }

    fn no_such_workflow(&self, name: &str, version: Option<&str>) -> Error {
        let known: Vec<String> = self
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn fire_keys_name_the_schedule_and_the_instant() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 5).unwrap();
        let key = fire_key("a@b", at);
        assert_eq!(key, "schedule:a@b@2026-12-01T02:00:05Z");
    }
}
