//! The run view's drawing of a workflow: the project's layered layout
//! ([`Graph::from_spec`]) made readable for wide and deep graphs, computed once per
//! workflow version and cached, drawn as SVG whose boxes the page's script patches.
//!
//! In each layer, siblings of the same job (at least [`GROUP_MIN`] of them) are
//! collapsed into one group box with counters by state; a layer with more boxes than
//! [`WRAP`] is wrapped into several rows. Edges join boxes (deduplicated), so a
//! 10,000-node fan of one job draws as a handful of boxes.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use maud::{Markup, html};

use crate::workflow::WorkflowSpec;
use crate::workflow::render::Graph;

/// Siblings of one job in one layer from which they are drawn as one group.
pub(super) const GROUP_MIN: usize = 6;
/// The most boxes in one row; wider layers wrap.
pub(super) const WRAP: usize = 12;
/// Box size and gaps, in SVG units.
const W: f64 = 176.0;
const H: f64 = 46.0;
const GAP_X: f64 = 22.0;
const GAP_ROW: f64 = 22.0;
const GAP_LAYER: f64 = 58.0;
const MARGIN: f64 = 20.0;
/// Layouts kept in the cache (dropped all at once past it).
const CACHE: usize = 64;
/// Characters of a label before it is shortened.
const LABEL: usize = 24;

/// One drawn box: a node, or a group of sibling nodes of one job.
#[derive(Debug)]
pub(super) struct DrawnBox {
    /// Top-left corner.
    pub(super) x: f64,
    pub(super) y: f64,
    /// The node's id, or the group's job.
    pub(super) label: String,
    /// The job.
    pub(super) job: String,
    /// The spec indexes of the nodes it stands for (one unless a group).
    pub(super) members: Vec<usize>,
    /// Whether it stands for a fan-out node.
    pub(super) fan_out: bool,
}

impl DrawnBox {
    /// Whether it is a group of several nodes.
    pub(super) fn is_group(&self) -> bool {
        self.members.len() > 1
    }
}

/// A workflow version's drawing, without states.
#[derive(Debug)]
pub(super) struct Layout {
    /// The boxes.
    pub(super) boxes: Vec<DrawnBox>,
    /// Edges between boxes (`from`, `to`), each once.
    pub(super) edges: Vec<(usize, usize)>,
    /// For each spec node (in spec order), the box drawing it.
    pub(super) node_box: Vec<usize>,
    /// Size of the drawing.
    pub(super) width: f64,
    pub(super) height: f64,
}

/// The layout of `spec`, from the cache when this workflow version was drawn before.
pub(super) fn layout(spec: &WorkflowSpec) -> Arc<Layout> {
    static CACHED: OnceLock<Mutex<HashMap<u64, Arc<Layout>>>> = OnceLock::new();
    let key = fingerprint(spec);
    let cache = CACHED.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(l) = lock(cache).get(&key) {
        return Arc::clone(l);
    }
    let made = Arc::new(compute(spec));
    let mut map = lock(cache);
    if map.len() >= CACHE {
        map.clear();
    }
    map.insert(key, Arc::clone(&made));
    made
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Name, version and shape of `spec`: two specs registered under one version but
/// shaped differently do not share a layout.
fn fingerprint(spec: &WorkflowSpec) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    spec.name.hash(&mut h);
    spec.version.hash(&mut h);
    for n in &spec.nodes {
        n.id.hash(&mut h);
        n.job.hash(&mut h);
        n.depends_on.hash(&mut h);
        n.fan_out.is_some().hash(&mut h);
    }
    h.finish()
}

