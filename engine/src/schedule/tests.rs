//! Next-fire tables, daylight-saving transitions, parse errors and serde.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::{CronField, Schedule, ScheduleError};

/// `YYYY-MM-DDTHH:MM[:SS]Z` → instant.
fn t(s: &str) -> DateTime<Utc> {
    let s = s.trim_end_matches('Z');
    let fmt = if s.len() == 16 {
        "%Y-%m-%dT%H:%M"
    } else {
        "%Y-%m-%dT%H:%M:%S"
    };
    let naive = chrono::NaiveDateTime::parse_from_str(s, fmt).unwrap();
    Utc.from_utc_datetime(&naive)
}

fn next_n(schedule: &Schedule, after: &str, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut cursor = t(after);
    for _ in 0..n {
        match schedule.next_after(cursor) {
            Some(f) => {
                out.push(f);
                cursor = f;
            }
            None => break,
        }
    }
    out
}

fn check(expr: &str, tz: &str, after: &str, expected: &[&str]) {
    let schedule = Schedule::parse(expr, tz).unwrap_or_else(|e| panic!("`{expr}` in {tz}: {e}"));
    let got = next_n(&schedule, after, expected.len() + 1);
    let want: Vec<_> = expected.iter().map(|s| t(s)).collect();
    assert_eq!(
        &got[..want.len().min(got.len())],
        &want[..],
        "`{expr}` in {tz} after {after}"
    );
}

