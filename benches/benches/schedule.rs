//! Cost of the schedule computations the engine makes on every tick: the next fire time of a
//! cron schedule in a time zone, the plan after downtime, and parsing.
//!
//! ```sh
//! cargo bench -p benches --bench schedule
//! ```
//!
//! Each line: mean time per call over a chain of calls (each `next_after` starts from the
//! previous fire, so a run crosses month ends and daylight-saving changes), best of 5 rounds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use dagforge::schedule::{MissedFirePolicy, Schedule, plan_fires};

fn best_of<F: FnMut() -> usize>(mut f: F) -> Duration {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            let calls = f();
            start.elapsed() / u32::try_from(calls.max(1)).unwrap_or(u32::MAX)
        })
        .min()
        .unwrap_or_default()
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn main() {
    println!("{:<48} {:>12}", "operation", "per call");
    let next_cases = [
        ("*/15 * * * *", "UTC", 10_000),
        ("*/15 * * * *", "Europe/Paris", 10_000),
        ("0 9 * * MON-FRI", "Europe/Paris", 2_000),
        ("0 0 13 * FRI", "America/New_York", 1_000),
        ("0 0 29 2 *", "UTC", 15),
        ("*/10 * * * * *", "UTC", 10_000),
    ];
    for (expr, tz, n) in next_cases {
        let schedule = Schedule::parse(expr, tz).unwrap();
        let per = best_of(|| {
            let mut at = start();
            for _ in 0..n {
                at = black_box(schedule.next_after(at).unwrap());
            }
            n
        });
        println!("{:<48} {:>12?}", format!("next_after `{expr}` {tz}"), per);
    }

    let every_second = Schedule::parse("* * * * * *", "UTC").unwrap();
    let now = start() + chrono::TimeDelta::days(30);
    let per = best_of(|| {
        for _ in 0..20 {
            black_box(plan_fires(
                &every_second,
                start(),
                now,
                MissedFirePolicy::CatchUp { max: 10 },
            ));
        }
        20
    });
    println!(
        "{:<48} {:>12?}",
        "plan_fires CatchUp{max:10}, 30 days of 1/s", per
    );
    let hourly = Schedule::parse("0 * * * *", "Europe/Paris").unwrap();
    let per = best_of(|| {
        for _ in 0..200 {
            black_box(plan_fires(
                &hourly,
                start(),
                now,
                MissedFirePolicy::FireOnce,
            ));
        }
        200
    });
    println!(
        "{:<48} {:>12?}",
        "plan_fires FireOnce, 30 days of hourly", per
    );

    for expr in [
        "0 9 * * MON-FRI",
        "0 0 13 * FRI",
        "0 0 30 2 *",
        "30 0 9 * * MON-FRI",
    ] {
        let per = best_of(|| {
            for _ in 0..200 {
                let _ = black_box(Schedule::parse(expr, "Europe/Paris"));
            }
            200
        });
        println!("{:<48} {:>12?}", format!("parse `{expr}`"), per);
    }
}
