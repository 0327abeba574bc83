//! `jobs run NAME [-i KEY=VALUE]… [--input-json FILE]`: one job by itself, once, in
//! this process — to try a job without a workflow or a run (as `airflow tasks test`).
//! Its log lines and progress go to standard error as they come, its output to
//! standard output as JSON; nothing is recorded in the store.

use std::io::Write;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::App;
use super::cli::JobRunArgs;
use super::config::{Settings, read_capped, read_capped_from};
use super::error::CliError;
use super::inputs::MAX_INPUT_JSON_BYTES;
use super::table;
use crate::signal::{Signal, SignalSender};
use crate::{JobContext, RunId};

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
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let ctx = JobContext::new(
        RunId::new(),
        a.name.as_str().into(),
        None,
        1,
        cancel.clone(),
        Some(SignalSender::new(tx, 0)),
    )
    .with_artifacts(settings.artifact_store()?);
    let spec = job.spec();
    let call = job.call(ctx, input);
    tokio::pin!(call);
    let timeout = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    let result = loop {
        tokio::select! {
            r = &mut call => break r,
            Some((_, signal)) = rx.recv() => show(&signal, err)?,
            () = &mut timeout => {
                cancel.cancel();
                let message = format!(
                    "job `{}` timed out after {}",
                    table::escape(&a.name),
                    table::duration(spec.timeout.unwrap_or_default())
                );
                writeln!(err, "error: {message}")?;
                return Err(CliError::Failed(message));
            }
        }
    };
    // Lines sent just before the job returned.
    while let Ok((_, signal)) = rx.try_recv() {
        show(&signal, err)?;
    }
    match result {
        Ok(output) => {
            let text = serde_json::to_string_pretty(&output).unwrap_or_default();
            writeln!(out, "{text}")?;
            Ok(())
        }
        Err(e) => {
            writeln!(
                err,
                "error: job `{}` failed ({:?}): {}",
                table::escape(&a.name),
                e.kind,
                table::escape(&e.message)
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
fn show(signal: &Signal, err: &mut (dyn Write + Send)) -> std::io::Result<()> {
    match signal {
        Signal::Log { level, message } => writeln!(err, "{level}: {}", table::escape(message)),
        Signal::Progress { percent, message } => {
            writeln!(err, "{percent:>3}% {}", table::escape(message))
        }
        _ => Ok(()),
    }
}
