//! What to run after downtime, what to do on overlap, and deterministic jitter.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Schedule;

/// How late a fire may be observed and still count as on time (not missed): 60 seconds.
pub const DEFAULT_MISFIRE_GRACE: Duration = Duration::from_secs(60);

/// What to do with fires that were due while no engine was running.
///
/// A fire is *due* when it lies after the last recorded fire and at or before now; the latest
/// due fire is *on time* if it is at most the grace period old ([`DEFAULT_MISFIRE_GRACE`]),
/// and every other due fire is *missed*. See [`plan_fires`].
///
/// Serialized as `"skip"`, `"fire_once"` or `{"catch_up": {"max": 3}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MissedFirePolicy {
    /// Drop missed fires; only an on-time fire runs.
    Skip,
    /// Run once for the whole downtime, stamped with the latest due fire time. The default.
    #[default]
    FireOnce,
    /// Run the latest `max` due fires, oldest first; `max: 0` behaves as [`Skip`](Self::Skip).
    CatchUp {
        /// The most fires to run.
        max: u32,
    },
}

/// What the engine does when a fire comes while the schedule's previous run is still going.
///
/// Serialized as `"skip"`, `"queue"` or `"allow"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OverlapPolicy {
    /// Do not start a run; the fire is recorded as skipped, with the reason. The default.
    #[default]
    Skip,
    /// Start the run once the previous one has finished.
    Queue,
    /// Start the run at once, beside the previous one.
    Allow,
}

/// Delays each fire by a pseudo-random amount in `[0, max]`, derived from the schedule id and
/// the fire time only, so that every engine process computes the same delayed instant.
///
/// ```
/// use std::time::Duration;
/// use chrono::{TimeZone, Utc};
/// use dagforge::schedule::Jitter;
///
/// let jitter = Jitter::up_to(Duration::from_secs(30));
/// let fire = Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap();
/// let at = jitter.apply("nightly-report", fire);
/// assert!(at >= fire && at <= fire + Duration::from_secs(30));
/// assert_eq!(at, jitter.apply("nightly-report", fire)); // the same in every process
/// ```
///
/// Serialized as `{"max_ms": 30000}`. Jitter only ever delays: a fire never runs early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Jitter {
    max_ms: u64,
}

