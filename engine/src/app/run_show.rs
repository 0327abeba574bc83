//! `runs show`: one recorded run — its attempts with their real states, errors and
//! outputs — as text, JSON, SVG, or one node's whole output.

use std::collections::HashMap;
use std::io::Write;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::cli::ShowArgs;
use super::config::Settings;
use super::error::CliError;
use super::{runid, table};
use crate::NodeState;
use crate::workflow::render;

/// The reason recorded on the events by which `runs retry --from-failed` puts a node
/// back (the engine's `RETRY_REASON_PREFIX`, a recorded text of the public records),
/// followed by the retried run's id. `tests/integration/usability` checks that a
/// retry's `runs show` names the run it retries, so this stays in step.
const RETRY_REASON_PREFIX: &str = "re-run by a retry of run ";
use crate::store::{ExecutionRecord, RunRecord};

/// How many characters of an output the text view shows.
const SHOWN_OUTPUT_CHARS: usize = 80;

pub(super) async fn show(
    settings: &Settings,
    a: &ShowArgs,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let store = settings.open_store().await?;
    let id = runid::resolve(&*store, &settings.store, &a.id).await?;
    let run = store
        .get_run(id)
        .await
        .map_err(|e| CliError::store(&settings.store, e))?
        .ok_or(CliError::Engine(crate::Error::RunNotFound(id)))?;
    let execs = store
        .executions(run.id)
        .await
        .map_err(|e| CliError::store(&settings.store, e))?;
    let view = RunView::new(&run, &execs);
    if a.svg {
        let states: HashMap<&str, NodeState> = view
            .nodes
            .iter()
            .filter_map(|n| Some((n.id.as_str(), n.state?)))
            .collect();
        let doc = render::svg(&run.spec.spec(), Some(&states));
        out.write_all(doc.as_bytes())?;
        return Ok(());
    }
    if let Some(node) = &a.output {
        let Some(n) = view.nodes.iter().find(|n| &n.id == node) else {
            return Err(CliError::Engine(crate::Error::NodeNotFound(node.clone())));
        };
        let Some(output) = n.output else {
            return Err(CliError::usage(format!(
                "node `{node}` of run {} has no output: it is {}",
                run.id,
                n.state.map_or("not started", NodeState::as_str)
            )));
        };
        let text = serde_json::to_string_pretty(output).unwrap_or_default();
        writeln!(out, "{text}")?;
        return Ok(());
    }
    if a.json {
        let text = serde_json::to_string_pretty(&view.to_json(&run)).unwrap_or_default();
        writeln!(out, "{text}")?;
        return Ok(());
    }
    view.write_text(&run, out)
}

/// One node as shown: its own state and output, and the attempts worth a row.
struct NodeView<'a> {
    id: String,
    job: String,
    fan_out: bool,
    /// Its own record with the highest attempt (attempt 0 holds a fan-out node's
    /// state, and the state of a node that never ran); `None`: nothing recorded.
    state: Option<NodeState>,
    output: Option<&'a Value>,
    attempts: Vec<&'a ExecutionRecord>,
}

/// A run's nodes in the workflow's order, with the run it retries, if any.
struct RunView<'a> {
    nodes: Vec<NodeView<'a>>,
    /// The run this one retries (`runs retry --from-failed`).
    retry_of: Option<&'a str>,
}

impl<'a> RunView<'a> {
    fn new(run: &RunRecord, execs: &'a [ExecutionRecord]) -> Self {
        let retry_of = execs.iter().find_map(|e| {
            e.reason
                .as_deref()
                .and_then(|r| r.strip_prefix(RETRY_REASON_PREFIX))
        });
        let spec = run.spec.spec();
        let nodes = spec
            .nodes
            .iter()
            .map(|n| {
                let mine: Vec<&ExecutionRecord> = execs.iter().filter(|e| e.node == n.id).collect();
                let own = mine
                    .iter()
                    .filter(|e| e.item.is_none())
                    .max_by_key(|e| e.attempt);
                let fan_out = n.fan_out.is_some();
                let attempts = mine
                    .iter()
                    .copied()
                    .filter(|e| shown(e, &mine, fan_out))
                    .collect();
                NodeView {
                    id: n.id.clone(),
                    job: n.job.clone(),
                    fan_out,
                    state: own.map(|e| e.state),
                    output: own
                        .filter(|e| e.state == NodeState::Succeeded)
                        .and_then(|e| e.output.as_ref()),
                    attempts,
                }
            })
            .collect();
        RunView { nodes, retry_of }
    }

