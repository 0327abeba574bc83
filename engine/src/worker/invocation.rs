//! What a worker is asked to run, passed in `DAGFORGE_WORKER_*` environment variables.

use std::ffi::OsString;
use std::time::Duration;

use crate::ids::RunId;

/// `1` in a worker process (see [`is_worker_invocation`](super::is_worker_invocation)).
pub const ENV_WORKER: &str = "DAGFORGE_WORKER";
/// The registered name of the job to run.
pub const ENV_JOB: &str = "DAGFORGE_WORKER_JOB";
/// The run id (a UUID).
pub const ENV_RUN_ID: &str = "DAGFORGE_WORKER_RUN_ID";
/// The workflow node id.
pub const ENV_NODE: &str = "DAGFORGE_WORKER_NODE";
/// The fan-out item index; unset for a node that is not fanned out.
pub const ENV_ITEM: &str = "DAGFORGE_WORKER_ITEM";
/// The attempt number, from 1.
pub const ENV_ATTEMPT: &str = "DAGFORGE_WORKER_ATTEMPT";
/// An id the executor gives this one execution (a UUID), for logs and correlation.
pub const ENV_EXECUTION_ID: &str = "DAGFORGE_WORKER_EXECUTION_ID";
/// The attempt's timeout in milliseconds; unset for none.
pub const ENV_TIMEOUT_MS: &str = "DAGFORGE_WORKER_TIMEOUT_MS";
/// How often the worker writes a heartbeat line, in milliseconds (default 1000).
pub const ENV_HEARTBEAT_MS: &str = "DAGFORGE_WORKER_HEARTBEAT_MS";

/// How long a cancelled or orphaned job may take to stop before the worker exits
/// anyway, in milliseconds (default 5000).
pub const ENV_GRACE_MS: &str = "DAGFORGE_WORKER_GRACE_MS";

/// The protocol version the executor speaks (it must be the worker's
/// [`VERSION`](super::VERSION)).
pub const ENV_PROTOCOL: &str = "DAGFORGE_WORKER_PROTOCOL";

/// The longest protocol line the executor reads, in bytes (default 16 MiB): the worker
/// sends no longer line (an output over it becomes an `output` error, a log message
/// over it is cut).
pub const ENV_MAX_MESSAGE_BYTES: &str = "DAGFORGE_WORKER_MAX_MESSAGE_BYTES";

/// Every variable of an invocation. An executor clears every inherited `DAGFORGE_*`
/// variable, these included, before setting its own.
#[cfg(test)]
const ALL: [&str; 12] = [
    ENV_WORKER,
    ENV_PROTOCOL,
    ENV_MAX_MESSAGE_BYTES,
    ENV_JOB,
    ENV_RUN_ID,
    ENV_NODE,
    ENV_ITEM,
    ENV_ATTEMPT,
    ENV_EXECUTION_ID,
    ENV_TIMEOUT_MS,
    ENV_HEARTBEAT_MS,
    ENV_GRACE_MS,
];

/// The default heartbeat interval.
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// The default grace period.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// The default longest protocol line.
pub(crate) const DEFAULT_MAX_MESSAGE: usize = 16 << 20;
/// The shortest protocol line limit an invocation may set: room for any message but an
/// output or a long log line.
const MIN_MAX_MESSAGE: usize = 4096;

/// One execution a worker is asked to run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Invocation {
    /// The job's registered name.
    pub job: String,
    /// The run.
    pub run: RunId,
    /// The node.
    pub node: String,
    /// The fan-out item.
    pub item: Option<u32>,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// The executor's id for this execution.
    pub execution: String,
    /// The attempt's timeout.
    pub timeout: Option<Duration>,
    /// How often to write a heartbeat line.
    pub heartbeat: Duration,
    /// How long a cancelled or orphaned job may take to stop before the worker exits.
    pub grace: Duration,
    /// The longest protocol line the executor reads, in bytes.
    pub max_message: usize,
}

