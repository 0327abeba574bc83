//! Recurring schedules as stored: [`ScheduleRecord`], the conditional advance
//! ([`ScheduleAdvance`]) and the memory store's table.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::RunId;

/// A recurring schedule as stored: what to run (a workflow and its inputs), when (a cron
/// expression in a time zone), and where it stands (the next fire, the last one).
///
/// The store treats `options` as opaque JSON (the engine keeps its overlap and
/// missed-fire policies, jitter and priority there). `next_fire` is the schedule's
/// pointer: exactly one engine moves it on per fire, with
/// [`Store::advance_schedule`](super::Store::advance_schedule).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduleRecord {
    /// The schedule's id (unique in the store).
    pub id: String,
    /// The name of the workflow it runs.
    pub workflow: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone the expression is evaluated in.
    pub time_zone: String,
    /// The runs' inputs.
    pub inputs: Value,
    /// The engine's options (JSON object).
    pub options: Value,
    /// Whether it fires.
    pub enabled: bool,
    /// The next fire not yet handled; `None` when it never fires again (or is disabled).
    pub next_fire: Option<SystemTime>,
    /// The last fire handled (run, or skipped).
    pub last_fire: Option<SystemTime>,
    /// The last run it started.
    pub last_run: Option<RunId>,
    /// Why the last due fire started no run (an overlap skip), if it did not.
    pub note: Option<String>,
    /// When the row last changed.
    pub updated_at: SystemTime,
}

impl ScheduleRecord {
    /// An enabled schedule that has never fired, with no inputs (`null`) and no options
    /// (`{}`), next firing at `next_fire`.
    pub fn new(
        id: impl Into<String>,
        workflow: impl Into<String>,
        cron: impl Into<String>,
        time_zone: impl Into<String>,
        next_fire: Option<SystemTime>,
    ) -> Self {
        ScheduleRecord {
            id: id.into(),
            workflow: workflow.into(),
            cron: cron.into(),
            time_zone: time_zone.into(),
            inputs: Value::Null,
            options: Value::Object(serde_json::Map::new()),
            enabled: true,
            next_fire,
            last_fire: None,
            last_run: None,
            note: None,
            updated_at: SystemTime::now(),
        }
    }
}

/// What [`Store::advance_schedule`](super::Store::advance_schedule) writes when it wins:
/// the new `next_fire` and `note` always; `last_fire` and `last_run` only when given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduleAdvance {
    /// The new next fire (`None`: it never fires again).
    pub next_fire: Option<SystemTime>,
    /// The fire just handled, if any (else the stored one is kept).
    pub last_fire: Option<SystemTime>,
    /// The run just started, if any (else the stored one is kept).
    pub last_run: Option<RunId>,
    /// The new note (`None` clears it).
    pub note: Option<String>,
}

impl ScheduleAdvance {
    /// Moves `next_fire` to `next`, clears the note, keeps the rest.
    pub fn to(next: Option<SystemTime>) -> Self {
        ScheduleAdvance {
            next_fire: next,
            ..Self::default()
        }
    }

    /// Records `fire` as the last fire handled.
    #[must_use]
    pub fn fired(mut self, fire: SystemTime) -> Self {
        self.last_fire = Some(fire);
        self
    }

    /// Records `run` as the last run started.
    #[must_use]
    pub fn run(mut self, run: RunId) -> Self {
        self.last_run = Some(run);
        self
    }

    /// Sets the note.
    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// The memory store's schedules, by id.
#[derive(Debug, Default)]
pub(super) struct MemorySchedules {
    rows: Mutex<BTreeMap<String, ScheduleRecord>>,
}

impl MemorySchedules {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ScheduleRecord>> {
        // Every mutation is a whole-field store: a poisoned lock is still consistent.
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn put(&self, schedule: &ScheduleRecord) {
        let mut s = schedule.clone();
        s.updated_at = SystemTime::now();
        self.lock().insert(s.id.clone(), s);
    }

    pub(super) fn get(&self, id: &str) -> Option<ScheduleRecord> {
        self.lock().get(id).cloned()
    }

    pub(super) fn list(&self) -> Vec<ScheduleRecord> {
        self.lock().values().cloned().collect()
    }

    pub(super) fn delete(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    pub(super) fn set_enabled(
        &self,
        id: &str,
        enabled: bool,
        next_fire: Option<SystemTime>,
    ) -> bool {
        match self.lock().get_mut(id) {
            Some(s) => {
                s.enabled = enabled;
                s.next_fire = next_fire;
                s.updated_at = SystemTime::now();
                true
            }
            None => false,
        }
    }

    pub(super) fn due(&self, now: SystemTime, limit: usize) -> Vec<ScheduleRecord> {
        let mut due: Vec<ScheduleRecord> = self
            .lock()
            .values()
            .filter(|s| s.enabled && s.next_fire.is_some_and(|t| t <= now))
            .cloned()
            .collect();
        due.sort_by(|a, b| a.next_fire.cmp(&b.next_fire).then(a.id.cmp(&b.id)));
        due.truncate(limit);
        due
    }

    pub(super) fn next_fire(&self, after: SystemTime) -> Option<SystemTime> {
        self.lock()
            .values()
            .filter(|s| s.enabled)
            .filter_map(|s| s.next_fire)
            .filter(|t| *t > after)
            .min()
    }

    pub(super) fn advance(
        &self,
        id: &str,
        expected: Option<SystemTime>,
        advance: &ScheduleAdvance,
    ) -> bool {
        let mut rows = self.lock();
        let Some(s) = rows.get_mut(id) else {
            return false;
        };
        if s.next_fire != expected {
            return false;
        }
        s.next_fire = advance.next_fire;
        if advance.last_fire.is_some() {
            s.last_fire = advance.last_fire;
        }
        if advance.last_run.is_some() {
            s.last_run = advance.last_run;
        }
        s.note.clone_from(&advance.note);
        s.updated_at = SystemTime::now();
        true
    }
}