    fn write_text(&self, run: &RunRecord, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
        writeln!(out, "run       {}", run.id)?;
        writeln!(
            out,
            "workflow  {} v{}",
            table::escape(&run.workflow),
            table::escape(&run.version)
        )?;
        writeln!(out, "state     {}", run.state)?;
        if let Some(old) = self.retry_of {
            writeln!(
                out,
                "retry of  {} (attempts marked * ran there)",
                table::escape(old)
            )?;
        }
        writeln!(out, "inputs    {}", table::escape(&run.inputs.to_string()))?;
        writeln!(out, "created   {}", table::time(run.created_at))?;
        if let Some(t) = run.started_at {
            writeln!(out, "started   {}", table::time(t))?;
        }
        if let Some(t) = run.finished_at {
            writeln!(out, "finished  {}", table::time(t))?;
        }
        writeln!(out)?;
        let mut rows = vec![
            [
                "node",
                "item",
                "attempt",
                "state",
                "duration",
                "error / reason",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for n in &self.nodes {
            if n.attempts.is_empty() {
                rows.push(vec![
                    n.id.clone(),
                    "-".into(),
                    "-".into(),
                    "pending".into(),
                    "-".into(),
                    String::new(),
                ]);
            }
            for e in &n.attempts {
                let mark = if self.retry_of.is_some() && earlier(e, run) {
                    "*"
                } else {
                    ""
                };
                rows.push(vec![
                    e.node.clone(),
                    e.item.map_or_else(|| "-".to_owned(), |i| i.to_string()),
                    format!("{}{mark}", e.attempt),
                    e.state.to_string(),
                    took(e).map_or_else(|| "-".to_owned(), table::duration),
                    e.error
                        .as_ref()
                        .map(ToString::to_string)
                        .or_else(|| e.reason.clone())
                        .unwrap_or_default(),
                ]);
            }
        }
        write!(out, "{}", table::render(&rows))?;
        let outputs: Vec<(&str, &Value)> = self
            .nodes
            .iter()
            .filter_map(|n| Some((n.id.as_str(), n.output?)))
            .collect();
        if !outputs.is_empty() {
            writeln!(out)?;
            writeln!(
                out,
                "outputs (`runs show {} --output NODE` prints one whole):",
                run.id
            )?;
            let width = outputs
                .iter()
                .map(|(n, _)| n.chars().count())
                .max()
                .unwrap_or(0);
            for (node, value) in outputs {
                writeln!(
                    out,
                    "  {:<width$}  {}",
                    table::escape(node),
                    table::escape(&truncate(&value.to_string(), SHOWN_OUTPUT_CHARS))
                )?;
            }
        }
        Ok(())
    }

    /// The stable JSON shape (documented in the CLI guide).
    fn to_json(&self, run: &RunRecord) -> Value {
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| {
                let attempts: Vec<Value> = n
                    .attempts
                    .iter()
                    .map(|e| {
                        json!({
                            "item": e.item,
                            "attempt": e.attempt,
                            "state": e.state.as_str(),
                            "started_at": e.started_at.map(rfc3339),
                            "updated_at": rfc3339(e.updated_at),
                            "duration_ms": took(e).map(|d| d.as_millis() as u64),
                            "error": e.error.as_ref().map(|x| json!({
                                "kind": x.kind,
                                "message": x.message,
                            })),
                            "reason": e.reason,
                            "in_retried_run": self.retry_of.is_some() && earlier(e, run),
                        })
                    })
                    .collect();
                json!({
                    "id": n.id,
                    "job": n.job,
                    "fan_out": n.fan_out,
                    "state": n.state.map_or("pending", NodeState::as_str),
                    "output": n.output,
                    "attempts": attempts,
                })
            })
            .collect();
        let mut doc = run_json(run);
        if let Value::Object(m) = &mut doc {
            m.insert("inputs".into(), run.inputs.clone());
            m.insert(
                "retry_of".into(),
                self.retry_of
                    .map_or(Value::Null, |s| Value::String(s.to_owned())),
            );
            m.insert("nodes".into(), Value::Array(nodes));
        }
        doc
    }
}

/// Whether attempt row `e` of a node (whose rows are `mine`) is worth showing. An
/// item's attempt-0 row (put back to ready by a retry, or waiting for its first
/// attempt) and a plain node's attempt-0 row (its bookkeeping before the first
/// attempt) are shown only when nothing else was recorded for it; a fan-out node's
/// own row (attempt 0) is its state and always shown.
fn shown(e: &ExecutionRecord, mine: &[&ExecutionRecord], fan_out: bool) -> bool {
    if e.attempt > 0 {
        return true;
    }
    match e.item {
        Some(item) => !mine.iter().any(|x| x.item == Some(item) && x.attempt > 0),
        None => fan_out || !mine.iter().any(|x| x.attempt > 0 || x.item.is_some()),
    }
}

/// Whether attempt `e` ran before `run` was created: in the run it retries (a retry
/// starts from a copy of the old run's history, times included).
fn earlier(e: &ExecutionRecord, run: &RunRecord) -> bool {
    e.updated_at < run.created_at
}

fn took(e: &ExecutionRecord) -> Option<std::time::Duration> {
    e.started_at
        .and_then(|s| e.updated_at.duration_since(s).ok())
}

/// `text` cut to `max` characters, with `…` where it was cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// RFC 3339 in UTC, to the millisecond.
pub(super) fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A run's summary as JSON: the shape of each item of `runs list --json`, and the top
/// of `runs show --json`.
pub(super) fn run_json(r: &RunRecord) -> Value {
    let duration = match (r.started_at, r.finished_at) {
        (Some(s), Some(f)) => f.duration_since(s).ok().map(|d| d.as_millis() as u64),
        _ => None,
    };
    json!({
        "id": r.id.to_string(),
        "workflow": r.workflow,
        "version": r.version,
        "state": r.state.as_str(),
        "created_at": rfc3339(r.created_at),
        "started_at": r.started_at.map(rfc3339),
        "finished_at": r.finished_at.map(rfc3339),
        "duration_ms": duration,
        "priority": r.priority,
        "not_before": r.not_before.map(rfc3339),
        "queue": r.queue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_cut_with_an_ellipsis() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdefghijkl", 5), "abcd…");
        assert_eq!(truncate("ééééé", 5), "ééééé");
    }

    #[test]
    fn attempt_zero_rows_only_when_nothing_else_is_recorded() {
        let t = SystemTime::UNIX_EPOCH;
        let item0 = ExecutionRecord::new("f", Some(1), 0, NodeState::Ready, t);
        let item1 = ExecutionRecord::new("f", Some(1), 1, NodeState::Failed, t);
        let lone = ExecutionRecord::new("f", Some(2), 0, NodeState::Ready, t);
        let own = ExecutionRecord::new("f", None, 0, NodeState::Running, t);
        let mine = [&item0, &item1, &lone, &own];
        assert!(!shown(&item0, &mine, true));
        assert!(shown(&item1, &mine, true));
        assert!(shown(&lone, &mine, true));
        assert!(shown(&own, &mine, true));
        let plain0 = ExecutionRecord::new("p", None, 0, NodeState::Pending, t);
        let plain1 = ExecutionRecord::new("p", None, 1, NodeState::Succeeded, t);
        assert!(!shown(&plain0, &[&plain0, &plain1], false));
        assert!(shown(&plain0, &[&plain0], false));
    }
}
