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
    /// The store could not be opened or failed: the store's (redacted) URL, then the
    /// error with its causes.
    #[error("store {url}: {}", describe_store(url, error))]
    Store {
        /// The store URL, without credentials.
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
}

impl CliError {
    pub(crate) fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }

    /// A store failure of the store at `url` (shown without credentials).
    pub(crate) fn store(url: &str, source: crate::store::StoreError) -> Self {
        CliError::Store {
            url: crate::redact::url(url),
            error: source,
        }
    }

    /// A store failure reported through the engine, named after the store at `url`.
    pub(crate) fn naming_store(self, url: &str) -> Self {
        match self {
            CliError::Engine(crate::Error::Store(e)) => CliError::store(url, e),
            other => other,
        }
    }

    /// 2 for bad input, 1 for everything else (a second Ctrl-C exits with 130, 128 +
    /// SIGINT, without returning: see `interrupt`).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Config { .. } => 2,
            // The URL names another application's database: the wrong file.
            CliError::Store {
                error: crate::store::StoreError::Foreign { .. },
                ..
            } => 2,
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
        }
    }
}

/// `error`'s message and its causes, joined by `: `, without the `store: ` its message
/// starts with and the store's `url` in it (the caller names the store first), and
/// without a cause whose text the message already holds. A database's own error gets
/// what it means in words: read-only, locked by another process, authentication
/// failed, no such database.
fn describe_store(url: &str, error: &crate::store::StoreError) -> String {
    let text = chain(error);
    let text = text.strip_prefix("store: ").unwrap_or(&text);
    let text = text
        .replace(&format!("`{url}`"), "it")
        .replace("error returned from database: ", "");
    match meaning(error) {
        Some(m) if !text.contains(m) => format!("{text} ({m})"),
        _ => text,
    }
}

/// The message of `error` and of each of its causes, joined by `: `; a cause whose text
/// is part of what is there already is left out.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

/// What a database error among `error`'s causes means, in words.
fn meaning(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        if let Some(sqlx::Error::Database(db)) = e.downcast_ref::<sqlx::Error>()
            && let Some(code) = db.code()
        {
            return database_code(&code);
        }
        next = e.source();
    }
    None
}

/// A SQLite result code (a number) or a PostgreSQL SQLSTATE, in words.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn database_code(code: &str) -> Option<&'static str> {
    if let Ok(n) = code.parse::<i64>() {
        // SQLite: the primary code is the low byte of an extended code.
        return match n & 0xff {
            5 | 6 => Some("the database is locked by another process"),
            8 => {
                Some("the database is read-only: no write permission on the file or its directory")
            }
            10 => Some("a disk I/O error, or the file or its directory cannot be written"),
            13 => Some("the disk is full"),
            14 => Some("the file cannot be opened"),
            23 => Some("permission denied"),
            _ => None,
        };
    }
    match code {
        "28P01" => Some("authentication failed: wrong password"),
        "28000" => Some("authentication failed: the server does not let this user in"),
        "3D000" => Some("the database does not exist"),
        "3F000" => Some("the schema does not exist"),
        "42501" => Some("permission denied"),
        "53300" => Some("too many connections"),
        "57P03" => Some("the server is starting up or shutting down"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_names_the_store_once_and_keeps_its_cause() {
        let cause = std::io::Error::other("attempt to write a readonly database");
        let e = CliError::store(
            "postgres://app:s3cret@db:5432/runs?sslpassword=x",
            crate::store::StoreError::Backend {
                message: "store: storing a workflow spec failed".to_owned(),
                source: Some(Box::new(cause)),
            },
        );
        assert_eq!(
            chain(&e),
            "store postgres://db:5432/runs: storing a workflow spec failed: attempt to write \
             a readonly database"
        );
        let e = CliError::Engine(crate::Error::Store(crate::store::StoreError::Locked {
            message: "store: `x.db` is locked by another connection or process".to_owned(),
            source: None,
        }))
        .naming_store("sqlite://x.db");
        assert_eq!(
            chain(&e),
            "store sqlite://x.db: `x.db` is locked by another connection or process"
        );
        let e = CliError::store(
            "sqlite://x.db",
            crate::store::StoreError::Unreachable {
                message: "store: cannot open `sqlite://x.db`".to_owned(),
                source: None,
            },
        );
        assert_eq!(chain(&e), "store sqlite://x.db: cannot open it");
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[test]
    fn database_codes_in_words() {
        assert_eq!(
            database_code("28P01"),
            Some("authentication failed: wrong password")
        );
        assert_eq!(database_code("3D000"), Some("the database does not exist"));
        // SQLite extended codes: SQLITE_READONLY_DBMOVED (1032), SQLITE_BUSY_SNAPSHOT (517).
        assert!(database_code("1032").is_some_and(|m| m.contains("read-only")));
        assert!(database_code("517").is_some_and(|m| m.contains("locked")));
        assert_eq!(database_code("42P01"), None);
    }
}
