//! Cron schedules: parsing, next fire times in a time zone, and the policies that decide what
//! to run after downtime.
//!
//! This module is pure computation: it reads no clock and touches no store. Callers pass the
//! current instant and the last recorded fire, and get back instants to act on.
//!
//! # Expressions
//!
//! [`Schedule::parse`] accepts:
//!
//! * **POSIX 5-field** expressions, `minute hour day-of-month month day-of-week`, as in
//!   crontab(5): `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n`, `a-b/n` and `a/n`
//!   (from `a` to the end of the range), month names `JAN`–`DEC` and day names `SUN`–`SAT`
//!   (case-insensitive; full names such as `monday` too). Day of week is `0`–`7`, where both
//!   `0` and `7` are Sunday, so `0 0 * * 1-5` is midnight Monday to Friday. Day-of-week
//!   ranges wrap around the week (`FRI-MON`, `SAT-SUN`); ranges of other fields do not
//!   (`22-2` in the hour field is an error that says to write `22-23,0-2`).
//! * **Shortcuts**: `@yearly` / `@annually` (`0 0 1 1 *`), `@monthly` (`0 0 1 * *`),
//!   `@weekly` (`0 0 * * 0`, Sunday), `@daily` / `@midnight` (`0 0 * * *`) and `@hourly`
//!   (`0 * * * *`).
//! * **6/7-field** expressions with a seconds field first (and an optional year last), given
//!   as-is to the [`cron`](https://docs.rs/cron) crate, whose flavour is Quartz's: day of week
//!   `1`–`7` from Sunday (`SUN`–`SAT` names are safer), `?` allowed in the day fields, and a day
//!   must match *both* day-of-month and day-of-week.
//!
//! ## The day-of-month / day-of-week rule (POSIX expressions)
//!
//! When **both** day fields of a 5-field expression are restricted — neither starts with `*` —
//! a day matches when **either** field matches, as in every Unix cron: `0 0 13 * FRI` fires
//! on every 13th *and* on every Friday. When either field starts with `*` (including `*/n`),
//! both must match, which, for a bare `*`, simply means the other field decides. This is the
//! rule of Vixie cron and cronie ("if both fields are restricted (i.e., do not start with `*`)").
//!
//! # Time zones and daylight saving time
//!
//! A schedule is evaluated on the wall clock of its IANA time zone (`Europe/Paris`,
//! `America/New_York`, `UTC`); next fire times are computed from the expression, never by
//! adding an interval. The rule is: **a matching wall-clock time fires at the first instant at
//! which the zone's clock reads that time or later, and fires that land on the same instant
//! count once.** Hence:
//!
//! * **Spring forward** (a gap): a time that does not exist fires once, at the first instant
//!   after the gap. A daily `30 2 * * *` in `Europe/Paris` fires at 03:00 CEST on the last
//!   Sunday of March; `*/15 * * * *` fires at 01:45 CET, then once at 03:00 CEST for 02:00,
//!   02:15, 02:30, 02:45 and 03:00 together, then 03:15.
//! * **Fall back** (an overlap): a time that occurs twice fires once, at its first occurrence
//!   (in daylight time). `0 * * * *` in `Europe/Paris` fires at 02:00 CEST and next at 03:00
//!   CET, two real hours later; the repeated 02:xx CET hour fires nothing.
//!
//! # Policies
//!
//! [`plan_fires`] applies a [`MissedFirePolicy`] after downtime; [`OverlapPolicy`] says what
//! the engine does when a fire comes while the previous run is still going; [`Jitter`] spreads
//! fires deterministically, so that every engine process computes the same delayed instant.

#[cfg(test)]
mod bounds_tests;
mod calendar;
#[cfg(test)]
mod croniter_tests;
mod fields;
mod policy;
#[cfg(test)]
mod reference_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use chrono::offset::LocalResult;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use crate::error::schedule::{CronField, ScheduleError};
pub use policy::{
    DEFAULT_MISFIRE_GRACE, FirePlan, Jitter, MissedFirePolicy, OverlapPolicy, plan_fires,
    plan_fires_with_grace,
};

use calendar::{Calendar, DayRule};
use fields::{FieldSet, POSIX, QUARTZ, parse_field};

/// A parsed cron expression bound to a time zone.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use dagforge::schedule::Schedule;
///
/// let weekdays = Schedule::parse("0 9 * * MON-FRI", "Europe/Paris")?;
/// // Saturday 2026-12-05 → Monday 2026-12-07, 09:00 in Paris (08:00 UTC).
/// let next = weekdays.next_after(Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap());
/// assert_eq!(next, Some(Utc.with_ymd_and_hms(2026, 12, 7, 8, 0, 0).unwrap()));
/// # Ok::<(), dagforge::schedule::ScheduleError>(())
/// ```
///
/// Serialized (serde) as `{"cron": "<expression>", "time_zone": "<IANA name>"}`; deserializing
/// parses and validates again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "ScheduleSpec", into = "ScheduleSpec")]
pub struct Schedule {
    expression: String,
    zone: Tz,
    matcher: Calendar,
}

