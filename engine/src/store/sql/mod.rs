//! What the SQL stores share: encoding rows, folding a batch of events into run and
//! execution updates, and the cache of workflow specs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::events::{Event, EventKind};
use crate::ids::RunId;
use crate::state::{NodeState, RunState};
use crate::workflow::WorkflowSpec;

mod detail;
mod dialect;
mod feed;
mod queries;
pub(super) mod queue;
mod runs;
mod schedules;
mod shared;

pub(super) use dialect::Sql;
pub(super) use runs::RunRow;
pub(super) use shared::sql_store;

use super::{BadRow, Claimed, ExecutionRecord, Lease, RunRecord, Sequence, StoreError};

/// The schema version this build reads and writes (the `dagforge_schema` row).
pub(super) const SCHEMA_VERSION: i64 = 8;

/// Whether a database whose schema is at version `found` (`None`: no schema yet)
/// must be migrated, with migrations allowed (`migrate`) or not: a newer schema is
/// [`StoreError::SchemaTooNew`], one that is not current while migrations are off is
/// [`StoreError::SchemaOutdated`].
pub(super) fn needs_migration(found: Option<i64>, migrate: bool) -> Result<bool, StoreError> {
    match found {
        Some(v) if v > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
            found: v,
            supported: SCHEMA_VERSION,
        }),
        Some(SCHEMA_VERSION) if !migrate => Ok(false),
        _ if !migrate => Err(StoreError::SchemaOutdated {
            found,
            supported: SCHEMA_VERSION,
        }),
        _ => Ok(true),
    }
}

/// Rows per multi-row insert (keeps bind parameters well under both databases' limits).
pub(super) const ROWS_PER_INSERT: usize = 500;

/// A backend failure while doing `what`.
pub(super) fn backend<E>(what: &str, e: E) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    StoreError::Backend {
        message: format!("store: {what} failed"),
        source: Some(Box::new(e)),
    }
}

/// Data in the database that does not decode (the caller names the run, if any:
/// [`StoreError::in_run`]).
pub(super) fn bad_row(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::BadRow(BadRow::new(what, detail))
}

/// The runs of `rows` (decoded one by one with `decode`), the rows that do not decode
/// set aside by run id: one bad row does not hide the others.
pub(super) async fn decode_each<R, F, Fut>(
    rows: Vec<R>,
    id: impl Fn(&R) -> String,
    mut decode: F,
) -> Result<(Vec<RunRecord>, Vec<BadRow>), StoreError>
where
    F: FnMut(R) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<RunRecord>, StoreError>>,
{
    let mut items = Vec::with_capacity(rows.len());
    let mut bad = Vec::new();
    for row in rows {
        let run = id(&row);
        match decode(row).await {
            Ok(r) => items.extend(r),
            Err(StoreError::BadRow(b)) => bad.push(b.in_run(run)),
            Err(e) => return Err(e),
        }
    }
    Ok((items, bad))
}

/// Microseconds since the Unix epoch (negative before it).
pub(super) fn micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The inverse of [`micros`].
pub(super) fn from_micros(us: i64) -> SystemTime {
    let d = Duration::from_micros(us.unsigned_abs());
    if us >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// A duration in whole milliseconds, saturating.
pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// JSON text of a value.
pub(super) fn to_json<T: Serialize + ?Sized>(what: &str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| backend(what, e))
}

/// A value from its JSON text.
pub(super) fn from_json<T: DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| bad_row(what, e))
}

/// A state (or any unit enum serialized as a snake_case string) from its name.
pub(super) fn parse_state<T: DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_value(Value::String(s.to_owned())).map_err(|e| bad_row(what, e))
}

/// A run id from its text.
pub(super) fn parse_run_id(s: &str) -> Result<RunId, StoreError> {
    s.parse().map_err(|e| bad_row("run id", e))
}

/// A lease's fencing token as a column value.
pub(super) fn fence(lease: &Lease) -> i64 {
    i64::try_from(lease.fence).unwrap_or(i64::MAX)
}

/// What a claim statement returns besides the run's row: the new fencing token, the
/// run's event count and its stalled claims (see [`Claimed::stalled_claims`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct ClaimHead {
    fence: i64,
    last_seq: i64,
    stalls: i64,
}

