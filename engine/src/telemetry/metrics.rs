//! The engine's Prometheus metrics: one registry per engine, its families, and the
//! bound on their label values.
//!
//! Names follow Prometheus conventions (`dagforge_` prefix, base units, `_total` on
//! counters, `_seconds` on durations). Labels carry only bounded sets: workflow and job
//! names (registered in code), run and attempt states, lanes and schedule ids; never a
//! run id. A label dimension that would grow past [`MAX_LABEL_VALUES`] distinct values
//! (a store with thousands of schedules, say) reports the rest under [`OVERFLOW`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Most distinct values one label dimension takes before the rest are reported as
/// [`OVERFLOW`].
pub const MAX_LABEL_VALUES: usize = 1000;

/// The label value that stands for every value past [`MAX_LABEL_VALUES`].
pub const OVERFLOW: &str = "_other";

/// The lane of jobs and runs that name none.
pub const DEFAULT_LANE: &str = "default";

/// Bounds one label dimension's distinct values.
#[derive(Debug, Default)]
pub(crate) struct Bounded {
    seen: Mutex<HashSet<Arc<str>>>,
}

impl Bounded {
    /// `value`, or [`OVERFLOW`] when the dimension is full and `value` is new.
    pub(crate) fn admit<'a>(&self, value: &'a str) -> &'a str {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(value) {
            return value;
        }
        if seen.len() >= MAX_LABEL_VALUES {
            return OVERFLOW;
        }
        seen.insert(Arc::from(value));
        value
    }
}

/// The engine's metric families (cheap to clone handles into a shared registry).
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) runs_started: IntCounterVec,
    pub(crate) runs_finished: IntCounterVec,
    pub(crate) attempts: IntCounterVec,
    pub(crate) attempt_duration: HistogramVec,
    pub(crate) queue_wait: HistogramVec,
    pub(crate) runs_waiting: IntGaugeVec,
    pub(crate) attempts_waiting: IntGaugeVec,
    pub(crate) attempts_running: IntGaugeVec,
    pub(crate) engines_alive: IntGauge,
    pub(crate) workers_alive: IntGauge,
    pub(crate) store_up: IntGauge,
    pub(crate) store_write: Histogram,
    pub(crate) schedule_fires: IntCounterVec,
    pub(crate) schedule_skips: IntCounterVec,
    pub(crate) workflows: Bounded,
    pub(crate) jobs: Bounded,
    pub(crate) lanes: Bounded,
    pub(crate) schedules: Bounded,
}

/// Buckets of attempt durations and queue waits: 1 ms to about 15 minutes.
fn duration_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.5, 16).unwrap_or_default()
}

