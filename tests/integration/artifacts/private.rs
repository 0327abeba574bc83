//! The `file://` store on a shared machine: a private root (created `0700`, an existing
//! one refused when another user owns it or others may write to it), and nothing
//! written, read or deleted through a symbolic link out of the root.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use dagforge::RunId;
use dagforge::artifact::{ArtifactConfig, ArtifactError, ArtifactStore, Scope};

use super::TempDir;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// This process's user id: the owner of a file it creates.
fn my_uid(dir: &Path) -> u32 {
    let probe = dir.join(format!(".uid-probe-{}", RunId::new()));
    std::fs::write(&probe, "").unwrap();
    let uid = std::fs::metadata(&probe).unwrap().uid();
    std::fs::remove_file(&probe).unwrap();
    uid
}

fn store_at(dir: &Path) -> Result<ArtifactStore, ArtifactError> {
    ArtifactConfig::local(dir).unwrap().build()
}

/// A directory outside every store, with one file in it.
struct Outside {
    _dir: TempDir,
    path: PathBuf,
    file: PathBuf,
}

impl Outside {
    fn new() -> Self {
        let dir = TempDir::new();
        let path = dir.0.clone();
        std::fs::create_dir_all(&path).unwrap();
        let file = path.join("precious.txt");
        std::fs::write(&file, "precious").unwrap();
        Outside {
            _dir: dir,
            path,
            file,
        }
    }

    fn intact(&self) {
        assert_eq!(
            std::fs::read_to_string(&self.file).unwrap(),
            "precious",
            "the file outside the store was changed or deleted"
        );
    }
}

#[tokio::test]
async fn the_first_write_creates_a_private_root() {
    let dir = TempDir::new();
    let root = dir.0.join("deep/artifacts");
    let store = store_at(&root).unwrap();
    assert!(!root.exists(), "opening writes nothing");
    store.save_bytes("a/b.txt", "x").await.unwrap();
    assert_eq!(mode(&root), 0o700, "{}", root.display());
}

#[tokio::test]
async fn a_root_others_may_write_to_is_refused() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    for bits in [0o777, 0o770, 0o722] {
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(bits)).unwrap();
        let err = store_at(&dir.0).unwrap_err();
        assert!(
            matches!(err, ArtifactError::UnsafeDirectory { .. }),
            "{bits:o}: {err:?}"
        );
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
        assert!(err.to_string().contains(&*dir.0.to_string_lossy()), "{err}");
    }
    // Readable by others is the user's choice; only writing is refused.
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = store_at(&dir.0).unwrap();
    store.save_bytes("k", "v").await.unwrap();
}

