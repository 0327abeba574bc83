//! The plain-tokio floor: one `tokio::spawn` per node, an atomic count of unfinished
//! parents per node, and nothing else (no results, no states, no errors).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::probe::Probe;
use crate::shape::Shape;
use crate::{Sample, on_worker};

/// The state of one floor run.
struct Floor {
    shape: Arc<Shape>,
    waiting: Vec<AtomicU32>,
    left: AtomicUsize,
    finished: Notify,
    probe: Option<Arc<Probe>>,
}

/// Runs node `id`, then spawns each child whose last parent this was.
fn step(run: &Arc<Floor>, id: u32) {
    if let Some(p) = &run.probe {
        p.visit(id);
    }
    for &c in run.shape.children(id) {
        if run.waiting[c as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
            spawn(Arc::clone(run), c);
        }
    }
    if run.left.fetch_sub(1, Ordering::AcqRel) == 1 {
        run.finished.notify_one();
    }
}

fn spawn(run: Arc<Floor>, id: u32) {
    tokio::spawn(async move { step(&run, id) });
}

/// One run of `shape`; checked when `probe` is given.
pub(crate) fn run_once(
    rt: &Runtime,
    shape: &Arc<Shape>,
    probe: Option<&Arc<Probe>>,
) -> Result<Sample, String> {
    let t = Instant::now();
    let run = Arc::new(Floor {
        shape: Arc::clone(shape),
        waiting: shape
            .ids()
            .map(|n| AtomicU32::new(shape.parents(n).len() as u32))
            .collect(),
        left: AtomicUsize::new(shape.len()),
        finished: Notify::new(),
        probe: probe.cloned(),
    });
    let build = t.elapsed();
    let exec = on_worker(rt, async move {
        let t = Instant::now();
        for n in run.shape.ids() {
            if run.shape.parents(n).is_empty() {
                spawn(Arc::clone(&run), n);
            }
        }
        run.finished.notified().await;
        t.elapsed()
    });
    Ok(Sample {
        build,
        exec,
        tasks: shape.len(),
    })
}
