//! The Kubernetes side of the CLI (feature `kubernetes`): `--executor kubernetes` built
//! from `[kubernetes]` and `[jobs.<name>.resources]` of the config file, `k8s render`
//! (the Job a node would get), `k8s manifests` (what the engine needs in its namespace),
//! and reaping the Jobs of runs that are over when `serve` starts.

use std::collections::BTreeMap;
use std::io::Write;

use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;

use super::App;
use super::cli::{ExecutorKind, Global};
use super::config::Settings;
use super::error::CliError;
use crate::{KubernetesConfig, KubernetesExecutor, Resources};

/// `k8s`: what the Kubernetes executor would do, without a cluster.
#[derive(Debug, Subcommand)]
pub(crate) enum K8sCommand {
    /// Print the Job an attempt of a workflow's node would get, with the effective
    /// resources; the input and secret-looking values are redacted.
    Render(RenderArgs),
    /// Print the ServiceAccount, Role and RoleBinding the engine needs (least
    /// privilege, one namespace) and an example engine Deployment.
    Manifests(ManifestsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// The workflow's name (see `jobs`).
    workflow: String,
    /// The node's id in it.
    node: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Yaml)]
    format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ManifestsArgs {
    /// Output format: YAML documents, or one JSON `v1` `List`.
    #[arg(long, short, value_enum, default_value_t = Format::Yaml)]
    format: Format,
}

/// How manifests are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// YAML (for `kubectl apply -f -`).
    Yaml,
    /// JSON.
    Json,
}

/// `[jobs.<name>]` of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobSettings {
    /// Requests and limits over the job's `#[job(resources(...))]`.
    #[serde(default)]
    resources: Option<Resources>,
}

/// Where the Kubernetes settings are, for messages.
const WHERE: &str = "`[kubernetes]` in the config file";

/// The Kubernetes executor's settings: `[kubernetes]`, with the resources of
/// `[jobs.<name>.resources]` (every name a registered job, every quantity well formed).
pub(super) fn config(app: &App, settings: &Settings) -> Result<KubernetesConfig, CliError> {
    let mut config: KubernetesConfig = match &settings.kubernetes {
        Some(table) => table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| CliError::usage(format!("{WHERE}: {}", e.message())))?,
        None => KubernetesConfig::default(),
    };
    let jobs: BTreeMap<String, JobSettings> = match &settings.jobs {
        Some(table) => table.clone().try_into().map_err(|e: toml::de::Error| {
            CliError::usage(format!(
                "`[jobs]` in the config file: {} (each job takes `[jobs.<name>.resources]` \
                 with cpu, memory, cpu_limit, memory_limit)",
                e.message()
            ))
        })?,
        None => BTreeMap::new(),
    };
    for (job, s) in jobs {
        if app.registry.get(&job).is_none() {
            return Err(CliError::usage(format!(
                "`[jobs.{job}]` in the config file: no job `{job}` is registered (jobs: {})",
                app.registry.names().join(", ")
            )));
        }
        let Some(resources) = s.resources else {
            continue;
        };
        if config.resources.contains_key(&job) {
            return Err(CliError::usage(format!(
                "the resources of job `{job}` are set twice, in `[jobs.{job}.resources]` and \
                 `[kubernetes.resources.{job}]` of the config file: keep `[jobs.{job}.resources]`"
            )));
        }
        config.resources.insert(job, resources);
    }
    for (job, r) in &config.resources {
        for (field, q) in [
            ("cpu", &r.cpu),
            ("memory", &r.memory),
            ("cpu_limit", &r.cpu_limit),
            ("memory_limit", &r.memory_limit),
        ] {
            if let Some(q) = q
                && !is_quantity(q)
            {
                return Err(CliError::usage(format!(
                    "`[jobs.{job}.resources]` in the config file: {field} = {:?} is not a \
                     Kubernetes quantity (e.g. \"500m\", \"2\", \"256Mi\", \"4Gi\")",
                    super::table::escape(q)
                )));
            }
        }
    }
    Ok(config)
}

