//! `work`: this binary as a worker of the fleet (claims attempts that engines with
//! `--executor queue` queue in the store), `workers list`, and the queue executor of
//! `--executor queue` with its `[jobs.<name>]` routes (`queue`, `requires`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::App;
use super::config::Settings;
use super::error::CliError;
use super::table::escape;
use crate::fleet::QueueWorker;
use crate::store::{Capacity, ExecutionQueue};
use crate::{QueueExecutor, Route};

/// `work`'s flags.
#[derive(Debug, Args)]
pub(crate) struct WorkArgs {
    /// The lanes served, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "default",
        value_name = "LANES"
    )]
    pub(crate) lanes: Vec<String>,
    /// What this worker offers: cpu=8,memory=16Gi,slots=32 (each attempt takes a slot
    /// and its job's CPU and memory requests) [default: slots=<CPUs>].
    #[arg(long, value_name = "LIST")]
    pub(crate) capacity: Option<String>,
    /// Tags this worker carries, key=value,… (jobs may require them).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub(crate) tags: Vec<String>,
    /// The host name shown in `workers list` [default: this machine's].
    #[arg(long, value_name = "NAME")]
    pub(crate) host: Option<String>,
    /// The worker's id on the store [default: host, pid and a random suffix].
    #[arg(long, value_name = "ID")]
    pub(crate) id: Option<String>,
    /// Run each attempt in a child process of this binary (the process executor)
    /// instead of in this process.
    #[arg(long)]
    pub(crate) process: bool,
    /// The lease on claims, in seconds: a worker silent for longer loses them.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub(crate) lease_secs: f64,
    /// On SIGTERM or Ctrl-C, how long running attempts may finish, in seconds, before
    /// they are cancelled and given back to the queue.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub(crate) grace_secs: f64,
    /// Append a line per claim and outcome to this file (tests, benchmarks).
    #[arg(long, hide = true, value_name = "FILE")]
    pub(crate) journal: Option<PathBuf>,
}

/// `workers …`.
#[derive(Debug, Subcommand)]
pub(crate) enum WorkersCommand {
    /// The workers serving the store: host, lanes, tags, capacity, load, running
    /// attempts, last heartbeat.
    List {
        /// As a JSON array.
        #[arg(long)]
        json: bool,
    },
}

fn secs(flag: &str, s: f64) -> Result<Duration, CliError> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| CliError::usage(format!("{flag} `{s}` must be a positive number")))
}

/// The store's execution queue (a second connection to the same store).
pub(super) async fn open_queue(settings: &Settings) -> Result<Arc<dyn ExecutionQueue>, CliError> {
    let url = settings.store.as_str();
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    match scheme {
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(
            crate::store::SqliteStore::open(url)
                .await
                .map_err(|e| CliError::store(url, e))?,
        )),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(
            crate::store::PostgresStore::connect(url)
                .await
                .map_err(|e| CliError::store(url, e))?,
        )),
        _ => Err(CliError::usage(format!(
            "the execution queue needs a store other processes share (sqlite://FILE or \
             postgres://…), not `{}`",
            escape(&crate::redact::url(url))
        ))),
    }
}

/// The routes of `[jobs.<name>]`: `queue = "lane"`, `requires = { key = "value" }`.
fn routes(settings: &Settings) -> Result<Vec<(String, Route)>, CliError> {
    let mut out = Vec::new();
    let Some(jobs) = &settings.jobs else {
        return Ok(out);
    };
    for (name, table) in jobs {
        let Some(t) = table.as_table() else { continue };
        let mut r = Route::new();
        if let Some(q) = t.get("queue") {
            let lane = q.as_str().ok_or_else(|| {
                CliError::usage(format!("[jobs.{}] queue must be a string", escape(name)))
            })?;
            r = r.lane(lane);
        }
        if let Some(req) = t.get("requires") {
            let req = req.as_table().ok_or_else(|| {
                CliError::usage(format!(
                    "[jobs.{}] requires must be a table of tags (key = \"value\")",
                    escape(name)
                ))
            })?;
            for (k, v) in req {
                let v = v.as_str().ok_or_else(|| {
                    CliError::usage(format!(
                        "[jobs.{}] requires.{} must be a string",
                        escape(name),
                        escape(k)
                    ))
                })?;
                r = r.require(k.clone(), v);
            }
        }
        if r != Route::new() {
            out.push((name.clone(), r));
        }
    }
    Ok(out)
}

