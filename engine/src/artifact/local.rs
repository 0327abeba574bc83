//! The `file://` provider on a shared machine: the root is a private directory
//! (created `0700`; an existing one must belong to this user and be writable by no
//! one else), and nothing is written, read, listed or deleted through a symbolic
//! link that leads out of the root.
//!
//! Every operation checks the path it is about to touch, component by component from
//! the root's canonical path: a symbolic link is followed only when it resolves
//! inside the root. Deleting a run's folder never follows a link at all.

use std::io;
use std::path::{Component, Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use object_store::local::LocalFileSystem;
use object_store::path::Path;

use super::error::{ArtifactError, ArtifactResult};

/// What an operation does to the path it checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Writes: the root is created (private) when missing.
    Write,
    /// Reads, listings and deletions: a missing root is left missing.
    Read,
}

/// A `file://` store's root directory and the object store that writes under it.
#[derive(Debug)]
pub(crate) struct LocalRoot {
    pub(crate) fs: Arc<LocalFileSystem>,
    /// The root as configured (not canonicalized).
    pub(crate) dir: PathBuf,
    /// The store's redacted URL, for messages.
    pub(crate) display: String,
}

/// A file found under a run's folder.
pub(crate) struct Listed {
    pub(crate) location: Path,
    pub(crate) size: u64,
    pub(crate) modified: SystemTime,
}

impl LocalRoot {
    /// Refuses an existing root that is not private (see [`verify_root`]).
    pub(crate) fn check_existing(&self) -> ArtifactResult<()> {
        verify_root(&self.dir).map(|_| ())
    }

    /// Checks that `path` (an object path of this store) can be accessed without
    /// leaving the root; for writes, creates the root first if it is missing.
    pub(crate) async fn guard(
        &self,
        path: &Path,
        key: &str,
        operation: &'static str,
        access: Access,
    ) -> ArtifactResult<()> {
        let target = self.fs_path(path, key, operation)?;
        let (dir, display) = (self.dir.clone(), self.display.clone());
        let key = key.to_owned();
        blocking(&display.clone(), move || {
            let root = match access {
                Access::Write => Some(prepare_root(&dir)?),
                Access::Read => verify_root(&dir)?,
            };
            match root {
                Some(root) => check_inside(&root, &dir, &target, &key, operation, &display),
                // No root yet: the operation finds nothing.
                None => Ok(()),
            }
        })
        .await
    }

    /// The files under the folder `prefix` (an object path), without following any
    /// symbolic link; staged uploads (`name#N`) are left out.
    pub(crate) async fn list(&self, prefix: &Path, key: &str) -> ArtifactResult<Vec<Listed>> {
        let start = self.fs_path(prefix, key, "list")?;
        let (dir, display) = (self.dir.clone(), self.display.clone());
        let key = key.to_owned();
        blocking(&display.clone(), move || {
            let Some(root) = verify_root(&dir)? else {
                return Ok(Vec::new());
            };
            check_inside(&root, &dir, &start, &key, "list", &display)?;
            let mut out = Vec::new();
            walk(&start, &mut out).map_err(|e| io_error(&key, "list", &display, e))?;
            Ok(out)
        })
        .await
    }

    /// Removes the folder `prefix` (an object path) and everything in it. Links inside
    /// are removed, never followed; a link on the way to the folder refuses.
    pub(crate) async fn remove_folder(&self, prefix: &Path, key: &str) -> ArtifactResult<()> {
        let target = self.fs_path(prefix, key, "delete")?;
        let (dir, display) = (self.dir.clone(), self.display.clone());
        let key = key.to_owned();
        blocking(&display.clone(), move || {
            let Some(root) = verify_root(&dir)? else {
                return Ok(());
            };
            check_inside(&root, &dir, &target, &key, "delete", &display)?;
            match std::fs::symlink_metadata(&target) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    // A link to a folder inside the root: remove the link only.
                    std::fs::remove_file(&target).map_err(|e| io_error(&key, "delete", &display, e))
                }
                // `remove_dir_all` does not follow links below the folder.
                Ok(_) => match std::fs::remove_dir_all(&target) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        Err(io_error(&key, "delete", &display, e))
                    }
                    _ => Ok(()),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_error(&key, "delete", &display, e)),
            }
        })
        .await
    }

    fn fs_path(&self, path: &Path, key: &str, operation: &'static str) -> ArtifactResult<PathBuf> {
        self.fs
            .path_to_filesystem(path)
            .map_err(|e| ArtifactError::Provider {
                key: key.to_owned(),
                operation,
                store: self.display.clone(),
                source: Box::new(e),
            })
    }
}

async fn blocking<T: Send + 'static>(
    display: &str,
    f: impl FnOnce() -> ArtifactResult<T> + Send + 'static,
) -> ArtifactResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(ArtifactError::Provider {
            key: String::new(),
            operation: "check",
            store: display.to_owned(),
            source: Box::new(e),
        }),
    }
}

fn io_error(key: &str, operation: &'static str, store: &str, e: io::Error) -> ArtifactError {
    ArtifactError::Provider {
        key: key.to_owned(),
        operation,
        store: store.to_owned(),
        source: Box::new(e),
    }
}

fn unsafe_dir(dir: &FsPath, reason: impl Into<String>) -> ArtifactError {
    ArtifactError::UnsafeDirectory {
        dir: dir.display().to_string(),
        reason: reason.into(),
    }
}

