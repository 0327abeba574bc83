//! Artifact keys: validation (nothing escapes the store's root) and the
//! run/node/item/attempt namespace of artifacts saved from jobs.

use std::fmt::Write as _;
use std::sync::Arc;

use object_store::path::{Path, PathPart};

use super::error::{ArtifactError, ArtifactResult};
use crate::ids::RunId;

/// Longest key accepted, in bytes (S3's limit, less room for the store's prefix).
const MAX_KEY: usize = 900;

/// The folder under the store's root that holds every run's artifacts.
pub(crate) const RUNS: &str = "runs";

/// Checks a key (or the name of an artifact) given by a caller or read from a
/// reference: `/`-separated segments, none empty, `.` or `..`, no control
/// characters, backslashes or `#`.
pub(crate) fn validate(key: &str) -> ArtifactResult<()> {
    let reason = if key.is_empty() {
        Some("it is empty")
    } else if key.len() > MAX_KEY {
        Some("it is longer than 900 bytes")
    } else if key.starts_with('/') {
        Some("it is absolute (keys are relative to the store's root)")
    } else if key.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if key.contains('\\') {
        Some("it contains a backslash")
    } else if key.contains('#') {
        Some("it contains `#` (reserved for uploads in progress)")
    } else {
        key.split('/').find_map(|segment| match segment {
            "" => Some("it has an empty segment"),
            "." => Some("it has a `.` segment"),
            ".." => Some("it has a `..` segment, which would escape the store's root"),
            _ => None,
        })
    };
    match reason {
        Some(reason) => Err(ArtifactError::InvalidKey {
            key: key.chars().take(200).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The object path of a validated `key` under `root`.
pub(crate) fn join(root: &Path, key: &str) -> ArtifactResult<Path> {
    validate(key)?;
    let full = if root.as_ref().is_empty() {
        Path::parse(key)
    } else {
        Path::parse(format!("{root}/{key}"))
    };
    full.map_err(|_| ArtifactError::InvalidKey {
        key: key.to_owned(),
        reason: "it is not a valid object path",
    })
}

/// The key of `path` relative to `root`, when it lies under it.
pub(crate) fn relative(root: &Path, path: &Path) -> Option<String> {
    let parts = path.prefix_match(root)?;
    let mut key = String::new();
    for part in parts {
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(part.as_ref());
    }
    Some(key)
}

/// The prefix of every artifact of a run.
pub(crate) fn run_prefix(run: RunId) -> String {
    format!("{RUNS}/{run}")
}

/// Where an attempt's artifacts go: `runs/<run>/<node>[/item-<i>]/attempt-<n>`.
///
/// Every attempt, and every fan-out item, has its own folder, so retries and items
/// never overwrite each other's artifacts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    run: RunId,
    node: Arc<str>,
    item: Option<u32>,
    attempt: u32,
}

impl Scope {
    /// The scope of one attempt of a node (or of one fan-out item).
    pub fn new(run: RunId, node: impl Into<Arc<str>>, item: Option<u32>, attempt: u32) -> Self {
        Scope {
            run,
            node: node.into(),
            item,
            attempt,
        }
    }

    /// The run.
    pub fn run_id(&self) -> RunId {
        self.run
    }

    /// The node.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// The fan-out item.
    pub fn item(&self) -> Option<u32> {
        self.item
    }

    /// The attempt.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The folder of this attempt's artifacts, relative to the store's root. The
    /// node id is percent-encoded, so any node id stays one segment.
    pub fn prefix(&self) -> String {
        let node = PathPart::from(self.node.as_ref());
        let mut out = format!("{}/{}", run_prefix(self.run), node.as_ref());
        if let Some(item) = self.item {
            let _ = write!(out, "/item-{item}");
        }
        let _ = write!(out, "/attempt-{}", self.attempt);
        out
    }

    /// The key of the artifact `name` of this attempt (`name` is validated like a key).
    pub fn key(&self, name: &str) -> ArtifactResult<String> {
        validate(name)?;
        Ok(format!("{}/{name}", self.prefix()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keys_are_rejected_with_a_reason() {
        for (key, reason) in [
            ("", "empty"),
            ("../etc/passwd", "`..`"),
            ("a/../../b", "`..`"),
            ("a/./b", "`.` segment"),
            ("/etc/passwd", "absolute"),
            ("a//b", "empty segment"),
            ("a/", "empty segment"),
            ("a\\..\\b", "backslash"),
            ("a\nb", "control"),
            ("a#1", "`#`"),
        ] {
            let err = validate(key).unwrap_err();
            assert!(err.to_string().contains(reason), "{key:?}: {err}");
            assert_eq!(err.key(), Some(key));
        }
        assert!(validate(&"x".repeat(901)).is_err());
        for ok in [
            "a",
            "a/b.json",
            "runs/x/y/attempt-1/data.bin",
            "..a",
            "a..",
            "%2E%2E",
        ] {
            validate(ok).unwrap();
        }
    }

    #[test]
    fn join_and_relative_are_inverse() {
        let root = Path::from("tmp/store");
        let p = join(&root, "a/b.json").unwrap();
        assert_eq!(p.as_ref(), "tmp/store/a/b.json");
        assert_eq!(relative(&root, &p).unwrap(), "a/b.json");
        assert_eq!(join(&Path::default(), "k").unwrap().as_ref(), "k");
        assert!(relative(&root, &Path::from("other/a")).is_none());
    }

    #[test]
    fn scopes_separate_attempts_items_and_odd_node_ids() {
        let run = RunId::new();
        let a1 = Scope::new(run, "load", None, 1).key("data.bin").unwrap();
        let a2 = Scope::new(run, "load", None, 2).key("data.bin").unwrap();
        let i0 = Scope::new(run, "load", Some(0), 1).key("data.bin").unwrap();
        assert_eq!(a1, format!("runs/{run}/load/attempt-1/data.bin"));
        assert_eq!(i0, format!("runs/{run}/load/item-0/attempt-1/data.bin"));
        assert_ne!(a1, a2);
        let odd = Scope::new(run, "../..", None, 1).key("x").unwrap();
        assert_eq!(odd, format!("runs/{run}/..%2F../attempt-1/x"));
        let dots = Scope::new(run, "..", None, 1).key("x").unwrap();
        assert_eq!(dots, format!("runs/{run}/%2E%2E/attempt-1/x"));
        validate(&odd).unwrap();
        assert!(Scope::new(run, "n", None, 1).key("../x").is_err());
    }
}
