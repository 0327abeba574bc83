//! The browser side of the dashboard's tests: chromedriver and a headless Chromium
//! session, waiting on DOM conditions, screenshots, navigation and paint timings.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// The longest wait for a DOM condition.
const WAIT: Duration = Duration::from_secs(30);

/// chromedriver, stopped on drop.
pub(super) struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver and opens a headless Chromium session; fails (never skips)
/// when either is missing.
pub(super) async fn browser() -> (Driver, Client) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("chromedriver cannot start ({e}): install it with `bash scripts/browser.sh`")
        });
    let driver = Driver(child, port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let binary = [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("no Chromium binary: install it with `bash scripts/browser.sh`");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1440,960", "--hide-scrollbars"]
        }),
    );
    let client = ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a Chromium session through chromedriver");
    (driver, client)
}

fn shots_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(super) async fn shot(c: &Client, name: &str) {
    if let Ok(png) = c.screenshot().await {
        std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
    }
}

/// Waits until `expr` (JavaScript) is truthy; on timeout saves a screenshot and fails
/// naming `what`.
pub(super) async fn until(c: &Client, expr: &str, what: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    let script = format!("try {{ return ({expr}) || null; }} catch (e) {{ return null; }}");
    loop {
        let v = c.execute(&script, vec![]).await.expect("execute");
        if !v.is_null() && v != Value::Bool(false) {
            return v;
        }
        if Instant::now() > deadline {
            shot(c, &format!("failed-{}", what.replace(' ', "-"))).await;
            let body = c
                .execute("return document.body.innerText.slice(0, 2000)", vec![])
                .await;
            panic!("timed out waiting for {what} ({expr}); page: {body:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) async fn js(c: &Client, script: &str) -> Value {
    let script = if script.contains("return ") {
        script.to_owned()
    } else {
        format!("return ({script});")
    };
    c.execute(&script, vec![]).await.expect("execute")
}

/// Clicks the box of node `id` in the run's drawing.
pub(super) async fn click_node(c: &Client, id: &str) {
    let found = js(
        c,
        &format!(
            "const ix = JSON.parse(document.getElementById('index').textContent);
             const i = ix.ids.indexOf({id});
             if (i < 0) return false;
             document.querySelector('#graph g.n[data-b=\"' + ix.boxes[i] + '\"]')
               .dispatchEvent(new MouseEvent('click', {{ bubbles: true }}));
             return true;",
            id = serde_json::to_string(id).unwrap()
        ),
    )
    .await;
    assert_eq!(found, Value::Bool(true), "node {id} is drawn");
}

/// Opens `url` and reads its navigation and paint timings; when the first paint took
/// over 2 s (a CI machine busy with other tests), opens it twice more and adds the
/// best first paint as `best_fcp_ms` (otherwise the first one).
pub(super) async fn first_paint(c: &Client, url: &str) -> Value {
    let mut first = timings(c, url).await;
    let mut best = first["first_contentful_paint_ms"]
        .as_f64()
        .unwrap_or(f64::MAX);
    for _ in 0..2 {
        if best <= 2000.0 {
            break;
        }
        let again = timings(c, url).await;
        best = best.min(
            again["first_contentful_paint_ms"]
                .as_f64()
                .unwrap_or(f64::MAX),
        );
    }
    first["best_fcp_ms"] = json!(best);
    first
}

async fn timings(c: &Client, url: &str) -> Value {
    c.goto(url).await.unwrap();
    until(
        c,
        "performance.getEntriesByName('first-contentful-paint').length > 0",
        "a first paint",
    )
    .await;
    js(c, "const n = performance.getEntriesByType('navigation')[0];
           return { first_contentful_paint_ms: Math.round(performance.getEntriesByName('first-contentful-paint')[0].startTime),
                    response_end_ms: Math.round(n.responseEnd), dom_content_loaded_ms: Math.round(n.domContentLoadedEventEnd),
                    transfer_bytes: n.transferSize, boxes: document.querySelectorAll('#graph g.n').length };").await
}
