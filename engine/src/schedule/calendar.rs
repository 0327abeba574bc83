//! The wall-clock times an expression matches, and the next one after a given time, over the
//! whole range of dates `chrono` represents (no 1970–2100 horizon, no panic at the edges).
//!
//! The `cron` crate parses and validates; its field sets are copied here, and the search
//! is our own: day by day (skipping whole months and years that cannot match), then the
//! first matching time of day.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike};
use cron::TimeUnitSpec;

/// The Gregorian calendar repeats itself, weekdays included, every 400 years: a search
/// that finds nothing in that span never will.
const CYCLE_YEARS: i32 = 400;

/// How days of the month and days of the week combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DayRule {
    /// Both must match (Quartz, and POSIX when either field starts with `*`).
    Both,
    /// Either may match (POSIX when both fields are restricted).
    Either,
}

/// The values each field allows, as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Calendar {
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0.
    weekdays: u8,
    /// `None`: every year.
    years: Option<BTreeSet<i32>>,
    rule: DayRule,
}

fn bits<T: TimeUnitSpec>(spec: &T, range: std::ops::RangeInclusive<u32>) -> u64 {
    range
        .filter(|&v| spec.includes(v))
        .fold(0, |acc, v| acc | 1 << v)
}

/// The lowest set bit of `mask` at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = mask >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

impl Calendar {
    /// The sets of a parsed `cron` crate schedule (days of week 1–7 from Sunday).
    pub(super) fn from_cron(schedule: &cron::Schedule, rule: DayRule) -> Self {
        let years = schedule.years();
        Calendar {
            seconds: bits(schedule.seconds(), 0..=59),
            minutes: bits(schedule.minutes(), 0..=59),
            hours: bits(schedule.hours(), 0..=23) as u32,
            days: bits(schedule.days_of_month(), 1..=31) as u32,
            months: bits(schedule.months(), 1..=12) as u16,
            weekdays: (bits(schedule.days_of_week(), 1..=7) >> 1) as u8,
            years: (!years.is_all()).then(|| years.iter().map(|y| y as i32).collect()),
            rule,
        }
    }

    fn bit32(mask: u32, v: u32) -> bool {
        mask >> v & 1 == 1
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let day = Self::bit32(self.days, date.day());
        let weekday = self.weekdays >> date.weekday().num_days_from_sunday() & 1 == 1;
        match self.rule {
            DayRule::Both => day && weekday,
            DayRule::Either => day || weekday,
        }
    }

    /// The first matching time of day at or after `from`.
    fn first_time(&self, from: NaiveTime) -> Option<NaiveTime> {
        let mut hour = next_bit(u64::from(self.hours), from.hour())?;
        loop {
            let same_hour = hour == from.hour();
            let mut minute = next_bit(self.minutes, if same_hour { from.minute() } else { 0 });
            while let Some(m) = minute {
                let same_minute = same_hour && m == from.minute();
                let second = next_bit(self.seconds, if same_minute { from.second() } else { 0 });
                if let Some(s) = second {
                    return NaiveTime::from_hms_opt(hour, m, s);
                }
                minute = next_bit(self.minutes, m + 1);
            }
            hour = next_bit(u64::from(self.hours), hour + 1)?;
        }
    }

    /// The first day at or after `date` whose year and month may match, or `None` when no
    /// year left does.
    fn month_start(&self, date: NaiveDate) -> Option<NaiveDate> {
        let year = date.year();
        if let Some(years) = &self.years
            && !years.contains(&year)
        {
            let next = *years.range(year.checked_add(1)?..).next()?;
            return NaiveDate::from_ymd_opt(next, 1, 1);
        }
        let month = date.month();
        if self.months >> month & 1 == 1 {
            return Some(date);
        }
        match next_bit(u64::from(self.months), month + 1).filter(|&m| m <= 12) {
            Some(m) => NaiveDate::from_ymd_opt(year, m, 1),
            None => NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1),
        }
    }

    /// The first matching wall-clock time strictly after `after`, or `None` when there is
    /// none before the end of `chrono`'s range of dates.
    pub(super) fn next_after(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let start = after
            .with_nanosecond(0)?
            .checked_add_signed(TimeDelta::seconds(1))?;
        let give_up = start.year().saturating_add(CYCLE_YEARS + 1);
        let mut date = start.date();
        let mut from = start.time();
        while date.year() <= give_up {
            let candidate = self.month_start(date)?;
            if candidate != date {
                date = candidate;
                from = NaiveTime::MIN;
                continue;
            }
            if self.day_matches(date)
                && let Some(time) = self.first_time(from)
            {
                return Some(date.and_time(time));
            }
            date = date.succ_opt()?;
            from = NaiveTime::MIN;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    fn calendar(quartz: &str, rule: DayRule) -> Calendar {
        Calendar::from_cron(&cron::Schedule::from_str(quartz).unwrap(), rule)
    }

    #[test]
    fn before_1970_and_after_2100() {
        let daily = calendar("0 30 6 * * *", DayRule::Both);
        assert_eq!(
            daily.next_after(at(1965, 3, 1, 12, 0)),
            Some(at(1965, 3, 2, 6, 30))
        );
        assert_eq!(
            daily.next_after(at(2150, 12, 31, 7, 0)),
            Some(at(2151, 1, 1, 6, 30))
        );
        // 29 February on a Monday (both must match), after a year with none.
        let leap_monday = calendar("0 0 0 29 2 MON", DayRule::Both);
        assert_eq!(
            leap_monday.next_after(at(1893, 1, 1, 0, 0)),
            Some(at(1904, 2, 29, 0, 0))
        );
    }

    #[test]
    fn the_edges_of_chrono_give_none() {
        let every = calendar("* * * * * *", DayRule::Both);
        assert_eq!(every.next_after(NaiveDateTime::MAX), None);
        assert!(every.next_after(NaiveDateTime::MIN).is_some());
        let years = calendar("0 0 0 1 1 ? 2000", DayRule::Both);
        assert_eq!(years.next_after(at(2000, 6, 1, 0, 0)), None);
        assert_eq!(
            years.next_after(at(1900, 6, 1, 0, 0)),
            Some(at(2000, 1, 1, 0, 0))
        );
    }
}
