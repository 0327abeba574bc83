//! A run's parameters from the command line: `--input-json FILE` and `-i KEY=VALUE`,
//! read within bounds and checked against the types of the jobs that take them before
//! anything is recorded.

use std::path::Path;

use serde_json::{Map, Value};

use super::config::{read_capped, read_capped_from};
use super::error::CliError;
use crate::workflow::Workflow;
use crate::workflow::plan::{Src, Values};

/// The most `--input-json` may hold.
pub(crate) const MAX_INPUT_JSON_BYTES: u64 = 16 * 1024 * 1024;

/// Fan-out items of a parameter checked against the job's input type (the rest are
/// checked when the run gets there).
const ITEMS_CHECKED: usize = 1000;

/// The run's parameters: `--input-json`'s object, then each `--input KEY=VALUE`.
///
/// A VALUE is JSON when it parses as JSON; otherwise it is a string, except that a
/// VALUE starting like a JSON object, array or string (`{`, `[`, `"`) must be valid
/// JSON: a typo there is refused rather than passed on as text.
pub(crate) fn parse(inputs: &[String], input_json: Option<&Path>) -> Result<Value, CliError> {
    let mut map = match input_json {
        None => Map::new(),
        Some(path) => {
            let shown = path.display().to_string();
            let text = if shown == "-" {
                read_capped_from(std::io::stdin().lock(), MAX_INPUT_JSON_BYTES)
            } else {
                read_capped(path, MAX_INPUT_JSON_BYTES)
            }
            .map_err(|e| CliError::usage(format!("--input-json {shown}: {e}")))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(m)) => m,
                Ok(other) => {
                    return Err(CliError::usage(format!(
                        "--input-json {shown}: expected a JSON object of parameters, found {}",
                        crate::workflow::plan::kind(&other)
                    )));
                }
                Err(e) => {
                    return Err(CliError::usage(format!(
                        "--input-json {shown}: not JSON: {e}"
                    )));
                }
            }
        }
    };
    for kv in inputs {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(CliError::usage(format!(
                "--input `{kv}`: expected KEY=VALUE"
            )));
        };
        if k.trim().is_empty() {
            return Err(CliError::usage(format!(
                "--input `{kv}`: the parameter name is empty"
            )));
        }
        map.insert(k.trim().to_owned(), value(k.trim(), v)?);
    }
    Ok(Value::Object(map))
}

/// One `-i` VALUE: JSON if it parses, else a string, unless it starts like JSON.
fn value(key: &str, v: &str) -> Result<Value, CliError> {
    match serde_json::from_str(v) {
        Ok(value) => Ok(value),
        Err(e) if v.trim_start().starts_with(['{', '[', '"']) => Err(CliError::usage(format!(
            "--input `{key}`: the value starts like JSON but is not JSON ({e}); to pass it \
             as text, quote it as a JSON string: {key}='\"…\"'"
        ))),
        Err(_) => Ok(Value::String(v.to_owned())),
    }
}

/// Checks `inputs` against the input types of the nodes that take parameters
/// directly (nodes whose input is made of parameters and constants only): a value the
/// job could not decode is refused now, naming the parameter, instead of being recorded
/// as a run that fails. Unknown and missing parameters are left to the engine, which
/// names them.
pub(crate) fn check_types(wf: &Workflow, inputs: &Value) -> Result<(), CliError> {
    let plan = &wf.plan;
    let Value::Object(given) = inputs else {
        return Ok(());
    };
    let mut params = Vec::with_capacity(plan.params.len());
    for p in &plan.params {
        match given.get(&*p.name).or(p.default.as_ref()) {
            Some(v) => params.push(v.clone()),
            None => return Ok(()),
        }
    }
    let values = Params(&params);
    for node in &plan.nodes {
        let mut sources: Vec<&Src> = node.input.whole.iter().map(|s| &**s).collect();
        sources.extend(node.input.fields.iter().map(|(_, s)| s));
        if let Some(fan) = &node.fan_out {
            sources.push(&fan.items);
        }
        if sources.iter().any(|s| matches!(s, Src::Output { .. })) {
            continue;
        }
        // The parameters of this node the user gave (defaults are the workflow's own).
        let mut blamed: Vec<&str> = sources
            .iter()
            .filter_map(|s| match s {
                Src::Param(i) => Some(&*plan.params[*i as usize].name),
                _ => None,
            })
            .filter(|name| given.contains_key(*name))
            .collect();
        blamed.sort_unstable();
        blamed.dedup();
        if blamed.is_empty() {
            continue;
        }
        let refuse = |reason: String| {
            CliError::Engine(crate::Error::Input {
                name: blamed.join("`, `"),
                reason,
            })
        };
        let job = node.job.name();
        let base = node
            .build_input(&values)
            .map_err(|e| refuse(format!("node `{}`: {e}", node.id)))?;
        let check = |input: Value, item: Option<usize>| {
            node.job.check_input(input).map_err(|e| {
                let at = item.map(|i| format!(" (item {i})")).unwrap_or_default();
                refuse(format!(
                    "node `{}`{at} (job `{job}`) cannot take it: {e}",
                    node.id
                ))
            })
        };
        if node.fan_out.is_none() {
            check(base, None)?;
            continue;
        }
        let items = node
            .fan_out_items(plan, &values)
            .map_err(|e| refuse(format!("node `{}`: {e}", node.id)))?;
        for (i, item) in items.into_iter().take(ITEMS_CHECKED).enumerate() {
            let input = node
                .with_item(&base, item)
                .map_err(|e| refuse(format!("node `{}`: {e}", node.id)))?;
            check(input, Some(i))?;
        }
    }
    Ok(())
}

/// The parameter values, for assembling inputs; no node has run.
struct Params<'a>(&'a [Value]);

impl Values for Params<'_> {
    fn output(&self, _: u32) -> Option<&Value> {
        None
    }

    fn param(&self, i: u32) -> &Value {
        &self.0[i as usize]
    }
}
