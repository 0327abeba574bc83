//! What the SQL stores' execution queues share: the rows as columns and back.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::StoreError;
use super::super::queue::{
    Capacity, ClaimedAttempt, OwnerReport, QueueId, QueuedAttempt, Report, WorkerRecord,
};
use super::{from_json, from_micros, micros, parse_run_id, to_json};

/// The columns of a claimed attempt, in [`ClaimRow`]'s order.
pub(in crate::store) const CLAIM_COLUMNS: &str = "id, fence, owner, run_id, node, item, attempt, \
     job, input, spec, lane, requires, cpu, memory, slots, priority, timeout_ms, enqueued_at";

/// The columns [`encode`] fills, in its order.
pub(in crate::store) const PUSH_COLUMNS: &str = "owner, run_id, node, item, attempt, job, input, \
     spec, lane, requires, cpu, memory, slots, priority, timeout_ms, enqueued_at";

/// Binds per pushed row.
pub(in crate::store) const PUSH_BINDS: usize = 16;

/// Rows per multi-row insert of pushed attempts.
pub(in crate::store) const PUSH_ROWS: usize = 200;

/// A claimed attempt's row.
#[derive(Debug, sqlx::FromRow)]
pub(in crate::store) struct ClaimRow {
    id: i64,
    fence: i64,
    owner: String,
    run_id: String,
    node: String,
    item: i64,
    attempt: i64,
    job: String,
    input: String,
    spec: String,
    lane: String,
    requires: String,
    cpu: i64,
    memory: i64,
    slots: i64,
    priority: i64,
    timeout_ms: Option<i64>,
    enqueued_at: i64,
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl ClaimRow {
    /// The claim it records.
    pub(in crate::store) fn decode(self) -> Result<ClaimedAttempt, StoreError> {
        let what = |w: &str| format!("queued attempt {}: {w}", self.id);
        let spec = from_json(&what("spec"), &self.spec)?;
        let mut a = QueuedAttempt::new(
            self.owner,
            parse_run_id(&self.run_id)?,
            self.node,
            u32::try_from(self.item).ok(),
            u32::try_from(self.attempt).unwrap_or(0),
            self.job,
            from_json(&what("input"), &self.input)?,
            spec,
        )
        .lane(self.lane)
        .priority(i32::try_from(self.priority).unwrap_or(0))
        .demand(Capacity {
            cpu_millis: unsigned(self.cpu),
            memory_bytes: unsigned(self.memory),
            slots: u32::try_from(self.slots).unwrap_or(u32::MAX),
        });
        a.requires = from_json(&what("requires"), &self.requires)?;
        a.timeout = self
            .timeout_ms
            .map(|ms| Duration::from_millis(unsigned(ms)));
        Ok(ClaimedAttempt::new(
            QueueId(self.id),
            unsigned(self.fence),
            a,
            from_micros(self.enqueued_at),
        ))
    }
}

/// A pushed attempt's column values.
#[derive(Debug)]
pub(in crate::store) struct Encoded {
    owner: String,
    run: String,
    node: String,
    job: String,
    input: String,
    spec: String,
    lane: String,
    requires: String,
    item: i64,
    attempt: i64,
    cpu: i64,
    memory: i64,
    slots: i64,
    priority: i64,
    timeout_ms: Option<i64>,
    at: i64,
}

/// `a` as columns, pushed at `now_us`.
pub(in crate::store) fn encode(a: &QueuedAttempt, now_us: i64) -> Result<Encoded, StoreError> {
    Ok(Encoded {
        owner: a.owner.clone(),
        run: a.run.to_string(),
        node: a.node.clone(),
        job: a.job.clone(),
        input: to_json("encoding a queued attempt's input", &a.input)?,
        spec: to_json("encoding a queued attempt's spec", &a.spec)?,
        lane: a.lane.clone(),
        requires: to_json("encoding a queued attempt's tags", &a.requires)?,
        item: a.item.map_or(-1, i64::from),
        attempt: i64::from(a.attempt),
        cpu: i64::try_from(a.demand.cpu_millis).unwrap_or(i64::MAX),
        memory: i64::try_from(a.demand.memory_bytes).unwrap_or(i64::MAX),
        slots: i64::from(a.demand.slots),
        priority: i64::from(a.priority),
        timeout_ms: a
            .timeout
            .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
        at: now_us,
    })
}

/// The placeholders of `rows` pushed rows, numbered from `$1`.
pub(in crate::store) fn push_values(rows: usize) -> String {
    let mut s = String::with_capacity(rows * 80);
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..PUSH_BINDS {
            if c > 0 {
                s.push(',');
            }
            s.push('$');
            s.push_str(&(r * PUSH_BINDS + c + 1).to_string());
        }
        s.push(')');
    }
    s
}

