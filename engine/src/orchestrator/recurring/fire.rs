//! The scheduler: one turn of it fires the due schedules ([`Schedules::fire_due`]), and
//! [`serve`](crate::Engine::serve) runs one per loop, sleeping until the next fire.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use super::Schedules;
use super::options::Policies;
use crate::Enqueue;
use crate::error::{Error, Result};
use crate::ids::RunId;
use crate::schedule::{DEFAULT_MISFIRE_GRACE, OverlapPolicy, Schedule, plan_fires_with_grace};
use crate::store::{ScheduleAdvance, ScheduleRecord};

/// One fire handled by [`Schedules::fire_due`].
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

impl Schedules<'_> {
    /// One turn of the scheduler (what [`serve`](crate::Engine::serve) does on every loop): for
    /// each enabled schedule whose next fire has come, applies the missed-fire policy,
    /// the overlap policy and the jitter, enqueues one run per fire (idempotency key
    /// `schedule:<id>@<fire>`) and moves the schedule on — if no other engine did first.
    /// Returns the fires this engine handled (fires another engine won are not listed).
    ///
    /// A fire with jitter is handled at its delayed instant (the fire time plus the
    /// schedule's [`Jitter`](crate::schedule::Jitter) offset): until then it stays due and nothing is enqueued.
    pub async fn fire_due(&self) -> Result<Vec<Fire>> {
        Ok(self.scheduler_turn().await?.0)
    }

    /// [`fire_due`](Self::fire_due), and the earliest instant a
    /// due fire waits for (its jitter).
    async fn scheduler_turn(&self) -> Result<(Vec<Fire>, Option<DateTime<Utc>>)> {
        let now = self.engine.sh.clock.now();
        let due = self
            .engine
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
    async fn next_fire(&self) -> Result<Option<DateTime<Utc>>> {
        let now = self.engine.sh.clock.now();
        Ok(self
            .engine
            .sh
            .store
            .next_schedule_fire(now.into())
            .await?
            .map(DateTime::from))
    }

    /// Fires what is due, then says how long [`serve`](crate::Engine::serve) may sleep: until
    /// the next fire (or a due fire's jittered instant), at most `poll`. Before `*at`
    /// (the instant the previous turn said to come back) it reads nothing: `serve` loops
    /// on every store notification, and a busy store sends many.
    pub(crate) async fn turn(
        &self,
        poll: Duration,
        at: &mut tokio::time::Instant,
    ) -> Result<Duration> {
        let now = tokio::time::Instant::now();
        if now < *at {
            return Ok((*at - now).min(poll));
        }
        // On failure `at` stays in the past: the next turn tries again.
        let sleep = self.sleep(poll).await?;
        *at = now + sleep;
        Ok(sleep)
    }

    async fn sleep(&self, poll: Duration) -> Result<Duration> {
        let (_, waiting) = self.scheduler_turn().await?;
        let next = self.next_fire().await?;
        let wake = match (waiting, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(wake.map_or(poll, |at| {
            (at - self.engine.sh.clock.now())
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
                self.engine
                    .sh
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
        let workflow = self.workflow_of(record, &policies)?;

        // Is the previous run still going?
        let running = match record.last_run {
            Some(run) => self
                .engine
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
                        self.engine
                            .sh
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
                        .engine
                        .sh
                        .store
                        .advance_schedule(id, Some(expected), &step)
                        .await?
                    {
                        for at in plan.to_fire {
                            tracing::info!(schedule = %id, fire = %rfc3339(at), run_id = %prev,
                                "fire skipped: previous run still running");
                            self.engine.sh.telemetry.metrics.skipped(id);
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
                .engine
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
            .engine
            .sh
            .store
            .advance_schedule(id, Some(expected), &step)
            .await?
        {
            for f in &handled {
                if let FireOutcome::Enqueued { run, start } = &f.outcome {
                    tracing::info!(schedule = %id, fire = %rfc3339(f.at), start = %rfc3339(*start),
                        run_id = %run, "schedule fired");
                    self.engine.sh.telemetry.metrics.fired(id);
                }
            }
            fires.extend(handled);
        }
        Ok(None)
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
