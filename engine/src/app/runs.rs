//! `runs …`: recorded runs, read from the store.

use std::io::Write;

use super::App;
use super::cli::{ListArgs, RetryArgs, RunsCommand};
use super::commands::{engine, finish};
use super::config::Settings;
use super::error::CliError;
use super::{progress, run_follow, run_show, runid, table};
use crate::store::RunQuery;
use crate::{RetryMode, RunState};

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
        RunsCommand::Show(a) => run_show::show(settings, &a, out).await,
        RunsCommand::Logs { id, node, follow } => {
            run_follow::logs(settings, &id, node.as_deref(), follow, out).await
        }
        RunsCommand::Watch { id } => run_follow::watch(app, settings, &id, out, live).await,
        RunsCommand::Cancel { id } => {
            let engine = engine(app, settings).await?;
            let id = runid::resolve(&**engine.store(), &settings.store, &id).await?;
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
    if a.json {
        let runs: Vec<serde_json::Value> = page.items.iter().map(run_show::run_json).collect();
        let text = serde_json::to_string_pretty(&runs).unwrap_or_default();
        writeln!(out, "{text}")?;
    } else {
        table_of_runs(&page.items, out)?;
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

fn table_of_runs(
    runs: &[crate::store::RunRecord],
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let mut rows = vec![
        ["run", "workflow", "version", "state", "created", "duration"]
            .map(String::from)
            .to_vec(),
    ];
    for r in runs {
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
    if runs.is_empty() {
        writeln!(out, "(no runs)")?;
    }
    Ok(())
}

async fn retry(
    app: &App,
    settings: &Settings,
    a: &RetryArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    live: bool,
) -> Result<(), CliError> {
    let mode = if a.from_failed {
        RetryMode::FromFailed
    } else {
        RetryMode::Fresh
    };
    let engine = engine(app, settings).await?;
    let id = runid::resolve(&**engine.store(), &settings.store, &a.id).await?;
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
