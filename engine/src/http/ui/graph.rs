//! The run view's drawing of a workflow: the grouped layout of
//! [`crate::workflow::render`] (layers, groups of siblings, wrapped rows; computed once
//! per workflow version and cached there, and the one `graph --format svg` draws too),
//! drawn as SVG whose boxes the page's script patches. States are classes (styled by
//! the stylesheet), so a patch changes a class and a counter line, nothing else.

use std::collections::HashMap;

use maud::{Markup, html};

use crate::workflow::render::grouped::{BOX_H as H, BOX_W as W, aggregate, counters, short};
pub(super) use crate::workflow::render::grouped::{DrawnBox, Layout, layout};

/// Characters of a label before it is shortened.
const LABEL: usize = 24;

/// The drawing of `layout` as an inline SVG: `states` holds each spec node's state
/// (`None` for a workflow without a run); `items` a fan-out node's item counts by
/// state, by spec index.
pub(super) fn svg(
    layout: &Layout,
    states: Option<&[&str]>,
    items: &HashMap<usize, HashMap<&str, usize>>,
) -> Markup {
    let state_of = |b: &DrawnBox| -> &'static str {
        match states {
            None => "none",
            Some(st) => aggregate(b.members.iter().map(|&i| st[i])),
        }
    };
    let centre_x = |b: &DrawnBox| b.x + W / 2.0;
    let sub: Vec<String> = layout
        .boxes
        .iter()
        .map(|b| match states {
            Some(sts) if b.is_group() => {
                let mut c: HashMap<&str, usize> = HashMap::new();
                for &i in &b.members {
                    *c.entry(sts[i]).or_default() += 1;
                }
                counters(&c)
            }
            _ if b.is_group() => format!("{} nodes", b.members.len()),
            _ => match (items.get(&b.members[0]), states) {
                (Some(c), _) => counters(c),
                (None, Some(_)) => state_of(b).to_owned(),
                (None, None) => short(&b.job, LABEL),
            },
        })
        .collect();
    html! {
        svg #graph xmlns="http://www.w3.org/2000/svg" width=(layout.width) height=(layout.height)
            viewBox={ "0 0 " (layout.width) " " (layout.height) } {
            g.edges {
                @for e in &layout.edges {
                    @let (f, t) = (&layout.boxes[e.from], &layout.boxes[e.to]);
                    @let (x1, y1, x2, y2) = (centre_x(f), f.y + H, centre_x(t), t.y);
                    @let mid = (y1 + y2) / 2.0;
                    path d={ "M" (x1) " " (y1) "C" (x1) " " (mid) " " (x2) " " (mid) " " (x2) " " (y2) } {}
                }
            }
            g.nodes {
                @for (k, b) in layout.boxes.iter().enumerate() {
                    @let st = state_of(b);
                    g class={ "n st-" (st) @if b.is_group() { " group" } @if b.fan_out { " fan" } }
                        data-b=(k) transform={ "translate(" (b.x) "," (b.y) ")" } {
                        title { (b.label) " (" (b.job) ")" }
                        @if b.fan_out { rect.stack x="4" y="-4" width=(W) height=(H) rx="6" {} }
                        rect.box width=(W) height=(H) rx="6" {}
                        text.id x="9" y="18" { (short(&b.label, LABEL)) }
                        text.sub x="9" y="35" { (sub[k]) }
                    }
                }
            }
        }
    }
}

/// The index the page's script patches with: each spec node's id, box and state.
#[derive(Debug, serde::Serialize)]
pub(super) struct Index<'a> {
    /// Node ids, in spec order.
    pub(super) ids: Vec<&'a str>,
    /// Each node's box.
    pub(super) boxes: &'a [usize],
    /// Each node's state.
    pub(super) states: Vec<&'a str>,
    /// Whether each box is a group.
    pub(super) groups: Vec<bool>,
    /// Item counts by state of the fan-out nodes, by spec index.
    pub(super) items: HashMap<usize, HashMap<&'a str, usize>>,
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::{layout, svg};
    use crate::workflow::WorkflowSpec;

    #[test]
    fn labels_are_escaped_and_states_are_classes() {
        let backoff = serde_json::to_value(crate::job::Backoff::default()).unwrap();
        let node = json!({
            "id": "<script>x</script>\"", "job": "j", "depends_on": [], "input": null,
            "fields": [], "fan_out": null, "conditions": [], "trigger": "all_success",
            "retries": 0, "backoff": backoff, "timeout_ms": null, "priority": 0,
            "concurrency": null
        });
        let s: WorkflowSpec = serde_json::from_value(
            json!({"name": "evil", "version": "1", "params": [], "nodes": [node]}),
        )
        .unwrap();
        let drawn = svg(&layout(&s), Some(&["running"]), &HashMap::new()).into_string();
        assert!(!drawn.contains("<script>"), "{drawn}");
        assert!(drawn.contains("&lt;script&gt;"), "{drawn}");
        assert!(drawn.contains("st-running"));
    }
}
