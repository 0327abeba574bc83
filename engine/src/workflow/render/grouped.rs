//! The grouped layout: the layered layout ([`Graph::from_spec`]) made readable for
//! wide and deep graphs, shared by the standalone SVG ([`super::svg`]) and the
//! dashboard's run view, computed once per workflow version and cached.
//!
//! In each layer, siblings of the same job (at least [`GROUP_MIN`] of them) are
//! collapsed into one group box; a layer with more boxes than [`WRAP`] is wrapped into
//! several rows. Edges join boxes (one per pair of boxes), so a 10,000-node fan of one
//! job draws as a handful of boxes and a 1,000-wide layer of distinct jobs as rows of
//! [`WRAP`] boxes, never a picture hundreds of thousands of pixels wide.
//!
//! ```
//! # use dagforge::prelude::*;
//! # struct A;
//! # impl Job for A {
//! #     type Input = ();
//! #     type Output = u32;
//! #     const NAME: &'static str = "a";
//! #     async fn run(&self, _: &JobContext, _: ()) -> Result<u32, JobError> { Ok(1) }
//! # }
//! let mut wf = Workflow::builder("wide");
//! for i in 0..30 {
//!     wf.add(format!("a{i}"), A);
//! }
//! let wf = wf.build()?;
//! let layout = dagforge::workflow::render::grouped::layout(&wf.spec());
//! // Thirty siblings of one job: one group box.
//! assert_eq!(layout.boxes.len(), 1);
//! assert_eq!(layout.boxes[0].members.len(), 30);
//! # Ok::<(), dagforge::Error>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use super::{EdgeKind, Graph};
use crate::workflow::{BindingSpec, WorkflowSpec};

/// Siblings of one job in one layer from which they are drawn as one group.
pub const GROUP_MIN: usize = 6;
/// The most boxes in one row; wider layers wrap.
pub const WRAP: usize = 12;
/// Box width, in SVG units.
pub const BOX_W: f64 = 176.0;
/// Box height, in SVG units.
pub const BOX_H: f64 = 46.0;
const GAP_X: f64 = 22.0;
const GAP_ROW: f64 = 22.0;
const GAP_LAYER: f64 = 58.0;
const MARGIN: f64 = 20.0;
/// Layouts kept in the cache (dropped all at once past it).
const CACHE: usize = 64;

/// One drawn box: a node, or a group of sibling nodes of one job.
#[derive(Debug)]
#[non_exhaustive]
pub struct DrawnBox {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// The node's id, or the group's name (the ids' common prefix, or the job, and
    /// how many).
    pub label: String,
    /// The job.
    pub job: String,
    /// The spec indexes of the nodes it stands for (one unless a group).
    pub members: Vec<usize>,
    /// Whether it stands for a fan-out node (or a group holding one).
    pub fan_out: bool,
}

impl DrawnBox {
    /// Whether it is a group of several nodes.
    pub fn is_group(&self) -> bool {
        self.members.len() > 1
    }
}

/// An edge between two boxes, standing for every node edge between their members.
#[derive(Debug)]
#[non_exhaustive]
pub struct BoxEdge {
    /// Upstream box.
    pub from: usize,
    /// Downstream box.
    pub to: usize,
    /// Data when any of its node edges carries data, else order only.
    pub kind: EdgeKind,
    /// Whether any of its node edges feeds a fan-out.
    pub fan_out: bool,
    /// The node edges' label when they all say the same, else empty.
    pub label: String,
    /// How many node edges it stands for.
    pub count: usize,
}

/// A workflow version's drawing, without states.
#[derive(Debug)]
#[non_exhaustive]
pub struct Layout {
    /// The boxes.
    pub boxes: Vec<DrawnBox>,
    /// Edges between boxes, each pair once.
    pub edges: Vec<BoxEdge>,
    /// For each spec node (in spec order), the box drawing it.
    pub node_box: Vec<usize>,
    /// Width of the drawing.
    pub width: f64,
    /// Height of the drawing.
    pub height: f64,
}