/// Creates the root when it is missing (its parents with the usual permissions, the
/// root itself `0700`), then checks it as [`verify_root`] does. Returns its
/// canonical path.
pub(crate) fn prepare_root(dir: &FsPath) -> ArtifactResult<PathBuf> {
    if let Some(root) = verify_root(dir)? {
        return Ok(root);
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| unsafe_dir(dir, format!("cannot create its parent: {e}")))?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => {}
        // Created at the same moment by another store: checked below like any other.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(unsafe_dir(dir, format!("cannot create it: {e}"))),
    }
    verify_root(dir)?.ok_or_else(|| unsafe_dir(dir, "it vanished as it was created"))
}

/// Checks an existing root: a directory (or a link to one, made by this user) owned
/// by this user, with no group or other write permission. Returns its canonical path,
/// or `None` when it does not exist.
pub(crate) fn verify_root(dir: &FsPath) -> ArtifactResult<Option<PathBuf>> {
    // Without a trailing `/`, which would make the kernel follow a link at the root.
    let dir: PathBuf = dir.components().collect();
    let dir = dir.as_path();
    let link = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unsafe_dir(dir, format!("cannot inspect it: {e}"))),
    };
    let meta = if link.file_type().is_symlink() {
        check_owner(dir, &link, "it is a symbolic link")?;
        match std::fs::metadata(dir) {
            Ok(meta) => meta,
            Err(e) => {
                return Err(unsafe_dir(
                    dir,
                    format!("it is a symbolic link that cannot be followed: {e}"),
                ));
            }
        }
    } else {
        link
    };
    if !meta.is_dir() {
        return Err(unsafe_dir(dir, "it is not a directory"));
    }
    check_owner(dir, &meta, "it")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(unsafe_dir(
                dir,
                format!(
                    "it is writable by group or others (mode {mode:o}); \
                     make it private with `chmod 700` or choose another directory"
                ),
            ));
        }
    }
    std::fs::canonicalize(dir)
        .map(Some)
        .map_err(|e| unsafe_dir(dir, format!("cannot resolve it: {e}")))
}

#[cfg(unix)]
fn check_owner(dir: &FsPath, meta: &std::fs::Metadata, what: &str) -> ArtifactResult<()> {
    use std::os::unix::fs::MetadataExt;
    let me = euid().map_err(|e| unsafe_dir(dir, format!("cannot tell this user's id: {e}")))?;
    if meta.uid() != me {
        return Err(unsafe_dir(
            dir,
            format!(
                "{what} belongs to another user (uid {}, this process runs as uid {me}); \
                 choose a directory of your own",
                meta.uid()
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner(_: &FsPath, _: &std::fs::Metadata, _: &str) -> ArtifactResult<()> {
    Ok(())
}

/// This process's effective user id, read without `unsafe`: from `/proc/self/status`
/// on Linux, else from the owner of a file this process creates.
#[cfg(unix)]
pub(crate) fn euid() -> io::Result<u32> {
    use std::sync::OnceLock;
    static EUID: OnceLock<u32> = OnceLock::new();
    if let Some(&uid) = EUID.get() {
        return Ok(uid);
    }
    let uid = match std::fs::read_to_string("/proc/self/status") {
        Ok(status) => status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| io::Error::other("no effective uid in /proc/self/status"))?,
        Err(_) => probe_uid()?,
    };
    Ok(*EUID.get_or_init(|| uid))
}

#[cfg(unix)]
fn probe_uid() -> io::Result<u32> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let path = std::env::temp_dir().join(format!(
        ".dagforge-uid-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let uid = file.metadata().map(|m| m.uid());
    let _ = std::fs::remove_file(&path);
    uid
}

/// Checks that `target` (a path under `dir`, the root as configured) reaches no
/// symbolic link leading out of `root` (the root's canonical path). Components that
/// do not exist yet are fine: writes create real directories.
fn check_inside(
    root: &FsPath,
    dir: &FsPath,
    target: &FsPath,
    key: &str,
    operation: &'static str,
    display: &str,
) -> ArtifactResult<()> {
    let outside = |link: &FsPath| ArtifactError::OutsideRoot {
        key: key.to_owned(),
        operation,
        link: link.display().to_string(),
    };
    let rel = target
        .strip_prefix(dir)
        .or_else(|_| target.strip_prefix(root))
        .map_err(|_| outside(target))?;
    let mut here = root.to_path_buf();
    for component in rel.components() {
        let Component::Normal(name) = component else {
            return Err(outside(target));
        };
        here.push(name);
        match std::fs::symlink_metadata(&here) {
            Ok(meta) if meta.file_type().is_symlink() => match std::fs::canonicalize(&here) {
                Ok(resolved) if resolved.starts_with(root) => here = resolved,
                // Out of the root, or dangling (a write would create its target).
                _ => return Err(outside(&here)),
            },
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(key, operation, display, e)),
        }
    }
    Ok(())
}

/// Collects the regular files under `dir`, following no link.
fn walk(dir: &FsPath, out: &mut Vec<Listed>) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() && !is_staged(&entry.file_name().to_string_lossy()) {
            let meta = entry.metadata()?;
            let Ok(location) = Path::from_absolute_path(&path) else {
                continue;
            };
            out.push(Listed {
                location,
                size: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        // Links (to files or folders) are not artifacts of this store: skipped.
    }
    Ok(())
}

/// Whether a file name is an upload in progress (`name#N`), as `object_store` names them.
fn is_staged(name: &str) -> bool {
    match name.split_once('#') {
        Some((_, suffix)) => !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}