impl Jitter {
    /// Jitter of at most `max` (whole milliseconds; saturating at `u64::MAX` ms).
    pub fn up_to(max: Duration) -> Self {
        Self {
            max_ms: u64::try_from(max.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The largest delay.
    pub fn max(&self) -> Duration {
        Duration::from_millis(self.max_ms)
    }

    /// The delay for the fire at `fire` of schedule `schedule_id`: a SHA-256 of both, reduced
    /// to `[0, max]` milliseconds. Stable across processes, platforms and releases.
    pub fn offset(&self, schedule_id: &str, fire: DateTime<Utc>) -> Duration {
        if self.max_ms == 0 {
            return Duration::ZERO;
        }
        let mut hash = Sha256::new();
        hash.update(schedule_id.as_bytes());
        hash.update([0]);
        hash.update(fire.timestamp().to_be_bytes());
        hash.update(fire.timestamp_subsec_nanos().to_be_bytes());
        let digest = hash.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let span = self.max_ms.saturating_add(1);
        Duration::from_millis(u64::from_be_bytes(first) % span)
    }

    /// `fire` delayed by [`offset`](Self::offset) (unchanged if that would overflow).
    pub fn apply(&self, schedule_id: &str, fire: DateTime<Utc>) -> DateTime<Utc> {
        TimeDelta::from_std(self.offset(schedule_id, fire))
            .ok()
            .and_then(|d| fire.checked_add_signed(d))
            .unwrap_or(fire)
    }
}

/// What to run now, and when to look again: the result of [`plan_fires`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirePlan {
    /// The scheduled fire times to run now, oldest first (each is a run's nominal time).
    pub to_fire: Vec<DateTime<Utc>>,
    /// The first fire after now, or `None` if the schedule has no more fires.
    pub next: Option<DateTime<Utc>>,
}

/// Decides which fires to run at `now`, given `last_fire` — the last recorded fire, or the
/// instant the schedule was created or re-enabled if it has not fired since — and `policy`,
/// with the [`DEFAULT_MISFIRE_GRACE`].
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use dagforge::schedule::{plan_fires, MissedFirePolicy, Schedule};
///
/// let hourly = Schedule::utc("@hourly")?;
/// let last = Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap();
/// let now = Utc.with_ymd_and_hms(2026, 12, 1, 7, 30, 0).unwrap(); // down for 4h30
/// let plan = plan_fires(&hourly, last, now, MissedFirePolicy::CatchUp { max: 2 });
/// let hour = |h| Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap();
/// assert_eq!(plan.to_fire, [hour(6), hour(7)]);
/// assert_eq!(plan.next, Some(hour(8)));
/// # Ok::<(), dagforge::schedule::ScheduleError>(())
/// ```
pub fn plan_fires(
    schedule: &Schedule,
    last_fire: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: MissedFirePolicy,
) -> FirePlan {
    plan_fires_with_grace(schedule, last_fire, now, policy, DEFAULT_MISFIRE_GRACE)
}

/// [`plan_fires`] with a chosen grace: the latest due fire is on time when it is at most
/// `grace` before `now`.
///
/// Cost: a few dozen [`Schedule::next_after`] calls per fire returned, however long the
/// downtime was.
pub fn plan_fires_with_grace(
    schedule: &Schedule,
    last_fire: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: MissedFirePolicy,
    grace: Duration,
) -> FirePlan {
    let next = schedule.next_after(now);
    let Some(latest) = schedule.last_between(last_fire, now) else {
        return FirePlan {
            to_fire: Vec::new(),
            next,
        };
    };
    let on_time = (now - latest).to_std().map_or(true, |late| late <= grace);
    let to_fire = match policy {
        MissedFirePolicy::Skip | MissedFirePolicy::CatchUp { max: 0 } => {
            if on_time {
                vec![latest]
            } else {
                Vec::new()
            }
        }
        MissedFirePolicy::FireOnce => vec![latest],
        MissedFirePolicy::CatchUp { max } => {
            let mut fires = vec![latest];
            while fires.len() < max as usize {
                let before = fires[fires.len() - 1] - TimeDelta::nanoseconds(1);
                match schedule.last_between(last_fire, before) {
                    Some(f) => fires.push(f),
                    None => break,
                }
            }
            fires.reverse();
            fires
        }
    };
    FirePlan { to_fire, next }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap()
    }

    #[test]
    fn missed_fire_policies() {
        let hourly = Schedule::utc("0 * * * *").unwrap();
        let last = at(1, 3, 0);
        // Down from 03:00 to 07:00:30: 04, 05, 06, 07 are due; 07 is on time.
        let now = at(1, 7, 0) + TimeDelta::seconds(30);
        let plan = |p| plan_fires(&hourly, last, now, p);
        assert_eq!(plan(MissedFirePolicy::Skip).to_fire, [at(1, 7, 0)]);
        assert_eq!(plan(MissedFirePolicy::FireOnce).to_fire, [at(1, 7, 0)]);
        assert_eq!(
            plan(MissedFirePolicy::CatchUp { max: 3 }).to_fire,
            [at(1, 5, 0), at(1, 6, 0), at(1, 7, 0)]
        );
        assert_eq!(
            plan(MissedFirePolicy::CatchUp { max: 100 }).to_fire,
            [at(1, 4, 0), at(1, 5, 0), at(1, 6, 0), at(1, 7, 0)]
        );
        assert_eq!(
            plan(MissedFirePolicy::CatchUp { max: 0 }).to_fire,
            [at(1, 7, 0)]
        );
        for p in [
            MissedFirePolicy::Skip,
            MissedFirePolicy::FireOnce,
            MissedFirePolicy::CatchUp { max: 2 },
        ] {
            assert_eq!(plan(p).next, Some(at(1, 8, 0)));
        }

        // At 07:30 the 07:00 fire is late: Skip runs nothing, FireOnce runs it.
        let late = at(1, 7, 30);
        let plan = |p| plan_fires(&hourly, last, late, p);
        assert!(plan(MissedFirePolicy::Skip).to_fire.is_empty());
        assert!(
            plan(MissedFirePolicy::CatchUp { max: 0 })
                .to_fire
                .is_empty()
        );
        assert_eq!(plan(MissedFirePolicy::FireOnce).to_fire, [at(1, 7, 0)]);

        // Nothing due: nothing to run, whatever the policy.
        let quiet = plan_fires(
            &hourly,
            at(1, 7, 0),
            at(1, 7, 59),
            MissedFirePolicy::FireOnce,
        );
        assert_eq!(quiet.to_fire, Vec::<DateTime<Utc>>::new());
        assert_eq!(quiet.next, Some(at(1, 8, 0)));

        // A fire exactly at `last_fire` was already recorded; one exactly at now is due.
        let exact = plan_fires(&hourly, at(1, 7, 0), at(1, 8, 0), MissedFirePolicy::Skip);
        assert_eq!(exact.to_fire, [at(1, 8, 0)]);
        assert_eq!(exact.next, Some(at(1, 9, 0)));
    }

    #[test]
    fn catch_up_after_long_downtime_is_bounded() {
        // Every second for 30 days: 2.6 million due fires, only the last 5 computed.
        let every_second = Schedule::utc("* * * * * *").unwrap();
        let now = at(31, 0, 0);
        let plan = plan_fires(
            &every_second,
            at(1, 0, 0),
            now,
            MissedFirePolicy::CatchUp { max: 5 },
        );
        let expected: Vec<_> = (0..5).rev().map(|s| now - TimeDelta::seconds(s)).collect();
        assert_eq!(plan.to_fire, expected);
        assert_eq!(plan.next, Some(now + TimeDelta::seconds(1)));
    }

    #[test]
    fn grace_is_configurable() {
        let hourly = Schedule::utc("@hourly").unwrap();
        let now = at(1, 7, 5);
        let plan =
            |grace| plan_fires_with_grace(&hourly, at(1, 6, 0), now, MissedFirePolicy::Skip, grace);
        assert!(plan(Duration::from_secs(60)).to_fire.is_empty());
        assert_eq!(plan(Duration::from_secs(600)).to_fire, [at(1, 7, 0)]);
    }

    #[test]
    fn jitter_is_deterministic_bounded_and_spread() {
        let jitter = Jitter::up_to(Duration::from_secs(60));
        let mut seen = std::collections::BTreeSet::new();
        for h in 0..24 {
            let fire = at(2, h, 0);
            let offset = jitter.offset("report", fire);
            assert!(offset <= Duration::from_secs(60));
            assert_eq!(offset, jitter.offset("report", fire));
            assert_eq!(
                jitter.apply("report", fire),
                fire + TimeDelta::from_std(offset).unwrap()
            );
            seen.insert(offset);
        }
        // 24 draws from 60,001 values: all distinct unless the hash is broken.
        assert!(seen.len() > 20, "{seen:?}");
        assert_ne!(
            jitter.offset("report", at(2, 0, 0)),
            jitter.offset("other", at(2, 0, 0))
        );
        assert_eq!(Jitter::default().offset("x", at(2, 0, 0)), Duration::ZERO);
        assert_eq!(jitter.max(), Duration::from_secs(60));
    }

    #[test]
    fn policies_round_trip_as_json() {
        let cases = [
            (MissedFirePolicy::Skip, r#""skip""#),
            (MissedFirePolicy::FireOnce, r#""fire_once""#),
            (
                MissedFirePolicy::CatchUp { max: 3 },
                r#"{"catch_up":{"max":3}}"#,
            ),
        ];
        for (policy, json) in cases {
            assert_eq!(serde_json::to_string(&policy).unwrap(), json);
            assert_eq!(
                serde_json::from_str::<MissedFirePolicy>(json).unwrap(),
                policy
            );
        }
        for (policy, json) in [
            (OverlapPolicy::Skip, r#""skip""#),
            (OverlapPolicy::Queue, r#""queue""#),
            (OverlapPolicy::Allow, r#""allow""#),
        ] {
            assert_eq!(serde_json::to_string(&policy).unwrap(), json);
            assert_eq!(serde_json::from_str::<OverlapPolicy>(json).unwrap(), policy);
        }
        let jitter = Jitter::up_to(Duration::from_millis(1500));
        assert_eq!(
            serde_json::to_string(&jitter).unwrap(),
            r#"{"max_ms":1500}"#
        );
        assert_eq!(
            serde_json::from_str::<Jitter>(r#"{"max_ms":1500}"#).unwrap(),
            jitter
        );
        let plan = FirePlan {
            to_fire: vec![at(1, 0, 0)],
            next: None,
        };
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<FirePlan>(&json).unwrap(), plan);
    }

    /// `plan_fires` (bisection) against the plain definition: list every due fire, then pick.
    mod against_the_definition {
        use proptest::prelude::*;

        use super::*;

        fn by_definition(
            schedule: &Schedule,
            last: DateTime<Utc>,
            now: DateTime<Utc>,
            policy: MissedFirePolicy,
        ) -> FirePlan {
            let due: Vec<_> = schedule.fires_between(last, now).collect();
            let on_time = due
                .last()
                .is_some_and(|f| now - *f <= TimeDelta::seconds(60));
            let to_fire = match (policy, due.last()) {
                (_, None) => Vec::new(),
                (MissedFirePolicy::FireOnce, Some(f)) => vec![*f],
                (MissedFirePolicy::Skip | MissedFirePolicy::CatchUp { max: 0 }, Some(f)) => {
                    if on_time {
                        vec![*f]
                    } else {
                        Vec::new()
                    }
                }
                (MissedFirePolicy::CatchUp { max }, Some(_)) => {
                    due[due.len().saturating_sub(max as usize)..].to_vec()
                }
            };
            FirePlan {
                to_fire,
                next: schedule
                    .fires_between(now, now + TimeDelta::days(400))
                    .next(),
            }
        }

        fn policy() -> impl Strategy<Value = MissedFirePolicy> {
            prop_oneof![
                Just(MissedFirePolicy::Skip),
                Just(MissedFirePolicy::FireOnce),
                (0u32..6).prop_map(|max| MissedFirePolicy::CatchUp { max }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            #[test]
            fn plan_matches_definition(
                which in 0usize..5,
                // Around the 2026 transitions of Paris and New York (March, October, November).
                base in prop::sample::select(vec![
                    "2026-03-07T12:00:00Z", "2026-03-28T12:00:00Z",
                    "2026-10-24T12:00:00Z", "2026-10-31T12:00:00Z", "2026-06-15T00:00:00Z",
                ]),
                last_offset in 0i64..86_400,
                down in 0i64..(2 * 86_400),
                policy in policy(),
            ) {
                let schedules = [
                    ("*/7 * * * *", "Europe/Paris"),
                    ("30 2 * * *", "Europe/Paris"),
                    ("0 * * * *", "America/New_York"),
                    ("*/20 * * * * *", "UTC"),
                    ("15 1,2 * * SUN", "America/New_York"),
                ];
                let (expr, tz) = schedules[which];
                let schedule = Schedule::parse(expr, tz).unwrap();
                let base: DateTime<Utc> = base.parse().unwrap();
                let last = base + TimeDelta::seconds(last_offset);
                let now = last + TimeDelta::seconds(down);
                prop_assert_eq!(
                    plan_fires(&schedule, last, now, policy),
                    by_definition(&schedule, last, now, policy),
                    "`{}` in {}, last {}, now {}, {:?}", expr, tz, last, now, policy
                );
            }
        }
    }
}