/// The layout of `spec`, from the cache when this workflow version was drawn before.
pub fn layout(spec: &WorkflowSpec) -> Arc<Layout> {
    static CACHED: OnceLock<Mutex<HashMap<u64, Arc<Layout>>>> = OnceLock::new();
    let key = fingerprint(spec);
    let cache = CACHED.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(l) = lock(cache).get(&key) {
        return Arc::clone(l);
    }
    let made = Arc::new(compute(&Graph::from_spec(spec)));
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
        // What the edges say (their labels and kinds) comes from these.
        hash_binding(n.input.as_ref(), &mut h);
        for (name, b) in &n.fields {
            name.hash(&mut h);
            hash_binding(Some(b), &mut h);
        }
        hash_binding(n.fan_out.as_ref().map(|f| &f.items), &mut h);
        for c in &n.conditions {
            c.on.hash(&mut h);
            c.predicate.hash(&mut h);
        }
    }
    h.finish()
}

/// Hashes what an edge's label reads of a binding: the upstream node and the part of
/// its output taken.
fn hash_binding(b: Option<&BindingSpec>, h: &mut impl Hasher) {
    match b {
        Some(BindingSpec::Output { node, field, path }) => {
            (1u8, node, field, path).hash(h);
        }
        Some(_) => 2u8.hash(h),
        None => 0u8.hash(h),
    }
}

/// The grouped layout of `graph` (uncached).
pub fn compute(graph: &Graph) -> Layout {
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
    let width = (MARGIN * 2.0 + widest as f64 * (BOX_W + GAP_X) - GAP_X.min(widest as f64 * GAP_X))
        .max(BOX_W + 2.0 * MARGIN);
    let mut y = MARGIN;
    for row_boxes in &rows_of_layer {
        for chunk in row_boxes.chunks(WRAP) {
            let row_w = chunk.len() as f64 * (BOX_W + GAP_X) - GAP_X;
            let left = (width - row_w) / 2.0;
            for (k, &b) in chunk.iter().enumerate() {
                boxes[b].x = left + k as f64 * (BOX_W + GAP_X);
                boxes[b].y = y;
            }
            y += BOX_H + GAP_ROW;
        }
        y += GAP_LAYER - GAP_ROW;
    }
    let height = (y - GAP_LAYER + MARGIN).max(BOX_H + 2.0 * MARGIN);
    Layout {
        edges: box_edges(graph, &index, &node_box),
        boxes,
        node_box,
        width,
        height,
    }
}

/// The node edges of `graph` merged into one edge per pair of boxes, in the order
/// they first appear.
fn box_edges(graph: &Graph, index: &HashMap<&str, usize>, node_box: &[usize]) -> Vec<BoxEdge> {
    let mut at: HashMap<(usize, usize), usize> = HashMap::new();
    let mut edges: Vec<BoxEdge> = Vec::new();
    // Box edges whose node edges disagree on their label.
    let mut mixed: HashSet<usize> = HashSet::new();
    for e in &graph.edges {
        let (Some(&a), Some(&b)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) else {
            continue;
        };
        let pair = (node_box[a], node_box[b]);
        if pair.0 == pair.1 {
            continue;
        }
        match at.get(&pair) {
            Some(&k) => {
                let be = &mut edges[k];
                be.count += 1;
                be.fan_out |= e.fan_out;
                if e.kind == EdgeKind::Data {
                    be.kind = EdgeKind::Data;
                }
                if be.label != e.label {
                    mixed.insert(k);
                }
            }
            None => {
                at.insert(pair, edges.len());
                edges.push(BoxEdge {
                    from: pair.0,
                    to: pair.1,
                    kind: e.kind,
                    fan_out: e.fan_out,
                    label: e.label.clone(),
                    count: 1,
                });
            }
        }
    }
    for k in mixed {
        edges[k].label.clear();
    }
    edges
}

/// The longest prefix all of `ids` share (on a character boundary).
pub fn common_prefix<'a>(mut ids: impl Iterator<Item = &'a str>) -> &'a str {
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
/// dashboard's script computes the same.
pub fn aggregate<'a>(states: impl Iterator<Item = &'a str>) -> &'static str {
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

/// Counts by state as the counters line of a group or a fan-out: `✓ 3 ✗ 1 ▶ 2 · 10`.
pub fn counters(counts: &HashMap<&str, usize>) -> String {
    let get = |k: &[&str]| k.iter().map(|s| counts.get(s).copied().unwrap_or(0)).sum();
    let total: usize = counts.values().sum();
    let (ok, bad, run): (usize, usize, usize) = (
        get(&["succeeded"]),
        get(&["failed", "timed_out"]),
        get(&["running", "retrying", "ready"]),
    );
    format!("✓ {ok} ✗ {bad} ▶ {run} · {total}")
}

/// `s` cut to `max` characters, an ellipsis ending what was cut.
pub fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