#[test]
fn next_fires_table() {
    let table: &[(&str, &str, &[&str])] = &[
        // Month ends: the 31st skips short months.
        (
            "0 0 31 * *",
            "2026-01-31T00:00Z",
            &[
                "2026-03-31T00:00Z",
                "2026-05-31T00:00Z",
                "2026-07-31T00:00Z",
            ],
        ),
        (
            "0 12 30 * *",
            "2026-01-30T12:00Z",
            &["2026-03-30T12:00Z", "2026-04-30T12:00Z"],
        ),
        // Feb 29 only in leap years.
        (
            "0 0 29 2 *",
            "2026-01-01T00:00Z",
            &[
                "2028-02-29T00:00Z",
                "2032-02-29T00:00Z",
                "2036-02-29T00:00Z",
            ],
        ),
        (
            "0 0 28-31 2 *",
            "2027-02-27T00:00Z",
            &[
                "2027-02-28T00:00Z",
                "2028-02-28T00:00Z",
                "2028-02-29T00:00Z",
            ],
        ),
        // Year rollover.
        (
            "59 23 31 12 *",
            "2026-12-31T23:59Z",
            &["2027-12-31T23:59Z", "2028-12-31T23:59Z"],
        ),
        (
            "0 0 1 1 *",
            "2026-12-31T23:59:59Z",
            &["2027-01-01T00:00Z", "2028-01-01T00:00Z"],
        ),
        (
            "*/30 * * * *",
            "2026-12-31T23:45Z",
            &["2027-01-01T00:00Z", "2027-01-01T00:30Z"],
        ),
        // Weekday numbers and names; 2026-12-04 is a Friday.
        (
            "0 9 * * MON-FRI",
            "2026-12-04T09:00Z",
            &["2026-12-07T09:00Z", "2026-12-08T09:00Z"],
        ),
        (
            "0 0 * * 1-5",
            "2026-12-04T00:00Z",
            &[
                "2026-12-07T00:00Z",
                "2026-12-08T00:00Z",
                "2026-12-09T00:00Z",
            ],
        ),
        (
            "0 0 * * 0",
            "2026-12-01T00:00Z",
            &["2026-12-06T00:00Z", "2026-12-13T00:00Z"],
        ),
        (
            "0 0 * * 7",
            "2026-12-01T00:00Z",
            &["2026-12-06T00:00Z", "2026-12-13T00:00Z"],
        ),
        ("0 0 * * sun", "2026-12-01T00:00Z", &["2026-12-06T00:00Z"]),
        (
            "0 0 * * 5-7",
            "2026-12-04T00:00Z",
            &[
                "2026-12-05T00:00Z",
                "2026-12-06T00:00Z",
                "2026-12-11T00:00Z",
            ],
        ),
        (
            "0 0 * * Sat,Sunday",
            "2026-12-01T00:00Z",
            &["2026-12-05T00:00Z", "2026-12-06T00:00Z"],
        ),
        (
            "0 0 1 jan,Jul *",
            "2026-01-01T00:00Z",
            &["2026-07-01T00:00Z", "2027-01-01T00:00Z"],
        ),
        (
            "0 0 1 FEB-apr/2 *",
            "2026-01-01T00:00Z",
            &[
                "2026-02-01T00:00Z",
                "2026-04-01T00:00Z",
                "2027-02-01T00:00Z",
            ],
        ),
        // Steps, ranges, lists.
        (
            "*/15 * * * *",
            "2026-06-01T10:07Z",
            &[
                "2026-06-01T10:15Z",
                "2026-06-01T10:30Z",
                "2026-06-01T10:45Z",
                "2026-06-01T11:00Z",
            ],
        ),
        (
            "5-20/5 * * * *",
            "2026-06-01T10:20Z",
            &["2026-06-01T11:05Z", "2026-06-01T11:10Z"],
        ),
        (
            "50/4 * * * *",
            "2026-06-01T10:57Z",
            &["2026-06-01T10:58Z", "2026-06-01T11:50Z"],
        ),
        (
            "0 8,12-13 * * *",
            "2026-06-01T08:00Z",
            &[
                "2026-06-01T12:00Z",
                "2026-06-01T13:00Z",
                "2026-06-02T08:00Z",
            ],
        ),
        // Both day fields restricted: either matches (the 13th, or a Friday).
        (
            "0 0 13 * FRI",
            "2026-11-01T00:00Z",
            &[
                "2026-11-06T00:00Z",
                "2026-11-13T00:00Z",
                "2026-11-20T00:00Z",
                "2026-11-27T00:00Z",
                "2026-12-04T00:00Z",
                "2026-12-11T00:00Z",
                "2026-12-13T00:00Z",
                "2026-12-18T00:00Z",
            ],
        ),
        (
            "0 0 1,15 * 3",
            "2026-12-01T00:00Z",
            &[
                "2026-12-02T00:00Z",
                "2026-12-09T00:00Z",
                "2026-12-15T00:00Z",
                "2026-12-16T00:00Z",
            ],
        ),
        // Day of month starting with `*`: both must match (days 1, 11, 21, 31 that are Mondays).
        (
            "0 0 */10 * MON",
            "2026-01-01T00:00Z",
            &[
                "2026-05-11T00:00Z",
                "2026-06-01T00:00Z",
                "2026-08-31T00:00Z",
                "2026-09-21T00:00Z",
            ],
        ),
        // Shortcuts.
        (
            "@weekly",
            "2026-12-01T00:00Z",
            &["2026-12-06T00:00Z", "2026-12-13T00:00Z"],
        ),
        ("@WEEKLY", "2026-12-06T00:00Z", &["2026-12-13T00:00Z"]),
        ("@daily", "2026-12-01T00:00Z", &["2026-12-02T00:00Z"]),
        ("@midnight", "2026-12-01T00:00Z", &["2026-12-02T00:00Z"]),
        (
            "@hourly",
            "2026-12-01T00:30Z",
            &["2026-12-01T01:00Z", "2026-12-01T02:00Z"],
        ),
        (
            "@monthly",
            "2026-12-01T00:00Z",
            &["2027-01-01T00:00Z", "2027-02-01T00:00Z"],
        ),
        (
            "@yearly",
            "2026-12-01T00:00Z",
            &["2027-01-01T00:00Z", "2028-01-01T00:00Z"],
        ),
        ("@annually", "2026-12-01T00:00Z", &["2027-01-01T00:00Z"]),
        // Seconds (Quartz flavour, given to the `cron` crate as-is).
        (
            "30 0 0 * * *",
            "2026-12-01T00:00:30Z",
            &["2026-12-02T00:00:30Z", "2026-12-03T00:00:30Z"],
        ),
        (
            "*/20 * * * * *",
            "2026-12-01T00:00:05Z",
            &[
                "2026-12-01T00:00:20Z",
                "2026-12-01T00:00:40Z",
                "2026-12-01T00:01:00Z",
            ],
        ),
        (
            "0 0 12 * * MON-FRI",
            "2026-12-04T12:00Z",
            &["2026-12-07T12:00Z", "2026-12-08T12:00Z"],
        ),
        // Quartz numbering: 2 = Monday.
        (
            "0 0 12 ? * 2",
            "2026-12-01T00:00Z",
            &["2026-12-07T12:00Z", "2026-12-14T12:00Z"],
        ),
        (
            "0 0 0 1 1 * 2030",
            "2026-12-01T00:00Z",
            &["2030-01-01T00:00Z"],
        ),
    ];
    for (expr, after, expected) in table {
        check(expr, "UTC", after, expected);
    }
}

