//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Examples:
  myapp run catalog-integration --wait           run a workflow here, with live progress
  myapp run catalog-integration -i day=2026-11-29 enqueue it for a serving engine
  myapp serve --concurrency 64                   claim and drive enqueued runs
  myapp serve --http 127.0.0.1:8080              … and serve the HTTP API (feature http)
  myapp runs list --state failed
  myapp runs retry <RUN_ID> --from-failed --wait
  myapp graph catalog-integration --format svg > graph.svg

Settings come from flags, then DAGFORGE_* environment variables, then the config
file (--config, or ./dagforge.toml when present), then defaults.";

/// The user's binary, as a dagforge command-line tool.
#[derive(Debug, Parser)]
#[command(after_help = AFTER_HELP, disable_help_subcommand = true)]
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
    /// Where attempts run [default: in-process].
    #[arg(long, global = true, env = "DAGFORGE_EXECUTOR", value_enum)]
    pub(crate) executor: Option<ExecutorKind>,
    /// Most attempts running at once [default: 256].
    #[arg(long, global = true, env = "DAGFORGE_CONCURRENCY", value_name = "N")]
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
    /// Run one job execution for the process executor (internal).
    #[command(hide = true)]
    Worker,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// How often to re-read the store for claimable runs, in seconds, when no wake-up
    /// arrives [default: 5].
    #[arg(long, env = "DAGFORGE_POLL_SECS", value_name = "SECS")]
    pub(crate) poll_secs: Option<f64>,
    /// The HTTP API served beside the engine.
    #[cfg(feature = "http")]
    #[command(flatten)]
    pub(crate) http: super::http::HttpFlags,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
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
    #[arg(long, value_name = "DURATION")]
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
    /// One run: its nodes, states, attempts and errors.
    Show {
        /// The run's id.
        id: String,
        /// Print the run's graph as SVG instead, nodes coloured by state.
        #[arg(long)]
        svg: bool,
    },
    /// The log lines of a run (of one node with NODE).
    Logs {
        /// The run's id.
        id: String,
        /// Only this node's lines.
        node: Option<String>,
        /// Keep printing new lines until the run finishes.
        #[arg(short, long)]
        follow: bool,
    },
    /// Cancel a run that no live engine is driving (enqueued, or its engine stopped).
    Cancel {
        /// The run's id.
        id: String,
    },
    /// Run a finished run again, as a new run.
    Retry(RetryArgs),
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
}

#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    /// The finished run's id.
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
pub(crate) struct JobsArgs {
    /// Print the specs as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}
