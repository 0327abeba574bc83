//! `runs …`: recorded runs, read from the store.

use std::io::Write;
use std::time::Duration;

use super::App;
use super::cli::{ListArgs, RetryArgs, RunsCommand};
use super::commands::{engine, finish};
use super::config::Settings;
use super::error::CliError;
use super::{progress, table};
use crate::store::{RunQuery, RunRecord, Store};
use crate::{EventKind, RetryMode, RunId, RunState};

pub(super) async fn dispatch(
    app: &App,
    settings: &Settings,
    command: RunsCommand,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    live: bool,
) -> Result<(), CliError> {
    match command {
        RunsCommand::List(a) => list(settings, &a, out, err).await,
        RunsCommand::Show { id, svg } => show(settings, &id, svg, out).await,
        RunsCommand::Logs { id, node, follow } => {
            logs(settings, &id, node.as_deref(), follow, out).await
        }
        RunsCommand::Cancel { id } => {
            let id = parse_id(&id)?;
            let engine = engine(app, settings).await?;
            let state = engine.cancel_recorded(id).await?;
            if state.is_terminal() {
                writeln!(out, "run {id} {state}")?;
            } else if state == RunState::Pending {
                writeln!(
                    out,
                    "run {id} {state}: cancel recorded; the engine that takes the run (when it \
                     may start) cancels it before any job runs"
                )?;
            } else {
                writeln!(
                    out,
                    "run {id} {state}: cancel recorded; the engine driving the run stops it \
                     (or, if that engine stopped, the engine that resumes it)"
                )?;
            }
            Ok(())
        }
        RunsCommand::Retry(a) => retry(app, settings, &a, out, err, live).await,
    }
}

fn parse_id(id: &str) -> Result<RunId, CliError> {
    id.trim()
        .parse()
        .map_err(|e: crate::ParseRunIdError| CliError::usage(e.to_string()))
}

fn parse_state(s: &str) -> Result<RunState, CliError> {
    const ALL: [RunState; 5] = [
        RunState::Pending,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
    ];
    ALL.into_iter()
        .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| {
            CliError::usage(format!(
                "unknown run state `{s}` (one of: {})",
                ALL.map(RunState::as_str).join(", ")
            ))
        })
}

async fn record(store: &dyn Store, url: &str, id: &str) -> Result<RunRecord, CliError> {
    let id = parse_id(id)?;
    store
        .get_run(id)
        .await
        .map_err(|e| CliError::store(url, e))?
        .ok_or(CliError::Engine(crate::Error::RunNotFound(id)))
}

async fn list(
    settings: &Settings,
    a: &ListArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let store = settings.open_store().await?;
    let mut query = RunQuery::new().limit(a.limit.max(1));
    if let Some(w) = &a.workflow {
        query = query.workflow(w.clone());
    }
    if let Some(s) = &a.state {
        query = query.state(parse_state(s)?);
    }
    let page = store
        .list_runs(&query)
        .await
        .map_err(|e| CliError::store(&settings.store, e))?;
    let mut rows = vec![
        ["run", "workflow", "version", "state", "created", "duration"]
            .map(String::from)
            .to_vec(),
    ];
    for r in &page.items {
        let took = match (r.started_at, r.finished_at) {
            (Some(s), Some(f)) => table::duration(f.duration_since(s).unwrap_or_default()),
            _ => "-".to_owned(),
        };
        rows.push(vec![
            r.id.to_string(),
            r.workflow.clone(),
            r.version.clone(),
            r.state.to_string(),
            table::time(r.created_at),
            took,
        ]);
    }
    write!(out, "{}", table::render(&rows))?;
    if page.items.is_empty() && page.bad.is_empty() {
        writeln!(out, "(no runs)")?;
    }
    // A row that does not decode is named, and the others are listed all the same.
    for bad in &page.bad {
        let bad = bad.to_string();
        writeln!(
            err,
            "warning: {}; left out of the list",
            table::escape(&bad)
        )?;
    }
    Ok(())
}

