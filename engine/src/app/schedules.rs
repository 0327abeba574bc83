//! `schedules …`: recurring schedules from the command line, and the `--at`/`--delay`
//! parsing `run` shares.

use std::io::Write;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use serde_json::Value;

use super::App;
use super::commands::engine;
use super::config::Settings;
use super::error::CliError;
use super::inputs::parse as parse_inputs;
use super::table;
use crate::schedule::{MissedFirePolicy, OverlapPolicy};
use crate::{Recurring, RecurringSchedule};

#[derive(Debug, Subcommand)]
pub(crate) enum SchedulesCommand {
    /// The recurring schedules: next and last fire, last run, why a fire was skipped.
    List {
        /// Print them as a JSON array (the shape is in the CLI guide).
        #[arg(long)]
        json: bool,
    },
    /// One schedule in full: policies, inputs, state.
    Show {
        /// The schedule's id.
        id: String,
        /// Print it as JSON (the shape is in the CLI guide).
        #[arg(long)]
        json: bool,
    },
    /// Register (or update) a recurring schedule of a workflow.
    Add(AddArgs),
    /// Turn a schedule on: it fires from its next fire after now.
    Enable {
        /// The schedule's id.
        id: String,
    },
    /// Turn a schedule off: it fires no more until enabled.
    Disable {
        /// The schedule's id.
        id: String,
    },
    /// Enqueue one run of the schedule now (the schedule itself does not move).
    Trigger {
        /// The schedule's id.
        id: String,
    },
    /// Delete a schedule (its runs are kept).
    Remove {
        /// The schedule's id.
        id: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The schedule's id.
    pub(crate) id: String,
    /// The workflow it runs (see `jobs`).
    pub(crate) workflow: String,
    /// The cron expression: 5 fields (minute hour day-of-month month day-of-week), 6 or 7
    /// with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly.
    #[arg(long)]
    pub(crate) cron: String,
    /// The IANA time zone the expression is read in.
    #[arg(long = "tz", default_value = "UTC", value_name = "ZONE")]
    pub(crate) time_zone: String,
    /// When a fire comes while the previous run is still going: skip, queue or allow.
    #[arg(long, default_value = "skip", value_name = "POLICY")]
    pub(crate) overlap: String,
    /// Fires missed while no engine ran: skip, once, or catch-up=N (the latest N).
    #[arg(long, default_value = "once", value_name = "POLICY")]
    pub(crate) missed: String,
    /// Delay each run by a deterministic amount up to this (e.g. 30s, 5m).
    #[arg(long, value_name = "DURATION")]
    pub(crate) jitter: Option<String>,
    /// The runs' priority (higher first when capacity is short).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub(crate) priority: i32,
    /// A run parameter, KEY=VALUE (VALUE as JSON when it parses). Repeatable.
    #[arg(short = 'i', long = "input", value_name = "KEY=VALUE")]
    pub(crate) inputs: Vec<String>,
}

/// Runs one `schedules` command.
pub(super) async fn dispatch(
    app: &App,
    settings: &Settings,
    command: SchedulesCommand,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let engine = engine(app, settings).await?;
    match command {
        SchedulesCommand::List { json } => {
            let all = engine.schedules().list().await?;
            if json {
                let items: Vec<Value> = all.iter().map(schedule_json).collect();
                let text = serde_json::to_string_pretty(&items).unwrap_or_default();
                writeln!(out, "{text}")?;
                return Ok(());
            }
            let mut rows = vec![
                [
                    "schedule",
                    "workflow",
                    "cron",
                    "zone",
                    "state",
                    "next fire",
                    "last fire",
                    "last run",
                    "note",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for s in &all {
                rows.push(vec![
                    s.id.clone(),
                    s.workflow.clone(),
                    s.cron.clone(),
                    s.time_zone.clone(),
                    if s.enabled { "enabled" } else { "disabled" }.to_owned(),
                    opt_time(s.next_fire),
                    opt_time(s.last_fire),
                    s.last_run.map_or_else(|| "-".to_owned(), |r| r.to_string()),
                    s.note.clone().unwrap_or_default(),
                ]);
            }
            write!(out, "{}", table::render(&rows))?;
            if all.is_empty() {
                writeln!(out, "(no schedules)")?;
            }
        }
        SchedulesCommand::Show { id, json } => {
            let s = engine.schedules().get(&id).await?;
            if json {
                let text = serde_json::to_string_pretty(&schedule_json(&s)).unwrap_or_default();
                writeln!(out, "{text}")?;
            } else {
                show(&s, out)?;
            }
        }
        SchedulesCommand::Add(a) => {
            let wf = app.find(&a.workflow)?;
            let mut options = Recurring::new()
                .time_zone(&a.time_zone)
                .overlap(parse_overlap(&a.overlap)?)
                .missed(parse_missed(&a.missed)?)
                .priority(a.priority);
            if let Some(j) = &a.jitter {
                options = options.jitter(parse_duration("--jitter", j)?);
            }
            let inputs = parse_inputs(&a.inputs, None)?;
            if !inputs.as_object().is_some_and(serde_json::Map::is_empty) {
                options = options.inputs(inputs);
            }
            engine
                .schedules()
                .add_or_update(&a.id, wf, &a.cron, options)
                .await?;
            let s = engine.schedules().get(&a.id).await?;
            writeln!(
                out,
                "schedule `{}`: `{}` on `{}` ({}), next fire {}",
                table::escape(&s.id),
                table::escape(&s.workflow),
                table::escape(&s.cron),
                table::escape(&s.time_zone),
                opt_time(s.next_fire)
            )?;
        }
        SchedulesCommand::Enable { id } => {
            let s = engine.schedules().enable(&id).await?;
            writeln!(
                out,
                "enabled `{}`: next fire {}",
                table::escape(&id),
                opt_time(s.next_fire)
            )?;
        }
        SchedulesCommand::Disable { id } => {
            engine.schedules().disable(&id).await?;
            writeln!(out, "disabled `{}`", table::escape(&id))?;
        }
        SchedulesCommand::Trigger { id } => {
            let run = engine.schedules().trigger(&id).await?;
            writeln!(out, "{run}")?;
            writeln!(
                err,
                "triggered `{}`: run {run} enqueued; an engine serving {} runs it",
                table::escape(&id),
                settings.shown_store()
            )?;
        }
        SchedulesCommand::Remove { id } => {
            engine.schedules().remove(&id).await?;
            writeln!(out, "removed `{}`", table::escape(&id))?;
        }
    }
    Ok(())
}

/// `skip`, `once` or `catch-up=N`, as `--missed` takes it.
fn missed_text(m: MissedFirePolicy) -> String {
    match m {
        MissedFirePolicy::Skip => "skip".to_owned(),
        MissedFirePolicy::FireOnce => "once".to_owned(),
        MissedFirePolicy::CatchUp { max } => format!("catch-up={max}"),
    }
}

/// `skip`, `queue` or `allow`, as `--overlap` takes it.
fn overlap_text(o: OverlapPolicy) -> &'static str {
    match o {
        OverlapPolicy::Skip => "skip",
        OverlapPolicy::Queue => "queue",
        OverlapPolicy::Allow => "allow",
    }
}

/// A schedule as JSON: the stable shape of `schedules list --json` (one per item) and
/// `schedules show --json`, documented in the CLI guide.
fn schedule_json(s: &RecurringSchedule) -> Value {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    serde_json::json!({
        "id": s.id,
        "workflow": s.workflow,
        "cron": s.cron,
        "time_zone": s.time_zone,
        "enabled": s.enabled,
        "next_fire": time(s.next_fire),
        "last_fire": time(s.last_fire),
        "last_run": s.last_run.map(|r| r.to_string()),
        "overlap": overlap_text(s.overlap),
        "missed": missed_text(s.missed),
        "jitter_ms": s.jitter.max().as_millis() as u64,
        "priority": s.priority,
        "inputs": s.inputs,
        "note": s.note,
    })
}

fn show(s: &RecurringSchedule, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    let missed = missed_text(s.missed);
    let overlap = overlap_text(s.overlap);
    let inputs = match &s.inputs {
        Value::Null => "-".to_owned(),
        v => v.to_string(),
    };
    let rows = [
        ("schedule", s.id.clone()),
        ("workflow", s.workflow.clone()),
        ("cron", s.cron.clone()),
        ("time zone", s.time_zone.clone()),
        (
            "state",
            if s.enabled { "enabled" } else { "disabled" }.to_owned(),
        ),
        ("next fire", opt_time(s.next_fire)),
        ("last fire", opt_time(s.last_fire)),
        (
            "last run",
            s.last_run.map_or_else(|| "-".to_owned(), |r| r.to_string()),
        ),
        ("overlap", overlap.to_owned()),
        ("missed", missed),
        (
            "jitter",
            if s.jitter.max().is_zero() {
                "-".to_owned()
            } else {
                table::duration(s.jitter.max())
            },
        ),
        ("priority", s.priority.to_string()),
        ("inputs", inputs),
        ("note", s.note.clone().unwrap_or_else(|| "-".to_owned())),
    ];
    for (k, v) in rows {
        writeln!(out, "{:<10} {}", format!("{k}:"), table::escape(&v))?;
    }
    Ok(())
}

fn opt_time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| table::time(SystemTime::from(t)))
}