#[test]
fn a_seven_field_expression_runs_out() {
    let once = Schedule::utc("0 0 0 1 1 * 2030").unwrap();
    assert_eq!(once.next_after(t("2030-01-01T00:00Z")), None);
}

#[test]
fn sub_second_instants() {
    let minutely = Schedule::utc("* * * * *").unwrap();
    let after = t("2026-12-01T10:00Z") + chrono::TimeDelta::milliseconds(1);
    assert_eq!(minutely.next_after(after), Some(t("2026-12-01T10:01Z")));
    let just_before = t("2026-12-01T10:01Z") - chrono::TimeDelta::nanoseconds(1);
    assert_eq!(
        minutely.next_after(just_before),
        Some(t("2026-12-01T10:01Z"))
    );
}

#[test]
fn time_zones_shift_wall_clock_times() {
    // 09:00 in Paris is 08:00 UTC in winter, 07:00 UTC in summer; in New York 14:00 / 13:00.
    check(
        "0 9 * * *",
        "Europe/Paris",
        "2026-12-01T12:00Z",
        &["2026-12-02T08:00Z"],
    );
    check(
        "0 9 * * *",
        "Europe/Paris",
        "2026-06-01T12:00Z",
        &["2026-06-02T07:00Z"],
    );
    check(
        "0 9 * * *",
        "America/New_York",
        "2026-12-01T20:00Z",
        &["2026-12-02T14:00Z"],
    );
    check(
        "0 9 * * *",
        "America/New_York",
        "2026-06-01T20:00Z",
        &["2026-06-02T13:00Z"],
    );
    // The day is the local day: Monday 00:30 in Paris is Sunday 23:30 UTC.
    check(
        "30 0 * * MON",
        "Europe/Paris",
        "2026-12-01T00:00Z",
        &["2026-12-06T23:30Z"],
    );
}

/// Spring forward, Europe/Paris, Sunday 2026-03-29: 02:00 CET → 03:00 CEST at 01:00 UTC.
#[test]
fn dst_spring_forward_paris() {
    let tz = "Europe/Paris";
    // 02:30 does not exist: it fires once, at 03:00 CEST, the first instant after the gap.
    check(
        "30 2 * * *",
        tz,
        "2026-03-27T12:00Z",
        &[
            "2026-03-28T01:30Z",
            "2026-03-29T01:00Z",
            "2026-03-30T00:30Z",
        ],
    );
    // Hourly: 01:00 CET, then 03:00 CEST once (02:00 and 03:00 collapse), then 04:00 CEST.
    check(
        "0 * * * *",
        tz,
        "2026-03-28T23:30Z",
        &[
            "2026-03-29T00:00Z",
            "2026-03-29T01:00Z",
            "2026-03-29T02:00Z",
        ],
    );
    check(
        "*/15 * * * *",
        tz,
        "2026-03-29T00:30Z",
        &[
            "2026-03-29T00:45Z",
            "2026-03-29T01:00Z",
            "2026-03-29T01:15Z",
            "2026-03-29T01:30Z",
        ],
    );
    // 6-field with seconds: same rule.
    check(
        "0 30 2 * * *",
        tz,
        "2026-03-28T12:00Z",
        &["2026-03-29T01:00Z"],
    );
}

