//! The conformance suite against a real S3-compatible server: moto_server, started
//! by `scripts/moto.sh` (which `.ci/run` calls).
//!
//! `DAGFORGE_TEST_S3_ENDPOINT` names the server (default `http://127.0.0.1:5599`).
//! With `DAGFORGE_TEST_S3=required` (set by `.ci/run`) an unreachable server fails
//! the tests; otherwise they print a notice and pass without running.

/// What the environment asks of the S3 tests.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
fn required() -> bool {
    std::env::var("DAGFORGE_TEST_S3").is_ok_and(|v| v == "required")
}

#[cfg(not(feature = "s3"))]
#[test]
fn s3_tests_need_the_s3_feature() {
    assert!(
        !required(),
        "DAGFORGE_TEST_S3=required but the tests were built without the `s3` feature \
         (run with --all-features or --features tests/s3)"
    );
}

#[cfg(feature = "s3")]
pub(crate) use with_s3::*;

#[cfg(feature = "s3")]
mod with_s3 {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;

    use dagforge::RunId;
    use dagforge::artifact::{ArtifactConfig, ArtifactError, ArtifactStore, Provider, RetryPolicy};

    use super::super::conformance::{Env, conformance_suite};
    use super::required;

    const BUCKET: &str = "dagforge-tests";

    fn endpoint() -> String {
        std::env::var("DAGFORGE_TEST_S3_ENDPOINT")
            .unwrap_or_else(|_| "http://127.0.0.1:5599".to_owned())
    }

    /// `host:port` of an `http://` endpoint.
    fn authority(endpoint: &str) -> String {
        endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned()
    }

    /// Creates the test bucket (path-style `PUT /bucket`; moto takes it unsigned).
    fn create_bucket(authority: &str) -> std::io::Result<String> {
        let addr = authority
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            conn,
            "PUT /{BUCKET} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        conn.read_to_string(&mut response)?;
        Ok(response.lines().next().unwrap_or_default().to_owned())
    }

    /// A store on a fresh prefix of the test bucket, or `None` (with a notice) when
    /// no server answers and the tests are not required.
    pub(crate) async fn s3_store() -> Option<ArtifactStore> {
        let endpoint = endpoint();
        let authority = authority(&endpoint);
        let status = match tokio::task::spawn_blocking({
            let authority = authority.clone();
            move || create_bucket(&authority)
        })
        .await
        .unwrap()
        {
            Ok(status) => status,
            Err(e) if required() => panic!(
                "DAGFORGE_TEST_S3=required but no S3 server answers at {endpoint}: {e} \
                 (start one with `scripts/moto.sh start`)"
            ),
            Err(e) => {
                eprintln!(
                    "notice: S3 artifact tests not run: no server at {endpoint} ({e}); \
                     `scripts/moto.sh start` starts one"
                );
                return None;
            }
        };
        assert!(
            status.contains(" 200") || status.contains(" 409"),
            "creating bucket {BUCKET} at {endpoint}: {status}"
        );
        let url = format!("s3://{BUCKET}/t-{}", RunId::new());
        let store = ArtifactConfig::new(&url)
            .unwrap()
            .option("endpoint", &endpoint)
            .option("allow_http", "true")
            .option("region", "us-east-1")
            .option("access_key_id", "testing")
            .option("secret_access_key", "moto-secret")
            .option("virtual_hosted_style_request", "false")
            .build()
            .unwrap();
        Some(store)
    }

    async fn s3() -> Option<Env> {
        Some(Env {
            store: s3_store().await?,
            _dir: None,
        })
    }

    conformance_suite!(s3, super::s3);

    #[test]
    fn debug_output_hides_credentials() {
        let store = ArtifactConfig::new("s3://bucket/p")
            .unwrap()
            .option("endpoint", "http://127.0.0.1:1")
            .option("allow_http", "true")
            .option("region", "us-east-1")
            .option("access_key_id", "AKIDEXAMPLE")
            .option("secret_access_key", "wJalrXUtnFEMI")
            .build()
            .unwrap();
        let shown = format!("{store:?} {store}");
        assert!(!shown.contains("AKIDEXAMPLE") && !shown.contains("wJalrXUtnFEMI"));
        assert_eq!(store.provider(), Provider::S3);
    }

    #[test]
    fn unknown_options_are_named() {
        let err = ArtifactConfig::new("s3://bucket")
            .unwrap()
            .option("regoin", "x")
            .build()
            .unwrap_err();
        assert!(matches!(err, ArtifactError::Config { .. }));
        let msg = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(msg.contains("`regoin`"), "{msg}");
    }

    /// An endpoint nobody listens on: retried with backoff, then `Unavailable`.
    pub(crate) fn unreachable_store(retries: u32) -> ArtifactStore {
        // Port 9 (discard) on loopback: nothing listens there on a test machine.
        ArtifactConfig::new("s3://bucket/p")
            .unwrap()
            .option("endpoint", "http://127.0.0.1:9")
            .option("allow_http", "true")
            .option("region", "us-east-1")
            .option("access_key_id", "a")
            .option("secret_access_key", "b")
            .retry(RetryPolicy::new(
                retries,
                Duration::from_millis(20),
                Duration::from_millis(50),
            ))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn unreachable_provider_is_retried_then_unavailable() {
        let store = unreachable_store(2);
        let started = std::time::Instant::now();
        let err = store.save_bytes("k/data.bin", "x").await.unwrap_err();
        match &err {
            ArtifactError::Unavailable {
                key,
                operation,
                attempts,
                ..
            } => {
                assert_eq!(key, "k/data.bin");
                assert_eq!(*operation, "put");
                assert_eq!(*attempts, 3);
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        // Two waits of the outer policy at least (20 ms and 40 ms, less jitter).
        assert!(started.elapsed() >= Duration::from_millis(48));
        assert!(err.is_retryable());
        assert!(err.to_string().contains("s3://bucket/p"));
    }
}