fn compute(spec: &WorkflowSpec) -> Layout {
    let graph = Graph::from_spec(spec);
    let index: HashMap<&str, usize> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let depth = graph.nodes.iter().map(|n| n.layer + 1).max().unwrap_or(0);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (i, n) in graph.nodes.iter().enumerate() {
        layers[n.layer].push(i);
    }
    let mut boxes: Vec<DrawnBox> = Vec::new();
    let mut node_box = vec![0usize; graph.nodes.len()];
    // Boxes of each layer, in order.
    let mut rows_of_layer: Vec<Vec<usize>> = Vec::with_capacity(depth);
    for layer in &mut layers {
        layer.sort_by_key(|&i| graph.nodes[i].order);
        let mut per_job: HashMap<&str, usize> = HashMap::new();
        for &i in layer.iter() {
            *per_job.entry(graph.nodes[i].job.as_str()).or_default() += 1;
        }
        let mut group_of_job: HashMap<&str, usize> = HashMap::new();
        let mut in_layer = Vec::new();
        for &i in layer.iter() {
            let n = &graph.nodes[i];
            if per_job[n.job.as_str()] >= GROUP_MIN {
                if let Some(&b) = group_of_job.get(n.job.as_str()) {
                    boxes[b].members.push(i);
                    boxes[b].fan_out |= n.fan_out;
                    node_box[i] = b;
                    continue;
                }
                group_of_job.insert(n.job.as_str(), boxes.len());
            }
            node_box[i] = boxes.len();
            in_layer.push(boxes.len());
            boxes.push(DrawnBox {
                x: 0.0,
                y: 0.0,
                label: n.id.clone(),
                job: n.job.clone(),
                members: vec![i],
                fan_out: n.fan_out,
            });
        }
        for (job, &b) in &group_of_job {
            let ids = boxes[b].members.iter().map(|&i| graph.nodes[i].id.as_str());
            let prefix = common_prefix(ids);
            let n = boxes[b].members.len();
            boxes[b].label = if prefix.chars().count() >= 2 {
                format!("{prefix}… × {n}")
            } else {
                format!("{job} × {n}")
            };
        }
        rows_of_layer.push(in_layer);
    }
    // Rows: each layer wrapped at WRAP boxes, every row centred.
    let widest = rows_of_layer
        .iter()
        .map(|r| r.len().min(WRAP))
        .max()
        .unwrap_or(0);
    let width = MARGIN * 2.0 + widest as f64 * (W + GAP_X) - GAP_X.min(widest as f64 * GAP_X);
    let mut y = MARGIN;
    for row_boxes in &rows_of_layer {
        for chunk in row_boxes.chunks(WRAP) {
            let row_w = chunk.len() as f64 * (W + GAP_X) - GAP_X;
            let left = (width - row_w) / 2.0;
            for (k, &b) in chunk.iter().enumerate() {
                boxes[b].x = left + k as f64 * (W + GAP_X);
                boxes[b].y = y;
            }
            y += H + GAP_ROW;
        }
        y += GAP_LAYER - GAP_ROW;
    }
    let height = (y - GAP_LAYER + MARGIN).max(H + 2.0 * MARGIN);
    let mut seen = std::collections::HashSet::new();
    let mut edges = Vec::new();
    for e in &graph.edges {
        let (Some(&a), Some(&b)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) else {
            continue;
        };
        let pair = (node_box[a], node_box[b]);
        if pair.0 != pair.1 && seen.insert(pair) {
            edges.push(pair);
        }
    }
    Layout {
        boxes,
        edges,
        node_box,
        width: width.max(W + 2.0 * MARGIN),
        height,
    }
}

/// The longest prefix all of `ids` share (on a character boundary).
fn common_prefix<'a>(mut ids: impl Iterator<Item = &'a str>) -> &'a str {
    let Some(first) = ids.next() else {
        return "";
    };
    let mut len = first.len();
    for id in ids {
        len = first
            .char_indices()
            .zip(id.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8())
            .min(len);
    }
    &first[..len]
}

/// The state a group shows: failed if any failed, running while any runs or waits
/// to, succeeded (or skipped) when all are done well, pending before anything. The
/// page's script computes the same.
pub(super) fn aggregate<'a>(states: impl Iterator<Item = &'a str>) -> &'static str {
    let (mut total, mut failed, mut active, mut ok, mut skipped, mut pending, mut cancelled) =
        (0, 0, 0, 0, 0, 0, 0);
    for s in states {
        total += 1;
        match s {
            "failed" | "timed_out" => failed += 1,
            "running" | "retrying" | "ready" => active += 1,
            "succeeded" => ok += 1,
            "skipped" => skipped += 1,
            "cancelled" => cancelled += 1,
            _ => pending += 1,
        }
    }
    if failed > 0 {
        "failed"
    } else if active > 0 || (pending > 0 && pending < total) && cancelled == 0 {
        "running"
    } else if cancelled > 0 {
        "cancelled"
    } else if pending == total {
        "pending"
    } else if ok == 0 && skipped > 0 {
        "skipped"
    } else {
        "succeeded"
    }
}

fn short(s: &str) -> String {
    if s.chars().count() <= LABEL {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(LABEL - 1).collect();
        t.push('…');
        t
    }
}