async fn show(
    settings: &Settings,
    id: &str,
    svg: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let store = settings.open_store().await?;
    let run = record(&*store, &settings.store, id).await?;
    let execs = store
        .executions(run.id)
        .await
        .map_err(|e| CliError::store(&settings.store, e))?;
    if svg {
        // Each node's state: its record with the highest attempt (attempt 0 holds a
        // fan-out node's own state, and the state of a node that never ran).
        let mut states: std::collections::HashMap<&str, (u32, crate::NodeState)> =
            std::collections::HashMap::new();
        for e in execs.iter().filter(|e| e.item.is_none()) {
            let slot = states.entry(&e.node).or_insert((e.attempt, e.state));
            if e.attempt >= slot.0 {
                *slot = (e.attempt, e.state);
            }
        }
        let states: std::collections::HashMap<&str, crate::NodeState> =
            states.into_iter().map(|(k, (_, s))| (k, s)).collect();
        let doc = crate::workflow::render::svg(&run.spec.spec(), Some(&states));
        out.write_all(doc.as_bytes())?;
        return Ok(());
    }
    let retry_of = execs.iter().find_map(|e| {
        e.reason
            .as_deref()
            .and_then(|r| r.strip_prefix(crate::orchestrator::RETRY_REASON_PREFIX))
    });
    writeln!(out, "run       {}", run.id)?;
    writeln!(
        out,
        "workflow  {} v{}",
        table::escape(&run.workflow),
        table::escape(&run.version)
    )?;
    writeln!(out, "state     {}", run.state)?;
    if let Some(old) = retry_of {
        writeln!(out, "retry of  {}", table::escape(old))?;
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
    // Nodes in the workflow's order; within a node, as recorded.
    let spec = run.spec.spec();
    for n in &spec.nodes {
        let mine: Vec<_> = execs.iter().filter(|e| e.node == n.id).collect();
        if mine.is_empty() {
            rows.push(vec![
                n.id.clone(),
                "-".into(),
                "-".into(),
                "pending".into(),
                "-".into(),
                String::new(),
            ]);
        }
        for e in mine {
            // The attempt-0 row of a node that ran is its bookkeeping before the
            // first attempt; show it only when nothing else was recorded.
            if e.attempt == 0
                && e.item.is_none()
                && execs
                    .iter()
                    .any(|x| x.node == n.id && (x.attempt > 0 || x.item.is_some()))
                && n.fan_out.is_none()
            {
                continue;
            }
            let took = e
                .started_at
                .and_then(|s| e.updated_at.duration_since(s).ok())
                .map_or_else(|| "-".to_owned(), table::duration);
            let detail = e
                .error
                .as_ref()
                .map(ToString::to_string)
                .or_else(|| e.reason.clone())
                .unwrap_or_default();
            rows.push(vec![
                e.node.clone(),
                e.item.map_or_else(|| "-".to_owned(), |i| i.to_string()),
                e.attempt.to_string(),
                e.state.to_string(),
                took,
                detail,
            ]);
        }
    }
    write!(out, "{}", table::render(&rows))?;
    Ok(())
}

async fn logs(
    settings: &Settings,
    id: &str,
    node: Option<&str>,
    follow: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let store = settings.open_store().await?;
    let run = record(&*store, &settings.store, id).await?;
    if let Some(node) = node
        && !run.spec.spec().nodes.iter().any(|n| n.id == node)
    {
        return Err(CliError::Engine(crate::Error::NodeNotFound(
            node.to_owned(),
        )));
    }
    let mut after = 0;
    // Whether the run had finished before the events were read: then they are all
    // there, and following ends.
    let mut finished = run.state.is_terminal();
    loop {
        let page = store
            .events(run.id, after, 10_000)
            .await
            .map_err(|e| CliError::store(&settings.store, e))?;
        let full = page.len() == 10_000;
        for e in &page {
            after = e.seq;
            if let EventKind::Log {
                node: n,
                item,
                attempt,
                level,
                message,
            } = &e.kind
                && node.is_none_or(|want| want == &**n)
            {
                let item = item.map(|i| format!("[{i}]")).unwrap_or_default();
                writeln!(
                    out,
                    "{}  {}{item} #{attempt}  {level}: {}",
                    table::time(e.at),
                    table::escape(n),
                    table::escape(message)
                )?;
            }
        }
        out.flush()?;
        if full {
            continue;
        }
        if !follow || finished {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        finished = store
            .get_run(run.id)
            .await
            .map_err(|e| CliError::store(&settings.store, e))?
            .is_none_or(|r| r.state.is_terminal());
    }
}

async fn retry(
    app: &App,
    settings: &Settings,
    a: &RetryArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    live: bool,
) -> Result<(), CliError> {
    let id = parse_id(&a.id)?;
    let mode = if a.from_failed {
        RetryMode::FromFailed
    } else {
        RetryMode::Fresh
    };
    let engine = engine(app, settings).await?;
    if a.wait {
        let old = engine
            .store()
            .get_run(id)
            .await
            .map_err(|e| CliError::store(&settings.store, e))?
            .ok_or(CliError::Engine(crate::Error::RunNotFound(id)))?;
        let wf = app.find(&old.workflow)?;
        let events = engine.subscribe();
        let handle = engine.retry(id, mode).await?;
        writeln!(err, "run {} retries run {id}", handle.id())?;
        let result = progress::watch(&engine, events, handle, wf, &old.inputs, out, live).await?;
        finish(&result, out)
    } else {
        let new = engine.enqueue_retry(id, mode).await?;
        writeln!(out, "{new}")?;
        writeln!(
            err,
            "enqueued run {new}, a retry of run {id}: an engine serving {} runs it (`serve`)",
            settings.shown_store()
        )?;
        Ok(())
    }
}
