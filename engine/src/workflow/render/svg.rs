//! A self-contained SVG drawing of the grouped layout ([`super::grouped`]), the one
//! the dashboard draws its run view from.

use std::collections::HashMap;
use std::fmt::Write;

use super::grouped::{self, BOX_H, BOX_W, Layout};
use super::{EdgeKind, Graph, States, node_notes, trigger_label};
use crate::state::NodeState;
use crate::workflow::WorkflowSpec;

const FONT: f64 = 12.0;
/// Height of the band holding the title, above the drawing.
const TITLE_H: f64 = 28.0;
const MARGIN: f64 = 20.0;
/// Characters of a box's first line (the node's id or the group's name) and second
/// line (job, state, notes or counters) before they are shortened; the full text is
/// in the box's tooltip.
const HEAD_CHARS: usize = 23;
const SUB_CHARS: usize = 27;
/// Edge labels longer than this many characters are shortened.
const MAX_CHARS: usize = 42;
/// Members of a group named in its tooltip.
const TIP_MEMBERS: usize = 20;

/// The workflow as a standalone SVG document, drawn from the same grouped layout as
/// the dashboard's run view (longest-path layers ordered against crossings; six or
/// more siblings of one job in a layer drawn as one group box; layers wider than 12
/// boxes wrapped into rows), so it stays readable for large workflows: arrows, data
/// edges solid, order-only edges dashed, fan-out edges bold with stacked boxes; edge
/// labels say what flows or what is tested.
///
/// With `states` (a run's node states by node id), boxes are filled by state and say
/// it (a group by its counters), and a legend lists the states present.
pub fn svg(spec: &WorkflowSpec, states: Option<&States<'_>>) -> String {
    let nodes: Vec<NodeText<'_>> = spec
        .nodes
        .iter()
        .map(|n| {
            let mut notes: Vec<String> = trigger_label(n.trigger)
                .map(|t| format!("trigger: {t}"))
                .into_iter()
                .collect();
            notes.extend(
                n.conditions
                    .iter()
                    .filter(|c| c.on.is_none())
                    .map(|c| format!("when {}", c.predicate)),
            );
            NodeText {
                id: &n.id,
                job: &n.job,
                notes,
            }
        })
        .collect();
    let title = format!("{} v{}", spec.name, spec.version);
    draw(&title, &grouped::layout(spec), &nodes, states)
}

/// Fill and stroke for a node in `state`.
fn colours(state: Option<NodeState>) -> (&'static str, &'static str) {
    match state {
        None => ("#f5f7fa", "#5b6b7f"),
        Some(NodeState::Pending) => ("#eceff1", "#90a4ae"),
        Some(NodeState::Ready) => ("#e3f2fd", "#64b5f6"),
        Some(NodeState::Running) => ("#bbdefb", "#1e88e5"),
        Some(NodeState::Retrying) => ("#fff3e0", "#fb8c00"),
        Some(NodeState::Succeeded) => ("#c8e6c9", "#43a047"),
        Some(NodeState::Failed) => ("#ffcdd2", "#e53935"),
        Some(NodeState::TimedOut) => ("#ffccbc", "#d84315"),
        Some(NodeState::Skipped) => ("#f5f5f5", "#bdbdbd"),
        Some(NodeState::Cancelled) => ("#e0e0e0", "#616161"),
        // `NodeState` may grow; an unknown state is drawn neutral.
        #[allow(unreachable_patterns)]
        Some(_) => ("#f5f7fa", "#5b6b7f"),
    }
}

impl Graph {
    /// The graph as a standalone SVG document (see [`svg`]).
    pub fn to_svg(&self, states: Option<&States<'_>>) -> String {
        let nodes: Vec<NodeText<'_>> = self
            .nodes
            .iter()
            .map(|n| {
                let mut notes = node_notes(n);
                notes.extend(n.conditions.iter().map(|c| format!("when {c}")));
                NodeText {
                    id: &n.id,
                    job: &n.job,
                    notes,
                }
            })
            .collect();
        let title = format!("{} v{}", self.name, self.version);
        draw(&title, &grouped::compute(self), &nodes, states)
    }
}

/// What a node's box says besides its state.
struct NodeText<'a> {
    id: &'a str,
    job: &'a str,
    /// Trigger rule and conditions, when not the defaults.
    notes: Vec<String>,
}

/// The state `name` (as [`NodeState::as_str`] writes it).
fn named(name: &str) -> Option<NodeState> {
    NodeState::ALL.into_iter().find(|s| s.as_str() == name)
}

