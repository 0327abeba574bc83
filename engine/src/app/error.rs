//! What a command can fail with, and the exit code each failure gets.

use std::path::PathBuf;

/// A command's failure. Bad input (exit code 2) names what was wrong; anything else
/// (exit code 1) is a failure of the work itself (a store error, a failed run).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The command line or its values are wrong.
    #[error("{0}")]
    Usage(String),
    /// The config file cannot be read or parsed.
    #[error("config file {}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The store could not be opened or failed.
    #[error("store {url}: {error}")]
    Store {
        /// The store URL.
        url: String,
        /// The store's error (in the message, so not a `source`).
        error: crate::store::StoreError,
    },
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] crate::Error),
    /// Writing the output failed (a closed pipe).
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    /// The work ran and did not succeed; the message was printed already.
    #[error("{0}")]
    Failed(String),
    /// Interrupted twice (Ctrl-C) while waiting for a run: the run was asked to
    /// cancel and this process left before it finished.
    #[error("interrupted: run {0} was asked to cancel; `runs show {0}` follows it")]
    Interrupted(crate::RunId),
}

impl CliError {
    pub(crate) fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }

    pub(crate) fn interrupted(run: crate::RunId) -> Self {
        CliError::Interrupted(run)
    }

    pub(crate) fn store(url: &str, source: crate::store::StoreError) -> Self {
        CliError::Store {
            url: url.to_owned(),
            error: source,
        }
    }

    /// 2 for bad input, 130 (128 + SIGINT, as shells do) when interrupted, 1 for
    /// everything else.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Config { .. } => 2,
            CliError::Engine(e) => match e {
                crate::Error::Input { .. }
                | crate::Error::RunNotFound(_)
                | crate::Error::NodeNotFound(_)
                | crate::Error::UnknownJob(_)
                | crate::Error::UnknownWorkflow { .. }
                | crate::Error::RunNotFinished { .. }
                | crate::Error::NothingToRetry(_)
                | crate::Error::Schedule { .. }
                | crate::Error::UnknownSchedule(_) => 2,
                _ => 1,
            },
            CliError::Store { .. } | CliError::Io(_) | CliError::Failed(_) => 1,
            CliError::Interrupted(_) => 130,
        }
    }
}
