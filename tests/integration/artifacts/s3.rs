//! The conformance suite against a real S3-compatible server: moto_server, installed
//! and started by `scripts/moto.sh` (which `.ci/run` calls).
//!
//! The S3 cases run only when a server is configured (read when the tests are built,
//! by `tests/build.rs`): `DAGFORGE_TEST_S3=required` (set by `.ci/run`),
//! `DAGFORGE_TEST_S3=auto`, or `DAGFORGE_TEST_S3_ENDPOINT`; otherwise they are
//! `#[ignore]`d with the reason, so that `ok` always means tested.
//! `DAGFORGE_TEST_S3_ENDPOINT` names the server (default `http://127.0.0.1:5599`).
//! When nothing answers there, the suite starts the project's own server itself
//! (`scripts/moto.sh install`, then moto_server as a child that ends with the test
//! process); a server that still does not answer fails the cases, naming why.

/// What the environment asks of the S3 tests.
#[cfg(not(feature = "s3"))]
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
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use dagforge::RunId;
    use dagforge::artifact::{ArtifactConfig, ArtifactError, ArtifactStore, Provider, RetryPolicy};

    use super::super::conformance::{Env, conformance_suite};

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

    /// The outcome of starting the project's own server, once per test process:
    /// `Err` says why it could not be started.
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();

    /// Starts moto_server on the endpoint's port: installed by `scripts/moto.sh
    /// install` (into `target/moto-venv`), run as a child of a shell that stops it when
    /// this test process is gone; waits until it answers (at most 30 s).
    fn start_server(authority: &str) -> Result<(), String> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let port = authority
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| format!("no port in `{authority}`"))?;
        let install = std::process::Command::new("bash")
            .arg("scripts/moto.sh")
            .arg("install")
            .current_dir(root)
            .output()
            .map_err(|e| format!("running scripts/moto.sh: {e}"))?;
        if !install.status.success() {
            return Err(format!(
                "scripts/moto.sh install failed: {}",
                String::from_utf8_lossy(&install.stderr).trim()
            ));
        }
        let watch = format!(
            "target/moto-venv/bin/moto_server -H 127.0.0.1 -p {port} >target/moto-tests.log 2>&1 & \
             m=$!; while kill -0 {pid} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; \
             kill $m 2>/dev/null",
            pid = std::process::id()
        );
        std::process::Command::new("bash")
            .args(["-c", &watch])
            .current_dir(root)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("starting moto_server: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if create_bucket(authority).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("moto_server did not answer within 30 s (target/moto-tests.log)".to_owned())
    }

    /// A store on a fresh prefix of the test bucket. When no server answers, the
    /// project's own is started (once per process); a server that still does not
    /// answer fails the case, naming why.
    pub(crate) async fn s3_store() -> Option<ArtifactStore> {
        let endpoint = endpoint();
        let authority = authority(&endpoint);
        let status = tokio::task::spawn_blocking({
            let authority = authority.clone();
            move || match create_bucket(&authority) {
                Ok(status) => Ok(status),
                Err(first) => {
                    if let Err(why) = STARTED.get_or_init(|| start_server(&authority)) {
                        return Err(format!("{first}; starting the project's own: {why}"));
                    }
                    create_bucket(&authority).map_err(|e| e.to_string())
                }
            }
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| {
            panic!(
                "the S3 tests are configured (DAGFORGE_TEST_S3 / DAGFORGE_TEST_S3_ENDPOINT) \
                 but no S3 server answers at {endpoint}: {e}"
            )
        });
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

    conformance_suite!(
        s3,
        super::s3,
        #[cfg_attr(
            not(dagforge_s3_server),
            ignore = "needs an S3-compatible server: build the tests with DAGFORGE_TEST_S3=auto \
                      (the suite starts scripts/moto.sh's) or DAGFORGE_TEST_S3_ENDPOINT=URL; \
                      .ci/run requires them"
        )]
    );

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
