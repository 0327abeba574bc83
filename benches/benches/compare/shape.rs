//! The benchmark shapes, as compressed adjacency lists shared by every engine.

use std::fmt;

/// One of the measured workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    /// 1,000 nodes in a line.
    Chain,
    /// 1,000 layers × width 100; each node depends on 2 distinct nodes of the layer above.
    Layered,
    /// 1 → 10,000 → 1.
    Fanout,
    /// 1 → 1,000 parallel chains of 3 → 1.
    Diamond,
    /// One node emitting 100,000 items, one execution per item, then a sink.
    Items,
}

impl Workload {
    /// Every workload, in report order.
    pub(crate) const ALL: [Workload; 5] = [
        Workload::Chain,
        Workload::Layered,
        Workload::Fanout,
        Workload::Diamond,
        Workload::Items,
    ];

    /// The short name used on the command line and in the tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Chain => "chain",
            Workload::Layered => "layered",
            Workload::Fanout => "fanout",
            Workload::Diamond => "diamond",
            Workload::Items => "items",
        }
    }

    /// Parses [`name`](Self::name).
    pub(crate) fn parse(s: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == s)
    }

    /// What one unit of the per-unit figure is.
    pub(crate) fn unit(self) -> &'static str {
        match self {
            Workload::Chain => "hop",
            Workload::Items => "item",
            _ => "node",
        }
    }

    /// The shape of this workload with the default sizes.
    pub(crate) fn shape(self) -> Shape {
        match self {
            Workload::Chain => Shape::chain(1_000),
            Workload::Layered => Shape::layered(1_000, 100, LAYERED_SEED),
            Workload::Fanout => Shape::fanout(self, 10_000),
            Workload::Diamond => Shape::diamond(1_000, 3),
            Workload::Items => Shape::fanout(self, ITEMS as u32),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Items emitted by the source of the `items` workload.
pub(crate) const ITEMS: usize = 100_000;

/// Seed of the PRNG choosing the parents in the layered DAG.
const LAYERED_SEED: u64 = 0xD46F_0A6E_B3C5_1701;

/// A DAG whose node ids are a topological order (every parent id is smaller than
/// its child's), stored as parent and child lists in compressed (CSR) form.
#[derive(Debug)]
pub(crate) struct Shape {
    /// Which workload this is.
    pub(crate) workload: Workload,
    /// The number the execution time is divided by for the per-unit figure.
    pub(crate) units: usize,
    parent_off: Vec<u32>,
    parent_ids: Vec<u32>,
    child_off: Vec<u32>,
    child_ids: Vec<u32>,
}

impl Shape {
    /// Number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.parent_off.len() - 1
    }

    /// Number of edges.
    pub(crate) fn edges(&self) -> usize {
        self.parent_ids.len()
    }

    /// The parents of node `n`.
    pub(crate) fn parents(&self, n: u32) -> &[u32] {
        let n = n as usize;
        &self.parent_ids[self.parent_off[n] as usize..self.parent_off[n + 1] as usize]
    }

    /// The children of node `n`.
    pub(crate) fn children(&self, n: u32) -> &[u32] {
        let n = n as usize;
        &self.child_ids[self.child_off[n] as usize..self.child_off[n + 1] as usize]
    }

    /// Node ids, in topological order.
    pub(crate) fn ids(&self) -> std::ops::Range<u32> {
        0..self.len() as u32
    }

    fn chain(n: u32) -> Shape {
        let mut b = Builder::new(Workload::Chain, n as usize);
        b.node(&[]);
        for i in 1..n {
            b.node(&[i - 1]);
        }
        b.finish()
    }

    fn layered(layers: u32, width: u32, seed: u64) -> Shape {
        let mut rng = SplitMix64(seed);
        let mut b = Builder::new(Workload::Layered, (layers * width) as usize);
        for _ in 0..width {
            b.node(&[]);
        }
        for layer in 1..layers {
            let above = (layer - 1) * width;
            for _ in 0..width {
                let first = rng.below(width);
                // A uniform pick among the other `width - 1` nodes.
                let mut second = rng.below(width - 1);
                if second >= first {
                    second += 1;
                }
                b.node(&[above + first, above + second]);
            }
        }
        b.finish()
    }

    fn fanout(workload: Workload, width: u32) -> Shape {
        let units = match workload {
            Workload::Items => width as usize,
            _ => width as usize + 2,
        };
        let mut b = Builder::new(workload, units);
        b.node(&[]);
        for _ in 0..width {
            b.node(&[0]);
        }
        let middle: Vec<u32> = (1..=width).collect();
        b.node(&middle);
        b.finish()
    }

    fn diamond(width: u32, depth: u32) -> Shape {
        let mut b = Builder::new(Workload::Diamond, (width * depth + 2) as usize);
        b.node(&[]);
        for stage in 0..depth {
            for j in 0..width {
                let parent = if stage == 0 {
                    0
                } else {
                    1 + (stage - 1) * width + j
                };
                b.node(&[parent]);
            }
        }
        let last: Vec<u32> = (0..width).map(|j| 1 + (depth - 1) * width + j).collect();
        b.node(&last);
        b.finish()
    }
}

/// Accumulates parent lists node by node, then derives the child lists.
struct Builder {
    workload: Workload,
    units: usize,
    parent_off: Vec<u32>,
    parent_ids: Vec<u32>,
}

impl Builder {
    fn new(workload: Workload, units: usize) -> Builder {
        Builder {
            workload,
            units,
            parent_off: vec![0],
            parent_ids: Vec::new(),
        }
    }

    fn node(&mut self, parents: &[u32]) {
        let id = self.parent_off.len() as u32 - 1;
        debug_assert!(parents.iter().all(|&p| p < id), "ids must be topological");
        self.parent_ids.extend_from_slice(parents);
        self.parent_off.push(self.parent_ids.len() as u32);
    }

    fn finish(self) -> Shape {
        let n = self.parent_off.len() - 1;
        let mut count = vec![0u32; n + 1];
        for &p in &self.parent_ids {
            count[p as usize + 1] += 1;
        }
        for i in 0..n {
            count[i + 1] += count[i];
        }
        let child_off = count.clone();
        let mut fill = count;
        let mut child_ids = vec![0u32; self.parent_ids.len()];
        for child in 0..n {
            let (lo, hi) = (self.parent_off[child], self.parent_off[child + 1]);
            for &p in &self.parent_ids[lo as usize..hi as usize] {
                child_ids[fill[p as usize] as usize] = child as u32;
                fill[p as usize] += 1;
            }
        }
        Shape {
            workload: self.workload,
            units: self.units,
            parent_off: self.parent_off,
            parent_ids: self.parent_ids,
            child_off,
            child_ids,
        }
    }
}

/// Steele, Lea and Flood's SplitMix64 generator: small, fast, and fully determined by
/// its seed, which is all the layered shape needs.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (multiply-shift range reduction).
    fn below(&mut self, bound: u32) -> u32 {
        (((self.next() >> 32) * u64::from(bound)) >> 32) as u32
    }
}
