//! Guarantees of the paged reads: runs filtered, keyset-paged and counted; a run's
//! executions paged and counted; its log lines filtered, paged and tailed.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::events::{Event, EventKind, NodeEvent};
use crate::ids::RunId;
use crate::log_level::LogLevel;
use crate::state::{NodeState, RunState};
use crate::store::{
    ExecutionQuery, ExecutionRecord, Lease, LogQuery, RunCounts, RunCursor, RunQuery, RunRecord,
    Store, StoreError,
};

use super::{TTL, node, record, run_event, started};

/// Every run `query` lists, page after page of `limit` (through the cursor, or through
/// `before` when `by_id`).
async fn all_pages(store: &dyn Store, query: &RunQuery, limit: usize, by_id: bool) -> Vec<RunId> {
    let mut q = query.clone().limit(limit);
    let mut out = Vec::new();
    for _ in 0..1000 {
        let page = store.list_runs(&q).await.unwrap();
        assert!(page.items.len() <= limit, "a page longer than its limit");
        out.extend(page.items.iter().map(|r| r.id));
        match (page.cursor, page.next) {
            (Some(c), Some(n)) => {
                assert_eq!(c.id, n, "the cursor and `next` name the same run");
                if by_id {
                    q.cursor = None;
                    q.before = Some(n);
                } else {
                    q.cursor = Some(c);
                }
            }
            (None, None) => return out,
            other => panic!("a page with `cursor` and `next` disagreeing: {other:?}"),
        }
    }
    panic!("paging does not end")
}

/// 30 runs over two workflows, two versions, three states, a lane, a key, and
/// creation times one second apart (two of them equal).
async fn seeded(store: &dyn Store) -> Vec<RunRecord> {
    let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut runs = Vec::new();
    for i in 0..30u64 {
        let mut rec = record(if i % 2 == 0 { "alpha" } else { "beta" });
        rec.version = if i % 3 == 0 { "2" } else { "1" }.to_owned();
        rec.created_at = base + Duration::from_secs(if i == 11 { 10 } else { i });
        if i % 5 == 0 {
            rec.queue = Some("lane-a".to_owned());
        }
        if i == 7 {
            rec.idempotency_key = Some("key-7".to_owned());
        }
        let lease = Lease::new("engine-q", 1);
        store.create_run(&rec, &lease, TTL).await.unwrap();
        let id = rec.id;
        let mut evs = Vec::new();
        if i % 3 != 0 {
            evs.push(run_event(id, 1, RunState::Pending, RunState::Running));
            rec.state = RunState::Running;
        }
        if i % 3 == 2 {
            evs.push(run_event(id, 2, RunState::Running, RunState::Succeeded));
            rec.state = RunState::Succeeded;
        }
        store.append(id, &lease, &evs).await.unwrap();
        runs.push(rec);
    }
    runs
}

/// The runs of `runs` `query` keeps, newest first (by creation time, then id).
fn reference(runs: &[RunRecord], query: &RunQuery) -> Vec<RunId> {
    let mut kept: Vec<&RunRecord> = runs.iter().filter(|r| query.matches(r)).collect();
    kept.sort_by_key(|r| std::cmp::Reverse(RunCursor::after_run(r)));
    kept.iter().map(|r| r.id).collect()
}

