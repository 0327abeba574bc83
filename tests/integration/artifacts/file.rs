//! Rules of the `file://` provider: layout on disk, nothing outside the root,
//! leftovers of crashed uploads invisible and removed with the run.

use dagforge::RunId;
use dagforge::artifact::{ArtifactConfig, ArtifactError, ArtifactRef, Blob, Provider, Scope};

use super::TempDir;

#[tokio::test]
async fn artifacts_land_under_the_root_in_their_attempt_folder() {
    let dir = TempDir::new();
    let store = dir.store();
    assert_eq!(store.provider(), Provider::File);
    assert!(!dir.0.exists(), "opening a file store writes nothing");

    let run = RunId::new();
    let r = store
        .scoped(Scope::new(run, "data-proxy", Some(2), 3))
        .save_bytes("part.bin", "abc")
        .await
        .unwrap();
    let on_disk = dir
        .0
        .join(format!("runs/{run}/data-proxy/item-2/attempt-3/part.bin"));
    assert_eq!(std::fs::read(&on_disk).unwrap(), b"abc");
    assert_eq!(
        r.key(),
        format!("runs/{run}/data-proxy/item-2/attempt-3/part.bin")
    );
}

#[tokio::test]
async fn node_ids_cannot_climb_out() {
    let dir = TempDir::new();
    let store = dir.store();
    let run = RunId::new();
    for node in ["..", "../..", "a/../../b"] {
        let r = store
            .scoped(Scope::new(run, node, None, 1))
            .save_bytes("x", "1")
            .await
            .unwrap();
        let path = dir.0.join(r.key());
        assert!(path.exists(), "{node}: {}", path.display());
        // Every file of the store is inside its run folder.
        let canonical = path.canonicalize().unwrap();
        assert!(canonical.starts_with(dir.0.join("runs").canonicalize().unwrap()));
    }
    assert_eq!(store.list_run_artifacts(run).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_forged_reference_cannot_read_outside_the_root() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let secret = dir.0.join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    let inner = dir.0.join("store");
    let store = ArtifactConfig::local(&inner).unwrap().build().unwrap();
    for key in [
        "../secret.txt",
        "runs/../../secret.txt",
        "runs/%2E%2E/secret.txt",
    ] {
        let r: ArtifactRef<Blob> = serde_json::from_value(serde_json::json!({
            "provider": "file",
            "key": key,
            "size": 10,
            "sha256": format!("sha256:{}", "0".repeat(64)),
            "content_type": "text/plain",
        }))
        .unwrap();
        let err = store.load_bytes(&r).await.unwrap_err();
        assert!(
            matches!(
                err,
                ArtifactError::InvalidKey { .. } | ArtifactError::NotFound { .. }
            ),
            "{key}: {err:?}"
        );
    }
}

#[tokio::test]
async fn crashed_uploads_are_invisible_and_deleted_with_the_run() {
    let dir = TempDir::new();
    let store = dir.store();
    let run = RunId::new();
    let r = store
        .scoped(Scope::new(run, "n", None, 1))
        .save_bytes("done.bin", "ok")
        .await
        .unwrap();
    // What a process killed in the middle of a save leaves: a staged file.
    let staged = dir.0.join(format!("runs/{run}/n/attempt-2/big.bin#1"));
    std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
    std::fs::write(&staged, "half").unwrap();

    let listed = store.list_run_artifacts(run).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, r.key());

    assert_eq!(store.delete_run_artifacts(run).await.unwrap(), 1);
    assert!(!dir.0.join(format!("runs/{run}")).exists());
}

#[tokio::test]
async fn bad_urls_and_options_are_refused() {
    let err = ArtifactConfig::new("file://somehost/x").unwrap_err();
    assert!(matches!(err, ArtifactError::InvalidUrl { .. }));
    let err = ArtifactConfig::local("relative/dir").unwrap_err();
    assert!(err.to_string().contains("absolute"), "{err}");
    let err = ArtifactConfig::new("memory://")
        .unwrap()
        .option("region", "x")
        .build()
        .unwrap_err();
    assert!(matches!(err, ArtifactError::Config { .. }));
    #[cfg(not(feature = "gcs"))]
    {
        let err = ArtifactConfig::new("gs://bucket")
            .unwrap()
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("`gcs` feature"), "{err}");
    }
}
