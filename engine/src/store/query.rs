//! Listing runs: the filters and keyset pages of [`RunQueries::list_runs`] and
//! [`RunQueries::count_runs`], shaped for an HTTP API over millions of runs.
//!
//! [`RunQueries::list_runs`]: super::RunQueries::list_runs
//! [`RunQueries::count_runs`]: super::RunQueries::count_runs

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ids::RunId;
use crate::state::RunState;

use super::{BadRow, RunRecord, StoreError};

/// The largest page any query of the store returns (a larger `limit` is cut to it).
pub const MAX_PAGE: usize = 10_000;

/// The page size when a query asks for none (`limit` 0).
pub const DEFAULT_PAGE: usize = 50;

/// The longest text a filter may hold (a workflow name, a key, a lane…).
const MAX_FILTER: usize = 1024;

/// `limit` as a page size: 0 means [`DEFAULT_PAGE`], and at most [`MAX_PAGE`].
pub(crate) fn page_size(limit: usize) -> usize {
    if limit == 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    }
}

/// A [`StoreError::BadQuery`] about `what`, holding (the start of) `value`.
pub(crate) fn bad_query(what: &'static str, value: &str, reason: impl Into<String>) -> StoreError {
    StoreError::BadQuery {
        what,
        value: value.chars().take(80).collect(),
        reason: reason.into(),
    }
}

/// Where a page of runs ends: the next page starts after it. Runs are ordered newest
/// first by creation time, then by id (ties broken by id, so the order is total).
///
/// Its text form ([`Display`](fmt::Display), [`FromStr`]) is what an HTTP API hands
/// out and takes back; a malformed one is [`StoreError::BadQuery`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RunCursor {
    /// The creation time of the last run of the page, in microseconds since the Unix
    /// epoch (the precision stores keep).
    pub created_us: i64,
    /// The id of the last run of the page.
    pub id: RunId,
}

impl RunCursor {
    /// The cursor after `run` (created at `created_at`).
    pub fn after(created_at: SystemTime, id: RunId) -> Self {
        RunCursor {
            created_us: micros(created_at),
            id,
        }
    }

    /// The cursor after `run`.
    pub fn after_run(run: &RunRecord) -> Self {
        Self::after(run.created_at, run.id)
    }

    /// Whether a run created at `created_at` with id `id` comes after this cursor
    /// (is older, or as old with a smaller id).
    pub fn precedes(&self, created_at: SystemTime, id: RunId) -> bool {
        (micros(created_at), id) < (self.created_us, self.id)
    }
}

impl fmt::Display for RunCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.created_us, self.id)
    }
}

impl FromStr for RunCursor {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        let bad = |reason: &str| bad_query("run cursor", s, reason);
        let (us, id) = s
            .split_once('_')
            .ok_or_else(|| bad("expected `<microseconds>_<run id>`"))?;
        let created_us = us
            .parse::<i64>()
            .map_err(|_| bad("the time is not a whole number of microseconds"))?;
        let id = id
            .parse::<RunId>()
            .map_err(|_| bad("the run id is not a UUID"))?;
        Ok(RunCursor { created_us, id })
    }
}

/// Microseconds since the Unix epoch (negative before it), saturating.
pub(crate) fn micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// A filter on the text of run ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IdText {
    /// Ids starting with this (lower-case hex digits and dashes, as ids are written):
    /// an index range, fast at any size.
    Prefix(String),
    /// Ids containing this anywhere: a scan of the runs the other filters leave.
    Contains(String),
}

impl IdText {
    /// The text, lower-cased, checked: at most 36 hex digits and dashes.
    pub(crate) fn checked(&self) -> Result<String, StoreError> {
        let (what, t) = match self {
            IdText::Prefix(t) => ("run id prefix", t),
            IdText::Contains(t) => ("run id text", t),
        };
        if t.is_empty() || t.len() > 36 {
            return Err(bad_query(what, t, "expected 1 to 36 characters"));
        }
        if !t.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(bad_query(
                what,
                t,
                "run ids hold only hex digits and dashes",
            ));
        }
        Ok(t.to_ascii_lowercase())
    }

    /// Whether `id` matches.
    pub fn matches(&self, id: RunId) -> bool {
        let text = id.to_uuid_string();
        match self {
            IdText::Prefix(p) => text.starts_with(&p.to_ascii_lowercase()),
            IdText::Contains(c) => text.contains(&c.to_ascii_lowercase()),
        }
    }
}