/// Buckets of store writes: 100 µs to about 10 s.
fn write_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.0001, 2.0, 18).unwrap_or_default()
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help).namespace("dagforge"), labels)
                .expect("a valid counter definition");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help).namespace("dagforge"), labels)
                .expect("a valid gauge definition");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(Opts::new(name, help).namespace("dagforge"))
                .expect("a valid gauge definition");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let histogram_vec = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help)
                .namespace("dagforge")
                .buckets(duration_buckets());
            let h = HistogramVec::new(opts, labels).expect("a valid histogram definition");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        let store_write = Histogram::with_opts(
            HistogramOpts::new(
                "store_write_seconds",
                "Time to write one step of a run's events to the store.",
            )
            .namespace("dagforge")
            .buckets(write_buckets()),
        )
        .expect("a valid histogram definition");
        registry
            .register(Box::new(store_write.clone()))
            .expect("registered once");
        Metrics {
            runs_started: counter(
                "runs_started_total",
                "Runs this engine started driving (first start, not resumes).",
                &["workflow"],
            ),
            runs_finished: counter(
                "runs_finished_total",
                "Runs this engine drove to an end, by final state.",
                &["workflow", "state"],
            ),
            attempts: counter(
                "attempts_total",
                "Attempts that ended, by job and outcome (succeeded, failed, timed_out, cancelled).",
                &["job", "outcome"],
            ),
            attempt_duration: histogram_vec(
                "attempt_duration_seconds",
                "Attempt durations, from running to its outcome.",
                &["job"],
            ),
            queue_wait: histogram_vec(
                "attempt_queue_wait_seconds",
                "Time attempts waited from ready to running (for a concurrency slot).",
                &["job"],
            ),
            runs_waiting: gauge_vec(
                "runs_waiting",
                "Enqueued runs waiting to be claimed, by lane (read from the store when scraped).",
                &["lane"],
            ),
            attempts_waiting: gauge_vec(
                "attempts_waiting",
                "Attempts of this engine's runs that are ready and wait for a slot, by lane.",
                &["lane"],
            ),
            attempts_running: gauge_vec(
                "attempts_running",
                "Attempts of this engine's runs running now, by lane.",
                &["lane"],
            ),
            engines_alive: gauge(
                "engines_alive",
                "Serving engines on the store whose heartbeat is recent (read when scraped).",
            ),
            workers_alive: gauge(
                "workers_alive",
                "Workers running an attempt for this engine now: tasks, child processes or pods.",
            ),
            store_up: gauge(
                "store_up",
                "1 when the store answered the last scrape's queries, else 0.",
            ),
            store_write,
            schedule_fires: counter(
                "schedule_fires_total",
                "Recurring schedule fires that enqueued a run, by schedule.",
                &["schedule"],
            ),
            schedule_skips: counter(
                "schedule_skips_total",
                "Recurring schedule fires skipped by the overlap policy, by schedule.",
                &["schedule"],
            ),
            registry,
            workflows: Bounded::default(),
            jobs: Bounded::default(),
            lanes: Bounded::default(),
            schedules: Bounded::default(),
        }
    }

    /// A fire of `schedule` enqueued a run.
    pub(crate) fn fired(&self, schedule: &str) {
        let s = self.schedules.admit(schedule);
        self.schedule_fires.with_label_values(&[s]).inc();
    }

    /// A fire of `schedule` was skipped.
    pub(crate) fn skipped(&self, schedule: &str) {
        let s = self.schedules.admit(schedule);
        self.schedule_skips.with_label_values(&[s]).inc();
    }

    /// The handle counting `workflow`'s runs that started.
    pub(crate) fn started(&self, workflow: &str) -> IntCounter {
        let w = self.workflows.admit(workflow);
        self.runs_started.with_label_values(&[w])
    }

    /// Counts a run of `workflow` that ended in `state`.
    pub(crate) fn finished(&self, workflow: &str, state: &str) {
        let w = self.workflows.admit(workflow);
        self.runs_finished.with_label_values(&[w, state]).inc();
    }

    /// Every family in the Prometheus text format (version 0.0.4).
    pub(crate) fn encode(&self) -> String {
        let mut out = Vec::with_capacity(8 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The content type of the Prometheus text the metrics endpoint serves.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_dimension_reports_new_values_as_overflow() {
        let b = Bounded::default();
        for i in 0..MAX_LABEL_VALUES {
            assert_eq!(b.admit(&format!("w{i}")), format!("w{i}"));
        }
        assert_eq!(b.admit("w0"), "w0");
        assert_eq!(b.admit("one-too-many"), OVERFLOW);
    }

    #[test]
    fn names_carry_the_prefix_and_units() {
        let m = Metrics::new();
        m.fired("nightly");
        m.finished("catalog", "succeeded");
        m.store_write.observe(0.002);
        let text = m.encode();
        assert!(
            text.contains("dagforge_schedule_fires_total{schedule=\"nightly\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "dagforge_runs_finished_total{state=\"succeeded\",workflow=\"catalog\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("dagforge_store_write_seconds_count 1"),
            "{text}"
        );
    }
}