/// Runs list newest first (creation time, then id) under every filter and any mix of
/// them, page after page through the cursor or `before`, with nothing missed or
/// repeated; `count_runs` counts by state under the same filters; a malformed cursor
/// or id filter is [`StoreError::BadQuery`].
pub async fn run_queries_filter_page_and_count(store: Arc<dyn Store>) {
    let runs = seeded(&*store).await;
    let base = runs[0].created_at;
    let some = runs[13].id.to_uuid_string();
    let queries = [
        RunQuery::new(),
        RunQuery::new().workflow("alpha"),
        RunQuery::new().states([RunState::Pending, RunState::Succeeded]),
        RunQuery::new().workflow("beta").state(RunState::Running),
        RunQuery::new()
            .state(RunState::Running)
            .states([RunState::Succeeded]),
        RunQuery::new().version("2"),
        RunQuery::new().workflow("alpha").version("1"),
        RunQuery::new()
            .created_from(base + Duration::from_secs(5))
            .created_to(base + Duration::from_secs(12)),
        RunQuery::new().idempotency_key("key-7"),
        RunQuery::new().queue("lane-a"),
        RunQuery::new().queue("lane-a").state(RunState::Pending),
        RunQuery::new().id_prefix(&some[..10]),
        RunQuery::new().id_prefix(some.to_ascii_uppercase()),
        RunQuery::new().id_contains(&some[24..34]),
        RunQuery::new().workflow("nobody"),
    ];
    for q in &queries {
        let want = reference(&runs, q);
        assert_eq!(all_pages(&*store, q, 4, false).await, want, "{q:?}");
        assert_eq!(
            all_pages(&*store, q, 7, true).await,
            want,
            "{q:?} by `before`"
        );
        let counts = store.count_runs(&q.clone().limit(1)).await.unwrap();
        let mut expected = RunCounts::default();
        for r in runs.iter().filter(|r| q.matches(r)) {
            expected.add(r.state, 1);
        }
        for s in [RunState::Pending, RunState::Running, RunState::Succeeded] {
            assert_eq!(counts.get(s), expected.get(s), "{q:?}: {s:?}");
        }
        assert_eq!(counts.total(), want.len() as u64, "{q:?}");
    }
    assert!(
        !reference(&runs, &queries[11]).is_empty() && !reference(&runs, &queries[13]).is_empty()
    );
    // The default page and a cursor from its text.
    let page = store.list_runs(&RunQuery::new().limit(0)).await.unwrap();
    assert_eq!(page.items.len(), 30);
    let first = store.list_runs(&RunQuery::new().limit(3)).await.unwrap();
    let text = first.cursor.unwrap().to_string();
    let second = store
        .list_runs(&RunQuery::new().limit(3).cursor(text.parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(second.items[0].id, reference(&runs, &RunQuery::new())[3]);
    // Bad input is a typed error naming what is wrong.
    for q in [
        RunQuery::new().id_prefix("zz"),
        RunQuery::new().id_contains(""),
        RunQuery::new().workflow("w".repeat(2000)),
    ] {
        assert!(
            matches!(store.list_runs(&q).await, Err(StoreError::BadQuery { .. })),
            "{q:?}"
        );
        assert!(
            matches!(store.count_runs(&q).await, Err(StoreError::BadQuery { .. })),
            "{q:?}"
        );
    }
    assert!(matches!(
        "nope".parse::<RunCursor>(),
        Err(StoreError::BadQuery {
            what: "run cursor",
            ..
        })
    ));
}

/// A run's executions page by (node, item with the node's own row first, attempt),
/// filtered by node, item or items only, and are counted under the same filters.
pub async fn executions_page_and_count(store: Arc<dyn Store>) {
    use NodeState::*;
    let (rec, lease) = started(&*store, "wf").await;
    let id = rec.id;
    let mut evs = Vec::new();
    let mut seq = 2;
    let mut push = |evs: &mut Vec<Event>, n: NodeEvent| {
        evs.push(node(id, seq, n));
        seq += 1;
    };
    for n in (0..12).rev() {
        let name = format!("n{n:02}");
        push(&mut evs, NodeEvent::new(&*name, None, 1, Ready, Running));
        push(
            &mut evs,
            NodeEvent::new(&*name, None, 1, Running, Succeeded),
        );
    }
    push(&mut evs, NodeEvent::new("fan", None, 0, Pending, Running));
    for item in (0..25).rev() {
        push(
            &mut evs,
            NodeEvent::new("fan", Some(item), 1, Ready, Running),
        );
        if item % 4 == 0 {
            push(
                &mut evs,
                NodeEvent::new("fan", Some(item), 1, Running, Retrying),
            );
            push(
                &mut evs,
                NodeEvent::new("fan", Some(item), 2, Ready, Running),
            );
        }
    }
    store.append(id, &lease, &evs).await.unwrap();
    let mut all: Vec<ExecutionRecord> = store.executions(id).await.unwrap();
    let key = |e: &ExecutionRecord| (e.node.clone(), e.item.map_or(-1, i64::from), e.attempt);
    all.sort_by_key(key);
    let queries = [
        ExecutionQuery::new(),
        ExecutionQuery::new().node("fan"),
        ExecutionQuery::new().items_of("fan"),
        ExecutionQuery::new().node("fan").item(8),
        ExecutionQuery::new().item(3),
        ExecutionQuery::new().node("n05"),
        ExecutionQuery::new().node("none"),
    ];
    for q in &queries {
        let want: Vec<_> = all.iter().filter(|e| q.matches(e)).map(key).collect();
        let mut got = Vec::new();
        let mut page_q = q.clone().limit(6);
        loop {
            let page = store.executions_page(id, &page_q).await.unwrap();
            assert!(page.items.len() <= 6);
            got.extend(page.items.iter().map(key));
            match page.next {
                Some(c) => page_q = page_q.after(c.to_string().parse().unwrap()),
                None => break,
            }
        }
        assert_eq!(got, want, "{q:?}");
        let n = store.count_executions(id, q).await.unwrap();
        assert_eq!(n, want.len() as u64, "{q:?}");
    }
    let fan = store
        .executions_page(id, &ExecutionQuery::new().items_of("fan").limit(1000))
        .await
        .unwrap();
    assert_eq!(fan.items.len(), 25 + 7);
    assert_eq!(fan.items[0].item, Some(0));
    assert_eq!(fan.items[1].attempt, 2);
    assert_eq!(fan.items[1].state, Running);
    assert!(matches!(
        store
            .executions_page(RunId::new(), &ExecutionQuery::new())
            .await,
        Err(StoreError::UnknownRun(_))
    ));
}

/// A run's log lines read back in order, filtered by node, item, attempt and
/// minimum level, paged forward by sequence number and tailed.
pub async fn logs_filter_page_and_tail(store: Arc<dyn Store>) {
    let (rec, lease) = started(&*store, "wf").await;
    let id = rec.id;
    let levels = [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ];
    let mut evs = Vec::new();
    for i in 0..120u64 {
        let seq = 2 + i;
        evs.push(if i % 7 == 3 {
            node(
                id,
                seq,
                NodeEvent::new("a", None, 1, NodeState::Ready, NodeState::Running),
            )
        } else {
            Event::new(
                id,
                seq,
                SystemTime::now(),
                EventKind::Log {
                    node: if i % 2 == 0 { "a" } else { "b" }.into(),
                    item: (i % 3 != 0).then_some((i % 4) as u32),
                    attempt: 1 + (i % 2) as u32,
                    level: levels[(i % 5) as usize],
                    message: format!("line {i} <b>&amp;</b>"),
                },
            )
        });
    }
    store.append(id, &lease, &evs[..60]).await.unwrap();
    store.append(id, &lease, &evs[60..]).await.unwrap();
    let recorded = store.events(id, 0, 1000).await.unwrap();
    let queries = [
        LogQuery::new(),
        LogQuery::new().node("a"),
        LogQuery::new().node("b").item(1),
        LogQuery::new().attempt(2),
        LogQuery::new().min_level(LogLevel::Warn),
        LogQuery::new()
            .node("a")
            .min_level(LogLevel::Info)
            .attempt(1),
        LogQuery::new().node("c"),
    ];
    for q in &queries {
        let want: Vec<_> = recorded.iter().filter_map(|e| q.line(e)).collect();
        let mut got = Vec::new();
        let mut page_q = q.clone().limit(9);
        loop {
            let page = store.logs(id, &page_q).await.unwrap();
            assert!(page.len() <= 9);
            let Some(last) = page.last() else { break };
            page_q = page_q.after(last.seq);
            got.extend(page);
        }
        assert_eq!(got, want, "{q:?}");
        let tail = store.logs(id, &q.clone().tail(5)).await.unwrap();
        let from = want.len().saturating_sub(5);
        assert_eq!(tail, want[from..], "{q:?} tail");
    }
    let mid = store
        .logs(id, &LogQuery::new().after(50).limit(2))
        .await
        .unwrap();
    assert!(mid.iter().all(|l| l.seq > 50) && mid.len() == 2);
    assert_eq!(
        mid[0].message,
        format!("line {} <b>&amp;</b>", mid[0].seq - 2)
    );
    assert!(matches!(
        store.logs(RunId::new(), &LogQuery::new()).await,
        Err(StoreError::UnknownRun(_))
    ));
}
