//! How long a PostgreSQL store's writes wait for the disk: [`Durability`], and the
//! store URL's `durability` parameter that selects it.

use std::fmt;
use std::str::FromStr;

/// When a [`PostgresStore`](super::PostgresStore)'s writes wait for PostgreSQL to flush
/// its write-ahead log to disk, set with
/// [`PostgresOptions::durability`](super::PostgresOptions::durability) or the store
/// URL's `durability` parameter (`postgres://…/db?durability=relaxed`).
///
/// Claims, starts, log lines and progress never wait. Whatever the setting, the WAL is
/// written in order, so a crash of the database server loses at most a *tail* of a
/// run's history, whole: the engine driving the run finds its next write refused (out
/// of sequence, or fenced), stops, and the run is resumed from what was recorded. The
/// attempts whose records were lost run again — at least once, as after any crash —
/// and no outcome is ever recorded twice. What the settings trade is which records a
/// server crash may take with it:
///
/// | setting | an outcome is acknowledged | a database server crash may lose |
/// |---|---|---|
/// | [`Outcomes`](Durability::Outcomes) (default) | after its flush | the last starts, logs and progress |
/// | [`Relaxed`](Durability::Relaxed) | before its flush | also the last outcomes (about the last 0.2 s: `wal_writer_delay`) |
///
/// `Relaxed` takes one disk flush (about 1–3 ms on a local SSD, more on network
/// storage) off every settled attempt, which is what a run through a deep DAG of
/// short jobs waits for level after level. Its cost: a job whose outcome was lost runs
/// again, and a client that saw the outcome (through the API, or
/// [`Engine::run`](crate::Engine::run)'s result) may see the run go back to running
/// it. A crash of the *engine* process loses nothing under either setting; only a
/// crash of the database server (or its machine) does.
///
/// ```
/// use dagforge::store::{Durability, PostgresStore};
/// let opts = PostgresStore::options("postgres://app@db.internal/jobs")
///     .durability(Durability::Relaxed);
/// # let _ = opts;
/// assert_eq!("relaxed".parse::<Durability>(), Ok(Durability::Relaxed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every recorded outcome (an attempt or node settled, a run finished) waits for
    /// its WAL flush before the engine goes on, so an outcome the engine acted on is
    /// never lost.
    #[default]
    Outcomes,
    /// No write waits for its flush (`synchronous_commit = off`): lower latency per
    /// DAG level; a database server crash may lose the last outcomes, whose attempts
    /// then run again.
    Relaxed,
}

impl Durability {
    /// The setting's name, as the URL parameter takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Outcomes => "outcomes",
            Durability::Relaxed => "relaxed",
        }
    }

    /// PostgreSQL's `synchronous_commit` for a write group, by whether it records an
    /// outcome.
    pub(super) fn synchronous_commit(self, settles: bool) -> &'static str {
        match (self, settles) {
            (Durability::Outcomes, true) => "on",
            _ => "off",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `durability` value that is not `outcomes` or `relaxed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown durability `{0}`: use `outcomes` (the default) or `relaxed`")]
pub struct UnknownDurability(String);

impl FromStr for Durability {
    type Err = UnknownDurability;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "outcomes" => Ok(Durability::Outcomes),
            "relaxed" => Ok(Durability::Relaxed),
            _ => Err(UnknownDurability(s.chars().take(64).collect())),
        }
    }
}

/// `url` without its `durability` query parameter, and the parameter's value (the
/// last one, if repeated); `url` as it is when it has none or does not parse (the
/// connect reports a bad URL).
pub(super) fn take_param(url: &str) -> (String, Option<String>) {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return (url.to_owned(), None);
    };
    if parsed.query().is_none() {
        return (url.to_owned(), None);
    }
    let mut value = None;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == "durability" {
                value = Some(v.into_owned());
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    if value.is_none() {
        return (url.to_owned(), None);
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    (parsed.into(), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_both_ways_and_unknown_names_are_refused() {
        for d in [Durability::Outcomes, Durability::Relaxed] {
            assert_eq!(d.as_str().parse::<Durability>(), Ok(d));
            assert_eq!(d.to_string().to_uppercase().parse::<Durability>(), Ok(d));
        }
        let e = "fast".parse::<Durability>().unwrap_err();
        assert!(e.to_string().contains("`fast`"), "{e}");
        assert_eq!(Durability::default(), Durability::Outcomes);
    }

    #[test]
    fn only_outcomes_under_the_default_wait_for_the_flush() {
        assert_eq!(Durability::Outcomes.synchronous_commit(true), "on");
        assert_eq!(Durability::Outcomes.synchronous_commit(false), "off");
        assert_eq!(Durability::Relaxed.synchronous_commit(true), "off");
        assert_eq!(Durability::Relaxed.synchronous_commit(false), "off");
    }

    #[test]
    fn the_parameter_is_taken_out_of_the_url_and_the_rest_kept() {
        let (url, v) = take_param("postgres://u:p@h:5432/db?durability=relaxed");
        assert_eq!(url, "postgres://u:p@h:5432/db");
        assert_eq!(v.as_deref(), Some("relaxed"));
        let (url, v) =
            take_param("postgres://h/db?sslmode=disable&durability=outcomes&application_name=x");
        assert_eq!(url, "postgres://h/db?sslmode=disable&application_name=x");
        assert_eq!(v.as_deref(), Some("outcomes"));
        let plain = "postgres://h/db?sslmode=disable";
        assert_eq!(take_param(plain), (plain.to_owned(), None));
        assert_eq!(take_param("not a url"), ("not a url".to_owned(), None));
    }
}