/// Fall back, Europe/Paris, Sunday 2026-10-25: 03:00 CEST → 02:00 CET at 01:00 UTC.
#[test]
fn dst_fall_back_paris() {
    let tz = "Europe/Paris";
    // 02:30 happens twice: it fires once, at its first occurrence (CEST).
    check(
        "30 2 * * *",
        tz,
        "2026-10-24T12:00Z",
        &["2026-10-25T00:30Z", "2026-10-26T01:30Z"],
    );
    // Hourly: 02:00 CEST, then 03:00 CET two real hours later; the repeated 02:00 is silent.
    check(
        "0 * * * *",
        tz,
        "2026-10-24T23:30Z",
        &[
            "2026-10-25T00:00Z",
            "2026-10-25T02:00Z",
            "2026-10-25T03:00Z",
        ],
    );
    check(
        "*/15 * * * *",
        tz,
        "2026-10-25T00:30Z",
        &[
            "2026-10-25T00:45Z",
            "2026-10-25T02:00Z",
            "2026-10-25T02:15Z",
        ],
    );
    // Starting inside the repeated hour (02:10 CET): the first pass already fired.
    check(
        "*/15 * * * *",
        tz,
        "2026-10-25T01:10Z",
        &["2026-10-25T02:00Z"],
    );
    check(
        "30 2 * * *",
        tz,
        "2026-10-25T01:10Z",
        &["2026-10-26T01:30Z"],
    );
}

/// Spring forward, America/New_York, Sunday 2026-03-08: 02:00 EST → 03:00 EDT at 07:00 UTC.
#[test]
fn dst_spring_forward_new_york() {
    let tz = "America/New_York";
    check(
        "30 2 * * *",
        tz,
        "2026-03-07T12:00Z",
        &["2026-03-08T07:00Z", "2026-03-09T06:30Z"],
    );
    check(
        "0 * * * *",
        tz,
        "2026-03-08T06:30Z",
        &["2026-03-08T07:00Z", "2026-03-08T08:00Z"],
    );
    check(
        "*/15 * * * *",
        tz,
        "2026-03-08T06:40Z",
        &[
            "2026-03-08T06:45Z",
            "2026-03-08T07:00Z",
            "2026-03-08T07:15Z",
        ],
    );
}

/// Fall back, America/New_York, Sunday 2026-11-01: 02:00 EDT → 01:00 EST at 06:00 UTC.
#[test]
fn dst_fall_back_new_york() {
    let tz = "America/New_York";
    // 01:30 happens twice: first occurrence (EDT) only.
    check(
        "30 1 * * *",
        tz,
        "2026-10-31T12:00Z",
        &["2026-11-01T05:30Z", "2026-11-02T06:30Z"],
    );
    // 02:30 exists once (EST).
    check(
        "30 2 * * *",
        tz,
        "2026-10-31T12:00Z",
        &["2026-11-01T07:30Z", "2026-11-02T07:30Z"],
    );
    check(
        "0 * * * *",
        tz,
        "2026-11-01T04:30Z",
        &[
            "2026-11-01T05:00Z",
            "2026-11-01T07:00Z",
            "2026-11-01T08:00Z",
        ],
    );
    check(
        "*/15 * * * *",
        tz,
        "2026-11-01T05:40Z",
        &[
            "2026-11-01T05:45Z",
            "2026-11-01T07:00Z",
            "2026-11-01T07:15Z",
        ],
    );
}