impl ClaimHead {
    pub(super) fn new(fence: i64, last_seq: i64, stalls: i64) -> Self {
        ClaimHead {
            fence,
            last_seq,
            stalls,
        }
    }

    /// The claim of `run` by `owner`.
    pub(super) fn claimed(self, run: RunRecord, owner: &Arc<str>) -> Claimed {
        Claimed {
            run,
            lease: Lease::new(Arc::clone(owner), u64::try_from(self.fence).unwrap_or(0)),
            events: u64::try_from(self.last_seq).unwrap_or(0),
            stalled_claims: u32::try_from(self.stalls).unwrap_or(u32::MAX),
        }
    }
}

/// Why an append of `n` events from `first` to `run` was not written, from the run's
/// row (`lease_owner`, `fence`, `last_seq`; `None`: no such run). `Ok` when the batch
/// had been written already under this lease (a write retried after a lost reply).
pub(super) fn refusal(
    run: RunId,
    lease: &Lease,
    first: u64,
    n: u64,
    row: Option<(Option<String>, i64, i64)>,
) -> Result<(), StoreError> {
    let Some((owner, fence, last)) = row else {
        return Err(StoreError::UnknownRun(run));
    };
    let log_end = u64::try_from(last).unwrap_or(0);
    let same_fence = u64::try_from(fence).ok() == Some(lease.fence);
    // A run whose last batch finished it has no owner any more.
    let holder = owner.as_deref().is_none_or(|o| o == &*lease.owner);
    match Sequence::of(log_end, first, n) {
        Sequence::Written if same_fence && holder => Ok(()),
        _ if !same_fence || owner.as_deref() != Some(&*lease.owner) => Err(StoreError::Fenced {
            run,
            owner: lease.owner.to_string(),
            fence: lease.fence,
        }),
        _ => Err(StoreError::OutOfSequence {
            run,
            log_end,
            first,
        }),
    }
}

/// The run-level effect of a batch of events.
#[derive(Debug, Default)]
pub(super) struct RunChange {
    /// The last state the batch moved the run to.
    pub(super) state: Option<RunState>,
    /// When the run last became Running in the batch (µs).
    pub(super) started_at: Option<i64>,
    /// When the run last finished in the batch (µs).
    pub(super) finished_at: Option<i64>,
    /// Whether the batch finished the run (which ends its lease).
    pub(super) ends_lease: bool,
    /// Whether the batch records an outcome (an attempt or node that settled — succeeded,
    /// failed, retrying, skipped, cancelled, timed out — or the run's end), as opposed
    /// to only starts, logs and progress.
    pub(super) settles: bool,
}

/// One execution row to upsert: a whole batch's events of one (node, item, attempt)
/// folded into one row (a statement may touch each row only once).
#[derive(Debug)]
pub(super) struct ExecRow {
    pub(super) node: String,
    pub(super) item: i64,
    pub(super) attempt: i64,
    pub(super) first_seq: i64,
    pub(super) state: &'static str,
    pub(super) output: Option<String>,
    pub(super) error: Option<String>,
    pub(super) reason: Option<String>,
    pub(super) started_at: Option<i64>,
    pub(super) updated_at: i64,
}

/// One event row to insert.
#[derive(Debug)]
pub(super) struct EventRow {
    pub(super) seq: i64,
    pub(super) at: i64,
    pub(super) kind: String,
    /// A log line's columns (`None` for other events).
    pub(super) log: Option<LogCols>,
}

/// The log columns of an event row: node, item, attempt, level rank.
#[derive(Debug)]
pub(super) struct LogCols {
    pub(super) node: String,
    pub(super) item: Option<i64>,
    pub(super) attempt: i64,
    pub(super) level: i16,
}

/// A batch of events turned into rows, numbered from `first_seq`.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) run: RunChange,
    pub(super) events: Vec<EventRow>,
    pub(super) executions: Vec<ExecRow>,
}

