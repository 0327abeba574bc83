//! The CLI serves the API: `serve --http ADDR` beside the engine, `http ADDR` alone;
//! a non-loopback address without a token is refused.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{app_bin, temp_dir};

/// Starts the test app with `args` and waits for the API's address on its stderr.
fn spawn(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, String, mpsc::Receiver<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dagforge-cli-app"));
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("DAGFORGE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100))
            && let Some(rest) = line.strip_prefix("HTTP API on ")
        {
            let base = rest.split("/api/v1").next().unwrap().to_owned();
            return (child, base, rx);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no HTTP API address announced");
}

/// Ctrl-C, then the rest of stderr and whether the exit was clean.
fn interrupt(mut child: Child, rx: &mpsc::Receiver<String>) -> (bool, String) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    (status.success(), rest.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_http_drives_what_the_api_enqueues() {
    let dir = temp_dir("http-serve");
    let (child, base, rx) = spawn(
        &dir,
        &[
            "serve",
            "--store",
            "sqlite://http.db",
            "--poll-secs",
            "0.2",
            "--http",
            "127.0.0.1:0",
        ],
        &[],
    );
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/api/v1/runs"))
        .json(&json!({"workflow": "cli-echo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut state = String::new();
    while Instant::now() < deadline {
        let run: Value = client
            .get(format!("{base}/api/v1/runs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        state = run["state"].as_str().unwrap().to_owned();
        if state == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "succeeded");
    let (clean, err) = interrupt(child, &rx);
    assert!(clean, "{err}");
    assert!(err.contains("stopped"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_alone_with_a_token() {
    let dir = temp_dir("http-only");
    let token = "cli-operator-token-0123456789";
    let (child, base, rx) = spawn(
        &dir,
        &["http", "127.0.0.1:0", "--store", "sqlite://only.db"],
        &[("DAGFORGE_HTTP_TOKEN", token)],
    );
    // The dashboard's address is announced right after the API's.
    let next = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(next, format!("dashboard at {base}/"));
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{base}/api/v1/workflows"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .get(format!("{base}/api/v1/workflows"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let names: Vec<String> = r
        .json::<Vec<Value>>()
        .await
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"cli-echo".to_owned()), "{names:?}");
    let (clean, err) = interrupt(child, &rx);
    assert!(clean, "{err}");
}

#[test]
fn off_loopback_without_a_token_is_refused() {
    let dir = temp_dir("http-refused");
    let (code, _, err, _) = app_bin(&dir, &["http", "0.0.0.0:0", "--store", "memory://"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("DAGFORGE_HTTP_TOKEN") && err.contains("--insecure-no-auth"),
        "{err}"
    );
    let (code, _, err, _) = app_bin(
        &dir,
        &["serve", "--http", "0.0.0.0:0", "--store", "memory://"],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    let (code, _, err, _) = app_bin(
        &dir,
        &["http", "127.0.0.1:0", "--store", "memory://"],
        &[("DAGFORGE_HTTP_TOKEN", "short")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("16 characters") && !err.contains("short\n"),
        "{err}"
    );
    let (code, _, err, _) = app_bin(
        &dir,
        &["http", "not-an-address", "--store", "memory://"],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not IP:PORT"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_from_the_environment_or_the_config_file() {
    let dir = temp_dir("http-config");
    std::fs::write(
        dir.join("dagforge.toml"),
        "http = \"127.0.0.1:0\"\nstore = \"sqlite://conf.db\"\n",
    )
    .unwrap();
    let (child, base, rx) = spawn(&dir, &["http"], &[]);
    let r = reqwest::get(format!("{base}/api/v1/workflows"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (clean, err) = interrupt(child, &rx);
    assert!(clean, "{err}");
    // The environment wins over the file (whose address, off loopback without a
    // token, would be refused).
    std::fs::write(
        dir.join("dagforge.toml"),
        "http = \"0.0.0.0:0\"\nstore = \"sqlite://conf.db\"\n",
    )
    .unwrap();
    let (code, _, err, _) = app_bin(&dir, &["http"], &[]);
    assert_eq!(code, 2, "the file's address is used: {err}");
    let (child, base, rx) = spawn(
        &dir,
        &["serve", "--poll-secs", "0.2"],
        &[("DAGFORGE_HTTP", "127.0.0.1:0")],
    );
    let r = reqwest::get(format!("{base}/api/v1/engines"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (clean, err) = interrupt(child, &rx);
    assert!(clean, "{err}");
}
