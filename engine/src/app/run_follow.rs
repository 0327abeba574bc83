//! `runs logs` and `runs watch`: a recorded run's events, as they were and as they
//! come, read from the store (any store, whichever engine drives the run).

use std::io::Write;
use std::time::Duration;

use super::App;
use super::config::Settings;
use super::error::CliError;
use super::{progress, run_show, runid, table};
use crate::EventKind;

/// How often `runs logs --follow` reads the store's new events.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// The events read from the store at once.
const PAGE: usize = 10_000;

/// `runs logs ID [NODE] [--follow]`: the jobs' log lines and the errors of failed
/// attempts; with `--follow`, also every state change of the run and its nodes, until
/// the run finishes.
pub(super) async fn logs(
    settings: &Settings,
    id: &str,
    node: Option<&str>,
    follow: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let store = settings.open_store().await?;
    let id = runid::resolve(&*store, &settings.store, id).await?;
    let run = store
        .get_run(id)
        .await
        .map_err(|e| CliError::store(&settings.store, e))?
        .ok_or(CliError::Engine(crate::Error::RunNotFound(id)))?;
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
            .events(run.id, after, PAGE)
            .await
            .map_err(|e| CliError::store(&settings.store, e))?;
        for e in &page {
            after = e.seq;
            if let Some(line) = line(&e.kind, node, follow) {
                writeln!(out, "{}  {line}", table::time(e.at))?;
            }
        }
        out.flush()?;
        if page.len() == PAGE {
            continue;
        }
        if !follow || finished {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
        finished = store
            .get_run(run.id)
            .await
            .map_err(|e| CliError::store(&settings.store, e))?
            .is_none_or(|r| r.state.is_terminal());
    }
}

/// What `runs logs` prints for one event (after its time), if anything: a log line
/// (`node[item] #attempt  level: message`), a failed attempt's error
/// (`node #attempt  retrying: error`), and with `states` every other state change
/// (`node #attempt  ready → running`, `run running → succeeded`). Only `node`'s, with
/// a node.
fn line(kind: &EventKind, node: Option<&str>, states: bool) -> Option<String> {
    let label = |n: &str, item: Option<u32>, attempt: u32| {
        let item = item.map(|i| format!("[{i}]")).unwrap_or_default();
        format!("{}{item} #{attempt}", table::escape(n))
    };
    match kind {
        EventKind::Log {
            node: n,
            item,
            attempt,
            level,
            message,
        } if node.is_none_or(|want| want == &**n) => Some(format!(
            "{}  {level}: {}",
            label(n, *item, *attempt),
            table::escape(message)
        )),
        EventKind::Node(e) if node.is_none_or(|want| want == &*e.node) => {
            let why = e
                .error
                .as_ref()
                .map(|x| x.message.clone())
                .or_else(|| e.reason.as_deref().map(str::to_owned));
            match (&e.error, states) {
                (Some(x), false) => Some(format!(
                    "{}  {}: {}",
                    label(&e.node, e.item, e.attempt),
                    e.to,
                    table::escape(&x.message)
                )),
                (_, true) => Some(format!(
                    "{}  {} → {}{}",
                    label(&e.node, e.item, e.attempt),
                    e.from,
                    e.to,
                    why.map(|w| format!(": {}", table::escape(&w)))
                        .unwrap_or_default()
                )),
                (None, false) => None,
            }
        }
        EventKind::Run { from, to } if states && node.is_none() => {
            Some(format!("run {from} → {to}"))
        }
        _ => None,
    }
}

/// `runs watch ID`: the live display of `run --wait` for a run driven anywhere, then
/// the run as `runs show` prints it; exit code 1 when it did not succeed.
pub(super) async fn watch(
    app: &App,
    settings: &Settings,
    id: &str,
    out: &mut (dyn Write + Send),
    live: bool,
) -> Result<(), CliError> {
    let store = settings.open_store().await?;
    let id = runid::resolve(&*store, &settings.store, id).await?;
    let run = store
        .get_run(id)
        .await
        .map_err(|e| CliError::store(&settings.store, e))?
        .ok_or(CliError::Engine(crate::Error::RunNotFound(id)))?;
    let wf = app
        .all_workflows
        .iter()
        .rev()
        .find(|w| w.name() == run.workflow && w.version() == run.version)
        .map_or_else(|| app.find(&run.workflow), Ok)?;
    let state = progress::watch_store(&*store, &settings.store, &run, wf, out, live).await?;
    writeln!(out)?;
    let args = super::cli::ShowArgs {
        id: id.to_string(),
        svg: false,
        json: false,
        output: None,
    };
    run_show::show(settings, &args, out).await?;
    if state == crate::RunState::Succeeded {
        Ok(())
    } else {
        Err(CliError::Failed(format!("run {id} {state}")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::{ErrorInfo, ErrorKind};
    use crate::events::NodeEvent;
    use crate::{LogLevel, NodeState, RunState};

    #[test]
    fn errors_always_state_changes_when_following() {
        let failed = EventKind::Node(
            NodeEvent::new(
                Arc::from("pub"),
                None,
                1,
                NodeState::Running,
                NodeState::Retrying,
            )
            .with_error(ErrorInfo::new(ErrorKind::Failed, "503")),
        );
        assert_eq!(line(&failed, None, false).unwrap(), "pub #1  retrying: 503");
        assert_eq!(
            line(&failed, None, true).unwrap(),
            "pub #1  running → retrying: 503"
        );
        assert_eq!(line(&failed, Some("other"), false), None);
        let ran = EventKind::Node(NodeEvent::new(
            Arc::from("f"),
            Some(2),
            1,
            NodeState::Ready,
            NodeState::Running,
        ));
        assert_eq!(line(&ran, None, false), None);
        assert_eq!(line(&ran, None, true).unwrap(), "f[2] #1  ready → running");
        let run = EventKind::Run {
            from: RunState::Running,
            to: RunState::Succeeded,
        };
        assert_eq!(line(&run, None, true).unwrap(), "run running → succeeded");
        assert_eq!(line(&run, Some("f"), true), None);
        let log = EventKind::Log {
            node: Arc::from("f"),
            item: None,
            attempt: 2,
            level: LogLevel::Warn,
            message: "slow\u{1b}".to_owned(),
        };
        assert_eq!(line(&log, None, false).unwrap(), "f #2  warn: slow\\u{1b}");
    }
}