impl Batch {
    /// Encodes `events` (their own `seq` is ignored: the store numbers them from
    /// `first_seq`).
    pub(super) fn encode(events: &[Event], first_seq: i64) -> Result<Batch, StoreError> {
        let mut b = Batch {
            run: RunChange::default(),
            events: Vec::with_capacity(events.len()),
            executions: Vec::new(),
        };
        let mut index: HashMap<(&str, Option<u32>, u32), usize> = HashMap::new();
        for (e, seq) in events.iter().zip(first_seq..) {
            let at = micros(e.at);
            let log = match &e.kind {
                EventKind::Log {
                    node,
                    item,
                    attempt,
                    level,
                    ..
                } => Some(LogCols {
                    node: String::from(&**node),
                    item: item.map(i64::from),
                    attempt: i64::from(*attempt),
                    level: super::detail::level_rank(*level),
                }),
                _ => None,
            };
            b.events.push(EventRow {
                seq,
                at,
                kind: to_json("encoding an event", &e.kind)?,
                log,
            });
            match &e.kind {
                EventKind::Run { to, .. } => {
                    b.run.state = Some(*to);
                    if *to == RunState::Running {
                        b.run.started_at = Some(at);
                    } else if to.is_terminal() {
                        b.run.finished_at = Some(at);
                        b.run.ends_lease = true;
                        b.run.settles = true;
                    }
                }
                EventKind::Node(n) => {
                    let key = (&*n.node, n.item, n.attempt);
                    let i = *index.entry(key).or_insert_with(|| {
                        b.executions.push(ExecRow {
                            node: String::from(&*n.node),
                            item: n.item.map_or(-1, i64::from),
                            attempt: i64::from(n.attempt),
                            first_seq: seq,
                            state: n.to.as_str(),
                            output: None,
                            error: None,
                            reason: None,
                            started_at: None,
                            updated_at: at,
                        });
                        b.executions.len() - 1
                    });
                    if !matches!(
                        n.to,
                        NodeState::Pending | NodeState::Ready | NodeState::Running
                    ) {
                        b.run.settles = true;
                    }
                    let row = &mut b.executions[i];
                    row.state = n.to.as_str();
                    row.updated_at = at;
                    if n.to == NodeState::Running {
                        row.started_at = Some(at);
                    }
                    if let Some(o) = &n.output {
                        row.output = Some(to_json("encoding an output", &**o)?);
                    }
                    if let Some(err) = &n.error {
                        row.error = Some(to_json("encoding an error", &**err)?);
                    }
                    if let Some(r) = &n.reason {
                        row.reason = Some(String::from(&**r));
                    }
                }
                _ => {}
            }
        }
        Ok(b)
    }
}

/// An execution row as read back: node, item (-1: none), attempt, state, output,
/// error, reason, started at, updated at.
pub(super) type ExecOut = (
    String,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
);

/// The record of an execution row; a column that does not decode is a [`BadRow`]
/// naming the node, item and attempt (the caller names the run).
pub(super) fn decode_execution(row: ExecOut) -> Result<ExecutionRecord, StoreError> {
    let (node, item, attempt, state, output, error, reason, started_at, updated_at) = row;
    let columns = || -> Result<_, StoreError> {
        Ok((
            if item < 0 {
                None
            } else {
                Some(u32::try_from(item).map_err(|e| bad_row("execution item", e))?)
            },
            u32::try_from(attempt).map_err(|e| bad_row("execution attempt", e))?,
            parse_state("execution state", &state)?,
            output
                .as_deref()
                .map(|s| from_json("execution output", s))
                .transpose()?,
            error
                .as_deref()
                .map(|s| from_json("execution error", s))
                .transpose()?,
        ))
    };
    match columns() {
        Ok((item, attempt, state, output, error)) => Ok(ExecutionRecord {
            node,
            item,
            attempt,
            state,
            output,
            error,
            reason,
            started_at: started_at.map(from_micros),
            updated_at: from_micros(updated_at),
        }),
        Err(StoreError::BadRow(b)) => {
            let item = if item >= 0 {
                format!(" item {item}")
            } else {
                String::new()
            };
            Err(StoreError::BadRow(BadRow {
                what: format!("{} of node `{node}`{item} attempt {attempt}", b.what),
                ..b
            }))
        }
        Err(e) => Err(e),
    }
}

