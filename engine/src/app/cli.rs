//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The examples at the end of `--help`, for the binary `bin` whose first workflow (the
/// one its default arguments run, else the first by name) is `workflow`: each one runs
/// as shown on that very app (`tests/integration/usability` runs them).
pub(crate) fn after_help(bin: &str, workflow: Option<&str>) -> String {
    let mut s = String::from("Examples:\n");
    if let Some(wf) = workflow {
        let lines = [
            (
                format!("{bin} run {wf} --wait"),
                "run a workflow here, with live progress",
            ),
            (
                format!("{bin} run {wf}"),
                "enqueue a run for a serving engine",
            ),
            (
                format!("{bin} serve"),
                "claim and drive enqueued runs (Ctrl-C stops)",
            ),
            (
                format!("{bin} runs list --state succeeded"),
                "recorded runs, newest first",
            ),
            (
                format!("{bin} runs show @latest"),
                "the newest run: attempts, outputs, errors",
            ),
            (
                format!("{bin} runs logs @latest:{wf}"),
                "the log of the newest run of a workflow",
            ),
            (
                format!("{bin} graph {wf} --format svg > graph.svg"),
                "the workflow's graph",
            ),
        ];
        let width = lines
            .iter()
            .map(|(c, _)| c.chars().count())
            .max()
            .unwrap_or(0);
        for (command, what) in lines {
            s.push_str(&format!("  {command:<width$}  {what}\n"));
        }
    } else {
        s.push_str(&format!("  {bin} jobs    the registered jobs\n"));
    }
    s.push_str(
        "\nA run id may be a unique prefix of one, @latest or @latest:WORKFLOW.\n\
         Settings come from flags, then DAGFORGE_* environment variables, then the config\n\
         file (--config, or ./dagforge.toml when present), then defaults.",
    );
    s
}

/// The user's binary, as a dagforge command-line tool.
#[derive(Debug, Parser)]
#[command(disable_help_subcommand = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// Settings every command shares. Its `Debug` shows the store URL without credentials.
#[derive(Args, Default)]
pub(crate) struct Global {
    /// Store URL: sqlite://FILE (default sqlite://dagforge.db), postgres://… (with the
    /// `postgres` feature) or memory:// (nothing survives the process).
    #[arg(long, global = true, env = "DAGFORGE_STORE", value_name = "URL")]
    pub(crate) store: Option<String>,
    /// TOML config file with `store`, `executor`, `concurrency`, `poll_secs`, `artifacts`, `http` keys,
    /// `[kubernetes]` and `[jobs.<name>.resources]` tables
    /// [default: ./dagforge.toml when present].
    #[arg(long, global = true, env = "DAGFORGE_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// From the command's [`EngineFlags`] (only the commands that run jobs have them).
    #[arg(skip)]
    pub(crate) executor: Option<ExecutorKind>,
    /// From the command's [`EngineFlags`].
    #[arg(skip)]
    pub(crate) concurrency: Option<usize>,
    /// Artifact store URL: file:///DIR, memory://, s3://bucket/prefix, … [default: the
    /// directory `<db name>-artifacts` beside a SQLite store's file, else
    /// ~/.local/share/dagforge/artifacts; created private to the user].
    #[arg(long, global = true, env = "DAGFORGE_ARTIFACTS", value_name = "URL")]
    pub(crate) artifacts: Option<String>,
    /// Let dagforge add its tables to a SQLite file that already holds other tables
    /// (another application's database); without it such a file is refused, untouched.
    #[arg(long, global = true, env = "DAGFORGE_INIT_STORE")]
    pub(crate) init_store: bool,
}

impl std::fmt::Debug for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Global")
            .field("store", &self.store.as_deref().map(crate::redact::url))
            .field("config", &self.config)
            .field("executor", &self.executor)
            .field("concurrency", &self.concurrency)
            .field("init_store", &self.init_store)
            .finish()
    }
}

/// The flags of the commands that run jobs (`serve`, `run`, `runs retry`);
/// read-only commands do not show them.
#[derive(Debug, Default, Args)]
pub(crate) struct EngineFlags {
    /// Where attempts run [default: in-process].
    #[arg(long, env = "DAGFORGE_EXECUTOR", value_enum)]
    pub(crate) executor: Option<ExecutorKind>,
    /// Most attempts running at once [default: 256].
    #[arg(long, env = "DAGFORGE_CONCURRENCY", value_name = "N")]
    pub(crate) concurrency: Option<usize>,
}

