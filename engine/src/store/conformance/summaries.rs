//! Guarantees of [`RunQueries::node_summaries`](crate::store::RunQueries::node_summaries):
//! per node, its own latest execution, its items counted by the state of their
//! latest attempt, attempts and times, the same as summing up every execution.

use std::sync::Arc;

use serde_json::json;

use crate::error::{ErrorInfo, ErrorKind};
use crate::events::{Event, NodeEvent};
use crate::ids::RunId;
use crate::state::NodeState;
use crate::store::{NodeSummary, Store, StoreError, SummaryQuery};

use super::{node, started};

/// A fan-out node of 40 items (some retried, some failed, some still running), a node
/// retried to success with an output, a failed node and a node with only its pending
/// row; summed up whole, per node, with and without the latest executions.
pub async fn node_summaries_sum_up_executions(store: Arc<dyn Store>) {
    use NodeState::*;
    let (rec, lease) = started(&*store, "wf").await;
    let id = rec.id;
    let mut evs: Vec<Event> = Vec::new();
    let mut seq = 2;
    let mut push = |evs: &mut Vec<Event>, n: NodeEvent| {
        evs.push(node(id, seq, n));
        seq += 1;
    };
    push(&mut evs, NodeEvent::new("fan", None, 0, Pending, Running));
    for item in (0..40).rev() {
        push(
            &mut evs,
            NodeEvent::new("fan", Some(item), 1, Ready, Running),
        );
        match item % 5 {
            0 => {
                push(
                    &mut evs,
                    NodeEvent::new("fan", Some(item), 1, Running, Retrying),
                );
                push(
                    &mut evs,
                    NodeEvent::new("fan", Some(item), 2, Ready, Running),
                );
                push(
                    &mut evs,
                    NodeEvent::new("fan", Some(item), 2, Running, Succeeded),
                );
            }
            1 => {
                let mut e = NodeEvent::new("fan", Some(item), 1, Running, Failed);
                e.error = Some(Box::new(ErrorInfo::new(ErrorKind::Failed, "item broke")));
                push(&mut evs, e);
            }
            2 => {}
            _ => push(
                &mut evs,
                NodeEvent::new("fan", Some(item), 1, Running, Succeeded),
            ),
        }
    }
    push(&mut evs, NodeEvent::new("a", None, 1, Ready, Running));
    push(&mut evs, NodeEvent::new("a", None, 1, Running, Retrying));
    push(&mut evs, NodeEvent::new("a", None, 2, Ready, Running));
    let mut done = NodeEvent::new("a", None, 2, Running, Succeeded);
    done.output = Some(Arc::new(json!({"rows": 3, "text": "<b>x</b>"})));
    push(&mut evs, done);
    push(&mut evs, NodeEvent::new("b", None, 1, Ready, Running));
    let mut failed = NodeEvent::new("b", None, 1, Running, Failed);
    failed.error = Some(Box::new(ErrorInfo::new(ErrorKind::Failed, "boom")));
    push(&mut evs, failed);
    push(&mut evs, NodeEvent::new("c", None, 0, Pending, Ready));
    store.append(id, &lease, &evs[..50]).await.unwrap();
    store.append(id, &lease, &evs[50..]).await.unwrap();

    let all = store
        .node_summaries(id, &SummaryQuery::new())
        .await
        .unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.node.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "fan"], "one summary per node, by id");
    assert!(
        all.iter().all(|s| s.latest.is_none()),
        "latest only when asked"
    );
    let fan = &all[3];
    assert_eq!(
        (fan.state, fan.attempt, fan.own_executions),
        (Some(Running), 0, 1)
    );
    assert_eq!(fan.items, 40);
    assert_eq!(fan.items_in(Succeeded), 24, "{fan:?}");
    assert_eq!(fan.items_in(Failed), 8, "{fan:?}");
    assert_eq!(fan.items_in(Running), 8, "{fan:?}");
    assert_eq!(
        fan.items_in(Retrying),
        0,
        "a retried item counts by its latest attempt"
    );
    assert_eq!(fan.item_executions, 48);
    assert_eq!(fan.max_item_attempt, 2);
    assert!(fan.started_at.is_some() && fan.updated_at >= fan.started_at);
    let a = &all[0];
    assert_eq!(
        (a.state, a.attempt, a.own_executions),
        (Some(Succeeded), 2, 2)
    );
    assert_eq!((a.items, a.item_executions, a.max_item_attempt), (0, 0, 0));
    assert!(a.item_states.is_empty());
    assert_eq!((all[1].state, all[1].attempt), (Some(Failed), 1));
    let c = &all[2];
    assert_eq!((c.state, c.attempt, c.started_at), (Some(Ready), 0, None));
    assert!(c.updated_at.is_some());

    let whole = store
        .node_summaries(id, &SummaryQuery::new().with_latest())
        .await
        .unwrap();
    let latest = |s: &NodeSummary| s.latest.clone().expect("latest asked for");
    let a = latest(&whole[0]);
    assert_eq!((a.attempt, a.state), (2, Succeeded));
    assert_eq!(a.output, Some(json!({"rows": 3, "text": "<b>x</b>"})));
    let b = latest(&whole[1]);
    assert_eq!(b.error.map(|e| e.message), Some("boom".to_owned()));
    assert_eq!(
        latest(&whole[3]).item,
        None,
        "a node's own row, not an item's"
    );

    let one = store
        .node_summaries(id, &SummaryQuery::new().node("fan").with_latest())
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let mut plain = one[0].clone();
    plain.latest = None;
    let mut want = fan.clone();
    want.item_states.sort_by_key(|(s, _)| s.as_str());
    plain.item_states.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(plain, want, "one node summed up as among all");
    let none = store
        .node_summaries(id, &SummaryQuery::new().node("nope"))
        .await
        .unwrap();
    assert!(none.is_empty(), "a node without executions has no summary");
    assert!(matches!(
        store
            .node_summaries(RunId::new(), &SummaryQuery::new())
            .await,
        Err(StoreError::UnknownRun(_))
    ));
    assert!(matches!(
        store
            .node_summaries(id, &SummaryQuery::new().node("x".repeat(2000)))
            .await,
        Err(StoreError::BadQuery { .. })
    ));
}
