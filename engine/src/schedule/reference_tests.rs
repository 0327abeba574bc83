//! The implementation checked against an independent reference: a brute-force POSIX cron
//! matcher that walks a year minute by minute, for random 5-field expressions, in UTC and in
//! zones with daylight saving time.
//!
//! The reference shares no code with the implementation: its own field parser (sets of
//! values), its own day rule, and its own reading of the DST rule — walking real minutes, a
//! minute fires when the zone's clock has just reached or passed, for the first time, a wall
//! time that matches (`prev_max < m <= local`). That covers gaps (every matching wall time
//! skipped by the jump fires at the first minute after it) and overlaps (a repeated wall time
//! is not above the maximum already reached) without special cases.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Datelike, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::Schedule;

/// A 5-field expression as sets of allowed values, parsed independently.
pub(super) struct Reference {
    minute: Vec<bool>,
    hour: Vec<bool>,
    dom: Vec<bool>,
    month: Vec<bool>,
    /// 0..=6, Sunday = 0.
    dow: Vec<bool>,
    dom_star: bool,
    dow_star: bool,
}

/// One field's allowed values. A range `a-b` with `a > b` wraps (day of week only: the
/// generator writes no other): `a` up to Saturday, then Sunday up to `b`.
fn reference_field(text: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Vec<bool> {
    let value = |s: &str| -> u32 {
        match names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            Some(i) => i as u32 + name_base,
            None => s.parse().unwrap(),
        }
    };
    let mut allowed = vec![false; max as usize + 1];
    for element in text.split(',') {
        let (range, step) = match element.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().unwrap()),
            None => (element, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a), value(b))
        } else if element.contains('/') {
            (value(range), max)
        } else {
            (value(range), value(range))
        };
        let days: Vec<u32> = if lo > hi {
            (lo..=6).chain(0..=hi).collect()
        } else {
            (lo..=hi).collect()
        };
        for v in days.into_iter().step_by(step as usize) {
            allowed[v as usize] = true;
        }
    }
    allowed
}

impl Reference {
    pub(super) fn parse(expr: &str) -> Self {
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let f: Vec<&str> = expr.split(' ').collect();
        let mut dow = reference_field(f[4], 0, 7, &DAYS, 0);
        if dow[7] {
            dow[0] = true;
        }
        dow.truncate(7);
        Self {
            minute: reference_field(f[0], 0, 59, &[], 0),
            hour: reference_field(f[1], 0, 23, &[], 0),
            dom: reference_field(f[2], 1, 31, &[], 0),
            month: reference_field(f[3], 1, 12, &MONTHS, 1),
            dow,
            dom_star: f[2].starts_with('*'),
            dow_star: f[4].starts_with('*'),
        }
    }

    pub(super) fn matches(&self, t: NaiveDateTime) -> bool {
        let dom = self.dom[t.day() as usize];
        let dow = self.dow[t.weekday().num_days_from_sunday() as usize];
        let day = if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        };
        self.minute[t.minute() as usize]
            && self.hour[t.hour() as usize]
            && self.month[t.month() as usize]
            && day
    }
}

fn window_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn window_end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
}

/// Two days of warm-up before the window, so the reference knows the clock's maximum so far.
const WARM_UP_MINUTES: i64 = 2 * 24 * 60;

/// The zone's wall clock at every UTC minute of the window (with warm-up), computed once.
fn wall_clock(zone: Tz) -> &'static [NaiveDateTime] {
    static CACHE: OnceLock<Mutex<HashMap<Tz, &'static [NaiveDateTime]>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap();
    cache.entry(zone).or_insert_with(|| {
        let first = window_start() - TimeDelta::minutes(WARM_UP_MINUTES);
        let minutes = (window_end() - first).num_minutes();
        let clock: Vec<_> = (0..=minutes)
            .map(|i| {
                (first + TimeDelta::minutes(i))
                    .with_timezone(&zone)
                    .naive_local()
            })
            .collect();
        Vec::leak(clock)
    })
}

