//! `serve`'s one line per run started and per run finished, as text or JSON lines,
//! on standard error; none with `-q`.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Instant, SystemTime};

use serde_json::json;

use super::cli::LogFormat;
use super::table;
use crate::{Engine, EventKind, EventStream, RunId, RunState};

/// What a line says about a run.
struct Known {
    workflow: String,
    version: String,
    /// When this process saw it start (a run it resumed: its recorded start).
    since: Option<Instant>,
    started_at: Option<SystemTime>,
}

/// Drives `serve` (the future) and prints, as the engine's events come, one line per
/// run started and finished, until `serve` ends. With `quiet`, only drives it.
pub(super) async fn serve_with_lines<F, T>(
    engine: &Engine,
    serve: F,
    quiet: bool,
    format: LogFormat,
    err: &mut (dyn Write + Send),
) -> T
where
    F: std::future::Future<Output = T>,
{
    if quiet {
        return serve.await;
    }
    let mut events: EventStream = engine.subscribe();
    let mut known: HashMap<RunId, Known> = HashMap::new();
    tokio::pin!(serve);
    loop {
        tokio::select! {
            done = &mut serve => return done,
            e = events.next() => {
                let Some(e) = e else { return serve.await };
                if let EventKind::Run { from, to } = e.kind {
                    on_run(engine, &mut known, e.run, from, to, format, err).await;
                }
            }
        }
    }
}

async fn on_run(
    engine: &Engine,
    known: &mut HashMap<RunId, Known>,
    run: RunId,
    from: RunState,
    to: RunState,
    format: LogFormat,
    err: &mut (dyn Write + Send),
) {
    if let std::collections::hash_map::Entry::Vacant(slot) = known.entry(run) {
        let record = engine.store().get_run(run).await.ok().flatten();
        slot.insert(Known {
            workflow: record
                .as_ref()
                .map_or_else(String::new, |r| r.workflow.clone()),
            version: record
                .as_ref()
                .map_or_else(String::new, |r| r.version.clone()),
            since: None,
            started_at: record.and_then(|r| r.started_at),
        });
    }
    let Some(k) = known.get_mut(&run) else {
        return;
    };
    let line = if to == RunState::Running && from != RunState::Running {
        k.since = Some(Instant::now());
        match format {
            LogFormat::Text => format!(
                "run {run} started: {} v{}",
                table::escape(&k.workflow),
                table::escape(&k.version)
            ),
            LogFormat::Json => json!({
                "event": "run_started",
                "run": run.to_string(),
                "workflow": k.workflow,
                "version": k.version,
                "at": super::run_show::rfc3339(SystemTime::now()),
            })
            .to_string(),
        }
    } else if to.is_terminal() {
        let took = k.since.map(|s| s.elapsed()).or_else(|| {
            k.started_at
                .and_then(|s| SystemTime::now().duration_since(s).ok())
        });
        let line = match format {
            LogFormat::Text => format!(
                "run {run} {to}{}: {} v{}",
                took.map(|d| format!(" in {}", table::duration(d)))
                    .unwrap_or_default(),
                table::escape(&k.workflow),
                table::escape(&k.version)
            ),
            LogFormat::Json => json!({
                "event": "run_finished",
                "run": run.to_string(),
                "workflow": k.workflow,
                "version": k.version,
                "state": to.as_str(),
                "duration_ms": took.map(|d| d.as_millis() as u64),
                "at": super::run_show::rfc3339(SystemTime::now()),
            })
            .to_string(),
        };
        known.remove(&run);
        line
    } else {
        return;
    };
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}