/// Whether `q` reads as a Kubernetes quantity: a decimal number and an optional SI or
/// binary suffix, or an exponent.
fn is_quantity(q: &str) -> bool {
    let q = q.strip_prefix('+').unwrap_or(q);
    let digits = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(digits);
    let number_ok = !number.is_empty()
        && number.matches('.').count() <= 1
        && number.bytes().any(|b| b.is_ascii_digit());
    let suffix_ok = matches!(
        suffix,
        "" | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
            | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
    ) || suffix.strip_prefix(['e', 'E']).is_some_and(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    number_ok && suffix_ok && q.len() <= 64
}

/// The executor `--executor kubernetes` runs attempts with. The cluster is the one of
/// the in-cluster service account, else of `KUBECONFIG` / `~/.kube/config`.
pub(super) async fn executor(
    app: &App,
    settings: &Settings,
) -> Result<KubernetesExecutor, CliError> {
    let config = config(app, settings)?;
    KubernetesExecutor::builder()
        .config(config)
        .build()
        .await
        .map_err(|e| CliError::usage(format!("{WHERE}: {e}")))
}

/// When `serve` starts with the Kubernetes executor: deletes the Jobs that engines left
/// behind for runs that are over (or unknown to the store), and says what it did. A
/// cluster that cannot be listed is an error: the engine could not run attempts either.
pub(super) async fn reap_at_serve(
    app: &App,
    settings: &Settings,
    engine: &crate::Engine,
    err: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    if settings.executor != ExecutorKind::Kubernetes {
        return Ok(());
    }
    let mut config = config(app, settings)?;
    // An id of its own: the serving executor has created nothing yet, and Jobs of an
    // earlier engine with the configured id are to be reaped too.
    config.engine_id = None;
    let reaper = KubernetesExecutor::builder()
        .config(config)
        .build()
        .await
        .map_err(|e| CliError::usage(format!("{WHERE}: {e}")))?;
    let reaped = reaper
        .reap(engine.store().as_ref())
        .await
        .map_err(|e| CliError::Failed(e.to_string()))
        .inspect_err(|e| {
            let _ = writeln!(
                err,
                "error: reaping orphaned Jobs: {}",
                super::table::escape(&e.to_string())
            );
        })?;
    if !reaped.deleted.is_empty() || reaped.kept > 0 {
        writeln!(
            err,
            "kubernetes: deleted {} Job{} of runs that are over ({}); kept {} of runs still \
             going on, for adoption",
            reaped.deleted.len(),
            if reaped.deleted.len() == 1 { "" } else { "s" },
            super::table::escape(&reaped.deleted.join(", ")),
            reaped.kept,
        )?;
    }
    Ok(())
}

/// Runs a `k8s` command.
pub(super) fn command(
    app: &App,
    global: &Global,
    command: K8sCommand,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let settings = Settings::resolve(global)?;
    let config = config(app, &settings)?;
    match command {
        K8sCommand::Render(a) => {
            let wf = app.find(&a.workflow)?;
            let spec = wf.spec();
            let Some(node) = spec.nodes.iter().find(|n| n.id == a.node) else {
                let known: Vec<&str> = spec.nodes.iter().map(|n| n.id.as_str()).collect();
                return Err(CliError::usage(format!(
                    "workflow `{}` has no node `{}` (nodes: {})",
                    wf.name(),
                    super::table::escape(&a.node),
                    known.join(", ")
                )));
            };
            let job = app.registry.get(&node.job).ok_or_else(|| {
                CliError::usage(format!(
                    "node `{}`: job `{}` is not registered",
                    node.id, node.job
                ))
            })?;
            let mut job_spec = job.spec();
            if let Some(ms) = node.timeout_ms {
                job_spec.timeout = Some(std::time::Duration::from_millis(ms));
            }
            let rendered = config
                .render(&node.job, &job_spec, &node.id, &serde_json::Value::Null)
                .map_err(|e| CliError::usage(format!("{WHERE}: {e}")))?;
            print(out, &rendered, a.format, false)
        }
        K8sCommand::Manifests(a) => print(out, &config.manifests(), a.format, true),
    }
}

/// Writes `value` as JSON, or as YAML (a `List`'s items as documents of their own when
/// `split`).
fn print(
    out: &mut (dyn Write + Send),
    value: &serde_json::Value,
    format: Format,
    split: bool,
) -> Result<(), CliError> {
    match format {
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        )?,
        Format::Yaml => match value["items"].as_array().filter(|_| split) {
            Some(items) => {
                for item in items {
                    write!(out, "---\n{}", super::yaml::to_string(item))?;
                }
            }
            None => write!(out, "---\n{}", super::yaml::to_string(value))?,
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_quantity;

    #[test]
    fn quantities_are_checked() {
        for q in ["1", "500m", "0.5", "256Mi", "4Gi", "1e3", "2E+2", "+1k"] {
            assert!(is_quantity(q), "{q}");
        }
        for q in ["", "Gi", "1GB", "1.2.3", "one", "4 Gi", "-1", "1e", "1ee3"] {
            assert!(!is_quantity(q), "{q}");
        }
    }
}