fn parse_overlap(s: &str) -> Result<OverlapPolicy, CliError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "skip" => Ok(OverlapPolicy::Skip),
        "queue" => Ok(OverlapPolicy::Queue),
        "allow" => Ok(OverlapPolicy::Allow),
        other => Err(CliError::usage(format!(
            "--overlap `{other}`: expected skip, queue or allow"
        ))),
    }
}

fn parse_missed(s: &str) -> Result<MissedFirePolicy, CliError> {
    let t = s.trim().to_ascii_lowercase();
    match t.as_str() {
        "skip" => return Ok(MissedFirePolicy::Skip),
        "once" | "fire-once" => return Ok(MissedFirePolicy::FireOnce),
        _ => {}
    }
    if let Some(n) = t.strip_prefix("catch-up=")
        && let Ok(max) = n.parse::<u32>()
    {
        return Ok(MissedFirePolicy::CatchUp { max });
    }
    Err(CliError::usage(format!(
        "--missed `{s}`: expected skip, once or catch-up=N"
    )))
}

/// `500ms`, `30s`, `10m`, `2h`, `1d`, or a bare number of seconds.
pub(super) fn parse_duration(flag: &str, s: &str) -> Result<Duration, CliError> {
    let t = s.trim();
    if let Some(rest) = t.strip_prefix('-') {
        return Err(CliError::usage(format!(
            "{flag} `{s}`: a duration cannot be negative{}",
            if flag == "--delay" {
                format!(
                    " (to start at once, leave --delay out; `--delay {rest}` starts {rest} from now)"
                )
            } else {
                String::new()
            }
        )));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3_600.0,
        "d" => 86_400.0,
        _ => f64::NAN,
    };
    num.parse::<f64>()
        .ok()
        .filter(|n| scale.is_finite() && *n >= 0.0)
        .and_then(|n| Duration::try_from_secs_f64(n * scale).ok())
        .ok_or_else(|| {
            CliError::usage(format!(
                "{flag} `{s}`: expected a duration such as 500ms, 30s, 10m, 2h or 1d"
            ))
        })
}