#[tokio::test]
async fn a_root_made_unsafe_after_opening_refuses_every_operation() {
    let dir = TempDir::new();
    let store = store_at(&dir.0).unwrap();
    let r = store.save_bytes("k", "v").await.unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let write = store.save_bytes("k2", "v").await.unwrap_err();
    let read = store.load_bytes(&r).await.unwrap_err();
    let delete = store.delete(&r).await.unwrap_err();
    for err in [write, read, delete] {
        assert!(
            matches!(err, ArtifactError::UnsafeDirectory { .. }),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn a_root_or_link_planted_by_another_user_is_refused() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let me = my_uid(&dir.0);
    if me != 0 {
        // Not root: `/` belongs to another user, and is what such a plant looks like.
        let err = store_at(Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("another user"), "{err}");
        return;
    }
    let nobody = 65534;
    // A directory of another user.
    let planted = dir.0.join("planted");
    std::fs::create_dir(&planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&planted, Some(nobody), None).unwrap();
    let err = store_at(&planted).unwrap_err();
    assert!(
        matches!(err, ArtifactError::UnsafeDirectory { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("belongs to another user"), "{err}");
    // A link of another user, to a directory of ours: the link is the plant.
    let mine = dir.0.join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = dir.0.join("link");
    symlink(&mine, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(nobody), None).unwrap();
    let err = store_at(&link).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    // A root handed to another user after the store was opened: refused at the next
    // operation.
    let store = ArtifactStore::from_config(&ArtifactConfig::local(&mine).unwrap()).unwrap();
    std::os::unix::fs::chown(&mine, Some(nobody), None).unwrap();
    let err = store.save_bytes("k", "v").await.unwrap_err();
    assert!(
        matches!(err, ArtifactError::UnsafeDirectory { .. }),
        "{err:?}"
    );
    assert!(std::fs::read_dir(&mine).unwrap().next().is_none());
}

#[tokio::test]
async fn writes_and_reads_through_a_link_out_of_the_root_are_refused() {
    let dir = TempDir::new();
    let store = dir.store();
    let outside = Outside::new();
    let run = RunId::new();
    let scoped = store.scoped(Scope::new(run, "n", None, 1));
    // Learn where the attempt's folder is, then replace it by a link out of the root.
    let r = scoped.save_bytes("seed.txt", "seed").await.unwrap();
    let folder = dir.0.join(r.key()).parent().unwrap().to_path_buf();
    std::fs::remove_dir_all(&folder).unwrap();
    symlink(&outside.path, &folder).unwrap();

    let err = scoped.save_bytes("x.txt", "planted").await.unwrap_err();
    assert!(matches!(err, ArtifactError::OutsideRoot { .. }), "{err:?}");
    assert!(
        !outside.path.join("x.txt").exists(),
        "written outside the root"
    );

    // A reference whose file now lies outside: neither read nor deleted.
    std::fs::write(outside.path.join("seed.txt"), "seed").unwrap();
    let err = store.load_bytes(&r).await.unwrap_err();
    assert!(matches!(err, ArtifactError::OutsideRoot { .. }), "{err:?}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(store.load_stream(&r).await.is_err());
    assert!(store.load_range(&r, 0..1).await.is_err());
    assert!(store.exists(&r).await.is_err());
    assert!(store.delete(&r).await.is_err());
    assert!(outside.path.join("seed.txt").exists());
    outside.intact();
}

#[tokio::test]
async fn a_file_link_out_of_the_root_is_neither_read_nor_deleted() {
    let dir = TempDir::new();
    let store = dir.store();
    let outside = Outside::new();
    let r = store
        .save_bytes("runs/x/n/f.txt", "precious")
        .await
        .unwrap();
    let file = dir.0.join(r.key());
    std::fs::remove_file(&file).unwrap();
    symlink(&outside.file, &file).unwrap();
    // Same size and hash as the reference: before, the outside file was served.
    let err = store.load_bytes(&r).await.unwrap_err();
    assert!(matches!(err, ArtifactError::OutsideRoot { .. }), "{err:?}");
    assert!(store.delete(&r).await.is_err());
    outside.intact();
}

#[tokio::test]
async fn deleting_a_run_never_deletes_outside_the_root() {
    let dir = TempDir::new();
    let store = dir.store();
    let run = RunId::new();
    let scoped = store.scoped(Scope::new(run, "n", None, 1));
    let kept = scoped.save_bytes("kept.txt", "k").await.unwrap();

    // A link to a folder outside, and a link to a file outside, inside the run's folder.
    let outside = Outside::new();
    let run_dir = dir.0.join(format!("runs/{run}"));
    symlink(&outside.path, run_dir.join("n/dir-link")).unwrap();
    symlink(&outside.file, run_dir.join("n/file-link")).unwrap();

    let listed = store.list_run_artifacts(run).await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(
        keys,
        [kept.key()],
        "only the run's own artifacts are listed"
    );

    assert_eq!(store.delete_run_artifacts(run).await.unwrap(), 1);
    assert!(
        !run_dir.exists(),
        "the run's folder (links included) is gone"
    );
    outside.intact();

    // The `runs` folder itself a link out of the root: refused, nothing deleted.
    let dir2 = TempDir::new();
    let store2 = dir2.store();
    store2.save_bytes("seed", "s").await.unwrap();
    let other = Outside::new();
    let fake_run = other.path.join(run.to_string());
    std::fs::create_dir_all(fake_run.join("n")).unwrap();
    std::fs::write(fake_run.join("n/victim.txt"), "victim").unwrap();
    symlink(&other.path, dir2.0.join("runs")).unwrap();
    let err = store2.delete_run_artifacts(run).await.unwrap_err();
    assert!(matches!(err, ArtifactError::OutsideRoot { .. }), "{err:?}");
    assert!(store2.list_run_artifacts(run).await.is_err());
    assert_eq!(
        std::fs::read_to_string(fake_run.join("n/victim.txt")).unwrap(),
        "victim"
    );
    other.intact();
}

#[tokio::test]
async fn links_that_stay_inside_the_root_still_work() {
    let dir = TempDir::new();
    let store = dir.store();
    let r = store.save_bytes("real/a.txt", "inside").await.unwrap();
    symlink(dir.0.join("real"), dir.0.join("alias")).unwrap();
    let via = store.save_bytes("alias/b.txt", "via").await.unwrap();
    assert_eq!(store.load_bytes(&via).await.unwrap(), "via");
    assert_eq!(store.load_bytes(&r).await.unwrap(), "inside");
    assert_eq!(
        std::fs::read_to_string(dir.0.join("real/b.txt")).unwrap(),
        "via"
    );
}

#[test]
fn the_default_stores_are_private_directories() {
    let config = ArtifactConfig::default_local();
    let url = config.redacted_url();
    assert!(url.starts_with("file:///"), "{url}");
    assert!(
        !url.starts_with(&format!(
            "file://{}",
            std::env::temp_dir().join("dagforge-artifacts").display()
        )),
        "a shared folder under the temp directory: {url}"
    );
    assert!(url.contains("dagforge"), "{url}");
    let beside = ArtifactConfig::beside_database("/srv/app/state.db").unwrap();
    assert_eq!(beside.redacted_url(), "file:///srv/app/state-artifacts/");
}
