//! Mermaid flowcharts.

use std::fmt::Write;

use super::{EdgeKind, Graph, node_notes};

/// The workflow as a Mermaid `flowchart TD`: nodes are `n0`, `n1`, … labelled with
/// their id and job (fan-out nodes as stacked shapes `[[…]]`); data edges `-->`,
/// order-only edges `-.->`, fan-out edges `==>`, labelled with what flows or what is
/// tested.
pub fn mermaid(spec: &crate::workflow::WorkflowSpec) -> String {
    Graph::from_spec(spec).to_mermaid()
}

impl Graph {
    /// The graph as a Mermaid flowchart (see [`mermaid`]).
    pub fn to_mermaid(&self) -> String {
        let mut s = String::from("flowchart TD\n");
        let index: std::collections::HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        for (i, n) in self.nodes.iter().enumerate() {
            let shown = n.label.as_deref().unwrap_or(&n.id);
            let mut label = format!("<b>{}</b><br/>{}", escape(shown), escape(&n.job));
            for note in node_notes(n) {
                let _ = write!(label, "<br/><i>{}</i>", escape(&note));
            }
            for c in &n.conditions {
                let _ = write!(label, "<br/><i>when {}</i>", escape(c));
            }
            let (open, close) = if n.fan_out { ("[[", "]]") } else { ("[", "]") };
            let _ = writeln!(s, "  n{i}{open}\"{label}\"{close}");
        }
        for e in &self.edges {
            let (Some(a), Some(b)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) else {
                continue;
            };
            let arrow = match (e.fan_out, e.kind) {
                (true, _) => "==>",
                (false, EdgeKind::Data) => "-->",
                (false, EdgeKind::Order) => "-.->",
            };
            if e.label.is_empty() {
                let _ = writeln!(s, "  n{a} {arrow} n{b}");
            } else {
                let _ = writeln!(s, "  n{a} {arrow}|\"{}\"| n{b}", escape(&e.label));
            }
        }
        s
    }
}

/// Text inside a quoted Mermaid label: entity codes for what Mermaid or HTML would
/// interpret.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '|' => out.push_str("#124;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