/// Counts as the counters line of a group or a fan-out: `✓ 3 ✗ 1 ▶ 2 · 10`.
pub(super) fn counters(counts: &HashMap<&str, usize>) -> String {
    let get = |k: &[&str]| k.iter().map(|s| counts.get(s).copied().unwrap_or(0)).sum();
    let total: usize = counts.values().sum();
    let (ok, bad, run): (usize, usize, usize) = (
        get(&["succeeded"]),
        get(&["failed", "timed_out"]),
        get(&["running", "retrying", "ready"]),
    );
    format!("✓ {ok} ✗ {bad} ▶ {run} · {total}")
}

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
                (None, None) => short(&b.job),
            },
        })
        .collect();
    html! {
        svg #graph xmlns="http://www.w3.org/2000/svg" width=(layout.width) height=(layout.height)
            viewBox={ "0 0 " (layout.width) " " (layout.height) } {
            g.edges {
                @for &(a, b) in &layout.edges {
                    @let (f, t) = (&layout.boxes[a], &layout.boxes[b]);
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
                        text.id x="9" y="18" { (short(&b.label)) }
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
    use std::sync::Arc;

    use serde_json::json;

    use super::{GROUP_MIN, WRAP, aggregate, common_prefix, counters, layout, svg};
    use crate::workflow::WorkflowSpec;

    /// A spec of `nodes` (id, job, dependencies), the other fields at their defaults.
    fn spec(name: &str, nodes: &[(String, String, Vec<String>)]) -> WorkflowSpec {
        let backoff = serde_json::to_value(crate::job::Backoff::default()).unwrap();
        let nodes: Vec<_> = nodes
            .iter()
            .map(|(id, job, deps)| {
                json!({
                    "id": id, "job": job, "depends_on": deps, "input": null, "fields": [],
                    "fan_out": null, "conditions": [], "trigger": "all_success", "retries": 0,
                    "backoff": backoff, "timeout_ms": null, "priority": 0, "concurrency": null
                })
            })
            .collect();
        serde_json::from_value(json!({"name": name, "version": "1", "params": [], "nodes": nodes}))
            .unwrap()
    }

    /// `root` → `width` nodes of job `work` (+ `odd` of job `other`) → `sink`.
    fn fan(width: usize, odd: usize) -> WorkflowSpec {
        let mut nodes = vec![("root".to_owned(), "start".to_owned(), vec![])];
        let mut mids = Vec::new();
        for i in 0..width {
            nodes.push((
                format!("work-{i}"),
                "work".to_owned(),
                vec!["root".to_owned()],
            ));
            mids.push(format!("work-{i}"));
        }
        for i in 0..odd {
            // A job of its own: never grouped.
            nodes.push((
                format!("odd-{i}"),
                format!("other-{i}"),
                vec!["root".to_owned()],
            ));
            mids.push(format!("odd-{i}"));
        }
        nodes.push(("sink".to_owned(), "end".to_owned(), mids));
        spec(&format!("fan-{width}-{odd}"), &nodes)
    }

    #[test]
    fn siblings_of_one_job_are_one_group_and_the_rest_stay_apart() {
        let l = layout(&fan(1000, GROUP_MIN - 1));
        // root, the group, GROUP_MIN - 1 single nodes, sink.
        assert_eq!(l.boxes.len(), 2 + 1 + GROUP_MIN - 1);
        let group = &l.boxes[l.node_box[1]];
        assert_eq!(group.members.len(), 1000);
        assert_eq!(group.label, "work-… × 1000");
        assert!(l.node_box[1..=1000].iter().all(|&b| b == l.node_box[1]));
        // Edges between boxes, each once: root → each box of the layer → sink.
        assert_eq!(l.edges.len(), 2 * GROUP_MIN);
    }

    #[test]
    fn wide_layers_wrap_and_layouts_are_cached() {
        let s = fan(0, 30);
        let l = layout(&s);
        let rows: std::collections::BTreeSet<u64> =
            l.boxes[1..31].iter().map(|b| b.y as u64).collect();
        assert_eq!(
            rows.len(),
            30_usize.div_ceil(WRAP),
            "30 boxes in rows of {WRAP}"
        );
        assert!(Arc::ptr_eq(&l, &layout(&s)), "computed once per version");
        let other = fan(0, 31);
        assert!(!Arc::ptr_eq(&l, &layout(&other)));
    }

    #[test]
    fn groups_show_the_state_that_matters() {
        assert_eq!(aggregate(["succeeded", "failed"].into_iter()), "failed");
        assert_eq!(aggregate(["succeeded", "pending"].into_iter()), "running");
        assert_eq!(aggregate(["pending", "pending"].into_iter()), "pending");
        assert_eq!(aggregate(["succeeded", "skipped"].into_iter()), "succeeded");
        assert_eq!(aggregate(["skipped"].into_iter()), "skipped");
        assert_eq!(
            aggregate(["cancelled", "succeeded"].into_iter()),
            "cancelled"
        );
        let c = HashMap::from([("succeeded", 3), ("running", 2), ("timed_out", 1)]);
        assert_eq!(counters(&c), "✓ 3 ✗ 1 ▶ 2 · 6");
        assert_eq!(common_prefix(["s1-a", "s1-b"].into_iter()), "s1-");
        assert_eq!(common_prefix(["é1", "é2"].into_iter()), "é");
    }

    #[test]
    fn labels_are_escaped() {
        let s = spec(
            "evil",
            &[("<script>x</script>\"".to_owned(), "j".to_owned(), vec![])],
        );
        let drawn = svg(&layout(&s), Some(&["running"]), &HashMap::new()).into_string();
        assert!(!drawn.contains("<script>"), "{drawn}");
        assert!(drawn.contains("&lt;script&gt;"), "{drawn}");
        assert!(drawn.contains("st-running"));
    }
}
