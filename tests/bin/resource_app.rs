//! A dagforge `App` with a shared resource, for `tests/integration/resources.rs`.
//!
//! Its settings (`[settings]` of the config file, `DAGFORGE_SETTING_*`) name a
//! `ledger` file: the resource's factory appends `build <pid>` to it and its close
//! hook `close <pid>`, so a test counts how many times each process built it. With
//! `fail = true` the factory fails. The `res-fan` workflow runs `touch` four times (each
//! attempt asks for the resource twice); `res-missing` runs a job whose resource nobody
//! registers when `RESOURCE_APP_MISSING=1` (the app then refuses to start).
//! Started with `RESOURCE_APP_BARE=1` as a worker, it registers no resources at all
//! (a worker whose `main` forgot them).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use dagforge::App;
use dagforge::prelude::*;
use dagforge::resource::{ResourceSet, Settings};

/// The app's settings.
#[derive(Debug, serde::Deserialize)]
struct AppSettings {
    /// Where the factory and the close hook write.
    ledger: String,
    /// Whether the factory fails.
    #[serde(default)]
    fail: bool,
}

/// The shared resource: which process built it.
#[derive(Debug)]
struct Ledger {
    built_by: u32,
    path: String,
}

/// A resource nobody registers.
#[derive(Debug)]
struct Unregistered;

fn append(path: &str, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{line}")
}

/// Records the attempt in the ledger; returns the id of the process that built it.
#[job(retries = 1, backoff = fixed(10ms))]
async fn touch(
    ctx: &JobContext,
    #[resource] ledger: &Ledger,
    #[resource] settings: &AppSettings,
    n: u32,
) -> Result<u32, JobError> {
    let again = ctx.resource::<Ledger>().await?;
    assert!(std::ptr::eq(again, ledger), "one value per process");
    append(&ledger.path, &format!("use {} {n}", std::process::id()))?;
    ctx.info(format!("settings {settings:?}"));
    Ok(ledger.built_by)
}

/// Takes a resource nobody registers.
#[job]
async fn lost(#[resource] u: &Unregistered) -> Result<String, JobError> {
    Ok(format!("{u:?}"))
}

#[workflow(name = "res-fan")]
fn res_fan() {
    let a = touch(1);
    let b = touch(2);
    let c = touch(3);
    let d = touch(4);
}

#[workflow(name = "res-missing")]
fn res_missing() {
    let l = lost();
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "resource_with passes the settings by value"
)]
fn factory(settings: Settings) -> impl Future<Output = Result<Ledger, std::io::Error>> {
    let s = settings
        .get::<AppSettings>()
        .map(|s| (s.ledger.clone(), s.fail));
    async move {
        let (path, fail) = s.map_err(std::io::Error::other)?;
        if fail {
            return Err(std::io::Error::other("the ledger is closed for the day"));
        }
        append(&path, &format!("build {}", std::process::id()))?;
        Ok(Ledger {
            built_by: std::process::id(),
            path,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::var_os("RESOURCE_APP_BARE").is_some() && dagforge::worker::is_worker_invocation() {
        let mut registry = Registry::new();
        let _ = registry.register(Touch);
        return dagforge::worker::run_with(&registry, &ResourceSet::new(), false).await;
    }
    let (fan, missing) = match (res_fan(), res_missing()) {
        (Ok(f), Ok(m)) => (f, m),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut app = App::new()
        .name("resource-app")
        .settings::<AppSettings>()
        .resource_with(factory)
        .on_close(|l: Arc<Ledger>| async move {
            let _ = append(&l.path, &format!("close {}", std::process::id()));
        })
        .workflow(fan);
    if std::env::var_os("RESOURCE_APP_MISSING").is_some() {
        app = app.workflow(missing);
    }
    app.run().await
}
