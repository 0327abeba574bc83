//! The run page's timeline: one row per node attempt (items of a fan-out node on one
//! row, from the first start to the last end), bars placed on the run's clock, as SVG
//! (no inline style, so the pages' Content-Security-Policy holds).

use std::time::SystemTime;

use maud::{Markup, html};

use crate::store::ExecutionRecord;

/// Rows drawn at most (a larger run says how many were left out).
const MAX_ROWS: usize = 300;
const ROW_H: f64 = 18.0;
const LABEL_W: f64 = 200.0;
const WIDTH: f64 = 1000.0;

/// One bar: what, when, in which state.
struct Bar<'a> {
    label: String,
    from: SystemTime,
    to: SystemTime,
    state: &'a str,
}

/// The timeline of `executions` (node attempts, and each fan-out node's items as one
/// bar), ending at `now` for what still runs.
pub(super) fn timeline(executions: &[ExecutionRecord], now: SystemTime) -> Markup {
    let mut bars: Vec<Bar<'_>> = Vec::new();
    let mut items: std::collections::BTreeMap<&str, Bar<'_>> = Default::default();
    for e in executions {
        let Some(start) = e.started_at else { continue };
        let end = if e.state.is_terminal() {
            e.updated_at
        } else {
            now
        };
        match e.item {
            None if e.attempt > 0 => bars.push(Bar {
                label: format!("{} #{}", e.node, e.attempt),
                from: start,
                to: end.max(start),
                state: e.state.as_str(),
            }),
            None => {}
            Some(_) => {
                let bar = items.entry(e.node.as_str()).or_insert(Bar {
                    label: format!("{} (items)", e.node),
                    from: start,
                    to: end,
                    state: e.state.as_str(),
                });
                bar.from = bar.from.min(start);
                if end >= bar.to {
                    bar.to = end;
                    bar.state = e.state.as_str();
                }
            }
        }
    }
    bars.extend(items.into_values());
    if bars.is_empty() {
        return html! { p.dim { "Nothing has started yet." } };
    }
    bars.sort_by_key(|b| b.from);
    let left_out = bars.len().saturating_sub(MAX_ROWS);
    bars.truncate(MAX_ROWS);
    let t0 = bars.iter().map(|b| b.from).min().unwrap_or(now);
    let t1 = bars.iter().map(|b| b.to).max().unwrap_or(now);
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
    html! {
        details.timeline {
            summary { "Timeline " span.dim { "(" (bars.len()) " bars over " (super::page::duration(Some((span * 1000.0) as u64))) ")" } }
            svg.gantt xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (height) } width="100%" {
                @for (k, b) in bars.iter().enumerate() {
                    @let y = k as f64 * ROW_H + 4.0;
                    text x="4" y=(y + 12.0) { (b.label) }
                    rect class={ "bar st-" (b.state) } x=(x(b.from)) y=(y + 2.0) height=(ROW_H - 5.0)
                        width=((x(b.to) - x(b.from)).max(2.0)) {
                        title { (b.label) ": " (b.state) ", " (super::page::duration(Some(b.to.duration_since(b.from).unwrap_or_default().as_millis() as u64))) }
                    }
                }
            }
            @if left_out > 0 { p.dim { (left_out) " later bars left out." } }
        }
    }
}