/// A workflow spec encoded for the `workflows` table.
#[derive(Debug)]
pub(super) struct EncodedSpec {
    pub(super) json: String,
    pub(super) hash: String,
}

impl EncodedSpec {
    pub(super) fn new(spec: &WorkflowSpec) -> Result<Self, StoreError> {
        let json = to_json("encoding a workflow spec", spec)?;
        let digest = Sha256::digest(json.as_bytes());
        let hash = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(EncodedSpec { json, hash })
    }
}

/// Cached specs: which `workflows` row a spec in memory is (so creating many runs of
/// one workflow serializes its spec once), and decoded specs by row (so reading runs
/// back parses each spec once).
#[derive(Debug, Default)]
pub(super) struct SpecCache {
    inner: Mutex<SpecCacheInner>,
}

#[derive(Debug, Default)]
struct SpecCacheInner {
    /// Spec address → (the spec, its row id); the weak pointer proves the address was
    /// not reused.
    rows: HashMap<usize, (Weak<WorkflowSpec>, i64)>,
    /// Row id → decoded spec.
    specs: HashMap<i64, Arc<WorkflowSpec>>,
}

/// Entries kept per map before it is cleared.
const SPEC_CACHE_LIMIT: usize = 256;

impl SpecCache {
    fn lock(&self) -> MutexGuard<'_, SpecCacheInner> {
        // Every mutation is a single insert or clear: a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The row of `spec`, if this store wrote or read it before.
    pub(super) fn row_of(&self, spec: &Arc<WorkflowSpec>) -> Option<i64> {
        let key = Arc::as_ptr(spec) as usize;
        let inner = self.lock();
        let (weak, id) = inner.rows.get(&key)?;
        (weak.upgrade().is_some_and(|s| Arc::ptr_eq(&s, spec))).then_some(*id)
    }

    /// Remembers that `spec` is row `id`.
    pub(super) fn remember(&self, spec: &Arc<WorkflowSpec>, id: i64) {
        let mut inner = self.lock();
        if inner.rows.len() >= SPEC_CACHE_LIMIT {
            inner.rows.retain(|_, (w, _)| w.strong_count() > 0);
            if inner.rows.len() >= SPEC_CACHE_LIMIT {
                inner.rows.clear();
            }
        }
        inner
            .rows
            .insert(Arc::as_ptr(spec) as usize, (Arc::downgrade(spec), id));
        if inner.specs.len() >= SPEC_CACHE_LIMIT {
            inner.specs.clear();
        }
        inner.specs.insert(id, Arc::clone(spec));
    }

    /// The decoded spec of row `id`, if cached.
    pub(super) fn spec(&self, id: i64) -> Option<Arc<WorkflowSpec>> {
        self.lock().specs.get(&id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::NodeEvent;

    #[test]
    fn times_round_trip_in_microseconds() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(from_micros(micros(t)), t);
        let before = UNIX_EPOCH - Duration::from_micros(5);
        assert_eq!(from_micros(micros(before)), before);
    }

    #[test]
    fn a_batch_folds_into_one_row_per_execution() {
        use NodeState::*;
        let run = RunId::new();
        let at = SystemTime::now();
        let node = |n: NodeEvent| Event::new(run, 0, at, EventKind::Node(n));
        let events = [
            Event::new(
                run,
                0,
                at,
                EventKind::Run {
                    from: RunState::Pending,
                    to: RunState::Running,
                },
            ),
            node(NodeEvent::new("a", None, 1, Ready, Running)),
            node(NodeEvent::new("a", Some(2), 1, Ready, Running)),
            node(NodeEvent::new("a", None, 1, Running, Succeeded).with_output(Value::from(7))),
        ];
        let b = Batch::encode(&events, 10).unwrap();
        assert_eq!(
            b.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [10, 11, 12, 13]
        );
        assert_eq!(b.run.state, Some(RunState::Running));
        assert!(!b.run.ends_lease);
        assert_eq!(b.executions.len(), 2);
        assert_eq!(b.executions[0].state, "succeeded");
        assert_eq!(b.executions[0].first_seq, 11);
        assert_eq!(b.executions[0].output.as_deref(), Some("7"));
        assert!(b.executions[0].started_at.is_some());
        assert_eq!(b.executions[1].item, 2);
    }
}
