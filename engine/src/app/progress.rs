//! Following a run as it happens: live bars on a terminal, event lines otherwise.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::error::CliError;
use super::interrupt::{self, Interrupts};
use crate::{Engine, EventKind, EventStream, NodeEvent, NodeState, RunHandle, RunResult, Workflow};

/// Follows the run behind `handle` (whose events `events` receives, subscribed before
/// it started) until it finishes. With `live`, draws one spinner per running node and
/// a done/total bar per fan-out node on standard error; otherwise prints each event as
/// a line on `out`.
pub(super) async fn watch(
    engine: &Engine,
    mut events: EventStream,
    handle: RunHandle,
    wf: &Workflow,
    inputs: &Value,
    out: &mut (dyn Write + Send),
    live: bool,
) -> Result<RunResult, CliError> {
    let id = handle.id();
    if !live {
        writeln!(out, "run {id} of {} v{}", wf.name(), wf.version())?;
    }
    let mut view = View::new(wf, live).with_inputs(inputs);
    let wait = handle.wait();
    tokio::pin!(wait);
    // Ctrl-C cancels the run (its jobs get their cancellation token, then the engine's
    // grace period) and the display shows it winding down; a second Ctrl-C records the
    // cancellation in the store and leaves at once (see `leave`).
    let mut interrupts = Interrupts::listen();
    interrupts.fallback(
        format!(
            "interrupted: run {id} left unfinished, and recording its cancellation did not \
             finish in time, so the store may not hold it: an engine serving the store may \
             resume the run once this process's lease on it expires; `runs cancel {id}` \
             cancels it"
        ),
        interrupt::LAST_CHANCE,
    );
    // A cancellation requested elsewhere (`runs cancel`, another engine) reaches this
    // driver too.
    let follow = engine.follow_cancel_requests(FOLLOW_CANCEL_EVERY);
    tokio::pin!(follow);
    let result = loop {
        tokio::select! {
            e = events.next() => match e {
                Some(e) if e.run == id => view.on(e.kind, out)?,
                Some(_) => {}
                None => break (&mut wait).await,
            },
            r = &mut wait => break r,
            n = interrupts.next() => {
                if n > 1 {
                    view.clear();
                    leave(engine, id).await;
                }
                engine.cancel(id);
                view.note(&format!("cancelling run {id}; Ctrl-C again leaves at once"), out)?;
            }
            () = &mut follow => {}
        }
    };
    // Events published just before the run returned.
    while !view.ended {
        match tokio::time::timeout(Duration::from_millis(100), events.next()).await {
            Ok(Some(e)) if e.run == id => view.on(e.kind, out)?,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    view.clear();
    Ok(result?)
}

/// How often `run --wait` looks for cancellations requested elsewhere when the store
/// does not signal changes (PostgreSQL and SQLite files do, within 20 ms).
const FOLLOW_CANCEL_EVERY: Duration = Duration::from_secs(1);

/// Leaves after a second Ctrl-C: records the cancellation of run `id` in the store
/// (so that the engine that resumes it, once this process's lease on it expires,
/// cancels it without running anything more), says what the store holds, and ends
/// the process without waiting for the run — nor for jobs blocking their threads.
async fn leave(engine: &Engine, id: crate::RunId) -> ! {
    let message = match engine.store().request_cancel(id).await {
        Ok(true) => format!(
            "interrupted: run {id} left unfinished with its cancellation recorded in the store: \
             once this process's lease on it expires, an engine serving the store (or \
             `runs cancel {id}`) cancels it without running anything more; `runs show {id}` \
             follows it"
        ),
        Ok(false) => {
            format!("interrupted: run {id} had already finished; `runs show {id}` shows it")
        }
        Err(e) => format!(
            "interrupted: the cancellation of run {id} could not be recorded ({e}): the store \
             holds the run unfinished, and an engine serving the store resumes it once this \
             process's lease on it expires; `runs cancel {id}` cancels it"
        ),
    };
    interrupt::exit(Some(&message), interrupt::INTERRUPTED)
}

/// How often `runs watch` reads the store's new events.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// Follows run `id` in `store` (at `url`, for messages) from the store's events, with
/// the display of [`watch`] (`runs watch`: a run any engine drives), until the run has
/// finished and every event of it is shown. Its times count from the run's start.
/// Returns the run's final state. Ctrl-C ends the process (the run is not touched).
pub(super) async fn watch_store(
    store: &dyn crate::store::Store,
    url: &str,
    run: &crate::store::RunRecord,
    wf: &Workflow,
    out: &mut (dyn Write + Send),
    live: bool,
) -> Result<crate::RunState, CliError> {
    let id = run.id;
    if !live {
        writeln!(out, "run {id} of {} v{}", wf.name(), wf.version())?;
    }
    let mut view = View::new(wf, live).with_inputs(&run.inputs);
    let mut after = 0;
    let mut start = run.started_at;
    let mut state = run.state;
    loop {
        // Whether the run had finished before its events were read: then all are there.
        let finished = state.is_terminal();
        loop {
            let page = store
                .events(id, after, 10_000)
                .await
                .map_err(|e| CliError::store(url, e))?;
            for e in &page {
                after = e.seq;
                if start.is_none() && matches!(e.kind, EventKind::Run { .. }) {
                    start = Some(e.at);
                }
                let at = start
                    .and_then(|s| e.at.duration_since(s).ok())
                    .unwrap_or_default()
                    .as_secs_f64();
                view.on_at(e.kind.clone(), at, out)?;
            }
            out.flush()?;
            if page.len() < 10_000 {
                break;
            }
        }
        if finished || view.ended {
            break;
        }
        tokio::time::sleep(WATCH_EVERY).await;
        let now = store
            .get_run(id)
            .await
            .map_err(|e| CliError::store(url, e))?
            .ok_or(CliError::Engine(crate::Error::RunNotFound(id)))?;
        state = now.state;
        start = start.or(now.started_at);
    }
    view.clear();
    let last = store
        .get_run(id)
        .await
        .map_err(|e| CliError::store(url, e))?
        .map_or(state, |r| r.state);
    Ok(last)
}

/// What the display knows about the run.
struct View<'w> {
    wf: &'w Workflow,
    t0: Instant,
    /// Drawn bars; `None` when printing lines.
    multi: Option<MultiProgress>,
    bars: HashMap<u32, ProgressBar>,
    /// Node index by id (the order of [`Workflow::node_ids`]).
    index: HashMap<String, u32>,
    /// Succeeded outputs by node id, to size fan-outs.
    outputs: HashMap<String, Value>,
    inputs: Value,
    /// Settled items and their total, per fan-out node.
    fans: HashMap<u32, (u64, u64)>,
    ended: bool,
}

impl<'w> View<'w> {
    fn new(wf: &'w Workflow, live: bool) -> Self {
        let multi = live.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        View {
            wf,
            t0: Instant::now(),
            multi,
            bars: HashMap::new(),
            index: wf
                .node_ids()
                .zip(0..)
                .map(|(id, i)| (id.to_owned(), i))
                .collect(),
            outputs: HashMap::new(),
            inputs: Value::Null,
            fans: HashMap::new(),
            ended: false,
        }
    }

    /// Run parameters as the plan reads them (the run was started with valid inputs;
    /// an unset parameter reads as null here, only to size fan-outs).
    fn with_inputs(mut self, inputs: &Value) -> Self {
        self.inputs = inputs.clone();
        self
    }

    fn on(&mut self, kind: EventKind, out: &mut (dyn Write + Send)) -> std::io::Result<()> {
        let at = self.t0.elapsed().as_secs_f64();
        self.on_at(kind, at, out)
    }

    /// Shows an event that happened `at` seconds into the run.
    fn on_at(
        &mut self,
        kind: EventKind,
        at: f64,
        out: &mut (dyn Write + Send),
    ) -> std::io::Result<()> {
        match kind {
            EventKind::Node(n) => self.on_node(&n, at, out)?,
            EventKind::Progress {
                node,
                item,
                percent,
                message,
                ..
            } => {
                let i = self.index(&node);
                match (&self.multi, i.and_then(|i| self.bars.get(&i))) {
                    (Some(_), Some(bar)) if item.is_none() => {
                        if bar.length() != Some(100) {
                            bar.set_style(bar_style());
                            bar.set_length(100);
                        }
                        bar.set_position(u64::from(percent));
                        bar.set_message(super::table::escape(&message).into_owned());
                    }
                    (Some(_), _) => {}
                    (None, _) => {
                        let label = label(&node, item);
                        let message = super::table::escape(&message);
                        writeln!(out, "{at:7.3}s  {label:<20} {percent:>3}% {message}")?;
                    }
                }
            }
            EventKind::Log {
                node,
                item,
                level,
                message,
                ..
            } => {
                let message = super::table::escape(&message);
                let line = format!("{at:7.3}s  {:<20} {level}: {message}", label(&node, item));
                match &self.multi {
                    Some(m) => m.println(line)?,
                    None => writeln!(out, "{line}")?,
                }
            }
            EventKind::Run { to, .. } => {
                if self.multi.is_none() {
                    writeln!(out, "{at:7.3}s  run {to}")?;
                }
                if to.is_terminal() {
                    self.ended = true;
                }
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
        Ok(())
    }

    fn index(&self, node: &str) -> Option<u32> {
        self.index.get(node).copied()
    }

    fn on_node(
        &mut self,
        n: &NodeEvent,
        at: f64,
        out: &mut (dyn Write + Send),
    ) -> std::io::Result<()> {
        let Some(i) = self.index(&n.node) else {
            return Ok(());
        };
        if n.item.is_none()
            && n.to == NodeState::Succeeded
            && let Some(output) = n.output.as_deref()
        {
            self.outputs.insert(n.node.to_string(), output.clone());
        }
        let Some(multi) = self.multi.clone() else {
            let why = n
                .error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .or_else(|| n.reason.as_ref().map(|r| format!(" ({r})")))
                .unwrap_or_default();
            let why = super::table::escape(&why);
            let mut fan = String::new();
            if let Some(item) = n.item
                && n.to.is_terminal()
            {
                let (done, total) = self.count_item(i);
                let _ = item;
                fan = format!("  [{done}/{total}]");
            }
            return writeln!(
                out,
                "{at:7.3}s  {:<20} {} → {}{why}{fan}",
                label(&n.node, n.item),
                n.from,
                n.to
            );
        };
        let is_fan = self.wf.is_fan_out(&n.node) == Some(true);
        match (n.item, n.to) {
            (None, NodeState::Running) if !is_fan && self.bars.contains_key(&i) => {
                // A retry: the same line, a new attempt.
                if let Some(bar) = self.bars.get(&i) {
                    bar.set_style(spinner_style());
                    bar.set_message(format!("attempt {}", n.attempt.max(1)));
                }
            }
            (None, NodeState::Running) => {
                let bar = multi.add(ProgressBar::new_spinner());
                if is_fan {
                    let total = self.fan_total(i);
                    bar.set_style(bar_style());
                    bar.set_length(total);
                    self.fans.insert(i, (0, total));
                } else {
                    bar.set_style(spinner_style());
                }
                bar.set_prefix(n.node.to_string());
                let attempt = if is_fan {
                    String::new()
                } else {
                    format!("attempt {}", n.attempt.max(1))
                };
                bar.set_message(attempt);
                bar.enable_steady_tick(Duration::from_millis(100));
                if let Some(old) = self.bars.insert(i, bar) {
                    old.finish_and_clear();
                    multi.remove(&old);
                }
            }
            (None, NodeState::Retrying) => {
                if let Some(bar) = self.bars.get(&i) {
                    let why = n.error.as_ref().map(|e| e.to_string()).unwrap_or_default();
                    let why = super::table::escape(&why);
                    bar.set_message(format!("retrying after attempt {}: {why}", n.attempt));
                }
            }
            (None, to) if to.is_terminal() => {
                if let Some(bar) = self.bars.remove(&i) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                let mark = match to {
                    NodeState::Succeeded => "✓",
                    NodeState::Skipped => "-",
                    NodeState::Cancelled => "⊘",
                    _ => "✗",
                };
                let why = n
                    .error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .or_else(|| n.reason.as_ref().map(|r| format!(": {r}")))
                    .unwrap_or_default();
                let (node, why) = (super::table::escape(&n.node), super::table::escape(&why));
                multi.println(format!("{mark} {node:<20} {to} at {at:.1}s{why}"))?;
            }
            (Some(_), to) if to.is_terminal() => {
                let (done, _) = self.count_item(i);
                if let Some(bar) = self.bars.get(&i) {
                    bar.set_position(done);
                }
            }
            (Some(item), NodeState::Running) => {
                if let Some(bar) = self.bars.get(&i) {
                    bar.set_message(format!("item {item} running"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Counts one more settled item of fan-out node `i`.
    fn count_item(&mut self, i: u32) -> (u64, u64) {
        if !self.fans.contains_key(&i) {
            let total = self.fan_total(i);
            self.fans.insert(i, (0, total));
        }
        let e = self.fans.entry(i).or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.max(e.0);
        *e
    }

    /// How many items fan-out node `i` runs over, from the outputs seen so far.
    fn fan_total(&self, i: u32) -> u64 {
        let node = self.wf.node_ids().nth(i as usize).unwrap_or_default();
        self.wf
            .fan_out_len(node, &self.inputs, &self.outputs)
            .map_or(0, |n| n as u64)
    }

    /// A line about the run as a whole (not an event), between the event lines or
    /// above the bars.
    fn note(&self, line: &str, out: &mut (dyn Write + Send)) -> std::io::Result<()> {
        match &self.multi {
            Some(m) => m.println(line),
            None => writeln!(out, "{line}"),
        }
    }

    fn clear(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

/// A node (and item) as shown: [escaped](super::table::escape).
fn label(node: &str, item: Option<u32>) -> String {
    let node = super::table::escape(node);
    match item {
        Some(i) => format!("{node}[{i}]"),
        None => node.into_owned(),
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} {prefix:<20.bold} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner:.cyan} {prefix:<20.bold} {elapsed:>4} [{bar:30.cyan/blue}] {pos}/{len} {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}
