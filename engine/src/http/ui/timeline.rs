//! The run page's timeline: one row per node attempt (items of a fan-out node on one
//! row, from the first start to the last change), bars placed on the run's clock, as
//! SVG (no inline style, so the pages' Content-Security-Policy holds).
//!
//! Each row carries its key and times (`data-key`, `data-from`, `data-to`, ms since
//! the epoch; `data-live` while it runs) and the drawing the server's clock
//! (`data-now`): the page's script (`run.js`) adds rows, ends bars and stretches the
//! running ones as the run's events arrive, and lays the bars out again.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use maud::{Markup, html};

use crate::store::ExecutionRecord;

/// Rows drawn at most (a larger run says how many were left out); the script adds
/// no more than this either.
pub(super) const MAX_ROWS: usize = 300;
const ROW_H: f64 = 18.0;
const LABEL_W: f64 = 200.0;
const WIDTH: f64 = 1000.0;

/// One bar: what, when, in which state.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Bar {
    /// `a:{node}:{attempt}` for an attempt, `i:{node}` for a node's items (the
    /// script finds the row an event belongs to by it).
    pub(super) key: String,
    /// What the row says.
    pub(super) label: String,
    pub(super) from: SystemTime,
    /// The end, or `None` while it runs.
    pub(super) to: Option<SystemTime>,
    pub(super) state: &'static str,
}

impl Bar {
    /// The bar of a node's own attempt.
    pub(super) fn attempt(
        node: &str,
        attempt: u32,
        from: SystemTime,
        to: Option<SystemTime>,
        state: &'static str,
    ) -> Self {
        Bar {
            key: format!("a:{node}:{attempt}"),
            label: format!("{node} #{attempt}"),
            from,
            to: to.map(|t| t.max(from)),
            state,
        }
    }

    /// The bar of a fan-out node's items.
    pub(super) fn items(
        node: &str,
        from: SystemTime,
        to: Option<SystemTime>,
        state: &'static str,
    ) -> Self {
        Bar {
            key: format!("i:{node}"),
            label: format!("{node} (items)"),
            from,
            to: to.map(|t| t.max(from)),
            state,
        }
    }
}

/// The bars of `executions`: each started attempt of a node, and each fan-out node's
/// items as one bar ending with the last one to change, in its state.
pub(super) fn bars_of(executions: &[ExecutionRecord]) -> Vec<Bar> {
    let mut bars: Vec<Bar> = Vec::new();
    let mut items: BTreeMap<&str, Bar> = BTreeMap::new();
    for e in executions {
        let Some(start) = e.started_at else { continue };
        let end = e.state.is_terminal().then_some(e.updated_at);
        match e.item {
            None if e.attempt > 0 => {
                bars.push(Bar::attempt(
                    &e.node,
                    e.attempt,
                    start,
                    end,
                    e.state.as_str(),
                ));
            }
            None => {}
            Some(_) => {
                let bar = items
                    .entry(e.node.as_str())
                    .or_insert_with(|| Bar::items(&e.node, start, end, e.state.as_str()));
                bar.from = bar.from.min(start);
                let last = bar.to.unwrap_or(bar.from);
                if end.is_none() || e.updated_at >= last {
                    bar.state = e.state.as_str();
                }
                bar.to = match (bar.to, end) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
        }
    }
    bars.extend(items.into_values());
    bars
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The timeline of `bars`, the running ones ending at `now`.
pub(super) fn timeline(mut bars: Vec<Bar>, now: SystemTime) -> Markup {
    bars.sort_by_key(|b| b.from);
    let left_out = bars.len().saturating_sub(MAX_ROWS);
    bars.truncate(MAX_ROWS);
    let end = |b: &Bar| b.to.unwrap_or(now).max(b.from);
    let t0 = bars.iter().map(|b| b.from).min().unwrap_or(now);
    let t1 = bars.iter().map(end).max().unwrap_or(now);
    let span = t1
        .duration_since(t0)
        .unwrap_or_default()
        .as_secs_f64()
        .max(0.001);
    let x = |t: SystemTime| {
        LABEL_W
            + t.duration_since(t0).unwrap_or_default().as_secs_f64() / span
                * (WIDTH - LABEL_W - 10.0)
    };
    let height = bars.len() as f64 * ROW_H + 24.0;
    let took = |b: &Bar| {
        let d = end(b)
            .duration_since(b.from)
            .unwrap_or_default()
            .as_millis();
        super::page::duration(Some(u64::try_from(d).unwrap_or(u64::MAX)))
    };
    html! {
        details.timeline #timeline {
            summary {
                "Timeline " span.dim #timeline-note {
                    "(" span #timeline-bars { (bars.len()) } " bars over "
                    span #timeline-span { (super::page::duration(Some((span * 1000.0) as u64))) } ")"
                }
            }
            p.dim #timeline-empty hidden[!bars.is_empty()] { "Nothing has started yet." }
            svg.gantt #gantt xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (height) }
                width="100%" data-now=(ms(now)) data-max=(MAX_ROWS) {
                @for (k, b) in bars.iter().enumerate() {
                    @let y = k as f64 * ROW_H + 4.0;
                    g.row data-key=(b.key) data-from=(ms(b.from)) data-to=(ms(end(b)))
                        data-live=[b.to.is_none().then_some("1")] {
                        text x="4" y=(y + 12.0) { (b.label) }
                        rect class={ "bar st-" (b.state) } x=(x(b.from)) y=(y + 2.0) height=(ROW_H - 5.0)
                            width=((x(end(b)) - x(b.from)).max(2.0)) {
                            title { (b.label) ": " (b.state) ", " (took(b)) }
                        }
                    }
                }
            }
            p.dim #timeline-left hidden[left_out == 0] { span { (left_out) } " later bars left out." }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{Bar, MAX_ROWS, timeline};

    #[test]
    fn rows_carry_their_keys_and_times_and_are_escaped() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let bars = vec![
            Bar::attempt(
                "<b>n</b>\"",
                1,
                t,
                Some(t + Duration::from_secs(2)),
                "succeeded",
            ),
            Bar::items("fan", t + Duration::from_secs(1), None, "running"),
        ];
        let out = timeline(bars, t + Duration::from_secs(4)).into_string();
        assert!(!out.contains("<b>n"), "{out}");
        assert!(
            out.contains("data-key=\"a:&lt;b&gt;n&lt;/b&gt;&quot;:1\""),
            "{out}"
        );
        assert!(
            out.contains("data-from=\"1000000\" data-to=\"1002000\""),
            "{out}"
        );
        // The running bar ends now, and says it runs.
        assert!(
            out.contains("data-from=\"1001000\" data-to=\"1004000\" data-live=\"1\""),
            "{out}"
        );
        assert!(out.contains("data-now=\"1004000\""), "{out}");
        assert!(out.contains("id=\"timeline-empty\" hidden"), "{out}");
    }

    #[test]
    fn empty_and_overlong_timelines() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        let out = timeline(Vec::new(), t).into_string();
        assert!(!out.contains("id=\"timeline-empty\" hidden"), "{out}");
        let many: Vec<Bar> = (0..MAX_ROWS as u64 + 7)
            .map(|i| Bar::attempt("n", 1, t + Duration::from_millis(i), None, "running"))
            .collect();
        let out = timeline(many, t + Duration::from_secs(1)).into_string();
        assert_eq!(out.matches("<g class=\"row\"").count(), MAX_ROWS);
        assert!(out.contains("<span>7</span> later bars left out."), "{out}");
    }
}
