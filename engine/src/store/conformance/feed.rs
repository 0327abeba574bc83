//! Guarantees of the global event feed and of engine heartbeats.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::events::{Event, EventKind};
use crate::ids::RunId;
use crate::log_level::LogLevel;
use crate::store::{EngineRecord, FeedCursor, Lease, Store};

use super::{TTL, record};

/// A log event of `run` numbered `seq`.
fn line(run: RunId, seq: u64) -> Event {
    Event::new(
        run,
        seq,
        SystemTime::now(),
        EventKind::Log {
            node: "a".into(),
            item: None,
            attempt: 1,
            level: LogLevel::Info,
            message: format!("{run} {seq}"),
        },
    )
}

/// Reads the feed from `from` with pages of `limit` until nothing is new; checks the
/// cursors only grow.
async fn drain(
    store: &dyn Store,
    from: FeedCursor,
    limit: usize,
    workflow: Option<&str>,
) -> (Vec<Event>, FeedCursor) {
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let page = store.events_since(at, limit, workflow).await.unwrap();
        assert!(page.events.len() <= limit);
        for e in &page.events {
            assert!(e.cursor > at, "feed cursors grow: {} after {at}", e.cursor);
            at = e.cursor;
            out.push(e.event.clone());
        }
        assert!(page.next >= at, "`next` is past the last event");
        if page.next == at && page.events.is_empty() {
            return (out, at);
        }
        at = page.next;
    }
}

/// Every appended event is in the feed once, each run's in sequence order, from any
/// cursor handed out; a workflow filter keeps exactly that workflow's events;
/// reading from the head gives only later events; a cursor survives its text form.
pub async fn the_feed_has_every_event_once(store: Arc<dyn Store>) {
    assert!(
        store
            .events_since(FeedCursor::START, 10, None)
            .await
            .unwrap()
            .events
            .is_empty()
    );
    let lease = Lease::new("engine-f", 1);
    let mut runs = Vec::new();
    for i in 0..6 {
        let rec = record(if i % 3 == 0 { "w1" } else { "w2" });
        store.create_run(&rec, &lease, TTL).await.unwrap();
        runs.push(rec);
    }
    let mut next_seq: HashMap<RunId, u64> = HashMap::new();
    for round in 0..5u64 {
        for (i, r) in runs.iter().enumerate() {
            let n = 1 + (round + i as u64) % 3;
            let s = next_seq.entry(r.id).or_insert(1);
            let batch: Vec<Event> = (*s..*s + n).map(|q| line(r.id, q)).collect();
            *s += n;
            store.append(r.id, &lease, &batch).await.unwrap();
        }
    }
    let total: u64 = next_seq.values().map(|s| s - 1).sum();
    for limit in [1, 4, 1000] {
        let (all, _) = drain(&*store, FeedCursor::START, limit, None).await;
        assert_eq!(all.len() as u64, total, "limit {limit}");
        let mut last: HashMap<RunId, u64> = HashMap::new();
        for e in &all {
            let prev = last.insert(e.run, e.seq).unwrap_or(0);
            assert_eq!(e.seq, prev + 1, "run {} in order, once", e.run);
            let stored = store.events(e.run, e.seq - 1, 1).await.unwrap();
            assert_eq!(stored[0], *e, "the feed's event is the stored one");
        }
    }
    let (w1, _) = drain(&*store, FeedCursor::START, 3, Some("w1")).await;
    let w1_runs: Vec<RunId> = runs
        .iter()
        .filter(|r| r.workflow == "w1")
        .map(|r| r.id)
        .collect();
    assert!(w1.iter().all(|e| w1_runs.contains(&e.run)));
    let w1_total: u64 = w1_runs.iter().map(|r| next_seq[r] - 1).sum();
    assert_eq!(w1.len() as u64, w1_total);
    // From the middle, through the cursor's text.
    let page = store
        .events_since(FeedCursor::START, 7, None)
        .await
        .unwrap();
    let mid: FeedCursor = page.events[6].cursor.to_string().parse().unwrap();
    let (rest, _) = drain(&*store, mid, 5, None).await;
    assert_eq!(rest.len() as u64, total - 7);
    // From the head: only what comes next.
    let head = store.feed_head().await.unwrap();
    assert!(drain(&*store, head, 10, None).await.0.is_empty());
    let r = &runs[1];
    let s = next_seq[&r.id];
    store
        .append(r.id, &lease, &[line(r.id, s), line(r.id, s + 1)])
        .await
        .unwrap();
    let (new, end) = drain(&*store, head, 10, None).await;
    assert_eq!(
        new.iter().map(|e| (e.run, e.seq)).collect::<Vec<_>>(),
        vec![(r.id, s), (r.id, s + 1)]
    );
    assert_eq!(store.feed_head().await.unwrap(), end);
}