impl Cli {
    /// The parsed command's [`EngineFlags`], moved into the global settings (where
    /// [`Settings::resolve`](super::config::Settings::resolve) reads them).
    pub(crate) fn merge_engine_flags(&mut self) {
        let flags = match &self.command {
            Some(Command::Serve(a)) => Some(&a.engine),
            Some(Command::Run(a)) => Some(&a.engine),
            Some(Command::Runs(RunsCommand::Retry(a))) => Some(&a.engine),
            _ => None,
        };
        if let Some(f) = flags {
            self.global.executor = f.executor;
            self.global.concurrency = f.concurrency;
        }
    }
}

/// How attempts run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ExecutorKind {
    /// As tokio tasks in the engine's process.
    InProcess,
    /// Each attempt in a child process: this binary in worker mode.
    Process,
    /// Each attempt as a Kubernetes Job running this binary's image in worker mode
    /// (`[kubernetes]` in the config file; feature `kubernetes`).
    Kubernetes,
    /// Each attempt through the store's execution queue to a worker of the fleet
    /// (`work` processes; `[jobs.<name>]` `queue` and `requires` route them).
    Queue,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the engine: claim enqueued (and orphaned) runs from the store and drive them
    /// until interrupted (Ctrl-C).
    Serve(ServeArgs),
    /// Start a run of a workflow: enqueue it for a serving engine and print its id, or
    /// with --wait run it here with live progress.
    Run(RunArgs),
    /// Inspect and manage recorded runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Recurring schedules: list, show, add, enable, disable, trigger, remove.
    #[command(subcommand)]
    Schedules(super::schedules::SchedulesCommand),
    /// Export a workflow's graph.
    Graph(GraphArgs),
    /// List the registered jobs and workflows with their specs.
    Jobs(JobsArgs),
    /// Serve only the HTTP API (no runs are driven here), beside serving engines.
    #[cfg(feature = "http")]
    Http(super::http::HttpArgs),
    /// Kubernetes: the Job a node would get, the manifests the engine needs.
    #[cfg(feature = "kubernetes")]
    #[command(subcommand)]
    K8s(super::kubernetes::K8sCommand),
    /// Work for engines with `--executor queue`: claim their attempts from the store
    /// and run them, until SIGTERM or Ctrl-C (which drains).
    Work(super::work::WorkArgs),
    /// The workers of the fleet.
    #[command(subcommand)]
    Workers(super::work::WorkersCommand),
    /// Run one job execution for the process executor (internal).
    #[command(hide = true)]
    Worker,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) engine: EngineFlags,
    /// Print no line per run started and finished (the banner and errors only).
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// How the per-run lines are printed on standard error: text, or one JSON object a
    /// line (`{"event":"run_started"|"run_finished","run":…,"workflow":…,…}`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub(crate) log_format: LogFormat,
    /// How often to re-read the store for claimable runs, in seconds, when no wake-up
    /// arrives [default: 5].
    #[arg(long, env = "DAGFORGE_POLL_SECS", value_name = "SECS")]
    pub(crate) poll_secs: Option<f64>,
    /// Build every shared resource (`App::resource_with`) before serving, and stop
    /// with the error naming the one whose factory failed (otherwise each is built on
    /// first use).
    #[arg(long)]
    pub(crate) check_resources: bool,
    /// The HTTP API served beside the engine.
    #[cfg(feature = "http")]
    #[command(flatten)]
    pub(crate) http: super::http::HttpFlags,
}

