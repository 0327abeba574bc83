//! The engine's recurring schedules on a controllable clock: registration errors, fire
//! instants, overlap and missed-fire policies, jitter, enable/disable/trigger/remove.
//!
//! Runs are enqueued and left pending (a pending run counts as "still going" for the
//! overlap policies) or driven with `Engine::resume`; nothing sleeps.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use dagforge::prelude::*;
use dagforge::schedule::{CronField, MissedFirePolicy, OverlapPolicy, ScheduleError};
use dagforge::store::{RunQuery, Store};
use dagforge::{Error, Fire, FireOutcome, ManualClock, Recurring, RunId};

use crate::common::*;

fn at(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, d, h, m, s).unwrap()
}

fn workflow(name: &str) -> Workflow {
    let mut wf = Workflow::builder(name);
    wf.add("a", Noop);
    wf.build().unwrap()
}

fn engine(clock: &ManualClock, wf: &Workflow) -> Engine {
    Engine::builder().clock(clock.clone()).workflow(wf).build()
}

/// (fire time, run) of each enqueued fire.
fn enqueued(fires: &[Fire]) -> Vec<(DateTime<Utc>, RunId)> {
    fires
        .iter()
        .filter_map(|f| match f.outcome {
            FireOutcome::Enqueued { run, .. } => Some((f.at, run)),
            _ => None,
        })
        .collect()
}

async fn runs(store: &dyn Store) -> Vec<dagforge::store::RunRecord> {
    store
        .list_runs(&RunQuery::new().limit(1000))
        .await
        .unwrap()
        .items
}

/// Drives every claimable run to its end.
async fn finish_all(engine: &Engine) {
    for h in engine.resume().await.unwrap() {
        h.wait().await.unwrap();
    }
}

