//! The commands that do not deal with recorded runs: serve, run, graph, jobs, worker.

use std::io::Write;

use serde_json::{Map, Value};

use super::App;
use super::cli::{
    Cli, Command, ExecutorKind, GraphArgs, GraphFormat, JobsArgs, JobsCommand, RunArgs,
};
use super::config::Settings;
use super::error::CliError;
use super::{inputs, progress, runs, schedules, table};
use crate::{Engine, RunResult};

/// Runs one parsed command.
pub(super) async fn dispatch(
    app: &App,
    cli: Cli,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    live: bool,
) -> Result<(), CliError> {
    let Some(command) = cli.command else {
        // `App::execute` prints the help for no command before dispatching.
        return Err(CliError::usage("no command given"));
    };
    match command {
        Command::Graph(a) => graph(app, &a, out),
        Command::Jobs(JobsArgs {
            command: Some(JobsCommand::Run(a)),
            ..
        }) => {
            let settings = Settings::resolve(&cli.global)?;
            super::job_run::run(app, &settings, &a, out, err).await
        }
        Command::Jobs(a) => jobs(app, &a, out),
        Command::Worker => worker(app).await,
        #[cfg(feature = "kubernetes")]
        Command::K8s(k) => super::kubernetes::command(app, &cli.global, k, out),
        command => {
            let settings = Settings::resolve(&cli.global)?;
            let done = settings_command(app, &settings, command, out, err, live).await;
            // Whatever happened: the SQLite file then holds every write (checkpoint).
            settings.close().await;
            done.map_err(|e| e.naming_store(&settings.store))
        }
    }
}

/// A command that uses the settings (the store, the executor).
async fn settings_command(
    app: &App,
    settings: &Settings,
    command: Command,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    live: bool,
) -> Result<(), CliError> {
    match command {
        Command::Serve(a) => {
            let poll = settings.poll(a.poll_secs)?;
            let engine = engine(app, settings).await?;
            if a.check_resources {
                engine.check_resources().await.map_err(crate::Error::from)?;
            }
            #[cfg(feature = "kubernetes")]
            super::kubernetes::reap_at_serve(app, settings, &engine, err).await?;
            #[cfg(feature = "http")]
            let http = match a.http.addr.clone().or_else(|| settings.http.clone()) {
                Some(addr) => {
                    Some(super::http::bind(engine.clone(), &addr, a.http.insecure_no_auth).await?)
                }
                None => None,
            };
            writeln!(
                err,
                "serving {} ({} workflow{}, {} executor, concurrency {}); Ctrl-C stops",
                settings.shown_store(),
                app.all_workflows.len(),
                if app.all_workflows.len() == 1 {
                    ""
                } else {
                    "s"
                },
                executor_name(settings.executor),
                settings.concurrency,
            )?;
            #[cfg(feature = "http")]
            let server = match http {
                Some((api, listener, local)) => {
                    super::http::announce(err, local, &api)?;
                    Some(super::http::spawn(api, listener))
                }
                None => None,
            };
            #[cfg(feature = "http")]
            let ops = match &a.http.metrics {
                Some(addr) => Some(super::http::spawn_ops(&engine, addr, err).await?),
                None => None,
            };
            // Ctrl-C stops serving; a second one ends the process at once, even if jobs
            // block threads the runtime would wait for on the way out.
            let mut interrupts = super::interrupt::Interrupts::listen();
            interrupts.fallback(
                "interrupted again: leaving now; the runs this engine was driving are \
                 resumed by an engine serving the store once their leases expire",
                std::time::Duration::ZERO,
            );
            let serving = engine.serve(poll, async move {
                interrupts.next().await;
            });
            let served =
                super::serve_log::serve_with_lines(&engine, serving, a.quiet, a.log_format, err)
                    .await;
            #[cfg(feature = "http")]
            if let Some(server) = server {
                server.stop().await?;
            }
            #[cfg(feature = "http")]
            if let Some(ops) = ops {
                ops.stop().await?;
            }
            engine.close_resources().await;
            served?;
            writeln!(err, "stopped")?;
            Ok(())
        }
        Command::Run(a) => run(app, settings, &a, out, err, live).await,
        Command::Work(a) => super::work::work(app, settings, &a, err).await,
        Command::Workers(w) => super::work::workers(settings, &w, out).await,
        Command::Runs(r) => runs::dispatch(app, settings, r, out, err, live).await,
        Command::Schedules(s) => schedules::dispatch(app, settings, s, out, err).await,
        #[cfg(feature = "http")]
        Command::Http(a) => super::http::http_only(app, settings, &a, err).await,
        Command::Graph(_) | Command::Jobs(_) | Command::Worker => Ok(()),
        #[cfg(feature = "kubernetes")]
        Command::K8s(_) => Ok(()),
    }
}

