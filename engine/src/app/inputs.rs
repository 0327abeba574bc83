//! A run's parameters from the command line: `--input-json FILE` and `-i KEY=VALUE`,
//! read within bounds and checked against the types of the jobs that take them before
//! anything is recorded.

use std::path::Path;

use serde_json::{Map, Value};

use super::config::{read_capped, read_capped_from};
use super::error::CliError;
use crate::Workflow;

/// The most `--input-json` may hold.
pub(crate) const MAX_INPUT_JSON_BYTES: u64 = 16 * 1024 * 1024;

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
                        json_kind(&other)
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

/// What kind of JSON value `v` is, for messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
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

/// Checks `inputs` against the types of the jobs that take them
/// ([`Workflow::check_inputs`]), before anything is recorded.
pub(crate) fn check_types(wf: &Workflow, inputs: &Value) -> Result<(), CliError> {
    wf.check_inputs(inputs).map_err(CliError::Engine)
}