impl Schedule {
    /// Parses `expression` (see the [module documentation](self)) in the IANA time zone
    /// `time_zone`.
    ///
    /// # Errors
    ///
    /// [`ScheduleError`] naming what is wrong: the field and token, the field count, the time
    /// zone, or an expression that never fires (`0 0 30 2 *`).
    pub fn parse(expression: &str, time_zone: &str) -> Result<Self, ScheduleError> {
        let zone = Tz::from_str(time_zone.trim())
            .map_err(|_| ScheduleError::UnknownTimeZone(time_zone.to_owned()))?;
        let trimmed = expression.trim();
        if trimmed.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let text = if trimmed.starts_with('@') {
            shortcut(trimmed).ok_or_else(|| ScheduleError::UnknownShortcut(trimmed.to_owned()))?
        } else {
            trimmed
        };
        let parts: Vec<&str> = text.split_whitespace().collect();
        let matcher = match parts.len() {
            5 => posix(expression, &parts)?,
            6 | 7 => quartz(text, &parts)?,
            found => {
                return Err(ScheduleError::FieldCount {
                    expression: expression.to_owned(),
                    found,
                });
            }
        };
        let schedule = Self {
            expression: trimmed.to_owned(),
            zone,
            matcher,
        };
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .ok_or_else(|| ScheduleError::NeverFires(schedule.expression.clone()))?;
        if schedule.next_naive(epoch).is_none() {
            return Err(ScheduleError::NeverFires(schedule.expression));
        }
        Ok(schedule)
    }

    /// Parses `expression` evaluated in UTC.
    ///
    /// # Errors
    ///
    /// As [`Schedule::parse`].
    pub fn utc(expression: &str) -> Result<Self, ScheduleError> {
        Self::parse(expression, "UTC")
    }

    /// The expression as given (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The IANA name of the schedule's time zone.
    pub fn time_zone(&self) -> &'static str {
        self.zone.name()
    }

    /// The first fire strictly after `after`, or `None` if there is none: a 7-field expression
    /// whose years have passed, or an instant so close to the end of the dates `chrono`
    /// represents (year 262142) that the next fire would lie beyond it. Any instant, before
    /// 1970 too, gives the right answer; none panics.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut cursor = match self.wall_clock(after) {
            Some(wall) => wall.with_nanosecond(0)?,
            // Before the first date `chrono` represents, in a zone behind UTC: every
            // representable wall time is later.
            None if after.timestamp() < 0 => NaiveDateTime::MIN,
            None => return None,
        };
        loop {
            let wall = self.next_naive(cursor)?;
            let fire = self.resolve(wall)?;
            // In the second pass of a fall-back overlap, wall times just after `cursor` already
            // fired during the first pass.
            if fire > after {
                return Some(fire);
            }
            cursor = wall;
        }
    }

    /// The fires `f` with `after < f <= until`, in order.
    pub fn fires_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> FiresBetween<'_> {
        FiresBetween {
            schedule: self,
            cursor: after,
            until,
        }
    }

    /// The latest fire `f` with `after < f <= until`, found by bisection (a few dozen
    /// [`next_after`](Self::next_after) calls however many fires the interval holds).
    pub fn last_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let first = self.next_after(after).filter(|f| *f <= until)?;
        // Fires fall on whole seconds. Invariant: the next fire after `lo` is <= until, the
        // next fire after `hi` is not.
        let mut lo = first.timestamp() - 1;
        let mut hi = until.timestamp();
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let at = DateTime::from_timestamp(mid, 0)?;
            if self.next_after(at).is_some_and(|f| f <= until) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.next_after(DateTime::from_timestamp(lo, 0)?)
    }

    /// The next wall-clock time strictly after `after` that matches the expression, on a plain
    /// calendar with no gaps and no repeats (zones are handled in `resolve`).
    fn next_naive(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        self.matcher.next_after(after)
    }

    /// The zone's wall clock at `t`, or `None` when it lies outside the dates `chrono`
    /// represents (an instant at the very edge of its range, in a zone ahead of or behind UTC).
    fn wall_clock(&self, t: DateTime<Utc>) -> Option<NaiveDateTime> {
        let utc = t.naive_utc();
        utc.checked_add_offset(self.zone.offset_from_utc_datetime(&utc).fix())
    }

    /// The first instant at which the zone's wall clock reads `wall` or later.
    fn resolve(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.zone.from_local_datetime(&wall) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
            LocalResult::None => self.gap_end(wall),
        }
    }

    /// For a wall time inside a spring-forward gap: the instant the gap ends, by bisection over
    /// a window wide enough for any UTC offset (the clock is monotonic across one gap).
    fn gap_end(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        const WINDOW: i64 = 26 * 3600;
        let reads_at_least = |secs: i64| {
            DateTime::from_timestamp(secs, 0)
                .and_then(|t| self.wall_clock(t))
                .map(|local| local >= wall)
        };
        let centre = wall.and_utc().timestamp();
        let (mut lo, mut hi) = (centre - WINDOW, centre + WINDOW);
        if reads_at_least(lo)? || !reads_at_least(hi)? {
            return None;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if reads_at_least(mid)? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        DateTime::from_timestamp(hi, 0)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.zone == other.zone
    }
}

