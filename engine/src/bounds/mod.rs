//! Bounds on the JSON values that enter a run: run inputs and job outputs.
//!
//! Serializing, cloning, printing and dropping a [`serde_json::Value`] recurse once per
//! level of nesting, so a value nested 100,000 levels deep overflows the thread's stack
//! and aborts the process; serde_json's parser refuses more than 127 levels, so such a
//! value, once stored, could not even be read back. Every value entering a run is
//! therefore measured here, without recursion, and refused beyond [`MAX_DEPTH`] levels:
//! what is accepted can be encoded, stored, decoded and printed.
//!
//! Depth counts nested arrays and objects: a scalar is 0 deep, `[]` and `{}` are 1,
//! `[{"a": 1}]` is 2 — the measure serde_json's parser limits.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

mod encode;
#[cfg(test)]
mod tests;

pub use encode::{EncodeError, to_value};

/// The deepest nesting of arrays and objects a run input or a job output may have.
///
/// Well below the 127 levels serde_json's parser accepts, so that a value stays
/// readable when it is wrapped (in an event, in the worker protocol, in a node's
/// assembled input).
pub const MAX_DEPTH: usize = 64;

/// A value nested deeper than the limit.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TooDeep {
    /// How deep the value is; with `at_least`, the depth at which measuring stopped.
    pub depth: usize,
    /// Whether measuring stopped at `depth` (the value may be deeper still).
    pub at_least: bool,
    /// The limit.
    pub limit: usize,
    /// The key of the top-level object under which the value is too deep, if it is an
    /// object.
    pub field: Option<String>,
}

impl fmt::Display for TooDeep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let more = if self.at_least { "at least " } else { "" };
        write!(
            f,
            "nested {more}{} levels deep, more than the limit of {} levels",
            self.depth, self.limit
        )
    }
}

impl std::error::Error for TooDeep {}

/// The nesting depth of `v` (see the module docs), measured without recursion.
pub fn depth(v: &Value) -> usize {
    walk(v, usize::MAX)
}

/// The depth of `v`, or the first depth past `stop` found (then `v` is deeper than
/// `stop`, and the walk ends there).
fn walk(v: &Value, stop: usize) -> usize {
    fn is_container(v: &Value) -> bool {
        matches!(v, Value::Array(_) | Value::Object(_))
    }
    let mut deepest = 0;
    // Containers still to visit, with the depth of the level they are in.
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, above)) = stack.pop() {
        let level = above + 1;
        match v {
            Value::Array(a) => {
                stack.extend(a.iter().filter(|c| is_container(c)).map(|c| (c, level)));
            }
            Value::Object(m) => {
                stack.extend(m.values().filter(|c| is_container(c)).map(|c| (c, level)));
            }
            _ => continue,
        }
        if level > deepest {
            deepest = level;
            if deepest > stop {
                return deepest;
            }
        }
    }
    deepest
}

/// `Err` if `v` is nested deeper than `limit` levels. Stops measuring past the limit;
/// only a value refused is measured in full, for the message.
pub fn check(v: &Value, limit: usize) -> Result<(), TooDeep> {
    if walk(v, limit) <= limit {
        return Ok(());
    }
    let d = depth(v);
    let field = match v {
        Value::Object(m) => m
            .iter()
            .find(|(_, c)| depth(c) + 1 == d)
            .map(|(k, _)| k.clone()),
        _ => None,
    };
    Err(TooDeep {
        depth: d,
        at_least: false,
        limit,
        field,
    })
}

/// Drops `v` without recursion: dropping a deep value the ordinary way recurses once
/// per level and can overflow the stack.
pub fn dispose(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a),
            Value::Object(m) => stack.extend(m.into_iter().map(|(_, c)| c)),
            _ => {}
        }
    }
}

/// Checks `v` against `limit`; a value that is too deep is disposed of (without
/// recursion) and the error returned.
pub fn admit(v: Value, limit: usize) -> Result<Value, TooDeep> {
    match check(&v, limit) {
        Ok(()) => Ok(v),
        Err(e) => {
            dispose(v);
            Err(e)
        }
    }
}

/// Whether `v`, encoded as JSON, is longer than `limit` bytes. Encodes into a counter
/// that stops at the limit; measure the depth first ([`check`]), as encoding recurses.
pub fn encoded_len_exceeds(v: &Value, limit: usize) -> bool {
    struct Counter {
        n: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.n += b.len();
            if self.n > self.limit {
                Err(std::io::Error::other("over the limit"))
            } else {
                Ok(b.len())
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    if v.is_null() {
        return limit < 4;
    }
    serde_json::to_writer(&mut Counter { n: 0, limit }, v).is_err()
}

/// Default for the largest run inputs, as JSON: 1 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 1 << 20;

/// A run's inputs as JSON, refused before anything recursive touches them when a
/// parameter's value nests deeper than [`MAX_DEPTH`] or the whole is longer than
/// `max_bytes`. The error names the parameter (`*` when it cannot be told).
pub(crate) fn run_inputs<T: Serialize + ?Sized>(
    inputs: &T,
    max_bytes: usize,
) -> Result<Value, crate::Error> {
    // The inputs are an object of parameter values: one level more than a value.
    let v = to_value(inputs, MAX_DEPTH + 1).map_err(|e| match e {
        EncodeError::TooDeep(e) => crate::Error::Input {
            name: e.field.unwrap_or_else(|| "*".to_owned()),
            reason: format!("nested more than the limit of {MAX_DEPTH} levels"),
        },
        EncodeError::Json(e) => crate::Error::Input {
            name: "*".to_owned(),
            reason: format!("inputs cannot be encoded as JSON: {e}"),
        },
    })?;
    check_run_inputs(&v, max_bytes)?;
    Ok(v)
}

/// [`run_inputs`] for inputs that are JSON already (those of a recorded run).
pub(crate) fn check_run_inputs(v: &Value, max_bytes: usize) -> Result<(), crate::Error> {
    let params: Vec<(&str, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, c)| (k.as_str(), c)).collect(),
        other => vec![("*", other)],
    };
    for (name, c) in &params {
        if let Err(e) = check(c, MAX_DEPTH) {
            return Err(crate::Error::Input {
                name: (*name).to_owned(),
                reason: e.to_string(),
            });
        }
    }
    if encoded_len_exceeds(v, max_bytes) {
        // Name the largest parameter: the one to move into an artifact.
        let largest = params
            .iter()
            .max_by_key(|(_, c)| serde_json::to_vec(c).map_or(0, |b| b.len()))
            .map_or("*", |(n, _)| n);
        return Err(crate::Error::Input {
            name: largest.to_owned(),
            reason: format!(
                "the run inputs are larger than the {max_bytes}-byte limit: save large data \
                 as an artifact and pass its reference instead"
            ),
        });
    }
    Ok(())
}
