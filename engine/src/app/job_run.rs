//! `jobs run NAME [-i KEY=VALUE]… [--input-json FILE]`: one job by itself, once, in
//! this process — to try a job without a workflow or a run (as `airflow tasks test`).
//! Its log lines and progress go to standard error as they come, its output to
//! standard output as JSON; nothing is recorded in the store.

use std::io::Write;

use serde_json::Value;

use super::App;
use super::cli::JobRunArgs;
use super::config::{Settings, read_capped, read_capped_from};
use super::error::CliError;
use super::inputs::MAX_INPUT_JSON_BYTES;
use super::table;
use crate::store::MemoryStore;
use crate::{Engine, EventKind, NodeState, Workflow};

pub(super) async fn run(
    app: &App,
    settings: &Settings,
    a: &JobRunArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let Some(job) = app.registry.get(&a.name) else {
        let known = app.registry.names().join(", ");
        return Err(CliError::usage(format!(
            "no job named `{}` is registered (known: {known})",
            a.name
        )));
    };
    let input = input(a)?;
    // A one-node workflow on a memory store: the job gets what it gets in a run (its
    // timeout, the app's resources and settings, the artifact store), once.
    let mut wf = Workflow::builder(format!("jobs-run-{}", a.name));
    wf.node(a.name.as_str(), job).input(input).retries(0);
    let wf = wf
        .build()
        .map_err(|e| CliError::usage(format!("job `{}`: {e}", a.name)))?;
    let engine = Engine::builder()
        .resources(app.resource_set(settings.app_settings.as_ref())?)
        .artifacts(settings.artifact_store()?)
        .store(MemoryStore::new())
        .workflow(&wf)
        .build();
    let mut events = engine.subscribe();
    let handle = engine.start(&wf, serde_json::json!({})).await?;
    let wait = handle.wait();
    tokio::pin!(wait);
    let result = loop {
        tokio::select! {
            r = &mut wait => break r,
            e = events.next() => match e {
                Some(e) => show(&e.kind, err)?,
                None => break (&mut wait).await,
            },
        }
    };
    // Lines published just before the run returned.
    while let Ok(Some(e)) =
        tokio::time::timeout(std::time::Duration::from_millis(50), events.next()).await
    {
        show(&e.kind, err)?;
    }
    engine.close_resources().await;
    let result = result?;
    let node = result.node(&a.name);
    match node {
        Some(n) if n.state == NodeState::Succeeded => {
            let output = n.output.clone().unwrap_or(Value::Null);
            let text = serde_json::to_string_pretty(&output).unwrap_or_default();
            writeln!(out, "{text}")?;
            Ok(())
        }
        _ => {
            let why = node
                .and_then(|n| {
                    n.error
                        .as_ref()
                        .map(|e| format!("{:?}: {}", e.kind, e.message))
                })
                .unwrap_or_else(|| result.state.to_string());
            writeln!(
                err,
                "error: job `{}` failed ({})",
                table::escape(&a.name),
                table::escape(&why)
            )?;
            Err(CliError::Failed(format!("job `{}` failed", a.name)))
        }
    }
}

/// The job's input: `--input-json`'s value (any JSON), then each `-i KEY=VALUE` set
/// on it (it must then be an object); null when neither is given.
fn input(a: &JobRunArgs) -> Result<Value, CliError> {
    let mut value = match &a.input_json {
        None => Value::Null,
        Some(path) => {
            let shown = path.display().to_string();
            let text = if shown == "-" {
                read_capped_from(std::io::stdin().lock(), MAX_INPUT_JSON_BYTES)
            } else {
                read_capped(path, MAX_INPUT_JSON_BYTES)
            }
            .map_err(|e| CliError::usage(format!("--input-json {shown}: {e}")))?;
            serde_json::from_str(&text)
                .map_err(|e| CliError::usage(format!("--input-json {shown}: not JSON: {e}")))?
        }
    };
    if a.inputs.is_empty() {
        return Ok(value);
    }
    let fields = super::inputs::parse(&a.inputs, None)?;
    match (&mut value, fields) {
        (Value::Null, fields) => Ok(fields),
        (Value::Object(m), Value::Object(f)) => {
            m.extend(f);
            Ok(value)
        }
        _ => Err(CliError::usage(
            "--input KEY=VALUE sets fields of an object input; --input-json gave another kind of value",
        )),
    }
}

/// A log line or progress report of the job, on standard error.
fn show(kind: &EventKind, err: &mut (dyn Write + Send)) -> std::io::Result<()> {
    match kind {
        EventKind::Log { level, message, .. } => {
            writeln!(err, "{level}: {}", table::escape(message))
        }
        EventKind::Progress {
            percent, message, ..
        } => writeln!(err, "{percent:>3}% {}", table::escape(message)),
        _ => Ok(()),
    }
}