#[test]
fn fire_counts_over_a_year() {
    let year = |expr: &str, tz: &str| {
        Schedule::parse(expr, tz)
            .unwrap()
            .fires_between(t("2025-12-31T23:59:59Z"), t("2026-12-31T23:59:59Z"))
            .count()
    };
    // One fire a day, DST or not: never zero, never two.
    for tz in ["UTC", "Europe/Paris", "America/New_York"] {
        assert_eq!(year("30 2 * * *", tz), 365, "{tz}");
        assert_eq!(year("30 1 * * *", tz), 365, "{tz}");
    }
    // Hourly: the spring-forward day has 23 distinct hours, the fall-back day 24 (not 25).
    assert_eq!(year("0 * * * *", "UTC"), 8760);
    assert_eq!(year("0 * * * *", "Europe/Paris"), 8759);
    assert_eq!(year("0 * * * *", "America/New_York"), 8759);
}

#[test]
fn fires_between_and_last_between() {
    let s = Schedule::parse("0 9 * * MON-FRI", "Europe/Paris").unwrap();
    let a = t("2026-12-04T00:00Z");
    let b = t("2026-12-08T08:00Z"); // Tuesday 09:00 Paris, included
    let fires: Vec<_> = s.fires_between(a, b).collect();
    assert_eq!(
        fires,
        [
            t("2026-12-04T08:00Z"),
            t("2026-12-07T08:00Z"),
            t("2026-12-08T08:00Z")
        ]
    );
    assert_eq!(s.last_between(a, b), Some(t("2026-12-08T08:00Z")));
    let just_before = b - chrono::TimeDelta::nanoseconds(1);
    assert_eq!(s.last_between(a, just_before), Some(t("2026-12-07T08:00Z")));
    assert_eq!(s.last_between(b, b), None);
    assert_eq!(s.fires_between(b, a).count(), 0);
    // Over a long span, bisection agrees with walking.
    let s = Schedule::parse("*/7 3-5 * * *", "America/New_York").unwrap();
    let (a, b) = (t("2026-01-01T00:00Z"), t("2026-11-01T06:30Z"));
    assert_eq!(s.last_between(a, b), s.fires_between(a, b).last());
}

fn err(expr: &str) -> ScheduleError {
    Schedule::utc(expr).expect_err(expr)
}

fn field_err(expr: &str) -> (CronField, String) {
    match err(expr) {
        ScheduleError::InvalidField { field, token, .. } => (field, token),
        other => panic!("`{expr}`: {other:?}"),
    }
}

#[test]
fn invalid_fields_are_named() {
    let cases = [
        ("60 * * * *", CronField::Minute, "60"),
        ("* 24 * * *", CronField::Hour, "24"),
        ("* * 0 * *", CronField::DayOfMonth, "0"),
        ("* * 32 * *", CronField::DayOfMonth, "32"),
        ("* * * 13 *", CronField::Month, "13"),
        ("* * * JAM *", CronField::Month, "JAM"),
        ("* * * * 8", CronField::DayOfWeek, "8"),
        ("* * * * MON-XYZ", CronField::DayOfWeek, "MON-XYZ"),
        ("*/0 * * * *", CronField::Minute, "*/0"),
        ("5-1 * * * *", CronField::Minute, "5-1"),
        ("* * ? * *", CronField::DayOfMonth, "?"),
        // 6/7 fields: the `cron` crate fails, the culprit is found.
        ("61 * * * * *", CronField::Second, "61"),
        ("0 0 0 * * 8", CronField::DayOfWeek, "8"),
        ("0 0 0 * * * 1969", CronField::Year, "1969"),
    ];
    for (expr, field, token) in cases {
        assert_eq!(field_err(expr), (field, token.to_owned()), "{expr}");
    }
    let message = err("* * * * 8").to_string();
    assert!(
        message.contains("day-of-week") && message.contains("`8`"),
        "{message}"
    );
}

