//! [`App`]: the user's binary as a command-line tool (feature `cli`).
//!
//! One binary holds the jobs; [`App`] gives it the commands to serve the engine, start
//! and inspect runs, export graphs and (hidden) run as a process-executor worker.
//!
//! ```no_run
//! use dagforge::App;
//! # use dagforge::prelude::*;
//! # struct Hello;
//! # impl Job for Hello {
//! #     type Input = ();
//! #     type Output = String;
//! #     const NAME: &'static str = "hello";
//! #     async fn run(&self, _: &JobContext, _: ()) -> Result<String, JobError> { Ok("hi".into()) }
//! # }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let mut wf = Workflow::builder("greet");
//!     wf.add("hello", Hello);
//!     let wf = match wf.build() {
//!         Ok(wf) => wf,
//!         Err(e) => {
//!             eprintln!("{e}");
//!             return std::process::ExitCode::FAILURE;
//!         }
//!     };
//!     App::new()
//!         .about("Greets.")
//!         .workflow(wf)
//!         // `myapp` alone does what `myapp run greet --wait` does.
//!         .default_args(["run", "greet", "--wait"])
//!         .run()
//!         .await
//! }
//! ```

mod cli;
mod commands;
mod config;
mod error;
#[cfg(feature = "http")]
mod http;
mod inputs;
mod interrupt;
mod job_run;
#[cfg(feature = "kubernetes")]
mod kubernetes;
mod progress;
mod resources;
mod run_follow;
mod run_show;
mod runid;
mod runs;
mod schedules;
mod serve_log;
mod table;
mod work;
#[cfg(feature = "kubernetes")]
mod yaml;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::{DynJob, Job, Registry, Workflow};

use cli::{Cli, Command};
use error::CliError;

/// A command-line tool around the user's jobs and workflows.
///
/// Commands: `serve`, `run WORKFLOW [--input k=v]… [--input-json FILE] [--wait]`,
/// `runs list|show|logs|cancel|retry`, `graph WORKFLOW --format dot|mermaid|svg|json`,
/// `jobs`, and the hidden `worker` used by the process executor. Settings (`--store`,
/// `--executor`, `--concurrency`) come from flags, then `DAGFORGE_*` environment
/// variables, then the config file (`--config`, or `./dagforge.toml`), then defaults.
///
/// Exit codes: 0 on success, 1 when the work failed (a failed run, a store error), 2
/// for bad input (an unknown workflow or run, a malformed `--input`, a usage error).
#[derive(Debug, Default)]
pub struct App {
    registry: Registry,
    /// By name; the last one added under a name is the one the commands use.
    workflows: BTreeMap<String, Workflow>,
    /// Every workflow added, all versions (an engine resumes runs of any of them).
    all_workflows: Vec<Workflow>,
    /// Registration problems, reported when the app runs.
    problems: Vec<String>,
    default_args: Option<Vec<OsString>>,
    name: Option<String>,
    about: Option<String>,
    /// Shared resources for the jobs (`resources.rs`).
    resources: crate::resource::ResourceSet,
    /// How to read the typed settings, if the app has any (`resources.rs`).
    settings_loader: Option<resources::SettingsLoader>,
}

/// What [`App::run_from`] captured: the exit code and everything printed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppOutput {
    /// The process exit code the command would have had.
    pub code: u8,
    /// What it printed on standard output.
    pub stdout: String,
    /// What it printed on standard error.
    pub stderr: String,
}

impl App {
    /// An app with no jobs.
    pub fn new() -> Self {
        Self::default()
    }

    /// The program name shown in help (default: the binary's name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The text at the top of `--help`.
    pub fn about(mut self, about: impl Into<String>) -> Self {
        self.about = Some(about.into());
        self
    }

    /// Registers a job that no workflow uses (workflows' jobs are registered with
    /// them): `jobs` lists it and a worker can run it.
    pub fn job<J: Job>(mut self, job: J) -> Self {
        self.add_job(DynJob::new(job));
        self
    }

    /// Adds a workflow, and registers its jobs. A later workflow with the same name
    /// replaces it for the commands; runs of every added version can still be resumed.
    pub fn workflow(mut self, workflow: Workflow) -> Self {
        for n in &workflow.plan.nodes {
            self.add_job(n.job.clone());
        }
        self.workflows
            .insert(workflow.name().to_owned(), workflow.clone());
        self.all_workflows.push(workflow);
        self
    }