/// The executor of `--executor queue`.
pub(super) async fn executor(settings: &Settings) -> Result<QueueExecutor, CliError> {
    let mut b = QueueExecutor::builder(open_queue(settings).await?);
    for (job, route) in routes(settings)? {
        b = b.route(job, route);
    }
    Ok(b.build())
}

/// `work`: claims and runs attempts until SIGTERM or Ctrl-C, then drains.
pub(super) async fn work(
    app: &App,
    settings: &Settings,
    a: &WorkArgs,
    err: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let capacity = match &a.capacity {
        Some(c) => Capacity::parse(c).map_err(|e| CliError::usage(format!("--capacity: {e}")))?,
        None => Capacity::slots(
            std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(1))
                .unwrap_or(1),
        ),
    };
    let queue = open_queue(settings).await?;
    let mut b = QueueWorker::builder(queue, app.registry().clone())
        .lanes(a.lanes.iter().map(|l| l.trim().to_owned()))
        .capacity(capacity)
        .lease(secs("--lease-secs", a.lease_secs)?)
        .grace(secs("--grace-secs", a.grace_secs)?)
        .artifacts(settings.artifact_store()?);
    for t in a.tags.iter().filter(|t| !t.trim().is_empty()) {
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("--tags: `{}` is not key=value", escape(t))))?;
        b = b.tag(k.trim(), v.trim());
    }
    if let Some(h) = &a.host {
        b = b.host(h);
    }
    if let Some(id) = &a.id {
        b = b.id(id);
    }
    if let Some(j) = &a.journal {
        b = b.journal(j);
    }
    if a.process {
        #[cfg(all(feature = "process", unix))]
        {
            b = b.executor(
                crate::ProcessExecutor::builder()
                    .concurrency(usize::try_from(capacity.slots).unwrap_or(1))
                    .build(),
            );
        }
        #[cfg(not(all(feature = "process", unix)))]
        return Err(CliError::usage(
            "--process needs dagforge's `process` feature on Unix",
        ));
    }
    let worker = b.build();
    writeln!(
        err,
        "working as {} on {} (lanes {}, {}); SIGTERM or Ctrl-C drains",
        worker.id(),
        settings.shown_store(),
        a.lanes.join(","),
        capacity
    )?;
    let stats = worker
        .run(shutdown_signal())
        .await
        .map_err(|e| CliError::store(&settings.store, e))?;
    writeln!(
        err,
        "stopped: {} claimed, {} done, {} refused (claim lost), {} given back",
        stats.claimed, stats.accepted, stats.refused, stats.released
    )?;
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `workers list`.
pub(super) async fn workers(
    settings: &Settings,
    command: &WorkersCommand,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let WorkersCommand::List { json } = command;
    let queue = open_queue(settings).await?;
    let list = queue
        .workers()
        .await
        .map_err(|e| CliError::store(&settings.store, e))?;
    if *json {
        let text = serde_json::to_string_pretty(&list)
            .map_err(|e| CliError::usage(format!("encoding the workers: {e}")))?;
        writeln!(out, "{text}")?;
        return Ok(());
    }
    if list.is_empty() {
        writeln!(out, "no workers")?;
        return Ok(());
    }
    let now = std::time::SystemTime::now();
    writeln!(
        out,
        "{:<28} {:<16} {:<14} {:<20} {:<30} {:<30} {:>7} {:>9}",
        "ID", "HOST", "LANES", "TAGS", "CAPACITY", "USED", "RUNNING", "BEAT AGO"
    )?;
    for w in list {
        let tags: Vec<String> = w.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let ago = now.duration_since(w.last_beat).unwrap_or_default();
        writeln!(
            out,
            "{:<28} {:<16} {:<14} {:<20} {:<30} {:<30} {:>7} {:>8.1}s{}",
            escape(&w.id),
            escape(&w.host),
            escape(&w.lanes.join(",")),
            escape(&tags.join(",")),
            w.capacity,
            w.used,
            w.running,
            ago.as_secs_f64(),
            if w.draining { " draining" } else { "" }
        )?;
    }
    Ok(())
}