/// The reference fires in `(window_start, window_end]`.
fn reference_fires(expr: &str, zone: Tz) -> Vec<DateTime<Utc>> {
    let reference = Reference::parse(expr);
    let clock = wall_clock(zone);
    let first = window_start() - TimeDelta::minutes(WARM_UP_MINUTES);
    let mut fires = Vec::new();
    let mut reached = clock[0];
    for (i, &local) in clock.iter().enumerate().skip(1) {
        let mut m = reached + TimeDelta::minutes(1);
        let mut fire = false;
        while m <= local {
            fire |= reference.matches(m);
            m += TimeDelta::minutes(1);
        }
        reached = reached.max(local);
        let at = first + TimeDelta::minutes(i as i64);
        if fire && at > window_start() {
            fires.push(at);
        }
    }
    fires
}

fn element(
    min: u32,
    max: u32,
    names: &'static [&'static str],
    name_base: u32,
) -> BoxedStrategy<String> {
    let num = move || min..=max;
    let name_or_num = move |v: u32| -> String {
        let i = v.wrapping_sub(name_base) as usize;
        if !names.is_empty() && i < names.len() && v.is_multiple_of(2) {
            names[i].to_uppercase()
        } else {
            v.to_string()
        }
    };
    prop_oneof![
        2 => num().prop_map(name_or_num),
        1 => (num(), num()).prop_map(move |(a, b)| {
            let (a, b) = (a.min(b), a.max(b));
            format!("{}-{}", name_or_num(a), name_or_num(b))
        }),
        1 => (num(), num(), 1..=(max - min + 1)).prop_map(move |(a, b, s)| {
            format!("{}-{}/{s}", a.min(b), a.max(b))
        }),
        1 => (1..=(max - min + 1)).prop_map(|s| format!("*/{s}")),
        1 => (num(), 1..=(max - min + 1)).prop_map(|(a, s)| format!("{a}/{s}")),
    ]
    .boxed()
}

fn field(
    min: u32,
    max: u32,
    names: &'static [&'static str],
    name_base: u32,
    star_weight: u32,
) -> BoxedStrategy<String> {
    prop_oneof![
        star_weight => Just("*".to_owned()),
        4 => prop::collection::vec(element(min, max, names, name_base), 1..=3)
            .prop_map(|v| v.join(",")),
    ]
    .boxed()
}

/// Day-of-week fields, with ranges that wrap past Saturday (`FRI-MON`, `6-0/2`, `SAT-SUN`).
fn weekdays() -> BoxedStrategy<String> {
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let wrapping = (1..=7u32, 0..=5u32, 0..=3u32, any::<bool>()).prop_filter_map(
        "a range that wraps",
        |(a, b, step, named)| {
            (a > b).then(|| {
                let name = |v: u32| {
                    if named && v < 7 {
                        DAYS[v as usize].to_uppercase()
                    } else {
                        v.to_string()
                    }
                };
                match step {
                    0 | 1 => format!("{}-{}", name(a), name(b)),
                    s => format!("{}-{}/{s}", name(a), name(b)),
                }
            })
        },
    );
    prop_oneof![
        5 => field(0, 7, DAYS, 0, 4),
        2 => wrapping.clone(),
        1 => (wrapping, element(0, 7, DAYS, 0)).prop_map(|(w, e)| format!("{w},{e}")),
    ]
    .boxed()
}

/// Random POSIX 5-field expressions, day-of-week ranges that wrap included.
pub(super) fn expression() -> impl Strategy<Value = String> {
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    (
        field(0, 59, &[], 0, 1),
        field(0, 23, &[], 0, 2),
        field(1, 31, &[], 0, 4),
        field(1, 12, MONTHS, 1, 4),
        weekdays(),
    )
        .prop_map(|(mi, h, dom, mo, dow)| format!("{mi} {h} {dom} {mo} {dow}"))
}

/// Instants where the walk is most likely wrong: around each of the zone's offset changes.
fn transitions(zone: Tz) -> Vec<DateTime<Utc>> {
    let clock = wall_clock(zone);
    let first = window_start() - TimeDelta::minutes(WARM_UP_MINUTES);
    (1..clock.len())
        .filter(|&i| clock[i] - clock[i - 1] != TimeDelta::minutes(1))
        .map(|i| first + TimeDelta::minutes(i as i64))
        .collect()
}

