//! Graphviz DOT.

use std::fmt::Write;

use super::{EdgeKind, Graph, node_notes};

/// The workflow as a Graphviz `digraph`: one box per node (`id` over `job`), solid
/// data edges, dashed order-only edges, bold fan-out edges; edge labels say what flows
/// or what is tested. Render with `dot -Tsvg`.
pub fn dot(spec: &crate::workflow::WorkflowSpec) -> String {
    Graph::from_spec(spec).to_dot()
}

impl Graph {
    /// The graph as Graphviz DOT (see [`dot`]).
    pub fn to_dot(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "digraph {} {{", quote(&self.name));
        let _ = writeln!(
            s,
            "  graph [rankdir=TB, label={}, labelloc=t];",
            quote(&format!("{} v{}", self.name, self.version))
        );
        s.push_str("  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
        s.push_str("  edge [fontname=\"Helvetica\", fontsize=10];\n");
        for n in &self.nodes {
            let mut label = format!("{}\n{}", n.label.as_deref().unwrap_or(&n.id), n.job);
            for note in node_notes(n) {
                label.push('\n');
                label.push_str(&note);
            }
            for c in &n.conditions {
                label.push_str("\nwhen ");
                label.push_str(c);
            }
            let mut attrs = format!("label={}", quote(&label));
            if n.fan_out {
                attrs.push_str(", peripheries=2");
            }
            let _ = writeln!(s, "  {} [{attrs}];", quote(&n.id));
        }
        for e in &self.edges {
            let mut attrs = Vec::new();
            if e.kind == EdgeKind::Order {
                attrs.push("style=dashed".to_owned());
            }
            if e.fan_out {
                attrs.push("style=bold".to_owned());
            }
            if !e.label.is_empty() {
                attrs.push(format!("label={}", quote(&e.label)));
            }
            let attrs = if attrs.is_empty() {
                String::new()
            } else {
                format!(" [{}]", attrs.join(", "))
            };
            let _ = writeln!(s, "  {} -> {}{attrs};", quote(&e.from), quote(&e.to));
        }
        s.push_str("}\n");
        s
    }
}

/// A DOT double-quoted string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