/// Binds `e` to `q` in [`PUSH_COLUMNS`]' order.
pub(in crate::store) fn bind_push<'q, DB>(
    q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    e: &'q Encoded,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    q.bind(e.owner.as_str())
        .bind(e.run.as_str())
        .bind(e.node.as_str())
        .bind(e.item)
        .bind(e.attempt)
        .bind(e.job.as_str())
        .bind(e.input.as_str())
        .bind(e.spec.as_str())
        .bind(e.lane.as_str())
        .bind(e.requires.as_str())
        .bind(e.cpu)
        .bind(e.memory)
        .bind(e.slots)
        .bind(e.priority)
        .bind(e.timeout_ms)
        .bind(e.at)
}

/// A report as stored.
pub(in crate::store) fn encode_report(r: &Report) -> Result<String, StoreError> {
    to_json("encoding a worker's report", r)
}

/// A stored report read back by its owner.
pub(in crate::store) fn decode_report(
    seq: i64,
    id: i64,
    body: &str,
) -> Result<OwnerReport, StoreError> {
    Ok(OwnerReport::new(
        unsigned(seq),
        QueueId(id),
        from_json(&format!("report {seq} of queued attempt {id}"), body)?,
    ))
}

/// A worker's row with its live load.
#[derive(Debug, sqlx::FromRow)]
pub(in crate::store) struct WorkerRow {
    id: String,
    host: String,
    pid: i64,
    lanes: String,
    tags: String,
    cpu: i64,
    memory: i64,
    slots: i64,
    started_at: i64,
    last_beat: i64,
    draining: bool,
    used_cpu: i64,
    used_memory: i64,
    used_slots: i64,
    running: i64,
}

/// The `SELECT` of [`WorkerRow`]s (with the load of their live claims; `{now}` is the
/// dialect's lease clock).
pub(in crate::store) fn workers_query(now: &str) -> String {
    format!(
        "SELECT w.id, w.host, w.pid, w.lanes, w.tags, w.cpu, w.memory, w.slots, w.started_at, \
         w.last_beat, w.draining, \
         CAST(COALESCE(SUM(a.cpu), 0) AS BIGINT) AS used_cpu, \
         CAST(COALESCE(SUM(a.memory), 0) AS BIGINT) AS used_memory, \
         CAST(COALESCE(SUM(a.slots), 0) AS BIGINT) AS used_slots, \
         CAST(COUNT(a.id) AS BIGINT) AS running \
         FROM queue_workers w LEFT JOIN queue_attempts a ON a.worker = w.id \
         AND a.state = 'claimed' AND a.lease_until > {now} \
         GROUP BY w.id, w.host, w.pid, w.lanes, w.tags, w.cpu, w.memory, w.slots, \
         w.started_at, w.last_beat, w.draining ORDER BY w.id"
    )
}

impl WorkerRow {
    /// The record it holds.
    pub(in crate::store) fn decode(self) -> Result<WorkerRecord, StoreError> {
        let what = |w: &str| format!("worker {}: {w}", self.id);
        let lanes: Vec<String> = from_json(&what("lanes"), &self.lanes)?;
        let tags: BTreeMap<String, String> = from_json(&what("tags"), &self.tags)?;
        let cap = |c: i64, m: i64, s: i64| Capacity {
            cpu_millis: unsigned(c),
            memory_bytes: unsigned(m),
            slots: u32::try_from(s).unwrap_or(u32::MAX),
        };
        let mut w = WorkerRecord::new(
            self.id,
            self.host,
            u32::try_from(self.pid).unwrap_or(0),
            lanes,
            tags,
            cap(self.cpu, self.memory, self.slots),
        )
        .with_load(
            cap(self.used_cpu, self.used_memory, self.used_slots),
            unsigned(self.running),
        );
        w.started_at = from_micros(self.started_at);
        w.last_beat = from_micros(self.last_beat);
        w.draining = self.draining;
        Ok(w)
    }
}

/// A worker record's column values: lanes and tags as JSON, capacity, times in µs.
pub(in crate::store) fn encode_worker(
    w: &WorkerRecord,
) -> Result<(String, String, [i64; 5]), StoreError> {
    Ok((
        to_json("encoding a worker's lanes", &w.lanes)?,
        to_json("encoding a worker's tags", &w.tags)?,
        [
            i64::try_from(w.capacity.cpu_millis).unwrap_or(i64::MAX),
            i64::try_from(w.capacity.memory_bytes).unwrap_or(i64::MAX),
            i64::from(w.capacity.slots),
            micros(w.started_at),
            micros(std::time::SystemTime::now()),
        ],
    ))
}