/// `--at` as RFC 3339 (`2026-12-01T02:00:00Z`).
pub(super) fn parse_at(s: &str) -> Result<SystemTime, CliError> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(SystemTime::from)
        .map_err(|e| {
            CliError::usage(format!(
                "--at `{s}`: expected an RFC 3339 instant such as 2026-12-01T02:00:00Z ({e})"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_policies() {
        assert_eq!(
            parse_duration("--d", "30s").unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(
            parse_duration("--d", "10m").unwrap(),
            Duration::from_secs(600)
        );
        assert_eq!(
            parse_duration("--d", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_duration("--d", "2").unwrap(), Duration::from_secs(2));
        for bad in ["", "ten", "5x", "-3s"] {
            let e = parse_duration("--delay", bad).unwrap_err().to_string();
            assert!(e.starts_with("--delay"), "{e}");
        }
        assert_eq!(
            parse_missed("catch-up=3").unwrap(),
            MissedFirePolicy::CatchUp { max: 3 }
        );
        assert!(parse_missed("catch-up=x").is_err());
        assert_eq!(parse_overlap("Queue").unwrap(), OverlapPolicy::Queue);
        assert!(parse_overlap("sometimes").is_err());
        assert!(parse_at("2026-12-01T02:00:00Z").is_ok());
        assert!(parse_at("tomorrow").is_err());
    }
}