/// The smallest and largest run ids (as text) starting with `prefix` (lower-case,
/// checked by [`IdText::checked`]): a prefix padded with `0`s and with `f`s, dashes
/// kept where ids have them. `None` if the prefix cannot start an id (a dash out of
/// place).
pub(crate) fn id_range(prefix: &str) -> Option<(String, String)> {
    const SHAPE: &[u8; 36] = b"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    let given = prefix.as_bytes();
    for (i, &c) in given.iter().enumerate() {
        if (SHAPE[i] == b'-') != (c == b'-') {
            return None;
        }
    }
    let pad = |fill: u8| -> String {
        SHAPE
            .iter()
            .enumerate()
            .map(|(i, &s)| match given.get(i) {
                Some(&c) => c as char,
                None if s == b'-' => '-',
                None => fill as char,
            })
            .collect()
    };
    Some((pad(b'0'), pad(b'f')))
}

/// Filters and paging for [`RunQueries::list_runs`](super::RunQueries::list_runs) and
/// [`count_runs`](super::RunQueries::count_runs). Runs come newest first (by creation
/// time, then id); every filter given must hold. Build with the methods:
///
/// ```
/// # use dagforge::store::RunQuery;
/// # use dagforge::RunState;
/// let q = RunQuery::new()
///     .workflow("etl")
///     .states([RunState::Failed, RunState::Cancelled])
///     .id_prefix("0190")
///     .limit(100);
/// # let _ = q;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunQuery {
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs in this state (see also `states`).
    pub state: Option<RunState>,
    /// Only runs in one of these states (with `state`, in any of them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<RunState>,
    /// Only runs of this workflow version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Only runs created at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_from: Option<SystemTime>,
    /// Only runs created before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_to: Option<SystemTime>,
    /// Only the run holding this idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Only runs of this lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Only runs whose id matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_text: Option<IdText>,
    /// Page size (0 means [`DEFAULT_PAGE`]; at most [`MAX_PAGE`]).
    pub limit: usize,
    /// Continue after this run (the previous page's `next`; a run that does not exist
    /// is [`StoreError::UnknownRun`]).
    pub before: Option<RunId>,
    /// Continue after this cursor (the previous page's `cursor`); takes precedence over
    /// `before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<RunCursor>,
}

impl RunQuery {
    /// All runs, first page of [`DEFAULT_PAGE`].
    pub fn new() -> Self {
        Self::default()
    }
    /// Only runs of `workflow`.
    pub fn workflow(mut self, workflow: impl Into<String>) -> Self {
        self.workflow = Some(workflow.into());
        self
    }
    /// Only runs in `state`.
    pub fn state(mut self, state: RunState) -> Self {
        self.state = Some(state);
        self
    }
    /// Only runs in one of `states`.
    pub fn states(mut self, states: impl IntoIterator<Item = RunState>) -> Self {
        self.states.extend(states);
        self
    }
    /// Only runs of workflow version `version`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }
    /// Only runs created at or after `from`.
    pub fn created_from(mut self, from: SystemTime) -> Self {
        self.created_from = Some(from);
        self
    }
    /// Only runs created before `to`.
    pub fn created_to(mut self, to: SystemTime) -> Self {
        self.created_to = Some(to);
        self
    }
    /// Only the run holding idempotency key `key`.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
    /// Only runs of lane `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
    /// Only runs whose id starts with `prefix` (hex digits and dashes).
    pub fn id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.id_text = Some(IdText::Prefix(prefix.into()));
        self
    }
    /// Only runs whose id contains `text` (hex digits and dashes).
    pub fn id_contains(mut self, text: impl Into<String>) -> Self {
        self.id_text = Some(IdText::Contains(text.into()));
        self
    }
    /// Page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    /// Continue after `run`.
    pub fn before(mut self, run: RunId) -> Self {
        self.before = Some(run);
        self
    }
    /// Continue after `cursor`.
    pub fn cursor(mut self, cursor: RunCursor) -> Self {
        self.cursor = Some(cursor);
        self
    }

    /// The states asked for (`state` and `states`, without repeats; empty: any).
    pub fn wanted_states(&self) -> Vec<RunState> {
        let mut out: Vec<RunState> = Vec::new();
        for s in self.state.iter().chain(&self.states) {
            if !out.contains(s) {
                out.push(*s);
            }
        }
        out
    }

    /// Checks the filters: [`StoreError::BadQuery`] naming the first that cannot be
    /// run (an id text that is not hex, a text filter over 1,024 bytes).
    pub fn check(&self) -> Result<(), StoreError> {
        for (what, v) in [
            ("workflow filter", &self.workflow),
            ("version filter", &self.version),
            ("idempotency key filter", &self.idempotency_key),
            ("lane filter", &self.queue),
        ] {
            if let Some(v) = v
                && v.len() > MAX_FILTER
            {
                return Err(bad_query(what, v, "longer than 1,024 bytes"));
            }
        }
        if let Some(t) = &self.id_text {
            t.checked()?;
        }
        Ok(())
    }

    /// Whether `run` passes every filter (not the cursor).
    pub fn matches(&self, run: &RunRecord) -> bool {
        let states = self.wanted_states();
        self.workflow.as_ref().is_none_or(|w| *w == run.workflow)
            && (states.is_empty() || states.contains(&run.state))
            && self.version.as_ref().is_none_or(|v| *v == run.version)
            && self
                .created_from
                .is_none_or(|t| micros(run.created_at) >= micros(t))
            && self
                .created_to
                .is_none_or(|t| micros(run.created_at) < micros(t))
            && self
                .idempotency_key
                .as_ref()
                .is_none_or(|k| run.idempotency_key.as_ref() == Some(k))
            && self
                .queue
                .as_ref()
                .is_none_or(|q| run.queue.as_ref() == Some(q))
            && self.id_text.as_ref().is_none_or(|t| t.matches(run.id))
    }
}

