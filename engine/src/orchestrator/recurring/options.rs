//! What a recurring schedule is registered with ([`Recurring`]), what its row keeps of
//! it ([`Policies`]), and how a schedule reads back ([`RecurringSchedule`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::RunId;
use crate::schedule::{Jitter, MissedFirePolicy, OverlapPolicy};
use crate::store::ScheduleRecord;

/// Options of a recurring schedule ([`Schedules::add_or_update`](crate::Schedules::add_or_update)): time zone,
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
    pub(super) time_zone: String,
    pub(super) inputs: std::result::Result<Value, String>,
    pub(super) policies: Policies,
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

    /// The runs' inputs (the workflow's parameters), as for [`Engine::enqueue`](crate::Engine::enqueue).
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

    /// The runs' priority (see [`Enqueue::priority`](crate::Enqueue::priority)).
    pub fn priority(mut self, priority: i32) -> Self {
        self.policies.priority = priority;
        self
    }
}

/// What a schedule row keeps in its `options` column.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Policies {
    /// The workflow version registered with the schedule.
    pub(super) version: Option<String>,
    pub(super) overlap: OverlapPolicy,
    pub(super) missed: MissedFirePolicy,
    pub(super) jitter: Jitter,
    pub(super) priority: i32,
}

impl Policies {
    pub(super) fn of(record: &ScheduleRecord) -> std::result::Result<Policies, String> {
        serde_json::from_value(record.options.clone()).map_err(|e| e.to_string())
    }
}

/// A recurring schedule as an engine sees it: [`Schedules::list`](crate::Schedules::list),
/// [`Schedules::get`](crate::Schedules::get).
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
    pub(super) fn of(r: ScheduleRecord) -> Self {
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