fn executor_name(kind: ExecutorKind) -> &'static str {
    match kind {
        ExecutorKind::InProcess => "in-process",
        ExecutorKind::Process => "process",
        ExecutorKind::Kubernetes => "kubernetes",
        ExecutorKind::Queue => "queue",
    }
}

/// An engine over the configured store and executor that knows every workflow.
pub(super) async fn engine(app: &App, settings: &Settings) -> Result<Engine, CliError> {
    let store = settings.open_store().await?;
    let mut b = Engine::builder()
        .resources(app.resource_set(settings.app_settings.as_ref())?)
        .artifacts(settings.artifact_store()?)
        .shared_store(store)
        .concurrency(settings.concurrency);
    for wf in &app.all_workflows {
        b = b.workflow(wf);
    }
    match settings.executor {
        ExecutorKind::InProcess => {}
        ExecutorKind::Queue => b = b.executor(super::work::executor(settings).await?),
        #[cfg(all(feature = "process", unix))]
        ExecutorKind::Process => {
            let mut process = crate::ProcessExecutor::builder().concurrency(settings.concurrency);
            for (k, v) in super::resources::worker_env(settings.config_path.as_deref()) {
                process = process.env(k, v);
            }
            b = b.executor(process.build());
        }
        #[cfg(not(all(feature = "process", unix)))]
        ExecutorKind::Process => {
            return Err(CliError::usage(
                "executor `process` needs dagforge's `process` feature on Unix (use --executor in-process)",
            ));
        }
        #[cfg(feature = "kubernetes")]
        ExecutorKind::Kubernetes => {
            b = b.executor(super::kubernetes::executor(app, settings).await?)
        }
        #[cfg(not(feature = "kubernetes"))]
        ExecutorKind::Kubernetes => {
            return Err(CliError::usage(
                "executor `kubernetes` needs dagforge's `kubernetes` feature (use --executor process or in-process)",
            ));
        }
    }
    Ok(b.build())
}

async fn run(
    app: &App,
    settings: &Settings,
    a: &RunArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    live: bool,
) -> Result<(), CliError> {
    let wf = app.find(&a.workflow)?;
    let inputs = inputs::parse(&a.inputs, a.input_json.as_deref())?;
    inputs::check_types(wf, &inputs)?;
    let later = a.at.is_some() || a.delay.is_some() || a.priority.is_some() || a.key.is_some();
    if later && a.wait {
        return Err(CliError::usage(
            "--at, --delay, --priority and --key enqueue the run for a serving engine; \
             they do not go with --wait",
        ));
    }
    let mut options = crate::Enqueue::new();
    if let Some(at) = &a.at {
        options = options.at(super::schedules::parse_at(at)?);
    }
    if let Some(d) = &a.delay {
        options = options.delay(super::schedules::parse_duration("--delay", d)?);
    }
    if let Some(p) = a.priority {
        options = options.priority(p);
    }
    if let Some(k) = &a.key {
        options = options.idempotency_key(k);
    }
    let engine = engine(app, settings).await?;
    if later {
        let id = engine.enqueue_with(wf, inputs, options).await?;
        writeln!(out, "{id}")?;
        let when = engine
            .store()
            .get_run(id)
            .await
            .map_err(|e| CliError::store(&settings.store, e))?
            .and_then(|r| r.not_before)
            .map(|t| format!(" for {}", super::table::time(t)))
            .unwrap_or_default();
        writeln!(
            err,
            "enqueued run {id} of `{}`{when}: an engine serving {} runs it (`serve`)",
            wf.name(),
            settings.shown_store()
        )?;
        return Ok(());
    }
    if a.wait {
        let events = engine.subscribe();
        let handle = engine.start(wf, &inputs).await?;
        let result = progress::watch(&engine, events, handle, wf, &inputs, out, live).await;
        engine.close_resources().await;
        finish(&result?, out)
    } else {
        let id = engine.enqueue(wf, inputs).await?;
        writeln!(out, "{id}")?;
        writeln!(
            err,
            "enqueued run {id} of `{}`: an engine serving {} runs it (`serve`); `runs show {id}` follows it",
            wf.name(),
            settings.shown_store()
        )?;
        if settings.store.starts_with("memory:") {
            writeln!(
                err,
                "warning: the memory store forgets the run when this process exits; use --wait"
            )?;
        }
        Ok(())
    }
}