/// One page of results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `before` to get the next page; `None` on the last page.
    pub next: Option<RunId>,
    /// Pass as `cursor` to get the next page; `None` on the last page (and from a
    /// store that sets only `next`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<RunCursor>,
    /// Rows of this page that do not decode, left out of `items` (each names its run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad: Vec<BadRow>,
}

impl<T> Page<T> {
    /// A page of `items`; `next` is what to pass as `before` for the next page (`None`
    /// on the last one). No cursor (set it with [`with_cursor`](Page::with_cursor)) and
    /// no bad rows (push onto `bad` for those).
    pub fn new(items: Vec<T>, next: Option<RunId>) -> Self {
        Page {
            items,
            next,
            cursor: None,
            bad: Vec::new(),
        }
    }

    /// The same page, with `cursor` as the next page's cursor.
    pub fn with_cursor(mut self, cursor: Option<RunCursor>) -> Self {
        self.cursor = cursor;
        self
    }
}

/// How many runs are in each state, under a query's filters
/// ([`RunQueries::count_runs`](super::RunQueries::count_runs)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunCounts {
    /// Each state with runs in it, and their number (states without runs left out).
    pub states: Vec<(RunState, u64)>,
}

impl RunCounts {
    /// Counts from `(state, count)` pairs (a state given twice adds up).
    pub fn new(pairs: impl IntoIterator<Item = (RunState, u64)>) -> Self {
        let mut c = RunCounts::default();
        for (s, n) in pairs {
            c.add(s, n);
        }
        c
    }

    /// Adds `n` runs in `state`.
    pub fn add(&mut self, state: RunState, n: u64) {
        if n == 0 {
            return;
        }
        match self.states.iter_mut().find(|(s, _)| *s == state) {
            Some((_, c)) => *c += n,
            None => self.states.push((state, n)),
        }
    }

    /// How many runs are in `state`.
    pub fn get(&self, state: RunState) -> u64 {
        self.states
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }

    /// How many runs in all.
    pub fn total(&self) -> u64 {
        self.states.iter().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_named() {
        let c = RunCursor::after(SystemTime::now(), RunId::new());
        assert_eq!(c.to_string().parse::<RunCursor>().unwrap(), c);
        for bad in ["", "x", "12_nope", "a_0190ab", "1_2_3"] {
            match bad.parse::<RunCursor>() {
                Err(StoreError::BadQuery { what, .. }) => assert_eq!(what, "run cursor"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn id_prefixes_become_ranges() {
        let (lo, hi) = id_range("0190ab").unwrap();
        assert_eq!(lo, "0190ab00-0000-0000-0000-000000000000");
        assert_eq!(hi, "0190abff-ffff-ffff-ffff-ffffffffffff");
        assert_eq!(id_range("0190ab12-3").unwrap().0.len(), 36);
        assert!(id_range("01-").is_none());
        assert!(IdText::Prefix("zz".into()).checked().is_err());
        assert!(IdText::Contains("x".repeat(37)).checked().is_err());
    }
}