/// Draws `layout` (boxes at its places, under a title band, above a legend) with the
/// texts of `nodes` (in spec order) and their `states`.
fn draw(
    title: &str,
    layout: &Layout,
    nodes: &[NodeText<'_>],
    states: Option<&States<'_>>,
) -> String {
    let state_of = |i: usize| states.and_then(|s| s.get(nodes[i].id).copied());
    // Each box's state: a node's own, a group's as the dashboard shows it.
    let box_state: Vec<Option<NodeState>> = layout
        .boxes
        .iter()
        .map(|b| match (states, b.is_group()) {
            (None, _) => None,
            (Some(_), false) => state_of(b.members[0]),
            (Some(_), true) => named(grouped::aggregate(
                b.members
                    .iter()
                    .map(|&i| state_of(i).map_or("pending", NodeState::as_str)),
            )),
        })
        .collect();
    let present: Vec<NodeState> = NodeState::ALL
        .into_iter()
        .filter(|s| states.is_some_and(|m| m.values().any(|v| v == s)))
        .collect();
    let legend_h = if present.is_empty() { 0.0 } else { 28.0 };
    let total_w = layout.width.max(MARGIN * 2.0 + 90.0 * present.len() as f64);
    let total_h = TITLE_H + layout.height + legend_h;
    let centre = |b: usize| layout.boxes[b].x + BOX_W / 2.0;

    let mut s = String::new();
    let _ = writeln!(s, "<g transform=\"translate(0,{TITLE_H})\">");
    // Edges: from the bottom of the upstream box to the top of the downstream one.
    // Labels go in their own group, drawn over the edges.
    s.push_str("<g class=\"edges\" fill=\"none\">\n");
    let mut edge_labels = String::new();
    let mut labels: Vec<(f64, f64, f64, f64)> = Vec::new();
    for e in &layout.edges {
        let (f, t) = (&layout.boxes[e.from], &layout.boxes[e.to]);
        let (x0, y0, x1, y1) = (centre(e.from), f.y + BOX_H, centre(e.to), t.y);
        let my = (y0 + y1) / 2.0;
        let dash = if e.kind == EdgeKind::Order {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let stroke_w = if e.fan_out { 2.6 } else { 1.4 };
        let count = if e.count > 1 {
            format!(" ({} edges)", e.count)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "<path class=\"edge {}{}\" d=\"M{x0:.1},{y0:.1} C{x0:.1},{my:.1} {x1:.1},{my:.1} {x1:.1},{y1:.1}\" stroke=\"#546e7a\" stroke-width=\"{stroke_w}\"{dash} marker-end=\"url(#df-arrow)\"><title>{} → {}{count}</title></path>",
            match e.kind {
                EdgeKind::Data => "data",
                EdgeKind::Order => "order",
            },
            if e.fan_out { " fan-out" } else { "" },
            xml(&f.label),
            xml(&t.label),
        );
        if !e.label.is_empty() {
            // Above the arrow head; moved up while it would cover an earlier label.
            let label = shorten(&e.label);
            let lw = label.chars().count() as f64 * 6.0 + 6.0;
            let (lx, mut ly) = (x0 + (x1 - x0) * 0.55 + 4.0, y0 + (y1 - y0) * 0.55);
            let overlaps = |ly: f64, placed: &[(f64, f64, f64, f64)]| {
                placed.iter().any(|&(a, b, c, d)| {
                    lx - 3.0 < c && a < lx - 3.0 + lw && ly - 10.0 < d && b < ly + 4.0
                })
            };
            while overlaps(ly, &labels) && ly > y0 + 12.0 {
                ly -= 15.0;
            }
            labels.push((lx - 3.0, ly - 10.0, lx - 3.0 + lw, ly + 4.0));
            let _ = writeln!(
                edge_labels,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{lw:.1}\" height=\"14\" rx=\"3\" fill=\"#ffffff\" fill-opacity=\"0.85\"/>\
                 <text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"10\" fill=\"#37474f\">{}</text>",
                lx - 3.0,
                ly - 10.0,
                xml(&label)
            );
        }
    }
    s.push_str("</g>\n<g class=\"edge-labels\">\n");
    s.push_str(&edge_labels);
    s.push_str("</g>\n");

    // Boxes.
    s.push_str("<g class=\"nodes\">\n");
    for (k, b) in layout.boxes.iter().enumerate() {
        let state = box_state[k];
        let (fill, stroke) = colours(state);
        let (left, top, cx) = (b.x, b.y, b.x + BOX_W / 2.0);
        let (head, sub, tip) = if b.is_group() {
            let sub = match states {
                Some(_) => {
                    let mut c: HashMap<&str, usize> = HashMap::new();
                    for &i in &b.members {
                        *c.entry(state_of(i).map_or("pending", NodeState::as_str))
                            .or_default() += 1;
                    }
                    grouped::counters(&c)
                }
                None => format!("{} nodes of {}", b.members.len(), b.job),
            };
            let mut tip = format!("{} ({}):", b.label, b.job);
            for &i in b.members.iter().take(TIP_MEMBERS) {
                let _ = write!(tip, " {}", nodes[i].id);
            }
            if b.members.len() > TIP_MEMBERS {
                let _ = write!(tip, " … and {} more", b.members.len() - TIP_MEMBERS);
            }
            let _ = write!(
                s,
                "<g class=\"node group{}\" data-group=\"{}\" data-nodes=\"{}\"{}>",
                if b.fan_out { " fan-out" } else { "" },
                xml(&b.job),
                b.members.len(),
                state_attr(state),
            );
            (b.label.as_str(), sub, tip)
        } else {
            let n = &nodes[b.members[0]];
            let mut sub = vec![n.job.to_owned()];
            sub.extend(state.map(|st| st.as_str().to_owned()));
            sub.extend(n.notes.iter().cloned());
            let mut tip = format!("{} ({})", n.id, n.job);
            if let Some(st) = state {
                let _ = write!(tip, ": {}", st.as_str());
            }
            for note in &n.notes {
                let _ = write!(tip, "; {note}");
            }
            let _ = write!(
                s,
                "<g class=\"node{}\" data-id=\"{}\"{}>",
                if b.fan_out { " fan-out" } else { "" },
                xml(n.id),
                state_attr(state),
            );
            (n.id, sub.join(" · "), tip)
        };
        let _ = write!(s, "<title>{}</title>", xml(&tip));
        if b.fan_out || b.is_group() {
            // A stack of cards: one execution per item, or several nodes.
            for k in [2.0, 1.0] {
                let _ = write!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{BOX_W:.1}\" height=\"{BOX_H:.1}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\"/>",
                    left + 3.0 * k,
                    top - 3.0 * k,
                );
            }
        }
        let _ = write!(
            s,
            "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{BOX_W:.1}\" height=\"{BOX_H:.1}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"/>\
             <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\" fill=\"#263238\">{}</text>\
             <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"{}\" fill=\"#455a64\">{}</text></g>",
            top + 19.0,
            xml(&grouped::short(head, HEAD_CHARS)),
            top + 36.0,
            FONT - 1.0,
            xml(&grouped::short(&sub, SUB_CHARS)),
        );
        s.push('\n');
    }
    s.push_str("</g>\n</g>\n");

    if !present.is_empty() {
        let y = total_h - MARGIN + 8.0;
        s.push_str("<g class=\"legend\" font-size=\"10\">\n");
        for (k, st) in present.iter().enumerate() {
            let (fill, stroke) = colours(Some(*st));
            let lx = MARGIN + 90.0 * k as f64;
            let _ = writeln!(
                s,
                "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" rx=\"2\" fill=\"{fill}\" stroke=\"{stroke}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#37474f\">{}</text>",
                y - 10.0,
                lx + 16.0,
                y,
                st.as_str()
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    let label_right = labels.iter().map(|l| l.2).fold(0.0, f64::max);
    let (w, h) = (total_w.max(label_right + MARGIN), total_h);
    let mut head = String::with_capacity(s.len() + 1024);
    head.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        head,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"Helvetica, Arial, sans-serif\" \
         font-size=\"{FONT}\">"
    );
    let _ = writeln!(head, "<title>{}</title>", xml(title));
    head.push_str(
        "<defs>\
         <marker id=\"df-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#546e7a\"/></marker>\
         </defs>\n",
    );
    let _ = writeln!(
        head,
        "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n\
         <text x=\"{MARGIN}\" y=\"{:.0}\" font-size=\"14\" font-weight=\"bold\" \
         fill=\"#263238\">{}</text>",
        MARGIN + 4.0,
        xml(title)
    );
    head.push_str(&s);
    head
}

/// ` data-state="…"` for a known state.
fn state_attr(state: Option<NodeState>) -> String {
    state
        .map(|st| format!(" data-state=\"{}\"", st.as_str()))
        .unwrap_or_default()
}

/// Shortens a label to `MAX_CHARS` characters with an ellipsis.
fn shorten(s: &str) -> String {
    if s.chars().count() <= MAX_CHARS {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX_CHARS - 1).collect();
        out.push('…');
        out
    }
}

/// Text or an attribute value as XML: markup characters escaped, characters XML 1.0
/// does not allow dropped.
pub(super) fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}