#[test]
fn other_errors() {
    assert_eq!(err(""), ScheduleError::Empty);
    assert_eq!(err("   "), ScheduleError::Empty);
    assert!(matches!(
        err("* * *"),
        ScheduleError::FieldCount { found: 3, .. }
    ));
    assert!(matches!(
        err("* * * * * * * *"),
        ScheduleError::FieldCount { found: 8, .. }
    ));
    assert_eq!(
        err("@often"),
        ScheduleError::UnknownShortcut("@often".to_owned())
    );
    assert_eq!(
        Schedule::parse("* * * * *", "Mars/Olympus_Mons").unwrap_err(),
        ScheduleError::UnknownTimeZone("Mars/Olympus_Mons".to_owned())
    );
    for never in [
        "0 0 30 2 *",
        "0 0 31 4 *",
        "0 0 31 2,4,6,9,11 *",
        "0 0 0 30 2 *",
    ] {
        assert_eq!(
            err(never),
            ScheduleError::NeverFires(never.to_owned()),
            "{never}"
        );
    }
    // Feb 29 does occur; and the OR rule rescues an impossible day of month.
    Schedule::utc("0 0 29 2 *").unwrap();
    Schedule::utc("0 0 30 2 MON").unwrap();
}

#[test]
fn serde_round_trip_validates() {
    let s = Schedule::parse("0 9 * * MON-FRI", "Europe/Paris").unwrap();
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(
        json,
        r#"{"cron":"0 9 * * MON-FRI","time_zone":"Europe/Paris"}"#
    );
    let back: Schedule = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    assert_eq!(
        back.next_after(t("2026-12-04T12:00Z")),
        Some(t("2026-12-07T08:00Z"))
    );
    let utc: Schedule = serde_json::from_str(r#"{"cron":"@daily"}"#).unwrap();
    assert_eq!(utc.time_zone(), "UTC");
    let bad = serde_json::from_str::<Schedule>(r#"{"cron":"0 0 30 2 *"}"#).unwrap_err();
    assert!(bad.to_string().contains("never fires"), "{bad}");
    assert_eq!(s.to_string(), "0 9 * * MON-FRI (Europe/Paris)");
    assert_eq!(s.expression(), "0 9 * * MON-FRI");
}

#[test]
fn parse_is_independent_of_surrounding_whitespace() {
    let a = Schedule::utc("  0   9 * *  1-5 ").unwrap();
    let monday = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
    let expected = Utc.from_utc_datetime(&monday.and_hms_opt(9, 0, 0).unwrap());
    assert_eq!(a.next_after(t("2026-12-05T00:00Z")), Some(expected));
}

#[test]
fn schedules_can_be_shared_across_tasks() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Schedule>();
    shared::<super::FirePlan>();
    shared::<ScheduleError>();
}

/// The messages quoted in docs/guide/scheduling.md.
#[test]
fn guide_messages() {
    let message = |expr: &str, tz: &str| Schedule::parse(expr, tz).unwrap_err().to_string();
    assert_eq!(
        message("0 0 * * 8", "UTC"),
        "invalid day-of-week field: `8`: 8 is out of range 0-7"
    );
    assert_eq!(
        message("0 0 1 JAM *", "UTC"),
        "invalid month field: `JAM`: `JAM` is neither a number nor a month name"
    );
    assert_eq!(
        message("* * *", "UTC"),
        "cron expression `* * *` has 3 field(s); expected 5 (minute hour day-of-month month \
         day-of-week), 6 (with seconds first) or 7 (with a year last)"
    );
    assert_eq!(
        message("* * * * *", "Europe/Pariss"),
        "unknown time zone `Europe/Pariss` (expected an IANA name such as `Europe/Paris` or `UTC`)"
    );
    assert_eq!(
        message("0 0 30 2 *", "UTC"),
        "cron expression `0 0 30 2 *` never fires (it names no date that occurs)"
    );
}
