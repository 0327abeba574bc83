//! What a worker did ([`WorkerStats`]) and its optional journal file: one line per
//! claim (`claim <queue id> <node> <cpu> <memory> <slots> <pickup µs>`, the load after
//! the claim) and per outcome (`end <queue id> accepted|refused`), written unbuffered
//! so that a killed worker's journal is whole up to its last line.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::store::Capacity;

/// What a worker did while it ran.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Attempts it claimed.
    pub claimed: u64,
    /// Outcomes the store accepted.
    pub accepted: u64,
    /// Outcomes the store refused (the claim was lost: fenced).
    pub refused: u64,
    /// Attempts given back to the queue when it drained.
    pub released: u64,
    /// The most it held at once.
    pub max_used: Capacity,
    /// Pickup times (push to claim), in claim order.
    pub pickups: Vec<Duration>,
}

/// The journal file, if any.
#[derive(Debug)]
pub(super) struct Journal(Option<std::fs::File>);

impl Journal {
    pub(super) fn open(path: Option<&Path>) -> Self {
        Journal(path.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| tracing::warn!(path = %p.display(), error = %e, "worker journal not opened"))
                .ok()
        }))
    }

    pub(super) fn line(&mut self, line: std::fmt::Arguments<'_>) {
        if let Some(f) = &mut self.0 {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}
