//! The conformance suite: every case runs against every provider.

use std::io;

use dagforge::RunId;
use dagforge::artifact::{
    ArtifactError, ArtifactRef, ArtifactStore, Blob, Bytes, JSON, OCTET_STREAM, Provider, Scope,
};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::TempDir;

/// A store under test, and what must live as long as it.
pub(crate) struct Env {
    pub(crate) store: ArtifactStore,
    pub(crate) _dir: Option<TempDir>,
}

/// Generates one `#[tokio::test]` per case for a provider, each with the attributes
/// given after `$setup` (the S3 suite's `ignore` unless a server is configured);
/// `$setup` is an async fn returning `Option<Env>` (`None` ends the case: only for a
/// provider that is always there, which never returns it).
macro_rules! conformance_suite {
    ($provider:ident, $setup:path $(, #[$attr:meta])*) => {
        mod $provider {
            $crate::artifacts::conformance::conformance_suite!(@cases [$(#[$attr])*] $setup;
                bytes_round_trip,
                json_round_trip,
                decode_error_names_artifact_and_type,
                missing_artifact_is_not_found,
                ranges,
                empty_and_small_streams,
                multipart_stream_round_trip,
                reader_round_trip,
                failed_stream_leaves_nothing,
                corruption_is_detected,
                escaping_keys_are_rejected,
                provider_mismatch_is_refused,
                scopes_keep_attempts_and_items_apart,
                retention_lists_and_deletes_a_run
            );
        }
    };
    (@cases $attrs:tt $setup:path; $($case:ident),*) => {
        $(
            $crate::artifacts::conformance::conformance_suite!(@case $attrs $setup; $case);
        )*
    };
    (@case [$($attr:tt)*] $setup:path; $case:ident) => {
        $($attr)*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let Some(env) = $setup().await else { return };
            $crate::artifacts::conformance::cases::$case(&env.store).await;
        }
    };
}
#[cfg_attr(not(feature = "s3"), allow(unused_imports))]
pub(crate) use conformance_suite;

async fn memory() -> Option<Env> {
    Some(Env {
        store: ArtifactStore::memory(),
        _dir: None,
    })
}

async fn file() -> Option<Env> {
    let dir = TempDir::new();
    Some(Env {
        store: dir.store(),
        _dir: Some(dir),
    })
}

conformance_suite!(memory, super::memory);
conformance_suite!(file, super::file);

/// Deterministic pseudo-random bytes.
pub(crate) fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `data` as a stream of chunks of uneven sizes.
fn chunks(data: &[u8]) -> Vec<Result<Bytes, io::Error>> {
    let sizes = [1usize, 7, 65_536, 1_000_003, 300];
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        out.push(Ok(Bytes::copy_from_slice(&rest[..n])));
        rest = &rest[n..];
        i += 1;
    }
    out
}

fn forged<T>(store: &ArtifactStore, key: &str) -> ArtifactRef<T> {
    serde_json::from_value(serde_json::json!({
        "provider": store.provider(),
        "key": key,
        "size": 5,
        "sha256": format!("sha256:{}", "0".repeat(64)),
        "content_type": OCTET_STREAM,
    }))
    .unwrap()
}

fn unique(name: &str) -> String {
    format!("conformance/{}/{name}", RunId::new())
}

pub(crate) mod cases {
    use super::*;

    pub(crate) async fn bytes_round_trip(store: &ArtifactStore) {
        let key = unique("hello.txt");
        let r = store.save_bytes(&key, "hello").await.unwrap();
        assert_eq!(r.provider(), store.provider());
        assert_eq!(r.key(), key);
        assert_eq!(r.size(), 5);
        assert_eq!(r.content_type(), OCTET_STREAM);
        assert_eq!(
            r.sha256().to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(store.load_bytes(&r).await.unwrap(), "hello");
        assert!(store.exists(&r).await.unwrap());

        // Saving again under the same key replaces the content.
        let r2 = store.save_bytes(&key, "bye").await.unwrap();
        assert_eq!(store.load_bytes(&r2).await.unwrap(), "bye");
        store.delete(&r2).await.unwrap();
        assert!(!store.exists(&r2).await.unwrap());
        store.delete(&r2).await.unwrap();
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Summary {
        rows: u64,
        columns: Vec<String>,
    }

    pub(crate) async fn json_round_trip(store: &ArtifactStore) {
        let value = Summary {
            rows: 48_000,
            columns: vec!["sku".into(), "price".into()],
        };
        let r: ArtifactRef<Summary> = store
            .save_json(&unique("summary.json"), &value)
            .await
            .unwrap();
        assert_eq!(r.content_type(), JSON);
        assert_eq!(store.load(&r).await.unwrap(), value);
        // The reference survives the trip through JSON that node outputs take.
        let wire = serde_json::to_string(&r).unwrap();
        let back: ArtifactRef<Summary> = serde_json::from_str(&wire).unwrap();
        assert_eq!(back, r);
        assert_eq!(store.load(&back).await.unwrap(), value);
    }

    pub(crate) async fn decode_error_names_artifact_and_type(store: &ArtifactStore) {
        let key = unique("name.json");
        let r = store.save_json(&key, &"not a list").await.unwrap();
        let wrong: ArtifactRef<Vec<u32>> = r.cast();
        let err = store.load(&wrong).await.unwrap_err();
        assert!(matches!(err, ArtifactError::Decode { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&key), "{msg}");
        assert!(msg.contains("alloc::vec::Vec<u32>"), "{msg}");
        assert!(!err.is_retryable());
        assert!(!err.into_job_error().is_retryable());
    }

    pub(crate) async fn missing_artifact_is_not_found(store: &ArtifactStore) {
        let key = unique("never-written.bin");
        let r: ArtifactRef<Blob> = forged(store, &key);
        let err = store.load_bytes(&r).await.unwrap_err();
        assert!(matches!(err, ArtifactError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains(&key));
        assert!(matches!(
            store.load_stream(&r).await.unwrap_err(),
            ArtifactError::NotFound { .. }
        ));
        assert!(matches!(
            store.load_range(&r, 0..2).await.unwrap_err(),
            ArtifactError::NotFound { .. }
        ));
        assert!(!store.exists(&r).await.unwrap());
    }

    pub(crate) async fn ranges(store: &ArtifactStore) {
        let content = data(100_000, 1);
        let r = store
            .save_bytes(&unique("ranges.bin"), content.clone())
            .await
            .unwrap();
        for range in [0..1, 0..100_000, 99_999..100_000, 4_096..70_001, 7..7] {
            let got = store.load_range(&r, range.clone()).await.unwrap();
            assert_eq!(&got[..], &content[range.start as usize..range.end as usize]);
        }
        for (start, end) in [(0, 100_001), (100_000, 100_001), (5, 4)] {
            #[allow(clippy::reversed_empty_ranges)]
            let err = store.load_range(&r, start..end).await.unwrap_err();
            assert!(
                matches!(err, ArtifactError::Range { size: 100_000, .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains(r.key()));
        }
    }

    pub(crate) async fn empty_and_small_streams(store: &ArtifactStore) {
        let empty = futures_util::stream::iter(Vec::<Result<Bytes, io::Error>>::new());
        let r = store.save_stream(&unique("empty"), empty).await.unwrap();
        assert_eq!(r.size(), 0);
        assert!(store.load_bytes(&r).await.unwrap().is_empty());
        let streamed: Vec<Bytes> = store
            .load_stream(&r)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert!(streamed.iter().all(|b| b.is_empty()));

        let content = data(300_000, 2);
        let r = store
            .save_stream(
                &unique("small"),
                futures_util::stream::iter(chunks(&content)),
            )
            .await
            .unwrap();
        assert_eq!(r.size(), 300_000);
        let direct = store
            .save_bytes(&unique("small-direct"), content.clone())
            .await
            .unwrap();
        assert_eq!(r.sha256(), direct.sha256());
        assert_eq!(store.load_bytes(&r).await.unwrap(), content);
    }

    pub(crate) async fn multipart_stream_round_trip(store: &ArtifactStore) {
        // Over two default parts (8 MiB): a multipart upload with a short last part.
        let content = data(20 * 1024 * 1024 + 12_345, 3);
        let key = unique("big.bin");
        let r = store
            .save_stream(&key, futures_util::stream::iter(chunks(&content)))
            .await
            .unwrap();
        assert_eq!(r.size(), content.len() as u64);
        let mut stream = store.load_stream(&r).await.unwrap();
        assert_eq!(stream.size(), r.size());
        let mut got = Vec::with_capacity(content.len());
        while let Some(chunk) = stream.next().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert!(got == content, "streamed content differs");
        let tail = store.load_range(&r, r.size() - 10..r.size()).await.unwrap();
        assert_eq!(&tail[..], &content[content.len() - 10..]);
    }

    pub(crate) async fn reader_round_trip(store: &ArtifactStore) {
        let content = data(9 * 1024 * 1024, 4);
        let r = store
            .save_reader(&unique("reader.bin"), &content[..])
            .await
            .unwrap();
        assert_eq!(r.size(), content.len() as u64);
        let mut reader = store.load_stream(&r).await.unwrap().into_async_read();
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        assert!(got == content, "read content differs");
    }

    pub(crate) async fn failed_stream_leaves_nothing(store: &ArtifactStore) {
        let run = RunId::new();
        let scoped = store.scoped(Scope::new(run, "producer", None, 1));
        // Fails after more than one part, so a multipart upload was under way, and
        // for a small stream before anything was sent.
        for len in [12 * 1024 * 1024, 1000] {
            let mut items = chunks(&data(len, 5));
            items.push(Err(io::Error::other("disk on fire")));
            let err = scoped
                .save_stream("partial.bin", futures_util::stream::iter(items))
                .await
                .unwrap_err();
            assert!(matches!(err, ArtifactError::Source { .. }), "{err:?}");
            let msg = format!("{err}: {}", std::error::Error::source(&err).unwrap());
            assert!(
                msg.contains("partial.bin") && msg.contains("disk on fire"),
                "{msg}"
            );
            assert!(err.is_retryable());
        }
        let key = scoped.scope().key("partial.bin").unwrap();
        assert!(!store.exists(&forged::<Blob>(store, &key)).await.unwrap());
        assert_eq!(store.list_run_artifacts(run).await.unwrap(), vec![]);
    }

    pub(crate) async fn corruption_is_detected(store: &ArtifactStore) {
        let key = unique("changed.bin");
        let original = store.save_bytes(&key, "original").await.unwrap();
        store.save_bytes(&key, "replaced").await.unwrap(); // same size, other bytes
        let err = store.load_bytes(&original).await.unwrap_err();
        assert!(matches!(err, ArtifactError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("content hash"), "{err}");

        let mut stream = store.load_stream(&original).await.unwrap();
        let mut last = None;
        while let Some(item) = stream.next().await {
            last = Some(item);
        }
        assert!(matches!(last, Some(Err(ArtifactError::Corrupt { .. }))));

        store.save_bytes(&key, "longer than before").await.unwrap();
        let err = store.load_bytes(&original).await.unwrap_err();
        assert!(err.to_string().contains("bytes stored"), "{err}");
    }

    pub(crate) async fn escaping_keys_are_rejected(store: &ArtifactStore) {
        for key in ["../escape", "a/../../escape", "/etc/passwd", "a//b", ""] {
            let err = store.save_bytes(key, "x").await.unwrap_err();
            assert!(
                matches!(err, ArtifactError::InvalidKey { .. }),
                "{key}: {err:?}"
            );
            let forged: ArtifactRef<Blob> = forged(store, key);
            let err = store.load_bytes(&forged).await.unwrap_err();
            assert!(
                matches!(err, ArtifactError::InvalidKey { .. }),
                "{key}: {err:?}"
            );
        }
        let scoped = store.scoped(Scope::new(RunId::new(), "n", None, 1));
        let err = scoped.save_json("../../other-run/x", &1).await.unwrap_err();
        assert!(err.to_string().contains("`..`"), "{err}");
    }

    pub(crate) async fn provider_mismatch_is_refused(store: &ArtifactStore) {
        let other = if store.provider() == Provider::Memory {
            "file"
        } else {
            "memory"
        };
        let r: ArtifactRef<Blob> = serde_json::from_value(serde_json::json!({
            "provider": other,
            "key": "k",
            "size": 1,
            "sha256": format!("sha256:{}", "0".repeat(64)),
            "content_type": OCTET_STREAM,
        }))
        .unwrap();
        let err = store.load_bytes(&r).await.unwrap_err();
        assert!(
            matches!(err, ArtifactError::ProviderMismatch { .. }),
            "{err:?}"
        );
    }

    pub(crate) async fn scopes_keep_attempts_and_items_apart(store: &ArtifactStore) {
        let run = RunId::new();
        let mut refs = Vec::new();
        for (item, attempt) in [(None, 1), (None, 2), (Some(0), 1), (Some(1), 1)] {
            let scoped = store.scoped(Scope::new(run, "n", item, attempt));
            let value = format!("{item:?}/{attempt}");
            refs.push((scoped.save_json("out.json", &value).await.unwrap(), value));
        }
        for (r, value) in &refs {
            assert_eq!(&store.load(r).await.unwrap(), value);
        }
        let keys: std::collections::HashSet<_> = refs.iter().map(|(r, _)| r.key()).collect();
        assert_eq!(keys.len(), 4);
    }

    pub(crate) async fn retention_lists_and_deletes_a_run(store: &ArtifactStore) {
        let (run, other) = (RunId::new(), RunId::new());
        let a = store
            .scoped(Scope::new(run, "extract", None, 1))
            .save_bytes("rows.bin", data(10, 6))
            .await
            .unwrap();
        let b = store
            .scoped(Scope::new(run, "load", Some(3), 2))
            .save_json("summary.json", &42)
            .await
            .unwrap();
        let kept = store
            .scoped(Scope::new(other, "extract", None, 1))
            .save_bytes("rows.bin", "x")
            .await
            .unwrap();

        let listed = store.list_run_artifacts(run).await.unwrap();
        let keys: Vec<&str> = listed.iter().map(|i| i.key.as_str()).collect();
        let mut expected = vec![a.key(), b.key()];
        expected.sort();
        assert_eq!(keys, expected);
        assert_eq!(listed.iter().map(|i| i.size).sum::<u64>(), 10 + 2);

        assert_eq!(store.delete_run_artifacts(run).await.unwrap(), 2);
        assert_eq!(store.list_run_artifacts(run).await.unwrap(), vec![]);
        assert!(matches!(
            store.load_bytes(&a).await.unwrap_err(),
            ArtifactError::NotFound { .. }
        ));
        assert_eq!(store.load_bytes(&kept).await.unwrap(), "x");
        assert_eq!(store.delete_run_artifacts(run).await.unwrap(), 0);
        assert_eq!(
            store.list_run_artifacts(RunId::new()).await.unwrap(),
            vec![]
        );
    }
}
