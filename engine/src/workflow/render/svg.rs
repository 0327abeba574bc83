//! A self-contained SVG drawing with a layered layout.

use std::collections::HashMap;
use std::fmt::Write;

use super::layout::Layers;
use super::{EdgeKind, Graph, States, node_notes};
use crate::state::NodeState;
use crate::workflow::WorkflowSpec;

const FONT: f64 = 12.0;
/// Average advance of a character at `FONT` (a sans-serif estimate; labels get slack).
const CHAR_W: f64 = 7.0;
const LINE_H: f64 = 16.0;
const PAD_X: f64 = 14.0;
const PAD_Y: f64 = 8.0;
const GAP_X: f64 = 36.0;
const GAP_Y: f64 = 64.0;
const MARGIN: f64 = 24.0;
const DUMMY_W: f64 = 12.0;
/// Labels longer than this many characters are shortened (the full text is in the
/// tooltip).
const MAX_CHARS: usize = 42;

/// The workflow as a standalone SVG document: layered top to bottom (longest-path
/// layers, barycenter ordering against crossings), arrows, data edges solid, order-only
/// edges dashed, fan-out edges bold with stacked node boxes; edge labels say what
/// flows or what is tested.
///
/// With `states` (a run's node states by node id), nodes are filled by state and show
/// it, and a legend lists the states present.
pub fn svg(spec: &WorkflowSpec, states: Option<&States<'_>>) -> String {
    Graph::from_spec(spec).to_svg(states)
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
        let index: HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let pairs: Vec<(usize, usize)> = self
            .edges
            .iter()
            .filter_map(|e| Some((*index.get(e.from.as_str())?, *index.get(e.to.as_str())?)))
            .collect();
        // Edges whose ends are both known, in the order of `pairs`.
        let edges: Vec<_> = self
            .edges
            .iter()
            .filter(|e| index.contains_key(e.from.as_str()) && index.contains_key(e.to.as_str()))
            .collect();
        let layers = Layers::build(self.nodes.len(), &pairs);

        let state_of = |i: usize| states.and_then(|s| s.get(self.nodes[i].id.as_str()).copied());
        let lines: Vec<Vec<String>> = (0..self.nodes.len())
            .map(|i| {
                let n = &self.nodes[i];
                let mut l = vec![n.id.clone(), n.job.clone()];
                l.extend(node_notes(n));
                l.extend(n.conditions.iter().map(|c| format!("when {c}")));
                if let Some(s) = state_of(i) {
                    l.push(s.as_str().to_owned());
                }
                l.into_iter().map(|s| shorten(&s)).collect()
            })
            .collect();
        let max_lines = lines.iter().map(Vec::len).max().unwrap_or(2);
        let node_h = max_lines as f64 * LINE_H + 2.0 * PAD_Y;
        let mut width: Vec<f64> = vec![DUMMY_W; layers.layer.len()];
        for (i, l) in lines.iter().enumerate() {
            let chars = l.iter().map(|s| s.chars().count()).max().unwrap_or(1);
            width[i] = (chars as f64 * CHAR_W + 2.0 * PAD_X).max(80.0);
        }
        let x: Vec<f64> = layers
            .x_centres(&width, GAP_X)
            .into_iter()
            .map(|c| c + MARGIN)
            .collect();
        let y_top = |l: usize| MARGIN + 28.0 + l as f64 * (node_h + GAP_Y);
        let total_w = (0..x.len())
            .map(|v| x[v] + width[v] / 2.0)
            .fold(0.0, f64::max)
            + MARGIN;
        let present: Vec<NodeState> = NodeState::ALL
            .into_iter()
            .filter(|s| states.is_some_and(|m| m.values().any(|v| v == s)))
            .collect();
        let legend_h = if present.is_empty() { 0.0 } else { 28.0 };
        let total_w = total_w.max(MARGIN * 2.0 + 90.0 * present.len() as f64);
        let total_h = y_top(layers.rows.len()) - GAP_Y + MARGIN + legend_h;

        let title = format!("{} v{}", self.name, self.version);
        let mut s = String::new();

        // Edges: a smooth path through the edge's dummy vertices. Labels go in their
        // own group, drawn over the edges.
        s.push_str("<g class=\"edges\" fill=\"none\">\n");
        let mut edge_labels = String::new();
        let mut labels: Vec<(f64, f64, f64, f64)> = Vec::new();
        for (e, chain) in edges.iter().zip(&layers.chains) {
            let pts: Vec<(f64, f64)> = chain
                .iter()
                .enumerate()
                .map(|(k, &v)| {
                    let top = y_top(layers.layer[v]);
                    let y = if k == 0 {
                        top + node_h
                    } else if k == chain.len() - 1 {
                        top
                    } else {
                        top + node_h / 2.0
                    };
                    (x[v], y)
                })
                .collect();
            let mut d = format!("M{:.1},{:.1}", pts[0].0, pts[0].1);
            for w in pts.windows(2) {
                let ((x0, y0), (x1, y1)) = (w[0], w[1]);
                let my = (y0 + y1) / 2.0;
                let _ = write!(d, " C{x0:.1},{my:.1} {x1:.1},{my:.1} {x1:.1},{y1:.1}");
            }
            let dash = if e.kind == EdgeKind::Order {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            let stroke_w = if e.fan_out { 2.6 } else { 1.4 };
            let _ = writeln!(
                s,
                "<path class=\"edge {}{}\" d=\"{d}\" stroke=\"#546e7a\" stroke-width=\"{stroke_w}\"{dash} marker-end=\"url(#df-arrow)\"><title>{} → {}</title></path>",
                match e.kind {
                    EdgeKind::Data => "data",
                    EdgeKind::Order => "order",
                },
                if e.fan_out { " fan-out" } else { "" },
                xml(&e.from),
                xml(&e.to),
            );
            if !e.label.is_empty() {
                // On the last segment, above the arrow head; moved up while it
                // would cover an earlier label.
                let (x1, y1) = pts[pts.len() - 1];
                let (x0, y0) = pts[pts.len() - 2];
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

        // Nodes.
        s.push_str("<g class=\"nodes\">\n");
        for (i, n) in self.nodes.iter().enumerate() {
            let (cx, w) = (x[i], width[i]);
            let (left, top) = (cx - w / 2.0, y_top(layers.layer[i]));
            let state = state_of(i);
            let (fill, stroke) = colours(state);
            let _ = write!(
                s,
                "<g class=\"node{}\" data-id=\"{}\"{}>",
                if n.fan_out { " fan-out" } else { "" },
                xml(&n.id),
                state
                    .map(|st| format!(" data-state=\"{}\"", st.as_str()))
                    .unwrap_or_default(),
            );
            let mut tip = format!("{} ({})", n.id, n.job);
            if let Some(st) = state {
                let _ = write!(tip, ": {}", st.as_str());
            }
            let _ = write!(s, "<title>{}</title>", xml(&tip));
            if n.fan_out {
                // A stack of cards: one execution per item.
                for k in [2.0, 1.0] {
                    let _ = write!(
                        s,
                        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{node_h:.1}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\"/>",
                        left + 4.0 * k,
                        top - 4.0 * k,
                    );
                }
            }
            let _ = write!(
                s,
                "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{node_h:.1}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"/>"
            );
            for (k, line) in lines[i].iter().enumerate() {
                let (weight, colour, size) = match k {
                    0 => (" font-weight=\"bold\"", "#263238", FONT),
                    1 => ("", "#455a64", FONT - 1.0),
                    _ => (" font-style=\"italic\"", "#546e7a", FONT - 2.0),
                };
                let _ = write!(
                    s,
                    "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"{size}\" fill=\"{colour}\"{weight}>{}</text>",
                    top + PAD_Y + LINE_H * (k as f64 + 1.0) - 4.0,
                    xml(line)
                );
            }
            s.push_str("</g>\n");
        }
        s.push_str("</g>\n");

        if !present.is_empty() {
            let y = total_h - MARGIN - 6.0;
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
        let _ = writeln!(head, "<title>{}</title>", xml(&title));
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
            MARGIN + 8.0,
            xml(&title)
        );
        head.push_str(&s);
        head
    }
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