/// Prints the final table; a run that did not succeed is a failure (exit code 1).
pub(super) fn finish(result: &RunResult, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    writeln!(out)?;
    writeln!(out, "{}", table::escape_lines(&result.table()))?;
    for n in result.nodes.iter().filter(|n| n.state.is_failure()) {
        if let Some(e) = &n.error {
            writeln!(
                out,
                "  {}: {}",
                table::escape(&n.id),
                table::escape(&e.to_string())
            )?;
        }
    }
    if result.is_success() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "run {} {}",
            result.id, result.state
        )))
    }
}

fn graph(app: &App, a: &GraphArgs, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    let wf = app.find(&a.workflow)?;
    let text = match a.format {
        GraphFormat::Dot => wf.to_dot(),
        GraphFormat::Mermaid => wf.to_mermaid(),
        GraphFormat::Svg => wf.to_svg(),
        GraphFormat::Json => wf.to_json(),
    };
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

fn jobs(app: &App, a: &JobsArgs, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    let names = app.registry.names();
    if a.json {
        let jobs: Map<String, Value> = names
            .iter()
            .filter_map(|n| {
                let spec = app.registry.get(n)?.spec();
                Some(((*n).to_owned(), serde_json::to_value(spec).ok()?))
            })
            .collect();
        let workflows: Vec<Value> = app
            .workflows
            .values()
            .filter_map(|w| serde_json::to_value(w.spec()).ok())
            .collect();
        let doc = serde_json::json!({ "jobs": jobs, "workflows": workflows });
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        )?;
        return Ok(());
    }
    let mut rows = vec![
        ["job", "retries", "timeout", "priority", "queue"]
            .map(String::from)
            .to_vec(),
    ];
    for n in &names {
        let Some(job) = app.registry.get(n) else {
            continue;
        };
        let spec = job.spec();
        rows.push(vec![
            (*n).to_owned(),
            spec.retries.to_string(),
            spec.timeout
                .map_or_else(|| "-".to_owned(), |t| format!("{t:?}")),
            spec.priority.to_string(),
            spec.queue.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    write!(out, "{}", super::table::render(&rows))?;
    writeln!(out)?;
    for wf in app.workflows.values() {
        let spec = wf.spec();
        writeln!(
            out,
            "workflow {} v{}: {} nodes, {} edges",
            spec.name,
            spec.version,
            wf.len(),
            wf.edge_count()
        )?;
        if !spec.params.is_empty() {
            let params: Vec<String> = spec
                .params
                .iter()
                .map(|p| match &p.default {
                    Some(d) => format!("{}={d}", p.name),
                    None => format!("{} (required)", p.name),
                })
                .collect();
            writeln!(out, "  params: {}", params.join(", "))?;
        }
        for n in &spec.nodes {
            let deps = if n.depends_on.is_empty() {
                String::new()
            } else {
                format!(" ← {}", n.depends_on.join(", "))
            };
            let fan = if n.fan_out.is_some() {
                " (fan-out)"
            } else {
                ""
            };
            writeln!(out, "  {} [{}]{fan}{deps}", n.id, n.job)?;
        }
    }
    Ok(())
}

/// Worker mode runs from [`App::run`], which hands the process over to
/// [`worker::run`](crate::worker::run) before parsing anything; reaching this means a
/// captured run ([`App::run_from`]) or a build without it.
async fn worker(app: &App) -> Result<(), CliError> {
    let _ = app;
    Err(CliError::usage(if cfg!(all(feature = "process", unix)) {
        "worker mode runs only as a child process of the process executor (through App::run)"
    } else {
        "worker mode needs dagforge's `process` feature on Unix"
    }))
}