    /// What the app does when run without arguments, as arguments: e.g.
    /// `["run", "my-workflow", "--wait"]`. Without it, no arguments print the help.
    pub fn default_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.default_args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// The registered jobs.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn add_job(&mut self, job: DynJob) {
        if let Err(e) = self.registry.insert(job) {
            self.problems.push(e.to_string());
        }
    }

    /// Runs the command given on the process's command line, printing to standard
    /// output and error.
    pub async fn run(self) -> ExitCode {
        #[cfg(all(feature = "process", unix))]
        if crate::worker::is_worker_invocation()
            || std::env::args_os().nth(1).is_some_and(|a| a == "worker")
        {
            // A child of the process executor: run the one execution it was given.
            let check = std::env::args_os()
                .skip(1)
                .any(|a| a == "--check-resources");
            return crate::worker::run_with(&self.registry, &self.worker_resources(), check).await;
        }
        let mut out = std::io::stdout();
        let mut err = std::io::stderr();
        let live = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let code = self
            .execute(std::env::args_os(), &mut out, &mut err, live)
            .await;
        let _ = out.flush();
        ExitCode::from(code)
    }

    /// Runs the command in `args` (the first item is the program name) and captures
    /// what it prints; for tests. Live progress bars are never drawn here.
    pub async fn run_from<I, T>(&self, args: I) -> AppOutput
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = self.execute(args, &mut out, &mut err, false).await;
        AppOutput {
            code,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        }
    }

    async fn execute<I, T>(
        &self,
        args: I,
        out: &mut (dyn Write + Send),
        err: &mut (dyn Write + Send),
        live: bool,
    ) -> u8
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        if args.len() <= 1
            && let Some(default) = &self.default_args
        {
            args.truncate(1);
            if args.is_empty() {
                args.push(OsString::from(self.name.as_deref().unwrap_or("dagforge")));
            }
            args.extend(default.iter().cloned());
        }
        let mut command = Cli::command();
        let bin = self.bin_name(&args);
        command = command
            .name(bin.clone())
            .bin_name(bin.clone())
            .after_help(cli::after_help(&bin, self.example_workflow()));
        if let Some(about) = &self.about {
            command = command.about(about.clone());
        }
        let parsed = command
            .clone()
            .try_get_matches_from(&args)
            .and_then(|m| Cli::from_arg_matches(&m));
        let mut cli = match parsed {
            Ok(cli) => cli,
            Err(e) => {
                let code = e.exit_code();
                let text = e.render().to_string();
                let _ = if e.use_stderr() {
                    err.write_all(text.as_bytes())
                } else {
                    out.write_all(text.as_bytes())
                };
                return u8::try_from(code).unwrap_or(2);
            }
        };
        cli.merge_engine_flags();
        if cli.command.is_none() {
            let _ = write!(err, "{}", command.render_help());
            let _ = writeln!(err, "error: no command given");
            return 2;
        }
        let missing = self.missing_resources();
        let clean = self.problems.is_empty() && missing.is_empty();
        if !clean && !matches!(cli.command, Some(Command::Worker)) {
            for p in self.problems.iter().chain(&missing) {
                let _ = writeln!(err, "error: {}", table::escape_lines(p));
            }
            return 2;
        }
        match commands::dispatch(self, cli, out, err, live).await {
            Ok(()) => 0,
            Err(e) => {
                if !matches!(e, CliError::Failed(_)) {
                    // With its causes, and escaped: names and values in it are the
                    // user's (or a job's) and may hold control characters.
                    let _ = writeln!(err, "error: {}", table::escape_lines(&error::chain(&e)));
                }
                e.exit_code()
            }
        }
    }

    /// The program's name in help and examples: [`App::name`], else the file name the
    /// program was started as (`args[0]`), else `dagforge`.
    fn bin_name(&self, args: &[OsString]) -> String {
        self.name.clone().unwrap_or_else(|| {
            args.first()
                .and_then(|a| std::path::Path::new(a).file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "dagforge".to_owned())
        })
    }

    /// The workflow the help's examples use: the one the default arguments run, else
    /// the first by name.
    fn example_workflow(&self) -> Option<&str> {
        let from_default = self.default_args.as_ref().and_then(|a| {
            let mut it = a.iter().map(|s| s.to_str());
            (it.next() == Some(Some("run")))
                .then(|| it.next().flatten())
                .flatten()
                .filter(|w| self.workflows.contains_key(*w))
        });
        from_default.or_else(|| self.workflows.keys().next().map(String::as_str))
    }

    /// The workflow named `name`.
    fn find(&self, name: &str) -> Result<&Workflow, CliError> {
        self.workflows.get(name).ok_or_else(|| {
            CliError::Engine(crate::Error::UnknownWorkflow {
                name: name.to_owned(),
                version: None,
                known: self.workflows.keys().cloned().collect(),
            })
        })
    }
}

#[cfg(test)]
mod tests;
