//! Next fires anywhere in time: random expressions at random instants from the first to the
//! last date `chrono` represents never panic, and agree with a brute-force minute-by-minute
//! reference on bounded windows far from 1970–2100 (the `cron` crate's own horizon).

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::Schedule;
use super::reference_tests::{Reference, expression};

/// Zones at the extremes of UTC offsets, and zones with daylight saving time.
const ZONES: &[Tz] = &[
    chrono_tz::UTC,
    chrono_tz::Pacific::Kiritimati,
    chrono_tz::Etc::GMTPlus12,
    chrono_tz::Europe::Paris,
    chrono_tz::America::New_York,
    chrono_tz::Australia::Lord_Howe,
];

fn zone() -> impl Strategy<Value = Tz> {
    (0..ZONES.len()).prop_map(|i| ZONES[i])
}

/// Any instant `chrono` represents, with a bias towards its two ends.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let (min, max) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    prop_oneof![
        2 => min..=max,
        1 => (0..400 * 86_400i64).prop_map(move |s| min + s),
        1 => (0..400 * 86_400i64).prop_map(move |s| max - s),
        1 => (0..2 * 86_400i64).prop_map(move |s| min + s),
        1 => (0..2 * 86_400i64).prop_map(move |s| max - s),
    ]
    .prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range"))
}

/// A few expressions the 5-field generator does not write: seconds, years, Quartz days.
fn quartz() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "* * * * * *",
        "59 59 23 31 12 *",
        "0 0 0 29 2 ?",
        "0 0 0 29 2 MON",
        "0 0 12 ? * FRI-MON",
        "0 0 0 1 1 ? 2099",
        "0 */7 * * * SAT-SUN 1970-2100",
    ])
}

