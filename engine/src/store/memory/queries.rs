//! Reading runs back from the memory store: runs newest first, counts, executions
//! (whole or paged), events and log lines.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;

use crate::events::{Event, EventKind};
use crate::ids::RunId;
use crate::store::query::page_size;
use crate::store::{
    ExecutionCursor, ExecutionPage, ExecutionQuery, ExecutionRecord, LogLine, LogQuery,
    NodeSummary, Page, RunCounts, RunCursor, RunQuery, RunRecord, StoreError, SummaryQuery,
};

use super::entry::Entry;
use super::{MemoryStore, lock};

/// The paging order of executions: node, item (the node's own row first), attempt.
fn key(e: &ExecutionRecord) -> (&str, i64, u32) {
    (&e.node, e.item.map_or(-1, i64::from), e.attempt)
}

#[async_trait::async_trait]
impl crate::store::RunQueries for MemoryStore {
    async fn get_run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        Ok(self.lock().get(&run).map(|e| e.record.clone()))
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Page<RunRecord>, StoreError> {
        query.check()?;
        let size = page_size(query.limit);
        let runs = self.lock();
        let cursor = match (query.cursor, query.before) {
            (Some(c), _) => Some(c),
            (None, Some(b)) => {
                let e = runs.get(&b).ok_or(StoreError::UnknownRun(b))?;
                Some(RunCursor::after_run(&e.record))
            }
            (None, None) => None,
        };
        let upper = match cursor {
            Some(c) => Bound::Excluded((c.created_us, c.id)),
            None => Bound::Unbounded,
        };
        let created = lock(&self.created);
        let mut items = Vec::with_capacity(size.min(runs.len()));
        let mut more = false;
        for (_, id) in created.range((Bound::Unbounded, upper)).rev() {
            let Some(e) = runs.get(id) else { continue };
            if !query.matches(&e.record) {
                continue;
            }
            if items.len() == size {
                more = true;
                break;
            }
            items.push(e.record.clone());
        }
        let last = items.last().filter(|_| more);
        let (next, cursor) = (last.map(|r| r.id), last.map(RunCursor::after_run));
        Ok(Page::new(items, next).with_cursor(cursor))
    }

    async fn count_runs(&self, query: &RunQuery) -> Result<RunCounts, StoreError> {
        query.check()?;
        let runs = self.lock();
        let mut counts = RunCounts::default();
        for e in runs.values().filter(|e| query.matches(&e.record)) {
            counts.add(e.record.state, 1);
        }
        Ok(counts)
    }

    async fn executions_page(
        &self,
        run: RunId,
        query: &ExecutionQuery,
    ) -> Result<ExecutionPage, StoreError> {
        query.check()?;
        let mut rows: Vec<ExecutionRecord> = folded(&self.lock(), run)?
            .into_iter()
            .filter(|e| query.matches(e))
            .filter(|e| query.after.as_ref().is_none_or(|c| key(e) > c.key()))
            .collect();
        rows.sort_by(|a, b| key(a).cmp(&key(b)));
        let size = query.size();
        let next = (rows.len() > size).then(|| ExecutionCursor::after(&rows[size - 1]));
        rows.truncate(size);
        Ok(ExecutionPage::new(rows, next))
    }

    async fn count_executions(
        &self,
        run: RunId,
        query: &ExecutionQuery,
    ) -> Result<u64, StoreError> {
        query.check()?;
        let rows = folded(&self.lock(), run)?;
        Ok(rows.iter().filter(|e| query.matches(e)).count() as u64)
    }

    async fn node_summaries(
        &self,
        run: RunId,
        query: &SummaryQuery,
    ) -> Result<Vec<NodeSummary>, StoreError> {
        query.check()?;
        let mut rows = folded(&self.lock(), run)?;
        if let Some(n) = &query.node {
            rows.retain(|e| e.node == *n);
        }
        rows.sort_by(|a, b| key(a).cmp(&key(b)));
        let mut sums = crate::store::summary::Summer::new(query);
        for e in &rows {
            sums.add(e);
        }
        Ok(sums.finish())
    }

    async fn logs(&self, run: RunId, query: &LogQuery) -> Result<Vec<LogLine>, StoreError> {
        query.check()?;
        let size = query.size();
        let runs = self.lock();
        let entry = runs.get(&run).ok_or(StoreError::UnknownRun(run))?;
        let start = usize::try_from(query.after)
            .unwrap_or(usize::MAX)
            .min(entry.len);
        let mut out = VecDeque::with_capacity(size.min(1024));
        for (seq, e) in entry.iter_from(start) {
            let Some(line) = query.line_of(seq, e.at, &e.kind) else {
                continue;
            };
            if out.len() == size {
                if !query.tail {
                    break;
                }
                out.pop_front();
            }
            out.push_back(line);
        }
        Ok(out.into())
    }

    async fn executions(&self, run: RunId) -> Result<Vec<ExecutionRecord>, StoreError> {
        folded(&self.lock(), run)
    }

    async fn events(&self, run: RunId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let runs = self.lock();
        let entry = runs.get(&run).ok_or(StoreError::UnknownRun(run))?;
        // Sequence numbers are dense from 1, so `seq = index + 1`.
        let start = usize::try_from(after).unwrap_or(usize::MAX).min(entry.len);
        Ok(entry
            .iter_from(start)
            .take(limit)
            .map(|(seq, e)| Event {
                run,
                seq,
                at: e.at,
                kind: e.kind.clone(),
            })
            .collect())
    }
}

/// Every execution of `run`, folded from its node events in the order first seen.
fn folded(runs: &BTreeMap<RunId, Entry>, run: RunId) -> Result<Vec<ExecutionRecord>, StoreError> {
    let entry = runs.get(&run).ok_or(StoreError::UnknownRun(run))?;
    let mut out: Vec<ExecutionRecord> = Vec::new();
    let mut index: HashMap<(&str, Option<u32>, u32), usize> = HashMap::new();
    for (_, e) in entry.iter_from(0) {
        let EventKind::Node(n) = &e.kind else {
            continue;
        };
        let key = (&*n.node, n.item, n.attempt);
        let i = *index.entry(key).or_insert_with(|| {
            out.push(ExecutionRecord {
                node: String::from(&*n.node),
                item: n.item,
                attempt: n.attempt,
                state: n.to,
                output: None,
                error: None,
                reason: None,
                started_at: None,
                updated_at: e.at,
            });
            out.len() - 1
        });
        let rec = &mut out[i];
        rec.state = n.to;
        rec.updated_at = e.at;
        if n.to == crate::state::NodeState::Running {
            rec.started_at = Some(e.at);
        }
        if let Some(o) = &n.output {
            rec.output = Some((**o).clone());
        }
        if let Some(err) = &n.error {
            rec.error = Some((**err).clone());
        }
        if let Some(r) = &n.reason {
            rec.reason = Some(String::from(&**r));
        }
    }
    Ok(out)
}