/// A missing or invalid `DAGFORGE_WORKER_*` variable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvocationError {
    /// A required variable is not set.
    #[error("worker invocation: environment variable {0} is not set")]
    Missing(&'static str),
    /// A variable has a value that cannot be used.
    #[error("worker invocation: environment variable {name}=`{value}` is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value (lossily decoded).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Invocation {
    /// Reads the invocation from this process's environment.
    pub fn from_env() -> Result<Self, InvocationError> {
        Self::from_vars(std::env::var_os)
    }

    /// Reads the invocation through `var` (a name → value lookup).
    pub fn from_vars(
        var: impl Fn(&'static str) -> Option<OsString>,
    ) -> Result<Self, InvocationError> {
        let text = |name: &'static str| -> Result<Option<String>, InvocationError> {
            match var(name) {
                None => Ok(None),
                Some(v) => v
                    .into_string()
                    .map(Some)
                    .map_err(|v| InvocationError::Invalid {
                        name,
                        value: v.to_string_lossy().into_owned(),
                        reason: "not UTF-8".into(),
                    }),
            }
        };
        let required = |name: &'static str| -> Result<String, InvocationError> {
            match text(name)? {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(InvocationError::Missing(name)),
            }
        };
        fn parse<T: std::str::FromStr>(name: &'static str, v: &str) -> Result<T, InvocationError>
        where
            T::Err: std::fmt::Display,
        {
            v.trim()
                .parse()
                .map_err(|e: T::Err| InvocationError::Invalid {
                    name,
                    value: v.to_owned(),
                    reason: e.to_string(),
                })
        }
        let optional_ms = |name: &'static str| -> Result<Option<Duration>, InvocationError> {
            match text(name)? {
                Some(v) if !v.trim().is_empty() => {
                    Ok(Some(Duration::from_millis(parse::<u64>(name, &v)?)))
                }
                _ => Ok(None),
            }
        };

        let protocol = required(ENV_PROTOCOL)?;
        if parse::<u32>(ENV_PROTOCOL, &protocol)? != super::VERSION {
            return Err(InvocationError::Invalid {
                name: ENV_PROTOCOL,
                value: protocol,
                reason: format!(
                    "this worker speaks protocol version {} (build the worker and the engine \
                     with the same dagforge)",
                    super::VERSION
                ),
            });
        }
        let max_message = match text(ENV_MAX_MESSAGE_BYTES)? {
            Some(v) if !v.trim().is_empty() => {
                let n = parse::<usize>(ENV_MAX_MESSAGE_BYTES, &v)?;
                if n < MIN_MAX_MESSAGE {
                    return Err(InvocationError::Invalid {
                        name: ENV_MAX_MESSAGE_BYTES,
                        value: v,
                        reason: format!("at least {MIN_MAX_MESSAGE} bytes"),
                    });
                }
                n
            }
            _ => DEFAULT_MAX_MESSAGE,
        };
        let run = required(ENV_RUN_ID)?;
        let item = match text(ENV_ITEM)? {
            Some(v) if !v.trim().is_empty() => Some(parse::<u32>(ENV_ITEM, &v)?),
            _ => None,
        };
        let attempt_text = required(ENV_ATTEMPT)?;
        let attempt = parse::<u32>(ENV_ATTEMPT, &attempt_text)?;
        if attempt == 0 {
            return Err(InvocationError::Invalid {
                name: ENV_ATTEMPT,
                value: attempt_text,
                reason: "attempts count from 1".into(),
            });
        }
        let heartbeat = optional_ms(ENV_HEARTBEAT_MS)?.unwrap_or(DEFAULT_HEARTBEAT);
        if heartbeat.is_zero() {
            return Err(InvocationError::Invalid {
                name: ENV_HEARTBEAT_MS,
                value: "0".into(),
                reason: "the heartbeat interval must be positive".into(),
            });
        }
        Ok(Invocation {
            job: required(ENV_JOB)?,
            run: parse(ENV_RUN_ID, &run)?,
            node: required(ENV_NODE)?,
            item,
            attempt,
            execution: text(ENV_EXECUTION_ID)?.unwrap_or_default(),
            timeout: optional_ms(ENV_TIMEOUT_MS)?,
            heartbeat,
            grace: optional_ms(ENV_GRACE_MS)?.unwrap_or(DEFAULT_GRACE),
            max_message,
        })
    }

    /// The variables that pass this invocation to a worker (optional ones only when
    /// set).
    pub fn to_vars(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            (ENV_WORKER, "1".to_owned()),
            (ENV_PROTOCOL, super::VERSION.to_string()),
            (ENV_MAX_MESSAGE_BYTES, self.max_message.to_string()),
            (ENV_JOB, self.job.clone()),
            (ENV_RUN_ID, self.run.to_string()),
            (ENV_NODE, self.node.clone()),
            (ENV_ATTEMPT, self.attempt.to_string()),
            (ENV_EXECUTION_ID, self.execution.clone()),
            (
                ENV_HEARTBEAT_MS,
                self.heartbeat.as_millis().max(1).to_string(),
            ),
            (ENV_GRACE_MS, self.grace.as_millis().to_string()),
        ];
        if let Some(item) = self.item {
            vars.push((ENV_ITEM, item.to_string()));
        }
        if let Some(t) = self.timeout {
            vars.push((ENV_TIMEOUT_MS, t.as_millis().to_string()));
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&'static str, String)]) -> impl Fn(&'static str) -> Option<OsString> {
        let map: HashMap<&'static str, OsString> =
            vars.iter().map(|(k, v)| (*k, OsString::from(v))).collect();
        move |name| map.get(name).cloned()
    }

    fn sample() -> Invocation {
        Invocation {
            job: "echo".into(),
            run: RunId::new(),
            node: "step".into(),
            item: Some(3),
            attempt: 2,
            execution: "e-1".into(),
            timeout: Some(Duration::from_millis(1500)),
            heartbeat: Duration::from_millis(250),
            grace: Duration::from_millis(700),
            max_message: 1 << 20,
        }
    }

    #[test]
    fn every_variable_is_one_an_executor_clears_first() {
        let set: Vec<&str> = sample().to_vars().into_iter().map(|(k, _)| k).collect();
        for name in set {
            assert!(ALL.contains(&name), "{name}");
        }
        for name in ALL {
            assert!(name.starts_with("DAGFORGE_"), "{name}");
        }
    }

    #[test]
    fn round_trips_through_variables() {
        let inv = sample();
        assert_eq!(Invocation::from_vars(lookup(&inv.to_vars())).unwrap(), inv);
        let plain = Invocation {
            item: None,
            timeout: None,
            ..sample()
        };
        assert_eq!(
            Invocation::from_vars(lookup(&plain.to_vars())).unwrap(),
            plain
        );
    }

    #[test]
    fn missing_and_invalid_variables_are_named() {
        let mut vars = sample().to_vars();
        vars.retain(|(k, _)| *k != ENV_JOB);
        assert_eq!(
            Invocation::from_vars(lookup(&vars)).unwrap_err(),
            InvocationError::Missing(ENV_JOB)
        );
        for (name, bad) in [
            (ENV_ATTEMPT, "x"),
            (ENV_ATTEMPT, "0"),
            (ENV_RUN_ID, "not-a-uuid"),
            (ENV_ITEM, "-1"),
            (ENV_TIMEOUT_MS, "soon"),
            (ENV_HEARTBEAT_MS, "0"),
            (ENV_GRACE_MS, "-5"),
            (ENV_PROTOCOL, "1"),
            (ENV_PROTOCOL, "two"),
            (ENV_MAX_MESSAGE_BYTES, "100"),
            (ENV_MAX_MESSAGE_BYTES, "lots"),
        ] {
            let mut vars = sample().to_vars();
            vars.retain(|(k, _)| *k != name);
            vars.push((name, bad.to_owned()));
            let e = Invocation::from_vars(lookup(&vars)).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
        }
    }
}