/// The first fire after `at` by walking real minutes over `minutes` minutes, with the rule of
/// [`super::reference_tests`]: a minute fires when the zone's clock has just reached, for the
/// first time, a matching wall time. `None` if there is none in the window.
fn brute_force(
    reference: &Reference,
    zone: Tz,
    at: DateTime<Utc>,
    minutes: i64,
) -> Option<DateTime<Utc>> {
    const WARM_UP: i64 = 2 * 24 * 60;
    let whole = DateTime::from_timestamp(at.timestamp().div_euclid(60) * 60, 0)?;
    let start = whole - TimeDelta::minutes(WARM_UP);
    let local = |t: DateTime<Utc>| -> NaiveDateTime { t.with_timezone(&zone).naive_local() };
    let mut reached = local(start);
    for i in 1..=WARM_UP + minutes {
        let t = start + TimeDelta::minutes(i);
        let now = local(t);
        let mut m = reached + TimeDelta::minutes(1);
        let mut fire = false;
        while m <= now {
            fire |= reference.matches(m);
            m += TimeDelta::minutes(1);
        }
        reached = reached.max(now);
        if fire && t > at {
            return Some(t);
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No instant and no zone makes the search panic; what it finds lies after the instant.
    #[test]
    fn never_panics_from_any_instant(expr in expression(), zone in zone(), at in instant()) {
        let Ok(schedule) = Schedule::parse(&expr, zone.name()) else {
            return Ok(());
        };
        if let Some(next) = schedule.next_after(at) {
            prop_assert!(next > at, "`{expr}` in {zone}: {next} after {at}");
        }
        let later = at.checked_add_signed(TimeDelta::days(3)).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let between: Vec<_> = schedule.fires_between(at, later).take(3).collect();
        prop_assert!(between.windows(2).all(|w| w[0] < w[1]));
        let last = schedule.last_between(at, later);
        prop_assert!(last.is_none_or(|l| l > at && l <= later));
    }

    #[test]
    fn seconds_and_years_never_panic(expr in quartz(), zone in zone(), at in instant()) {
        let schedule = Schedule::parse(expr, zone.name()).expect("valid");
        if let Some(next) = schedule.next_after(at) {
            prop_assert!(next > at, "`{expr}` in {zone}: {next} after {at}");
        }
    }
}

/// Instants from 1600 to 2500 in UTC, and from 1920 (after the zones' local mean times, whose
/// offsets are not whole minutes) to 2400 in zones with daylight saving time.
fn dated(zone: Tz) -> impl Strategy<Value = DateTime<Utc>> {
    let from = |year: i32| {
        chrono::NaiveDate::from_ymd_opt(year, 1, 1)
            .expect("valid")
            .and_hms_opt(0, 0, 0)
            .expect("valid")
            .and_utc()
            .timestamp()
    };
    let (lo, hi) = if zone == chrono_tz::UTC {
        (from(1600), from(2500))
    } else {
        (from(1920), from(2400))
    };
    (lo..hi).prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range"))
}

fn agrees(expr: &str, zone: Tz, at: DateTime<Utc>) -> Result<(), TestCaseError> {
    const WINDOW: i64 = 4 * 24 * 60;
    let reference = Reference::parse(expr);
    let want = brute_force(&reference, zone, at, WINDOW);
    let Ok(schedule) = Schedule::parse(expr, zone.name()) else {
        prop_assert!(
            want.is_none(),
            "`{expr}` rejected, yet it fires at {want:?}"
        );
        return Ok(());
    };
    let got = schedule.next_after(at);
    match want {
        Some(w) => prop_assert_eq!(got, Some(w), "`{}` in {} after {}", expr, zone, at),
        None => {
            let end = at + TimeDelta::minutes(WINDOW);
            prop_assert!(
                got.is_none_or(|g| g > end),
                "`{expr}` in {zone} after {at}: {got:?}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn agrees_with_brute_force_from_1600_to_2500_in_utc(
        expr in expression(),
        at in dated(chrono_tz::UTC),
    ) {
        agrees(&expr, chrono_tz::UTC, at)?;
    }

    #[test]
    fn agrees_with_brute_force_in_paris_far_from_1970(
        expr in expression(),
        at in dated(chrono_tz::Europe::Paris),
    ) {
        agrees(&expr, chrono_tz::Europe::Paris, at)?;
    }

    #[test]
    fn agrees_with_brute_force_in_new_york_far_from_1970(
        expr in expression(),
        at in dated(chrono_tz::America::New_York),
    ) {
        agrees(&expr, chrono_tz::America::New_York, at)?;
    }
}

/// The cases of the issue, pinned: wrapping weekday ranges, and answers before 1970 and at
/// the edges of time.
#[test]
fn the_reported_cases() {
    use chrono::TimeZone;
    // Friday 2026-12-04 → Saturday, Sunday, Monday, then Friday again.
    let friday = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
    for expr in ["0 9 * * FRI-MON", "0 9 * * FRI-SUN,MON", "0 9 * * 5-1"] {
        let s = Schedule::utc(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let fires: Vec<_> = s
            .fires_between(friday, friday + TimeDelta::days(8))
            .collect();
        let days: Vec<u32> = fires.iter().map(chrono::Datelike::day).collect();
        assert_eq!(days, [5, 6, 7, 11, 12], "{expr}");
    }
    let weekend = Schedule::utc("0 0 * * SAT-SUN").unwrap();
    let days: Vec<u32> = weekend
        .fires_between(friday, friday + TimeDelta::days(7))
        .map(|f| chrono::Datelike::day(&f))
        .collect();
    assert_eq!(days, [5, 6]);
    // Quartz too.
    assert!(Schedule::utc("0 0 9 ? * FRI-MON").is_ok());
    // Other fields do not wrap, and say how to write it.
    let err = Schedule::utc("0 22-2 * * *").unwrap_err().to_string();
    assert!(err.contains("22-23,0-2"), "{err}");

    // Before 1970.
    let daily = Schedule::parse("30 6 * * *", "Europe/Paris").unwrap();
    let at = Utc.with_ymd_and_hms(1965, 3, 1, 12, 0, 0).unwrap();
    assert_eq!(
        daily.next_after(at),
        Some(Utc.with_ymd_and_hms(1965, 3, 2, 5, 30, 0).unwrap())
    );
    // The edges: an answer, or `None` when the next fire is past the last date.
    for zone in ["Pacific/Kiritimati", "Etc/GMT+12", "UTC"] {
        let every = Schedule::parse("* * * * *", zone).unwrap();
        assert_eq!(every.next_after(DateTime::<Utc>::MAX_UTC), None, "{zone}");
        let min = DateTime::<Utc>::MIN_UTC;
        let next = every.next_after(min).unwrap_or_else(|| panic!("{zone}"));
        assert!(
            next > min && next - min <= TimeDelta::hours(13),
            "{zone}: {next}"
        );
    }
    let near_end = DateTime::<Utc>::MAX_UTC - TimeDelta::days(2);
    let midnight = (near_end.date_naive() + TimeDelta::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let next = Schedule::utc("0 0 * * *").unwrap().next_after(near_end);
    assert_eq!(next, Some(midnight));
}
