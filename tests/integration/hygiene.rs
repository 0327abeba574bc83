//! Secrets never shown, clear store errors, SQLite hygiene and CLI input checks.
//!
//! The CLI cases run the `dagforge-cli-app` binary (`tests/bin/cli_app.rs`) as real
//! processes, through [`app_bin`].

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cli::{app_bin, temp_dir};

/// A file of another application: a SQLite database (rollback journal) with a
/// `customers` table and one row.
const OTHER_APP_DB: &[u8] = include_bytes!("fixtures/other_app.db");

fn ok(r: &(i32, String, String, u32)) -> bool {
    r.0 == 0
}

/// The run id printed by `run` (enqueue) on standard output.
fn run_id(r: &(i32, String, String, u32)) -> String {
    assert!(ok(r), "{} {}", r.1, r.2);
    r.1.trim().to_owned()
}

/// `runs show` until the run is in `state` (or 30 s pass); the last output.
fn wait_for(dir: &Path, id: &str, state: &str, env: &[(&str, &str)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out, err, _) = app_bin(dir, &["runs", "show", id], env);
        if out.contains(&format!("state     {state}")) || Instant::now() > deadline {
            return format!("{out}{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------
// SQLite hygiene.

/// Before: the CLI never checkpointed; after `run --wait` every write was in
/// `dagforge.db-wal`, and a copy of `dagforge.db` alone held no runs. Now each command
/// checkpoints (TRUNCATE) and closes the store as it ends.
#[test]
fn the_cli_leaves_everything_in_the_database_file() {
    let dir = temp_dir("checkpoint");
    let r = app_bin(&dir, &["run", "cli-echo", "--wait"], &[]);
    assert!(ok(&r), "{} {}", r.1, r.2);
    let wal = dir.join("dagforge.db-wal");
    let wal_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(
        wal_len, 0,
        "the write-ahead log still holds {wal_len} bytes"
    );
    // The database file alone, copied elsewhere, has the run.
    let copy = temp_dir("checkpoint-copy");
    std::fs::copy(dir.join("dagforge.db"), copy.join("dagforge.db")).unwrap();
    let (code, out, err, _) = app_bin(&copy, &["runs", "list"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("cli-echo") && out.contains("succeeded"),
        "{out}"
    );
}

/// Before: opening another application's SQLite file, even for `runs list`, added
/// dagforge's tables to it and switched it to WAL. Now it is refused (exit code 2),
/// named, and left byte for byte as it was, unless `--init-store` asks for it.
#[test]
fn another_applications_database_is_refused_untouched() {
    let dir = temp_dir("foreign");
    let file = dir.join("shop.db");
    std::fs::write(&file, OTHER_APP_DB).unwrap();
    for args in [
        &["runs", "list", "--store", "sqlite://shop.db"][..],
        &["run", "cli-echo", "--store", "sqlite://shop.db"][..],
    ] {
        let (code, out, err, _) = app_bin(&dir, args, &[]);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains("shop.db"), "{err}");
        assert!(err.contains("not a dagforge database"), "{err}");
        assert!(err.contains("customers"), "{err}");
        assert!(err.contains("--init-store"), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), OTHER_APP_DB, "{args:?}");
        assert!(!dir.join("shop.db-wal").exists());
    }
    // Asked for, it is set up, and the other application's table stays.
    let (code, _, err, _) = app_bin(
        &dir,
        &[
            "runs",
            "list",
            "--store",
            "sqlite://shop.db",
            "--init-store",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err, _) = app_bin(&dir, &["runs", "list", "--store", "sqlite://shop.db"], &[]);
    assert_eq!(code, 0, "now a dagforge database: {err}");
    // A new, empty file is simply set up.
    let (code, _, err, _) = app_bin(&dir, &["runs", "list", "--store", "sqlite://new.db"], &[]);
    assert_eq!(code, 0, "{err}");
}

/// Before: a read-only or locked store gave `store: store: storing a workflow spec
/// failed`. Now the message names the store once and keeps the cause.
#[test]
fn sqlite_errors_name_the_file_and_keep_the_cause() {
    let dir = temp_dir("sqlite-errors");
    let (code, _, err, _) = app_bin(&dir, &["runs", "list", "--store", "sqlite://ro.db"], &[]);
    assert_eq!(code, 0, "{err}");
    // Read-only (as root, file permissions would not stop a write: open it read-only).
    let (code, _, err, _) = app_bin(
        &dir,
        &["run", "cli-echo", "--store", "sqlite://ro.db?mode=ro"],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("store sqlite://ro.db"), "{err}");
    assert!(err.contains("read-only"), "{err}");
    assert!(!err.contains("store: store"), "{err}");
    assert_eq!(err.matches("store").count(), 1, "one prefix: {err}");

    // Locked: another process holds an exclusive lock (the `sqlite3` shell, if any).
    let Ok(mut holder) = std::process::Command::new("sqlite3")
        .arg(dir.join("ro.db"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
    else {
        eprintln!("no sqlite3 shell: the locked case is not run");
        return;
    };
    {
        use std::io::Write;
        let stdin = holder.stdin.as_mut().unwrap();
        writeln!(
            stdin,
            "BEGIN EXCLUSIVE; INSERT INTO dagforge_schema SELECT 2, 0 WHERE 0;"
        )
        .unwrap();
        stdin.flush().unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let (code, _, err, _) = app_bin(&dir, &["run", "cli-echo", "--store", "sqlite://ro.db"], &[]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("locked by another"), "{err}");
    assert!(err.contains("ro.db"), "{err}");
    assert!(!err.contains("store: store"), "{err}");
}

// ---------------------------------------------------------------------------------
// Input checks and bounds.

/// Before: `-i n=abc` for a `u32` parameter was accepted, recorded as a run that
/// failed, and exited 1. Now it is refused before anything is recorded (exit code 2),
/// naming the parameter and the node; a bare word for a `String` parameter is fine; a
/// value that starts like JSON and is not JSON is refused instead of becoming text.
#[test]
fn run_inputs_are_checked_against_the_parameter_types() {
    let dir = temp_dir("typed");
    let (code, _, err, _) = app_bin(&dir, &["run", "cli-typed", "-i", "n=abc"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("run input `n`"), "{err}");
    assert!(err.contains("node `square`"), "{err}");
    assert!(err.contains("u32"), "{err}");
    let (code, out, _, _) = app_bin(&dir, &["runs", "list"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("(no runs)"), "nothing recorded: {out}");
    for bad in ["n={\"x\":", "n=[1,", "n=\"unterminated"] {
        let (code, _, err, _) = app_bin(&dir, &["run", "cli-typed", "-i", bad], &[]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(
            err.contains("--input `n`") && err.contains("not JSON"),
            "{bad}: {err}"
        );
    }
    // Fine: a number for `n`, a bare word for the string parameter.
    let r = app_bin(
        &dir,
        &["run", "cli-typed", "-i", "n=7", "-i", "text=plain words"],
        &[],
    );
    assert!(ok(&r), "{} {}", r.1, r.2);
    // The types are checked for --input-json too.
    std::fs::write(dir.join("in.json"), r#"{"n": -1}"#).unwrap();
    let (code, _, err, _) = app_bin(&dir, &["run", "cli-typed", "--input-json", "in.json"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("run input `n`"), "{err}");
}

/// Before: `--input-json /dev/zero` and `--config /dev/zero` read until memory ran
/// out. Now both stop at their cap with an error naming the file.
#[cfg(unix)]
#[test]
fn config_and_input_files_are_bounded() {
    let dir = temp_dir("bounded");
    let started = Instant::now();
    let (code, _, err, _) = app_bin(
        &dir,
        &["run", "cli-typed", "--input-json", "/dev/zero"],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--input-json /dev/zero"), "{err}");
    assert!(err.contains("larger than"), "{err}");
    let (code, _, err, _) = app_bin(&dir, &["runs", "list", "--config", "/dev/zero"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("config file /dev/zero"), "{err}");
    assert!(err.contains("larger than"), "{err}");
    // A sparse 17 MiB file too (no memory spent on it either).
    let big = dir.join("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(17 * 1024 * 1024)
        .unwrap();
    let (code, _, err, _) = app_bin(&dir, &["run", "cli-typed", "--input-json", "big.json"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("big.json") && err.contains("larger than"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Before: job logs and errors reached the terminal with their raw escape sequences
/// (colours, cursor moves, a terminal title). Now `run --wait`, `runs show`, `runs
/// logs`, `runs list` and errors print control characters escaped.
#[test]
fn control_characters_are_escaped_on_the_terminal() {
    let dir = temp_dir("escape");
    let text = "text=\u{1b}[2J\u{1b}]0;pwned\u{7}red\rover\u{9b}";
    let (code, out, err, _) = app_bin(
        &dir,
        &["run", "cli-typed", "-i", "n=2", "-i", text, "--wait"],
        &[],
    );
    assert_eq!(code, 1, "the job fails: {out}{err}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.split(' ').next()))
        .unwrap()
        .to_owned();
    let mut shown = vec![out, err];
    for args in [
        &["runs", "show", &id][..],
        &["runs", "logs", &id][..],
        &["runs", "list"][..],
        &["runs", "logs", &id, "\u{1b}[31mnode"][..],
        &["run", "\u{1b}[31mno-such-workflow"][..],
    ] {
        let (_, out, err, _) = app_bin(&dir, args, &[]);
        shown.push(out);
        shown.push(err);
    }
    let all = shown.concat();
    for c in ['\u{1b}', '\u{7}', '\r', '\u{9b}'] {
        assert!(!all.contains(c), "{c:?} printed raw in {all:?}");
    }
    // Escaped, not dropped: what the job logged is still there to read.
    assert!(all.contains("said \\u{1b}[2J"), "{all}");
    assert!(all.contains("refused \\u{1b}[2J"), "{all}");
    assert!(all.contains("\\u{1b}[31mno-such-workflow"), "{all}");
}

// ---------------------------------------------------------------------------------
// PostgreSQL: secrets, incomplete URLs, clear errors, concurrent first starts.

/// Before: `--store postgres://` connected to whatever the defaults reached (a local
/// socket, a database named after the user) and created the schema there. Now an
/// incomplete URL is refused (exit code 2) naming what is missing.
#[test]
fn an_incomplete_postgres_url_is_refused() {
    let dir = temp_dir("pg-incomplete");
    for (url, missing) in [
        ("postgres://", "no host and no database"),
        ("postgresql://", "no host and no database"),
        ("postgres://127.0.0.1:5432", "no database"),
        ("postgres://127.0.0.1:5432/", "no database"),
        ("postgres://u:Sw0rdf1sh@/test", "no host"),
    ] {
        let (code, _, err, _) = app_bin(&dir, &["runs", "list", "--store", url], &[]);
        if !cfg!(feature = "postgres") {
            assert_eq!(code, 2, "{url}: {err}");
            continue;
        }
        assert_eq!(code, 2, "{url}: {err}");
        assert!(err.contains(missing), "{url}: {err}");
        assert!(!err.contains("Sw0rdf1sh"), "{url}: {err}");
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use std::sync::{Arc, Mutex};

    use super::*;

    const SECRET: &str = "Hyg1eneS3cret";

    /// `DATABASE_URL` with `SECRET` as the password and `db` as the database.
    fn secret_url(db: &str) -> String {
        let base = crate::store::pg::url();
        let (scheme, rest) = base.split_once("://").unwrap();
        let (authority, _) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, host) = match authority.rsplit_once('@') {
            Some((user, host)) => (user.split(':').next().unwrap_or("postgres"), host),
            None => ("postgres", authority),
        };
        format!("{scheme}://{user}:{SECRET}@{host}/{db}")
    }

    /// A database of the test's own (the CLI uses the default schema), dropped when
    /// this is.
    struct TempDb(String);

    impl TempDb {
        fn new(name: &str) -> TempDb {
            let db = format!("hygiene_{name}_{}", std::process::id());
            psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
            psql(&format!("CREATE DATABASE {db}"));
            TempDb(db)
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
        }
    }

    fn psql(sql: &str) {
        let out = std::process::Command::new("psql")
            .args([crate::store::pg::url().as_str(), "-Atc", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Before: the password in the store URL was printed by the `serve` banner, the
    /// enqueue, retry and trigger messages and store errors, and worker children
    /// inherited `DAGFORGE_STORE` with it. Now none of what the CLI prints, and none of
    /// a worker's environment, holds it.
    #[cfg(unix)]
    #[test]
    fn a_store_password_is_never_shown_nor_passed_to_workers() {
        let db = TempDb::new("secret");
        let url = secret_url(&db.0);
        let dir = temp_dir("pg-secret");
        let env = [("DAGFORGE_STORE", url.as_str())];
        let mut shown = String::new();
        let record = |shown: &mut String, r: &(i32, String, String, u32)| {
            shown.push_str(&r.1);
            shown.push_str(&r.2);
        };

        let enq = app_bin(&dir, &["run", "cli-env"], &env);
        record(&mut shown, &enq);
        let id = run_id(&enq);
        assert!(
            enq.2.contains(&format!("127.0.0.1:5432/{}", db.0)),
            "{}",
            enq.2
        );

        // `serve` with the process executor: the job logs its worker's environment.
        let serve = std::process::Command::new(env!("CARGO_BIN_EXE_dagforge-cli-app"))
            .current_dir(&dir)
            .args(["serve", "--executor", "process", "--poll-secs", "0.2"])
            .env("DAGFORGE_STORE", &url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let done = wait_for(&dir, &id, "succeeded", &env);
        let pid = nix::unistd::Pid::from_raw(serve.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let out = serve.wait_with_output().unwrap();
        let banner = String::from_utf8_lossy(&out.stderr).into_owned();
        shown.push_str(&String::from_utf8_lossy(&out.stdout));
        shown.push_str(&banner);
        assert!(done.contains("state     succeeded"), "{done}\n{banner}");
        assert!(
            banner.contains("serving postgres://127.0.0.1:5432/"),
            "{banner}"
        );

        let logs = app_bin(&dir, &["runs", "logs", &id], &env);
        record(&mut shown, &logs);
        // The job did log its environment (so the check below can fail).
        assert!(logs.1.contains("env DAGFORGE_WORKER_JOB=env"), "{}", logs.1);
        assert!(!logs.1.contains("env DAGFORGE_STORE="), "{}", logs.1);

        record(&mut shown, &app_bin(&dir, &["runs", "retry", &id], &env));
        record(&mut shown, &app_bin(&dir, &["runs", "show", &id], &env));
        record(&mut shown, &app_bin(&dir, &["runs", "list"], &env));
        record(
            &mut shown,
            &app_bin(
                &dir,
                &[
                    "schedules",
                    "add",
                    "nightly",
                    "cli-env",
                    "--cron",
                    "0 3 * * *",
                ],
                &env,
            ),
        );
        let trig = app_bin(&dir, &["schedules", "trigger", "nightly"], &env);
        assert!(trig.2.contains("triggered"), "{}", trig.2);
        record(&mut shown, &trig);
        // Errors: no such database, no server there, no such run.
        let missing = app_bin(
            &dir,
            &["runs", "list", "--store", &secret_url("no_such_db_hygiene")],
            &[],
        );
        assert_eq!(missing.0, 1, "{}", missing.2);
        record(&mut shown, &missing);
        let nowhere = secret_url("x").replace(":5432/", ":1/");
        let nowhere = app_bin(&dir, &["runs", "list", "--store", &nowhere], &[]);
        assert_eq!(nowhere.0, 1, "{}", nowhere.2);
        record(&mut shown, &nowhere);
        record(
            &mut shown,
            &app_bin(
                &dir,
                &["runs", "show", "01a22934-d2da-7053-bcbd-f94c5fc79aa8"],
                &env,
            ),
        );
        assert!(!shown.is_empty());
        assert!(!shown.contains(SECRET), "the password was shown:\n{shown}");
    }

    /// Before: a wrong password or an unknown database both gave "the PostgreSQL server
    /// refused the connection". Now the cause is kept and the server named.
    #[test]
    fn postgres_connect_errors_keep_their_cause() {
        let dir = temp_dir("pg-errors");
        let (code, _, err, _) = app_bin(
            &dir,
            &["runs", "list", "--store", &secret_url("no_such_db_hygiene")],
            &[],
        );
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("the database does not exist"), "{err}");
        assert!(err.contains("127.0.0.1:5432/no_such_db_hygiene"), "{err}");
        assert!(!err.contains("refused the connection"), "{err}");
        assert!(!err.contains("store: store"), "{err}");
        assert!(!err.contains(SECRET), "{err}");
    }

    /// Before: several engines started at once on a fresh schema sometimes failed with
    /// a duplicate key from creating the schema. Now connects take turns migrating
    /// under an advisory lock: 8 at once, five times over, all succeed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn eight_first_connects_at_once_all_succeed() {
        for round in 0..5 {
            let schema = format!(
                "hyg_first_{}_{round}",
                dagforge::RunId::new().to_uuid_string().replace('-', "")
            );
            let connects = (0..8).map(|_| {
                let schema = schema.clone();
                tokio::spawn(async move {
                    dagforge::store::PostgresStore::options(&crate::store::pg::url())
                        .schema(schema)
                        .max_connections(2)
                        .connect()
                        .await
                })
            });
            let results = futures_util::future::join_all(connects).await;
            let mut stores = Vec::new();
            for r in results {
                match r.unwrap() {
                    Ok(s) => stores.push(s),
                    Err(e) => panic!("round {round}: a first connect failed: {e:?}"),
                }
            }
            stores[0].drop_schema().await.unwrap();
            for s in stores {
                s.close().await;
            }
        }
    }

    /// A `tracing` subscriber that keeps every event's and span's fields as text.
    struct Capture(Arc<Mutex<String>>);

    struct Fields<'a>(&'a Mutex<String>);

    impl tracing::field::Visit for Fields<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            let mut text = self.0.lock().unwrap();
            text.push_str(&format!("{}={value:?}\n", field.name()));
        }
    }

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            span.record(&mut Fields(&self.0));
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
            values.record(&mut Fields(&self.0));
        }
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            event.record(&mut Fields(&self.0));
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// No tracing event or span (the engine's, the store's, sqlx's) of commands run
    /// against a store URL with a password holds the password.
    #[tokio::test(flavor = "current_thread")]
    async fn a_store_password_is_in_no_tracing_event() {
        let db = TempDb::new("tracing");
        let url = secret_url(&db.0);
        let captured = Arc::new(Mutex::new(String::new()));
        let _guard = tracing::subscriber::set_default(Capture(Arc::clone(&captured)));
        let s = crate::retry_run::Switch::failing();
        let app = dagforge::App::new()
            .name("demo")
            .workflow(crate::retry_run::workflow(&s));
        let mut printed = String::new();
        for args in [
            &[
                "demo",
                "run",
                "retry-demo",
                "-i",
                "n=2",
                "--wait",
                "--store",
                &url,
            ][..],
            &["demo", "runs", "list", "--store", &url][..],
            &["demo", "run", "retry-demo", "-i", "n=2", "--store", &url][..],
            &[
                "demo",
                "runs",
                "list",
                "--store",
                &secret_url("no_such_db_hygiene"),
            ][..],
        ] {
            let out = app.run_from(args.iter().copied()).await;
            printed.push_str(&out.stdout);
            printed.push_str(&out.stderr);
        }
        let events = captured.lock().unwrap().clone();
        assert!(!events.is_empty(), "no tracing event was captured");
        assert!(!events.contains(SECRET), "in a tracing event:\n{events}");
        assert!(!printed.contains(SECRET), "printed:\n{printed}");
        // The options' and the store's Debug (what a user's own log line would show)
        // hide it too.
        let debug = format!("{:?}", dagforge::store::PostgresStore::options(&url));
        assert!(!debug.contains(SECRET), "{debug}");
        let store = dagforge::store::PostgresStore::connect(&url).await.unwrap();
        let debug = format!("{store:?}");
        store.close().await;
        assert!(!debug.contains(SECRET), "{debug}");
    }
}
