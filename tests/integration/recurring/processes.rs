//! Exactly once across processes: three engine processes on one PostgreSQL database
//! serve a once-per-second schedule; every fire instant is one run, run once, and no
//! fire in the window is missing.

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dagforge::RunState;
use dagforge::store::{PostgresStore, RunQuery, Store};

const ENGINE: &str = env!("CARGO_BIN_EXE_dagforge-recurring-engine");

fn unique() -> String {
    dagforge::RunId::new().to_uuid_string().replace('-', "")
}

/// The fire instant in a `schedule:tick@<RFC 3339>` key.
fn fire_of(key: &str) -> DateTime<Utc> {
    let at = key
        .strip_prefix("schedule:tick@")
        .unwrap_or_else(|| panic!("not a fire key of `tick`: {key}"));
    DateTime::parse_from_rfc3339(at)
        .unwrap_or_else(|e| panic!("{key}: {e}"))
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_fire_each_second_exactly_once() {
    let base = crate::store::pg::url();
    let schema = format!("recurring_{}", unique());
    // Created (and migrated) here, before three processes race for it.
    let store = PostgresStore::options(&base)
        .schema(&schema)
        .connect()
        .await
        .expect("PostgreSQL at DATABASE_URL");
    let dir = std::env::temp_dir().join(format!("dagforge-recurring-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let journal = dir.join("journal");
    let url = format!("{base}#{schema}");

    let started = Utc::now();
    let mut procs: Vec<_> = (0..3)
        .map(|_| {
            Command::new(ENGINE)
                .args([url.as_str(), journal.to_str().unwrap(), "4.2"])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start the recurring engine")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for p in &mut procs {
        loop {
            if let Some(status) = p.try_wait().unwrap() {
                assert!(status.success(), "engine exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "engine did not stop");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let ended = Utc::now();

    let runs = store
        .list_runs(&RunQuery::new().limit(10_000))
        .await
        .unwrap()
        .items;
    // One run per fire instant (the unique key makes a second run per key impossible;
    // this also checks that every run is a fire of the schedule).
    let mut by_fire: BTreeMap<DateTime<Utc>, Vec<dagforge::RunId>> = BTreeMap::new();
    for r in &runs {
        let key = r
            .idempotency_key
            .as_deref()
            .expect("a fire's run has its key");
        by_fire.entry(fire_of(key)).or_default().push(r.id);
    }
    for (at, ids) in &by_fire {
        assert_eq!(ids.len(), 1, "fire {at}: runs {ids:?}");
    }
    // No fire missing: consecutive seconds from the first to the last.
    let fires: Vec<DateTime<Utc>> = by_fire.keys().copied().collect();
    assert!(fires.len() >= 3, "only {} fires: {fires:?}", fires.len());
    for w in fires.windows(2) {
        assert_eq!(
            (w[1] - w[0]).num_milliseconds(),
            1000,
            "gap between {} and {}",
            w[0],
            w[1]
        );
    }
    assert!(
        fires[0] <= started + chrono::TimeDelta::seconds(3),
        "first fire {}",
        fires[0]
    );
    assert!(
        *fires.last().unwrap() >= ended - chrono::TimeDelta::seconds(3),
        "last fire {}",
        fires.last().unwrap()
    );
    let schedule = store.get_schedule("tick").await.unwrap().unwrap();
    assert_eq!(
        schedule.last_fire.map(DateTime::<Utc>::from),
        fires.last().copied()
    );

    // Each run's job ran at most once, and each run that succeeded exactly once.
    let text = std::fs::read_to_string(&journal).unwrap_or_default();
    let mut ran: HashMap<String, u32> = HashMap::new();
    let mut pids: HashMap<String, u32> = HashMap::new();
    for line in text.lines() {
        let (run, pid) = line.split_once(' ').unwrap();
        *ran.entry(run.to_owned()).or_default() += 1;
        *pids.entry(pid.to_owned()).or_default() += 1;
    }
    for r in &runs {
        let n = ran.get(&r.id.to_string()).copied().unwrap_or(0);
        assert!(n <= 1, "run {} ran {n} times", r.id);
        if r.state == RunState::Succeeded {
            assert_eq!(n, 1, "run {} succeeded without running", r.id);
        }
    }
    let succeeded = runs
        .iter()
        .filter(|r| r.state == RunState::Succeeded)
        .count();
    assert!(
        succeeded + 2 >= runs.len(),
        "{succeeded} of {} runs succeeded",
        runs.len()
    );
    eprintln!(
        "{} fires from {} to {}, {succeeded} succeeded; runs per process: {pids:?}",
        fires.len(),
        fires[0],
        fires.last().unwrap()
    );
    store.drop_schema().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
