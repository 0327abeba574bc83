//! Layered (Sugiyama-style) layout: longest-path layers, dummy vertices on edges that
//! span several layers, barycenter ordering to reduce crossings, then coordinates.

use std::collections::VecDeque;

/// Sweeps of barycenter ordering (alternating down and up); the best order seen wins.
const SWEEPS: usize = 16;

/// A layered drawing's topology. Vertices `0..n` are the graph's nodes; the rest are
/// dummies placed where a long edge crosses a layer.
#[derive(Debug)]
pub(super) struct Layers {
    /// Real node count.
    n: usize,
    /// Each vertex's layer.
    pub(super) layer: Vec<usize>,
    /// Vertices of each layer, left to right.
    pub(super) rows: Vec<Vec<usize>>,
    preds: Vec<Vec<usize>>,
    succs: Vec<Vec<usize>>,
    /// For each input edge, its vertices from source to target.
    pub(super) chains: Vec<Vec<usize>>,
}

impl Layers {
    /// Layers `n` nodes joined by `edges` (`from → to`, an acyclic graph) and orders
    /// each layer to reduce crossings.
    pub(super) fn build(n: usize, edges: &[(usize, usize)]) -> Self {
        let mut this = Self::unordered(n, edges);
        this.reduce_crossings();
        this
    }

    /// Layers in insertion order, before crossing reduction.
    pub(super) fn unordered(n: usize, edges: &[(usize, usize)]) -> Self {
        let layer = longest_path_layers(n, edges);
        let depth = layer.iter().copied().max().map_or(0, |m| m + 1);
        let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
        for (v, &l) in layer.iter().enumerate() {
            rows[l].push(v);
        }
        let mut this = Layers {
            n,
            layer,
            rows,
            preds: vec![Vec::new(); n],
            succs: vec![Vec::new(); n],
            chains: Vec::with_capacity(edges.len()),
        };
        for &(from, to) in edges {
            let mut chain = vec![from];
            let (lf, lt) = (this.layer[from], this.layer[to]);
            for l in lf + 1..lt.max(lf + 1) {
                let d = this.layer.len();
                this.layer.push(l);
                this.rows[l].push(d);
                this.preds.push(Vec::new());
                this.succs.push(Vec::new());
                chain.push(d);
            }
            chain.push(to);
            for w in chain.windows(2) {
                this.succs[w[0]].push(w[1]);
                this.preds[w[1]].push(w[0]);
            }
            this.chains.push(chain);
        }
        this
    }

    fn positions(&self) -> Vec<usize> {
        let mut pos = vec![0; self.layer.len()];
        for row in &self.rows {
            for (i, &v) in row.iter().enumerate() {
                pos[v] = i;
            }
        }
        pos
    }

    fn reduce_crossings(&mut self) {
        let mut best = self.crossings();
        let mut best_rows = self.rows.clone();
        for sweep in 0..SWEEPS {
            if best == 0 {
                break;
            }
            let mut pos = self.positions();
            let down = sweep % 2 == 0;
            let layers: Vec<usize> = if down {
                (1..self.rows.len()).collect()
            } else {
                (0..self.rows.len().saturating_sub(1)).rev().collect()
            };
            for l in layers {
                let adj = if down { &self.preds } else { &self.succs };
                let mut keyed: Vec<(f64, usize)> = self.rows[l]
                    .iter()
                    .map(|&v| {
                        let ns = &adj[v];
                        let key = if ns.is_empty() {
                            pos[v] as f64
                        } else {
                            ns.iter().map(|&u| pos[u] as f64).sum::<f64>() / ns.len() as f64
                        };
                        (key, v)
                    })
                    .collect();
                // Stable: ties keep their current order.
                keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
                self.rows[l] = keyed.into_iter().map(|(_, v)| v).collect();
                for (i, &v) in self.rows[l].iter().enumerate() {
                    pos[v] = i;
                }
            }
            let c = self.crossings();
            if c < best {
                best = c;
                best_rows = self.rows.clone();
            }
        }
        self.rows = best_rows;
    }

    /// Crossings between every pair of adjacent layers, counted as inversions
    /// (O(E log V) per layer pair).
    pub(super) fn crossings(&self) -> usize {
        let pos = self.positions();
        let mut total = 0;
        for l in 0..self.rows.len().saturating_sub(1) {
            let mut segs: Vec<(usize, usize)> = self.rows[l]
                .iter()
                .flat_map(|&u| self.succs[u].iter().map(move |&v| (u, v)))
                .filter(|&(_, v)| self.layer[v] == l + 1)
                .map(|(u, v)| (pos[u], pos[v]))
                .collect();
            segs.sort_unstable();
            let width = self.rows[l + 1].len();
            let mut tree = vec![0usize; width + 1];
            for (seen, &(_, p)) in segs.iter().enumerate() {
                // Segments seen so far that end right of `p` cross this one.
                let mut not_right = 0;
                let mut i = p + 1;
                while i > 0 {
                    not_right += tree[i];
                    i &= i - 1;
                }
                total += seen - not_right;
                let mut i = p + 1;
                while i <= width {
                    tree[i] += 1;
                    i += i & i.wrapping_neg();
                }
            }
        }
        total
    }

    /// Each real node's (layer, position among the real nodes of its layer).
    pub(super) fn placement(&self) -> Vec<(usize, usize)> {
        let mut out = vec![(0, 0); self.n];
        for (l, row) in self.rows.iter().enumerate() {
            for (i, &v) in row.iter().filter(|&&v| v < self.n).enumerate() {
                out[v] = (l, i);
            }
        }
        out
    }
}

/// Each node's layer: 0 without dependencies, else 1 + its deepest dependency's.
/// Nodes on a cycle (never in a built workflow) stay in layer 0.
fn longest_path_layers(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut indeg = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        indeg[b] += 1;
        out[a].push(b);
    }
    let mut layer = vec![0usize; n];
    let mut queue: VecDeque<usize> = (0..n).filter(|&v| indeg[v] == 0).collect();
    while let Some(v) = queue.pop_front() {
        for &w in &out[v] {
            layer[w] = layer[w].max(layer[v] + 1);
            indeg[w] -= 1;
            if indeg[w] == 0 {
                queue.push_back(w);
            }
        }
    }
    layer
}

/// Each node's (layer, order) for `n` nodes joined by `edges`.
pub(super) fn order(n: usize, edges: &[(usize, usize)]) -> Vec<(usize, usize)> {
    Layers::build(n, edges).placement()
}
