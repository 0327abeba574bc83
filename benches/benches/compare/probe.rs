//! The correctness probe of the checked (untimed) runs.
//!
//! Every node body calls [`Probe::visit`] with its node id. The probe records a
//! violation when a node runs a second time or starts while one of its parents has
//! not finished; [`Probe::verify`] then also requires that every node ran.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::shape::Shape;

/// Shared by all node bodies of one checked run.
#[derive(Debug)]
pub(crate) struct Probe {
    shape: Arc<Shape>,
    runs: Vec<AtomicU32>,
    done: Vec<AtomicBool>,
    violations: AtomicU64,
    first: Mutex<Option<String>>,
}

impl Probe {
    /// A probe for one run of `shape`.
    pub(crate) fn new(shape: &Arc<Shape>) -> Arc<Probe> {
        let n = shape.len();
        Arc::new(Probe {
            shape: Arc::clone(shape),
            runs: (0..n).map(|_| AtomicU32::new(0)).collect(),
            done: (0..n).map(|_| AtomicBool::new(false)).collect(),
            violations: AtomicU64::new(0),
            first: Mutex::new(None),
        })
    }

    /// Node `id` runs now: it must not have run before, and all its parents must
    /// have finished.
    pub(crate) fn visit(&self, id: u32) {
        let Some(runs) = self.runs.get(id as usize) else {
            self.fail(format!("node {id} is not part of the shape"));
            return;
        };
        if runs.fetch_add(1, Ordering::AcqRel) != 0 {
            self.fail(format!("node {id} ran more than once"));
        }
        for &p in self.shape.parents(id) {
            if !self.done[p as usize].load(Ordering::Acquire) {
                self.fail(format!("node {id} started before its parent {p} finished"));
            }
        }
        self.done[id as usize].store(true, Ordering::Release);
    }

    /// Records a violation found by an engine adapter.
    pub(crate) fn fail(&self, what: String) {
        self.violations.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(what);
        }
    }

    /// `Ok` when every node ran exactly once, after its parents.
    pub(crate) fn verify(&self) -> Result<(), String> {
        let missing = self
            .runs
            .iter()
            .filter(|r| r.load(Ordering::Acquire) == 0)
            .count();
        let violations = self.violations.load(Ordering::Acquire);
        if missing == 0 && violations == 0 {
            return Ok(());
        }
        let first = self
            .first
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        Err(format!(
            "{missing} of {} nodes never ran, {violations} violations (first: {first})",
            self.runs.len()
        ))
    }
}