impl Eq for Schedule {}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.zone.name())
    }
}

/// The serialized form of a [`Schedule`].
#[derive(Serialize, Deserialize)]
struct ScheduleSpec {
    cron: String,
    #[serde(default = "utc_name")]
    time_zone: String,
}

fn utc_name() -> String {
    "UTC".to_owned()
}

impl TryFrom<ScheduleSpec> for Schedule {
    type Error = ScheduleError;
    fn try_from(spec: ScheduleSpec) -> Result<Self, ScheduleError> {
        Self::parse(&spec.cron, &spec.time_zone)
    }
}

impl From<Schedule> for ScheduleSpec {
    fn from(schedule: Schedule) -> Self {
        Self {
            time_zone: schedule.zone.name().to_owned(),
            cron: schedule.expression,
        }
    }
}

/// The fires of a schedule in an interval: see [`Schedule::fires_between`].
#[derive(Debug, Clone)]
pub struct FiresBetween<'a> {
    schedule: &'a Schedule,
    cursor: DateTime<Utc>,
    until: DateTime<Utc>,
}

impl Iterator for FiresBetween<'_> {
    type Item = DateTime<Utc>;
    fn next(&mut self) -> Option<DateTime<Utc>> {
        let next = self
            .schedule
            .next_after(self.cursor)
            .filter(|f| *f <= self.until)?;
        self.cursor = next;
        Some(next)
    }
}

fn shortcut(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

/// Translates a POSIX 5-field expression into `cron` crate schedules (seconds `0`, days of week
/// renumbered 1–7 from Sunday, and the day-of-month *or* day-of-week rule as two schedules).
fn posix(expression: &str, parts: &[&str]) -> Result<Calendar, ScheduleError> {
    let mut sets = Vec::with_capacity(5);
    for (spec, text) in POSIX.iter().zip(parts) {
        sets.push(parse_field(spec, text)?);
    }
    let [minute, hour, dom, month, dow] = <[FieldSet; 5]>::try_from(sets)
        .map_err(|_| invalid_expression(expression, "expected five fields"))?;
    // POSIX 0..=7 (0 and 7 = Sunday) → Quartz 1..=7 (1 = Sunday).
    let dow_quartz = FieldSet {
        values: dow.values.iter().map(|d| d % 7 + 1).collect(),
        star: dow.star,
    };
    let list = |set: &FieldSet, min: u32, max: u32| {
        if (min..=max).all(|v| set.values.contains(&v)) {
            "*".to_owned()
        } else {
            let items: Vec<String> = set.values.iter().map(u32::to_string).collect();
            items.join(",")
        }
    };
    let head = format!("0 {} {}", list(&minute, 0, 59), list(&hour, 0, 23),);
    let month = list(&month, 1, 12);
    let days = list(&dom, 1, 31);
    let weekdays = list(&dow_quartz, 1, 7);
    let schedule = cron::Schedule::from_str(&format!("{head} {days} {month} {weekdays}"))
        .map_err(|e| invalid_expression(expression, &e.to_string()))?;
    let rule = if !dom.star && !dow.star {
        DayRule::Either
    } else {
        DayRule::Both
    };
    Ok(Calendar::from_cron(&schedule, rule))
}

/// Gives a 6/7-field expression to the `cron` crate as-is (with a day-of-week range that wraps
/// past Saturday, such as `FRI-MON`, spelt out as a list first); on failure, finds the culprit
/// field.
fn quartz(text: &str, parts: &[&str]) -> Result<Calendar, ScheduleError> {
    let first = cron::Schedule::from_str(text).or_else(|e| {
        let weekdays = parts
            .get(5)
            .filter(|dow| !dow.starts_with('?'))
            .and_then(|dow| parse_field(&QUARTZ[5], dow).ok());
        match weekdays {
            Some(set) => {
                let list: Vec<String> = set.values.iter().map(u32::to_string).collect();
                let mut spelt: Vec<String> = parts.iter().map(|p| (*p).to_owned()).collect();
                spelt[5] = list.join(",");
                cron::Schedule::from_str(&spelt.join(" ")).map_err(|_| e)
            }
            None => Err(e),
        }
    });
    match first {
        Ok(first) => Ok(Calendar::from_cron(&first, DayRule::Both)),
        Err(e) => {
            for (spec, part) in QUARTZ.iter().zip(parts) {
                parse_field(spec, part)?;
            }
            Err(invalid_expression(text, &e.to_string()))
        }
    }
}

fn invalid_expression(expression: &str, reason: &str) -> ScheduleError {
    ScheduleError::Invalid {
        expression: expression.to_owned(),
        reason: reason.to_owned(),
    }
}