/// Concurrent writers and a reader polling meanwhile: the reader sees every event
/// exactly once, each run's in order.
pub async fn the_feed_keeps_up_with_concurrent_writers(store: Arc<dyn Store>) {
    const WRITERS: u64 = 6;
    const BATCHES: u64 = 15;
    let start = store.feed_head().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let rec = record("wc");
            let lease = Lease::new("engine-c", 1);
            store.create_run(&rec, &lease, TTL).await.unwrap();
            for b in 0..BATCHES {
                let batch = [line(rec.id, 2 * b + 1), line(rec.id, 2 * b + 2)];
                store.append(rec.id, &lease, &batch).await.unwrap();
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut seen: HashMap<RunId, u64> = HashMap::new();
    let mut at = start;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let want = WRITERS * BATCHES * 2;
    let mut got = 0;
    while got < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{got} of {want} seen"
        );
        let page = store.events_since(at, 7, None).await.unwrap();
        for e in &page.events {
            let prev = seen.insert(e.event.run, e.event.seq).unwrap_or(0);
            assert_eq!(e.event.seq, prev + 1, "once and in order");
            got += 1;
        }
        at = page.next;
        if page.events.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        store
            .events_since(at, 100, None)
            .await
            .unwrap()
            .events
            .is_empty()
    );
}

/// Heartbeats insert and replace engine records; the list tells each engine's last
/// beat and the unfinished runs it holds under a live lease; records are forgotten by
/// id or by age.
pub async fn engines_beat_list_and_forget(store: Arc<dyn Store>) {
    let t0 = SystemTime::now() - Duration::from_secs(600);
    let a = EngineRecord::new("engine-a", "host-1", 41, "0.1.0", t0).beat_at(t0);
    let b = EngineRecord::new("engine-b", "host-2", 42, "0.1.0", t0).with_runs_owned(99);
    store.beat(&a).await.unwrap();
    store.beat(&b).await.unwrap();
    // Engine a holds two runs, one of them finished since.
    let lease = Lease::new("engine-a", 1);
    for finish in [false, true] {
        let rec = record("wf");
        store.create_run(&rec, &lease, TTL).await.unwrap();
        let mut evs = vec![super::run_event(
            rec.id,
            1,
            crate::state::RunState::Pending,
            crate::state::RunState::Running,
        )];
        if finish {
            evs.push(super::run_event(
                rec.id,
                2,
                crate::state::RunState::Running,
                crate::state::RunState::Succeeded,
            ));
        }
        store.append(rec.id, &lease, &evs).await.unwrap();
    }
    let listed = store.engines().await.unwrap();
    assert_eq!(
        listed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["engine-a", "engine-b"]
    );
    let (la, lb) = (&listed[0], &listed[1]);
    assert_eq!(
        (la.host.as_str(), la.pid, la.version.as_str()),
        ("host-1", 41, "0.1.0")
    );
    assert_eq!(la.runs_owned, 1, "the unfinished run only");
    assert_eq!(
        lb.runs_owned, 0,
        "counted by the store, not taken from the beat"
    );
    let near = |x: SystemTime, y: SystemTime| {
        x.duration_since(y)
            .unwrap_or_else(|e| e.duration())
            .as_millis()
            < 2
    };
    assert!(near(la.last_beat, t0) && near(la.started_at, t0));
    // A new beat replaces the record.
    let now = SystemTime::now();
    store.beat(&a.clone().beat_at(now)).await.unwrap();
    let listed = store.engines().await.unwrap();
    assert!(near(listed[0].last_beat, now));
    // b beat at creation (about now); a too now. Forget by age, then by id.
    store.beat(&b.clone().beat_at(t0)).await.unwrap();
    let cut = t0 + Duration::from_secs(1);
    assert_eq!(store.forget_engines_before(cut).await.unwrap(), 1);
    assert_eq!(store.engines().await.unwrap().len(), 1);
    assert!(store.forget_engine("engine-a").await.unwrap());
    assert!(!store.forget_engine("engine-a").await.unwrap());
    assert!(store.engines().await.unwrap().is_empty());
}