/// How many sequential fires are compared (dense expressions have half a million a year).
const SEQUENTIAL: usize = 1500;

fn compare(expr: &str, zone: Tz, probes: &[i64]) -> Result<(), TestCaseError> {
    let schedule = match Schedule::parse(expr, zone.name()) {
        Ok(s) => s,
        Err(e) => {
            // Only "never fires" may be rejected, and then the reference finds nothing.
            prop_assert!(
                matches!(e, super::ScheduleError::NeverFires(_)),
                "`{expr}` rejected: {e}"
            );
            prop_assert!(reference_fires(expr, zone).is_empty(), "`{expr}`");
            return Ok(());
        }
    };
    let expected = reference_fires(expr, zone);
    // 1. The first fires of the year, in sequence.
    let got: Vec<_> = schedule
        .fires_between(window_start(), window_end())
        .take(SEQUENTIAL)
        .collect();
    let want: Vec<_> = expected.iter().copied().take(SEQUENTIAL).collect();
    prop_assert_eq!(got, want, "`{}` in {}", expr, zone.name());
    // 2. next_after from instants spread over the year and around every transition.
    let mut instants: Vec<DateTime<Utc>> = probes
        .iter()
        .map(|&s| window_start() + TimeDelta::seconds(s))
        .collect();
    for t in transitions(zone) {
        for m in [-61, -31, -1, 0, 1, 29, 59, 61, 89, 121] {
            instants.push(t + TimeDelta::minutes(m));
        }
    }
    for at in instants {
        let want = expected.iter().copied().find(|&f| f > at);
        let got = schedule.next_after(at);
        match want {
            Some(w) => prop_assert_eq!(got, Some(w), "`{}` in {} after {}", expr, zone.name(), at),
            // Beyond the window the reference knows nothing; only check we did not invent one.
            None => prop_assert!(got.is_none_or(|g| g > window_end()), "`{expr}` after {at}"),
        }
    }
    // 3. last_between over the whole year agrees with the reference's last fire.
    prop_assert_eq!(
        schedule.last_between(window_start(), window_end()),
        expected.last().copied(),
        "`{}` in {}",
        expr,
        zone.name()
    );
    Ok(())
}

fn probes() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(0..365 * 86_400i64, 40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn matches_reference_in_utc(expr in expression(), probes in probes()) {
        compare(&expr, chrono_tz::UTC, &probes)?;
    }

    #[test]
    fn matches_reference_in_paris(expr in expression(), probes in probes()) {
        compare(&expr, chrono_tz::Europe::Paris, &probes)?;
    }

    #[test]
    fn matches_reference_in_new_york(expr in expression(), probes in probes()) {
        compare(&expr, chrono_tz::America::New_York, &probes)?;
    }

    /// Lord Howe Island moves its clocks by 30 minutes: gaps and overlaps inside an hour.
    #[test]
    fn matches_reference_in_lord_howe(expr in expression(), probes in probes()) {
        compare(&expr, chrono_tz::Australia::Lord_Howe, &probes)?;
    }
}

/// Hand-picked expressions around the DST examples of the documentation, in every zone.
#[test]
fn documented_examples_match_reference() {
    let exprs = [
        "30 2 * * *",
        "0 * * * *",
        "*/15 * * * *",
        "30 1 * * *",
        "0 0 * * 1-5",
        "0 0 13 * FRI",
        "0 0 */10 * MON",
        "0 0 29 2 *",
        "59 23 31 12 *",
        "0 0 31 * *",
        "0 0 * * 7",
        "15,45 1-3 * * SUN",
    ];
    let zones = [
        chrono_tz::UTC,
        chrono_tz::Europe::Paris,
        chrono_tz::America::New_York,
        chrono_tz::Australia::Lord_Howe,
    ];
    for zone in zones {
        for expr in exprs {
            compare(expr, zone, &[0, 86_400 * 100, 86_400 * 300]).unwrap();
        }
    }
}