/// How `serve` prints its per-run lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// `run 0194… started: catalog v1` and `run 0194… succeeded in 1.2s: catalog v1`.
    Text,
    /// One JSON object a line.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) engine: EngineFlags,
    /// The workflow's name (see `jobs`).
    pub(crate) workflow: String,
    /// A run parameter, KEY=VALUE; VALUE is read as JSON when it parses, else as a
    /// string. Repeatable; overrides --input-json.
    #[arg(short = 'i', long = "input", value_name = "KEY=VALUE")]
    pub(crate) inputs: Vec<String>,
    /// A JSON object of run parameters (`-` reads standard input).
    #[arg(long, value_name = "FILE")]
    pub(crate) input_json: Option<PathBuf>,
    /// Run the workflow in this process, show live progress and the final node table,
    /// and exit non-zero if it fails.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Enqueue the run to start no earlier than this instant (RFC 3339, e.g.
    /// 2026-12-01T02:00:00Z).
    #[arg(long, value_name = "INSTANT", conflicts_with = "delay")]
    pub(crate) at: Option<String>,
    /// Enqueue the run to start after this delay (e.g. 30s, 10m, 2h).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub(crate) delay: Option<String>,
    /// The run's priority: higher runs are claimed first when capacity is short.
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) priority: Option<i32>,
    /// An idempotency key: enqueuing again with the same key gives the same run.
    #[arg(long, value_name = "KEY")]
    pub(crate) key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// Recorded runs, newest first.
    List(ListArgs),
    /// One run: its nodes, attempts with their states, errors and outputs.
    Show(ShowArgs),
    /// The log lines of a run (of one node with NODE), with the errors of failed
    /// attempts.
    Logs {
        /// The run's id, a unique prefix of one, @latest or @latest:WORKFLOW.
        id: String,
        /// Only this node's lines.
        node: Option<String>,
        /// Keep printing new lines, and the run's and nodes' state changes, until the
        /// run finishes.
        #[arg(short, long)]
        follow: bool,
    },
    /// Follow a run driven anywhere (another process, another machine) from the store's
    /// events, with the live display of `run --wait`, until it finishes.
    Watch {
        /// The run's id, a unique prefix of one, @latest or @latest:WORKFLOW.
        id: String,
    },
    /// Cancel a run: an enqueued run, or one whose engine stopped, is cancelled here;
    /// a run another live engine drives is cancelled by that engine as soon as it reads
    /// the request.
    Cancel {
        /// The run's id, a unique prefix of one, @latest or @latest:WORKFLOW.
        id: String,
    },
    /// Run a finished run again, as a new run.
    Retry(RetryArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The run's id, a unique prefix of one, @latest or @latest:WORKFLOW.
    pub(crate) id: String,
    /// Print the run's graph as SVG instead, nodes coloured by state.
    #[arg(long, conflicts_with_all = ["json", "output"])]
    pub(crate) svg: bool,
    /// Print the run as JSON (the shape is in the CLI guide).
    #[arg(long)]
    pub(crate) json: bool,
    /// Print only this node's output, whole, as JSON (a fan-out node's: the items'
    /// outputs in item order).
    #[arg(long, value_name = "NODE", conflicts_with = "json")]
    pub(crate) output: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only runs of this workflow.
    #[arg(long)]
    pub(crate) workflow: Option<String>,
    /// Only runs in this state (pending, running, succeeded, failed, cancelled).
    #[arg(long)]
    pub(crate) state: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: usize,
    /// Print the runs as a JSON array (the shape is in the CLI guide).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    #[command(flatten)]
    pub(crate) engine: EngineFlags,
    /// The finished run's id, a unique prefix of one, @latest or @latest:WORKFLOW.
    pub(crate) id: String,
    /// Re-run only the nodes that failed, timed out, were cancelled or were skipped
    /// because of them; succeeded nodes keep their outputs. Without it: a fresh run
    /// with the same inputs.
    #[arg(long)]
    pub(crate) from_failed: bool,
    /// Run it in this process with live progress (otherwise it is enqueued).
    #[arg(long)]
    pub(crate) wait: bool,
}

#[derive(Debug, Args)]
pub(crate) struct GraphArgs {
    /// The workflow's name.
    pub(crate) workflow: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = GraphFormat::Dot)]
    pub(crate) format: GraphFormat,
}

/// Graph export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
    /// A standalone SVG document.
    Svg,
    /// Nodes with layers and typed edges, as JSON.
    Json,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct JobsArgs {
    /// Print the specs as JSON (the shape is in the CLI guide).
    #[arg(long)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Option<JobsCommand>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// Run one job by itself, once, here (no run is recorded): its log lines on
    /// standard error, its output as JSON on standard output.
    Run(JobRunArgs),
}

#[derive(Debug, Args)]
pub(crate) struct JobRunArgs {
    /// The job's name (see `jobs`).
    pub(crate) name: String,
    /// A field of the job's input, KEY=VALUE; VALUE is read as JSON when it parses,
    /// else as a string. Repeatable; overrides --input-json.
    #[arg(short = 'i', long = "input", value_name = "KEY=VALUE")]
    pub(crate) inputs: Vec<String>,
    /// The job's whole input as JSON (`-` reads standard input); without it and
    /// without -i the input is null (a job taking `()`).
    #[arg(long, value_name = "FILE")]
    pub(crate) input_json: Option<PathBuf>,
}