#[tokio::test]
async fn registration_errors_name_the_problem() {
    let clock = ManualClock::new(at(1, 0, 0, 0));
    let wf = workflow("wf");
    let engine = engine(&clock, &wf);
    let add = |cron: &'static str, tz: &'static str| {
        let (engine, wf) = (engine.clone(), wf.clone());
        async move {
            engine
                .schedules()
                .add_or_update("s", &wf, cron, Recurring::new().time_zone(tz))
                .await
                .unwrap_err()
        }
    };
    let err = add("60 * * * *", "UTC").await;
    assert!(
        matches!(&err, Error::Schedule { id, source: ScheduleError::InvalidField { field: CronField::Minute, .. } } if id == "s"),
        "{err:?}"
    );
    assert!(err.to_string().contains("minute"), "{err}");
    let err = add("0 0 * JAM *", "UTC").await;
    assert!(
        matches!(
            &err,
            Error::Schedule {
                source: ScheduleError::InvalidField {
                    field: CronField::Month,
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    let err = add("0 9 * * *", "Europe/Pariss").await;
    assert!(
        matches!(&err, Error::Schedule { source: ScheduleError::UnknownTimeZone(tz), .. } if tz == "Europe/Pariss"),
        "{err:?}"
    );
    let err = add("0 0 30 2 *", "UTC").await;
    assert!(
        matches!(
            &err,
            Error::Schedule {
                source: ScheduleError::NeverFires(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("never fires"), "{err}");
    // Valid, but every fire is in the past: an error at registration too.
    let err = add("0 0 0 1 1 * 2020", "UTC").await;
    assert!(
        matches!(
            &err,
            Error::Schedule {
                source: ScheduleError::NeverFires(_),
                ..
            }
        ),
        "{err:?}"
    );
    // A workflow the engine does not know.
    let other = workflow("other");
    let err = engine
        .schedules()
        .add_or_update("s", &other, "* * * * *", Recurring::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownWorkflow { name, .. } if name == "other"),
        "{err:?}"
    );
    // Inputs the workflow does not take.
    let mut p = Workflow::builder("params");
    let n = p.param::<serde_json::Value>("n");
    p.add("e", Echo).input_from(n);
    let p = p.build().unwrap();
    let engine = Engine::builder().clock(clock.clone()).workflow(&p).build();
    let err = engine
        .schedules()
        .add_or_update("p", &p, "* * * * *", Recurring::new())
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Input { .. }), "{err:?}");
    // Nothing was stored by any of these.
    assert!(engine.schedules().list().await.unwrap().is_empty());
    engine
        .schedules()
        .add_or_update(
            "p",
            &p,
            "* * * * *",
            Recurring::new().inputs(serde_json::json!({"n": 1})),
        )
        .await
        .unwrap();
    assert!(matches!(
        engine.schedules().get("nope").await.unwrap_err(),
        Error::UnknownSchedule(id) if id == "nope"
    ));
}

#[tokio::test]
async fn fires_at_the_instants_of_the_expression() {
    let clock = ManualClock::new(at(1, 0, 0, 0));
    let wf = workflow("wf");
    let engine = engine(&clock, &wf);
    engine
        .schedules()
        .add_or_update("q", &wf, "*/15 * * * *", Recurring::new())
        .await
        .unwrap();
    assert_eq!(
        engine.schedules().get("q").await.unwrap().next_fire,
        Some(at(1, 0, 15, 0))
    );
    clock.set(at(1, 0, 14, 59));
    assert!(engine.schedules().fire_due().await.unwrap().is_empty());
    clock.set(at(1, 0, 15, 0));
    let fires = engine.schedules().fire_due().await.unwrap();
    let got = enqueued(&fires);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, at(1, 0, 15, 0));
    // Handled: a second turn at the same instant fires nothing.
    assert!(engine.schedules().fire_due().await.unwrap().is_empty());
    let s = engine.schedules().get("q").await.unwrap();
    assert_eq!(s.next_fire, Some(at(1, 0, 30, 0)));
    assert_eq!(s.last_fire, Some(at(1, 0, 15, 0)));
    assert_eq!(s.last_run, Some(got[0].1));
    let run = engine.store().get_run(got[0].1).await.unwrap().unwrap();
    assert_eq!(
        run.idempotency_key.as_deref(),
        Some("schedule:q@2026-12-01T00:15:00Z")
    );
    assert_eq!(run.workflow, "wf");
    // 00:29:30 nothing; 00:30:10 (10 s late: on time) the 00:30 fire.
    clock.set(at(1, 0, 29, 30));
    assert!(engine.schedules().fire_due().await.unwrap().is_empty());
    finish_all(&engine).await;
    clock.set(at(1, 0, 30, 10));
    let got = enqueued(&engine.schedules().fire_due().await.unwrap());
    assert_eq!(
        got.iter().map(|f| f.0).collect::<Vec<_>>(),
        [at(1, 0, 30, 0)]
    );
    assert_eq!(runs(&**engine.store()).await.len(), 2);
}

#[tokio::test]
async fn a_time_zone_schedule_fires_once_through_the_spring_gap() {
    // 02:30 does not exist in Paris on 28 March 2027: the fire is at 03:00 CEST (01:00Z).
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2027, 3, 27, 12, 0, 0).unwrap());
    let wf = workflow("wf");
    let engine = engine(&clock, &wf);
    engine
        .schedules()
        .add_or_update(
            "night",
            &wf,
            "30 2 * * *",
            Recurring::new()
                .time_zone("Europe/Paris")
                .overlap(OverlapPolicy::Allow),
        )
        .await
        .unwrap();
    let gap = Utc.with_ymd_and_hms(2027, 3, 28, 1, 0, 0).unwrap();
    assert_eq!(
        engine.schedules().get("night").await.unwrap().next_fire,
        Some(gap)
    );
    let mut fired = Vec::new();
    // Step through the night a minute at a time.
    clock.set(Utc.with_ymd_and_hms(2027, 3, 28, 0, 0, 0).unwrap());
    for _ in 0..180 {
        clock.advance(Duration::from_secs(60));
        fired.extend(enqueued(&engine.schedules().fire_due().await.unwrap()));
    }
    assert_eq!(fired.iter().map(|f| f.0).collect::<Vec<_>>(), [gap]);
    // The next night: 02:30 CEST = 00:30Z.
    assert_eq!(
        engine.schedules().get("night").await.unwrap().next_fire,
        Some(Utc.with_ymd_and_hms(2027, 3, 29, 0, 30, 0).unwrap())
    );
}

#[tokio::test]
async fn overlap_skip_records_the_skip_and_fires_again_once_the_run_ended() {
    let clock = ManualClock::new(at(1, 0, 0, 0));
    let wf = workflow("wf");
    let engine = engine(&clock, &wf);
    engine
        .schedules()
        .add_or_update("s", &wf, "* * * * *", Recurring::new())
        .await
        .unwrap();
    clock.set(at(1, 0, 1, 0));
    let first = enqueued(&engine.schedules().fire_due().await.unwrap())[0].1;
    // The first run is still pending at the next fire.
    clock.set(at(1, 0, 2, 0));
    let fires = engine.schedules().fire_due().await.unwrap();
    assert_eq!(
        fires
            .iter()
            .map(|f| (f.at, f.outcome.clone()))
            .collect::<Vec<_>>(),
        [(at(1, 0, 2, 0), FireOutcome::Skipped { running: first })]
    );
    let s = engine.schedules().get("s").await.unwrap();
    assert_eq!(
        s.note.as_deref(),
        Some(format!("skipped 2026-12-01T00:02:00Z: previous run {first} still running").as_str())
    );
    assert_eq!(
        (s.last_fire, s.last_run),
        (Some(at(1, 0, 2, 0)), Some(first))
    );
    assert_eq!(s.next_fire, Some(at(1, 0, 3, 0)));
    assert_eq!(runs(&**engine.store()).await.len(), 1);
    // Once it finished, the next fire runs and the note is cleared.
    finish_all(&engine).await;
    clock.set(at(1, 0, 3, 0));
    let got = enqueued(&engine.schedules().fire_due().await.unwrap());
    assert_eq!(got.len(), 1);
    let s = engine.schedules().get("s").await.unwrap();
    assert_eq!((s.note, s.last_run), (None, Some(got[0].1)));
    assert_eq!(runs(&**engine.store()).await.len(), 2);
}

#[tokio::test]
async fn overlap_queue_fires_when_the_previous_run_ends() {
    let clock = ManualClock::new(at(1, 0, 0, 0));
    let wf = workflow("wf");
    let engine = engine(&clock, &wf);
    engine
        .schedules()
        .add_or_update(
            "q",
            &wf,
            "* * * * *",
            // Even with missed fires skipped, a fire held back by the overlap runs.
            Recurring::new()
                .overlap(OverlapPolicy::Queue)
                .missed(MissedFirePolicy::Skip),
        )
        .await
        .unwrap();
    clock.set(at(1, 0, 1, 0));
    let first = enqueued(&engine.schedules().fire_due().await.unwrap())[0].1;
    clock.set(at(1, 0, 2, 0));
    assert!(engine.schedules().fire_due().await.unwrap().is_empty());
    let s = engine.schedules().get("q").await.unwrap();
    assert_eq!(s.next_fire, Some(at(1, 0, 2, 0)), "the fire waits");
    assert_eq!(
        s.note.as_deref(),
        Some(format!("waiting: previous run {first} still running").as_str())
    );
    // Still going three minutes later: nothing.
    clock.set(at(1, 0, 4, 30));
    assert!(engine.schedules().fire_due().await.unwrap().is_empty());
    assert_eq!(runs(&**engine.store()).await.len(), 1);
    // It ends: the waiting fire runs at once (one run, for the latest due fire).
    finish_all(&engine).await;
    let got = enqueued(&engine.schedules().fire_due().await.unwrap());
    assert_eq!(
        got.iter().map(|f| f.0).collect::<Vec<_>>(),
        [at(1, 0, 4, 0)]
    );
    let s = engine.schedules().get("q").await.unwrap();
    assert_eq!((s.note, s.next_fire), (None, Some(at(1, 0, 5, 0))));
    assert_eq!(runs(&**engine.store()).await.len(), 2);
}

#[tokio::test]
async fn overlap_allow_runs_beside_the_previous_run() {
    let clock = ManualClock::new(at(1, 0, 0, 0));
    let wf = workflow("wf");
    let engine = engine(&clock, &wf);
    engine
        .schedules()
        .add_or_update(
            "a",
            &wf,
            "* * * * *",
            Recurring::new().overlap(OverlapPolicy::Allow),
        )
        .await
        .unwrap();
    let mut all = Vec::new();
    for m in 1..=3 {
        clock.set(at(1, 0, m, 0));
        all.extend(enqueued(&engine.schedules().fire_due().await.unwrap()));
    }
    assert_eq!(all.len(), 3);
    let pending = runs(&**engine.store())
        .await
        .into_iter()
        .filter(|r| !r.state.is_terminal())
        .count();
    assert_eq!(pending, 3);
}

#[tokio::test]
async fn missed_fires_after_downtime_follow_the_policy() {
    // Hourly, registered at 03:00; the engines come back at 07:30.
    let clock = ManualClock::new(at(1, 3, 0, 0));
    let wf = workflow("wf");
    let engine = engine(&clock, &wf);
    for (id, missed) in [
        ("skip", MissedFirePolicy::Skip),
        ("once", MissedFirePolicy::FireOnce),
        ("catch-up", MissedFirePolicy::CatchUp { max: 2 }),
        ("catch-up-all", MissedFirePolicy::CatchUp { max: 10 }),
    ] {
        engine
            .schedules()
            .add_or_update(id, &wf, "@hourly", Recurring::new().missed(missed))
            .await
            .unwrap();
    }
    clock.set(at(1, 7, 30, 0));
    let fires = engine.schedules().fire_due().await.unwrap();
    let of = |id: &str| {
        fires
            .iter()
            .filter(|f| f.schedule == id)
            .map(|f| f.at)
            .collect::<Vec<_>>()
    };
    assert!(of("skip").is_empty());
    assert_eq!(of("once"), [at(1, 7, 0, 0)]);
    assert_eq!(of("catch-up"), [at(1, 6, 0, 0), at(1, 7, 0, 0)]);
    assert_eq!(
        of("catch-up-all"),
        [
            at(1, 4, 0, 0),
            at(1, 5, 0, 0),
            at(1, 6, 0, 0),
            at(1, 7, 0, 0)
        ]
    );
    for s in engine.schedules().list().await.unwrap() {
        assert_eq!(s.next_fire, Some(at(1, 8, 0, 0)), "{}", s.id);
    }
    let skip = engine.schedules().get("skip").await.unwrap();
    assert!(
        skip.note
            .unwrap()
            .starts_with("missed fires from 2026-12-01T04:00:00Z")
    );
    assert_eq!(runs(&**engine.store()).await.len(), 7);
}

#[tokio::test]
async fn jitter_stays_in_bounds_and_is_the_same_in_two_engines() {
    let clock = ManualClock::new(at(1, 0, 0, 0));
    let wf = workflow("wf");
    let engines = [engine(&clock, &wf), engine(&clock, &wf)];
    let max = Duration::from_secs(30);
    for e in &engines {
        e.schedules()
            .add_or_update(
                "j",
                &wf,
                "* * * * *",
                Recurring::new().jitter(max).overlap(OverlapPolicy::Allow),
            )
            .await
            .unwrap();
    }
    let jitter = dagforge::schedule::Jitter::up_to(max);
    let mut offsets = Vec::new();
    for m in 1..=20 {
        let fire = at(1, 0, m, 0);
        let start = jitter.apply("j", fire);
        assert!(start >= fire && start <= fire + max, "{start} for {fire}");
        // Before its jittered instant the fire waits (due, nothing enqueued).
        clock.set(start - chrono::TimeDelta::milliseconds(1));
        for e in &engines {
            assert!(e.schedules().fire_due().await.unwrap().is_empty());
        }
        // At it, each engine fires it, at the same instant.
        clock.set(start);
        for e in &engines {
            let fires = e.schedules().fire_due().await.unwrap();
            let [
                Fire {
                    at: got,
                    outcome: FireOutcome::Enqueued { run, start: s },
                    ..
                },
            ] = &fires[..]
            else {
                panic!("one fire expected: {fires:?}");
            };
            assert_eq!((*got, *s), (fire, start));
            // Enqueued at its instant: it may start at once.
            let rec = e.store().get_run(*run).await.unwrap().unwrap();
            assert_eq!(rec.not_before, None);
        }
        offsets.push(start - fire);
    }
    offsets.sort();
    offsets.dedup();
    assert!(
        offsets.len() > 10,
        "jitter varies from fire to fire: {offsets:?}"
    );
}

#[tokio::test]
async fn enable_disable_trigger_and_remove() {
    let clock = ManualClock::new(at(1, 0, 0, 0));
    let wf = workflow("wf");
    let engine = engine(&clock, &wf);
    engine
        .schedules()
        .add_or_update("s", &wf, "*/10 * * * *", Recurring::new().priority(7))
        .await
        .unwrap();
    let s = engine.schedules().disable("s").await.unwrap();
    assert!(!s.enabled);
    assert_eq!(s.next_fire, None);
    clock.set(at(1, 0, 35, 0));
    assert!(engine.schedules().fire_due().await.unwrap().is_empty());
    // Enabled again: the next fire after now; what it missed while off does not run.
    let s = engine.schedules().enable("s").await.unwrap();
    assert!(s.enabled);
    assert_eq!(s.next_fire, Some(at(1, 0, 40, 0)));
    assert!(engine.schedules().fire_due().await.unwrap().is_empty());
    // Enabling it again changes nothing (a due fire is not pushed back).
    clock.set(at(1, 0, 41, 0));
    let s = engine.schedules().enable("s").await.unwrap();
    assert_eq!(s.next_fire, Some(at(1, 0, 40, 0)));
    clock.set(at(1, 0, 35, 0));

    // Trigger: one run now, with the schedule's priority; the schedule does not move.
    let run = engine.schedules().trigger("s").await.unwrap();
    let rec = engine.store().get_run(run).await.unwrap().unwrap();
    assert_eq!((rec.workflow.as_str(), rec.priority), ("wf", 7));
    let s = engine.schedules().get("s").await.unwrap();
    assert_eq!((s.next_fire, s.last_run), (Some(at(1, 0, 40, 0)), None));
    finish_all(&engine).await;
    assert_eq!(
        engine.store().get_run(run).await.unwrap().unwrap().state,
        RunState::Succeeded
    );

    // Updating keeps the state: still enabled, same next fire; a new expression
    // recomputes it; an operator's disable survives an update.
    engine
        .schedules()
        .add_or_update("s", &wf, "*/10 * * * *", Recurring::new())
        .await
        .unwrap();
    assert_eq!(
        engine.schedules().get("s").await.unwrap().next_fire,
        Some(at(1, 0, 40, 0))
    );
    engine
        .schedules()
        .add_or_update("s", &wf, "*/3 * * * *", Recurring::new())
        .await
        .unwrap();
    assert_eq!(
        engine.schedules().get("s").await.unwrap().next_fire,
        Some(at(1, 0, 36, 0))
    );
    engine.schedules().disable("s").await.unwrap();
    engine
        .schedules()
        .add_or_update("s", &wf, "*/5 * * * *", Recurring::new())
        .await
        .unwrap();
    let s = engine.schedules().get("s").await.unwrap();
    assert!(!s.enabled);
    assert_eq!(s.next_fire, None);

    engine.schedules().remove("s").await.unwrap();
    assert!(engine.schedules().list().await.unwrap().is_empty());
    for err in [
        engine.schedules().remove("s").await.unwrap_err(),
        engine
            .schedules()
            .enable("s")
            .await
            .map(|_| ())
            .unwrap_err(),
        engine
            .schedules()
            .disable("s")
            .await
            .map(|_| ())
            .unwrap_err(),
        engine
            .schedules()
            .trigger("s")
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::UnknownSchedule(id) if id == "s"),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn a_declared_cron_registers_under_the_workflow_name() {
    let clock = ManualClock::new(at(1, 0, 0, 0));
    let mut b = Workflow::builder("every-5s");
    b.add("a", Noop);
    b.cron("*/5 * * * * *", "Europe/Paris");
    let wf = b.build().unwrap();
    assert_eq!(wf.cron(), Some(("*/5 * * * * *", "Europe/Paris")));
    let engine = engine(&clock, &wf);
    engine.schedules().register_declared().await.unwrap();
    let s = engine.schedules().get("every-5s").await.unwrap();
    assert_eq!(
        (s.workflow.as_str(), s.cron.as_str(), s.time_zone.as_str()),
        ("every-5s", "*/5 * * * * *", "Europe/Paris")
    );
    assert_eq!(s.next_fire, Some(at(1, 0, 0, 5)));
    // Again (another process, a restart): the schedule keeps its place and its state.
    clock.set(at(1, 0, 0, 5));
    engine.schedules().fire_due().await.unwrap();
    engine.schedules().disable("every-5s").await.unwrap();
    engine.schedules().register_declared().await.unwrap();
    let s = engine.schedules().get("every-5s").await.unwrap();
    assert!(!s.enabled);
    assert_eq!(s.last_fire, Some(at(1, 0, 0, 5)));

    // A bad declared expression is refused at registration, naming the field.
    let mut b = Workflow::builder("bad");
    b.add("a", Noop);
    b.cron("0 25 * * *", "UTC");
    let bad = b.build().unwrap();
    let engine = Engine::builder()
        .clock(clock.clone())
        .workflow(&bad)
        .build();
    let err = engine.schedules().register_declared().await.unwrap_err();
    assert!(
        matches!(&err, Error::Schedule { id, source: ScheduleError::InvalidField { field: CronField::Hour, .. } } if id == "bad"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_single_job_recurs_as_a_one_node_workflow() {
    let clock = ManualClock::new(at(1, 0, 0, 0));
    let wf = Workflow::of_job(Echo).unwrap();
    let engine = engine(&clock, &wf);
    engine
        .schedules()
        .add_or_update(
            "echo",
            &wf,
            "@daily",
            Recurring::new().inputs(serde_json::json!({"input": "hi"})),
        )
        .await
        .unwrap();
    clock.set(at(2, 0, 0, 0));
    assert_eq!(
        enqueued(&engine.schedules().fire_due().await.unwrap()).len(),
        1
    );
    let mut handles = engine.resume().await.unwrap();
    let result = handles.pop().unwrap().wait().await.unwrap();
    assert_eq!(result.state, RunState::Succeeded);
    assert_eq!(
        result.output::<serde_json::Value>("job").unwrap(),
        serde_json::json!("hi")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_engines_on_one_store_fire_each_instant_once() {
    let clock = ManualClock::new(at(1, 0, 0, 0));
    let wf = workflow("wf");
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let engines: Vec<Engine> = (0..3)
        .map(|i| {
            Engine::builder()
                .shared_store(Arc::clone(&store))
                .id(format!("e{i}"))
                .clock(clock.clone())
                .workflow(&wf)
                .build()
        })
        .collect();
    engines[0]
        .schedules()
        .add_or_update(
            "r",
            &wf,
            "* * * * * *",
            Recurring::new().overlap(OverlapPolicy::Allow),
        )
        .await
        .unwrap();
    let mut won = 0;
    for s in 1..=30 {
        clock.set(at(1, 0, 0, s));
        let mut tasks = Vec::new();
        for e in &engines {
            let e = e.clone();
            tasks.push(tokio::spawn(async move {
                e.schedules().fire_due().await.unwrap()
            }));
        }
        for t in tasks {
            won += enqueued(&t.await.unwrap()).len();
        }
    }
    assert_eq!(
        won, 30,
        "each fire is reported by the one engine that advanced it"
    );
    let all = runs(&*store).await;
    assert_eq!(all.len(), 30);
    let mut keys: Vec<String> = all.into_iter().filter_map(|r| r.idempotency_key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 30);
}

#[dagforge::job]
async fn beat() -> Result<u64, JobError> {
    Ok(1)
}

#[dagforge::workflow(cron = "*/1 * * * * *")]
fn heartbeat() {
    let b = beat();
}

/// On the system clock: `serve` registers the declared schedule and wakes at each fire,
/// though it polls only every 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_registers_a_declared_cron_and_fires_on_time() {
    let wf = heartbeat().unwrap();
    let engine = Engine::builder().workflow(&wf).build();
    let started = Utc::now();
    engine
        .serve(
            Duration::from_secs(10),
            tokio::time::sleep(Duration::from_millis(2600)),
        )
        .await
        .unwrap();
    let s = engine.schedules().get("heartbeat").await.unwrap();
    assert_eq!(
        (s.cron.as_str(), s.time_zone.as_str()),
        ("*/1 * * * * *", "UTC")
    );
    let all = runs(&**engine.store()).await;
    assert!(all.len() >= 2, "{} runs in 2.6 s", all.len());
    for r in &all {
        let key = r.idempotency_key.as_deref().unwrap();
        let fire = DateTime::parse_from_rfc3339(key.strip_prefix("schedule:heartbeat@").unwrap())
            .unwrap()
            .with_timezone(&Utc);
        assert!(
            fire > started && fire.timestamp_subsec_nanos() == 0,
            "{fire}"
        );
        // Enqueued at its instant, not at the next 10 s poll.
        let late = (DateTime::<Utc>::from(r.created_at) - fire)
            .to_std()
            .unwrap();
        assert!(
            late < Duration::from_millis(500),
            "fire {fire} enqueued {late:?} late"
        );
    }
}

/// Sleeps 1.2 s.
struct Slow;

impl Job for Slow {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "slow";

    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        Ok(())
    }
}

/// On the system clock, with `serve`: a once-a-second schedule of a 1.2 s job with
/// overlap `queue` never has two runs going at once, and each run follows the previous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_queues_fires_behind_a_running_run() {
    let wf = Workflow::of_job(Slow).unwrap();
    let engine = Engine::builder().workflow(&wf).build();
    engine
        .schedules()
        .add_or_update(
            "slow",
            &wf,
            "* * * * * *",
            Recurring::new().overlap(OverlapPolicy::Queue),
        )
        .await
        .unwrap();
    engine
        .serve(
            Duration::from_secs(10),
            tokio::time::sleep(Duration::from_millis(4500)),
        )
        .await
        .unwrap();
    let mut all = runs(&**engine.store()).await;
    all.sort_by_key(|r| r.created_at);
    assert!(all.len() >= 2, "{} runs", all.len());
    for w in all.windows(2) {
        let finished = w[0].finished_at.expect("the previous run finished first");
        assert!(
            w[1].created_at >= finished,
            "run {} enqueued before run {} finished",
            w[1].id,
            w[0].id
        );
        // ... and promptly after it (the scheduler looks again every second).
        let gap = w[1].created_at.duration_since(finished).unwrap();
        assert!(gap < Duration::from_millis(1500), "{gap:?}");
    }
}

/// An engine that died after enqueueing a fire's run and before moving the schedule on
/// leaves the fire due; the next engine gets the same run back from the fire's key.
#[tokio::test]
async fn a_fire_enqueued_by_an_engine_that_died_is_not_run_twice() {
    let clock = ManualClock::new(at(1, 0, 0, 0));
    let wf = workflow("wf");
    let engine = engine(&clock, &wf);
    engine
        .schedules()
        .add_or_update("s", &wf, "*/5 * * * *", Recurring::new())
        .await
        .unwrap();
    // What the dead engine did: the fire's run, under its key; the schedule not moved.
    let orphan = engine
        .enqueue_with(
            &wf,
            (),
            dagforge::Enqueue::new().idempotency_key("schedule:s@2026-12-01T00:05:00Z"),
        )
        .await
        .unwrap();
    clock.set(at(1, 0, 5, 0));
    let got = enqueued(&engine.schedules().fire_due().await.unwrap());
    assert_eq!(got, [(at(1, 0, 5, 0), orphan)]);
    assert_eq!(runs(&**engine.store()).await.len(), 1);
    let s = engine.schedules().get("s").await.unwrap();
    assert_eq!(
        (s.next_fire, s.last_run),
        (Some(at(1, 0, 10, 0)), Some(orphan))
    );
}
