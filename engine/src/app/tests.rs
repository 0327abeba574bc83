use std::path::PathBuf;

use super::cli::{ExecutorKind, Global};
use super::config::Settings;
use super::*;
use crate::context::JobContext;
use crate::error::JobError;

struct Double;
impl Job for Double {
    type Input = u32;
    type Output = u32;
    const NAME: &'static str = "double";
    async fn run(&self, ctx: &JobContext, x: u32) -> Result<u32, JobError> {
        ctx.info(format!("doubling {x}"));
        Ok(x * 2)
    }
}

struct Lonely;
impl Job for Lonely {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "lonely";
    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        Ok(())
    }
}

fn app() -> App {
    let mut wf = Workflow::builder("twice");
    let x = wf.param::<u32>("x");
    let a = wf.add("a", Double).input_from(x).handle();
    wf.add("b", Double).input_from(a);
    App::new()
        .name("t")
        .workflow(wf.build().unwrap())
        .job(Lonely)
}

fn temp_db(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "dagforge-app-{name}-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("t.db").display())
}

#[tokio::test]
async fn graph_formats() {
    let app = app();
    let svg = app
        .run_from(["t", "graph", "twice", "--format", "svg"])
        .await;
    assert_eq!(svg.code, 0, "{}", svg.stderr);
    assert!(svg.stdout.starts_with("<?xml"));
    let dot = app.run_from(["t", "graph", "twice"]).await;
    assert!(dot.stdout.contains("\"a\" -> \"b\";"), "{}", dot.stdout);
    let mermaid = app.run_from(["t", "graph", "twice", "-f", "mermaid"]).await;
    assert!(mermaid.stdout.starts_with("flowchart TD"));
    let json = app.run_from(["t", "graph", "twice", "-f", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["edges"][0]["from"], "a");
}

#[tokio::test]
async fn jobs_lists_jobs_and_workflows() {
    let out = app().run_from(["t", "jobs"]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("double"));
    assert!(out.stdout.contains("lonely"));
    assert!(out.stdout.contains("workflow twice v1: 2 nodes, 1 edges"));
    assert!(out.stdout.contains("params: x (required)"));
    let json = app().run_from(["t", "jobs", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["workflows"][0]["name"], "twice");
    assert!(v["jobs"]["lonely"].is_object());
}

#[tokio::test]
async fn bad_input_is_exit_code_two_and_names_the_culprit() {
    let app = app();
    let cases: [(&[&str], &str); 7] = [
        (&["t", "graph", "nope"], "no workflow named `nope`"),
        (
            &["t", "run", "nope", "--store", "memory://"],
            "no workflow named `nope`",
        ),
        (
            &["t", "run", "twice", "-i", "x", "--store", "memory://"],
            "--input `x`: expected KEY=VALUE",
        ),
        (
            &["t", "run", "twice", "-i", "y=1", "--store", "memory://"],
            "run input `y`",
        ),
        (
            &["t", "run", "twice", "--store", "memory://"],
            "run input `x`: required",
        ),
        (
            &["t", "runs", "show", "not-a-run", "--store", "memory://"],
            "`not-a-run` is not a run id",
        ),
        (
            &[
                "t",
                "runs",
                "list",
                "--state",
                "odd",
                "--store",
                "memory://",
            ],
            "unknown run state `odd`",
        ),
    ];
    for (args, msg) in cases {
        let out = app.run_from(args.iter().copied()).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains(msg), "{args:?}: {}", out.stderr);
    }
    let out = app
        .run_from([
            "t",
            "runs",
            "show",
            "01a22934-d2da-7053-bcbd-f94c5fc79aa8",
            "--store",
            "memory://",
        ])
        .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("not found"), "{}", out.stderr);
    let out = app.run_from(["t", "bogus"]).await;
    assert_eq!(out.code, 2);
    let out = app.run_from(["t", "jobs", "--store", "redis://x"]).await;
    assert_eq!(out.code, 0, "jobs needs no store");
    let out = app
        .run_from(["t", "runs", "list", "--store", "redis://x"])
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("`redis://x` is not supported"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn run_wait_prints_progress_and_table() {
    let out = app()
        .run_from([
            "t",
            "run",
            "twice",
            "-i",
            "x=21",
            "--wait",
            "--store",
            "memory://",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("a                    info: doubling 21"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("b                    info: doubling 42")
    );
    assert!(out.stdout.contains("run succeeded"));
    assert!(out.stdout.contains("node  state"));
}

#[tokio::test]
async fn enqueue_then_list_show_logs() {
    let db = temp_db("list");
    let app = app();
    let out = app
        .run_from(["t", "run", "twice", "--input", "x=2", "--store", &db])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let id = out.stdout.trim().to_owned();
    let list = app.run_from(["t", "runs", "list", "--store", &db]).await;
    assert!(list.stdout.contains(&id), "{}", list.stdout);
    assert!(list.stdout.contains("pending"));
    let done = app
        .run_from(["t", "run", "twice", "-i", "x=5", "--wait", "--store", &db])
        .await;
    assert_eq!(done.code, 0, "{done:?}");
    let list = app
        .run_from(["t", "runs", "list", "--state", "succeeded", "--store", &db])
        .await;
    assert!(!list.stdout.contains(&id));
    assert_eq!(list.stdout.lines().count(), 2, "{}", list.stdout);
    let done_id = list
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let show = app
        .run_from(["t", "runs", "show", &done_id, "--store", &db])
        .await;
    assert_eq!(show.code, 0, "{show:?}");
    assert!(
        show.stdout.contains("state     succeeded"),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains("inputs    {\"x\":5}"));
    let logs = app
        .run_from(["t", "runs", "logs", &done_id, "b", "--store", &db])
        .await;
    assert_eq!(logs.code, 0);
    assert!(
        logs.stdout.contains("b #1  info: doubling 10"),
        "{}",
        logs.stdout
    );
    assert!(!logs.stdout.contains("doubling 5"));
    let bad = app
        .run_from(["t", "runs", "logs", &done_id, "zz", "--store", &db])
        .await;
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("node `zz`"));
}

#[tokio::test]
async fn no_arguments_use_the_default_args() {
    let app = app().default_args(["graph", "twice", "--format", "mermaid"]);
    let out = app.run_from(["t"]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("flowchart TD"));
    // Without default args: the help, and a usage error.
    let out = super::App::new().run_from(["t"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("Usage"), "{}", out.stderr);
}

#[tokio::test]
async fn help_is_useful() {
    let out = app().run_from(["t", "--help"]).await;
    assert_eq!(out.code, 0);
    for word in [
        "serve",
        "run",
        "runs",
        "graph",
        "jobs",
        "DAGFORGE_STORE",
        "Examples:",
    ] {
        assert!(out.stdout.contains(word), "{word}: {}", out.stdout);
    }
    assert!(
        !out.stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some("worker")),
        "worker mode is hidden: {}",
        out.stdout
    );
    let run = app().run_from(["t", "run", "--help"]).await;
    assert!(run.stdout.contains("--input-json"), "{}", run.stdout);
}

#[test]
fn settings_precedence_flag_over_file_over_default() {
    let dir = std::env::temp_dir().join(format!(
        "dagforge-cfg-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dagforge.toml");
    std::fs::write(
        &file,
        "store = \"memory://\"\nconcurrency = 7\nexecutor = \"process\"\npoll_secs = 0.5\n",
    )
    .unwrap();
    let global = Global {
        config: Some(file.clone()),
        concurrency: Some(3),
        ..Global::default()
    };
    let s = Settings::resolve(&global).unwrap();
    assert_eq!(s.store, "memory://");
    assert_eq!(s.concurrency, 3);
    assert_eq!(s.executor, ExecutorKind::Process);
    assert_eq!(s.poll(None).unwrap(), std::time::Duration::from_millis(500));
    assert_eq!(
        s.poll(Some(2.0)).unwrap(),
        std::time::Duration::from_secs(2)
    );
    assert!(s.poll(Some(-1.0)).is_err());
    let zero = Global {
        concurrency: Some(0),
        store: Some("memory://".to_owned()),
        ..Global::default()
    };
    let e = Settings::resolve(&zero).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.to_string().contains("concurrency must be at least 1"),
        "{e}"
    );
    // A config file that does not exist.
    let none = Global {
        config: Some(PathBuf::from("/nonexistent/dagforge.toml")),
        ..Global::default()
    };
    let e = Settings::resolve(&none).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("/nonexistent/dagforge.toml"));
    // A typo in the file is named.
    std::fs::write(&file, "stor = \"x\"\n").unwrap();
    let e = Settings::resolve(&Global {
        config: Some(file),
        ..Global::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("stor"), "{e}");
}

#[tokio::test]
async fn input_json_then_inputs_override() {
    let dir = std::env::temp_dir().join(format!(
        "dagforge-inputs-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("in.json");
    std::fs::write(&file, r#"{"x": 4}"#).unwrap();
    let f = file.display().to_string();
    let app = app();
    let out = app
        .run_from([
            "t",
            "run",
            "twice",
            "--input-json",
            &f,
            "--wait",
            "--store",
            "memory://",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("doubling 4"), "{}", out.stdout);
    let out = app
        .run_from([
            "t",
            "run",
            "twice",
            "--input-json",
            &f,
            "-i",
            "x=6",
            "--wait",
            "--store",
            "memory://",
        ])
        .await;
    assert!(out.stdout.contains("doubling 6"), "{}", out.stdout);
    std::fs::write(&file, "[1]").unwrap();
    let out = app
        .run_from([
            "t",
            "run",
            "twice",
            "--input-json",
            &f,
            "--store",
            "memory://",
        ])
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("expected a JSON object of parameters, found array"),
        "{}",
        out.stderr
    );
    std::fs::write(&file, "{").unwrap();
    let out = app
        .run_from([
            "t",
            "run",
            "twice",
            "--input-json",
            &f,
            "--store",
            "memory://",
        ])
        .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("not JSON"), "{}", out.stderr);
    let out = app
        .run_from([
            "t",
            "run",
            "twice",
            "--input-json",
            "/nonexistent/in.json",
            "--store",
            "memory://",
        ])
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("/nonexistent/in.json"),
        "{}",
        out.stderr
    );
    // A wrong type is refused before a run is recorded (exit code 2), naming the
    // parameter and the node that cannot take it.
    let out = app
        .run_from([
            "t",
            "run",
            "twice",
            "-i",
            "x=\"four\"",
            "--wait",
            "--store",
            "memory://",
        ])
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("run input `x`: node `a` (job `double`) cannot take it"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "no run: {}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_until_the_run_finishes() {
    let db = temp_db("follow");
    let app = app();
    let out = app
        .run_from(["t", "run", "twice", "-i", "x=8", "--store", &db])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let id = out.stdout.trim().to_owned();
    let follow = Box::pin(app.run_from(["t", "runs", "logs", &id, "--follow", "--store", &db]));
    let drive = async {
        // The follower waits for a run nobody drives yet; then an engine on the same
        // file picks it up.
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let store = crate::store::SqliteStore::open(&db).await.unwrap();
        let engine = crate::Engine::builder()
            .store(store)
            .workflow(&app.workflows["twice"])
            .build();
        let handles = engine.resume().await.unwrap();
        assert_eq!(handles.len(), 1);
        for h in handles {
            assert!(h.wait().await.unwrap().is_success());
        }
    };
    let (out, ()) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        futures_util::future::join(follow, drive),
    )
    .await
    .expect("--follow stops once the run finished");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("a #1  info: doubling 8"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("b #1  info: doubling 16"),
        "{}",
        out.stdout
    );
}

mod fuzz {
    //! Property tests of what the CLI reads from users: `-i` values, `--input-json`,
    //! config files and store URLs. Random bytes and deep nesting give a typed error
    //! (or a value), never a panic or a stack overflow.

    use std::path::Path;

    use proptest::prelude::*;

    use super::super::cli::Global;
    use super::super::config::Settings;
    use super::super::error::CliError;
    use super::super::inputs;
    use super::app;

    /// Text nested `depth` levels deep, as arrays or objects, closed or not.
    fn nested(depth: usize, object: bool, closed: bool) -> String {
        let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
        let mut s = open.repeat(depth);
        s.push('1');
        if closed {
            s.push_str(&close.repeat(depth));
        }
        s
    }

    fn values() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[\\[\\]{}\":,0-9a-z ]{0,64}",
            (1usize..200_000, any::<bool>(), any::<bool>()).prop_map(|(d, o, c)| nested(d, o, c)),
        ]
    }

    fn temp_file(bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "dagforge-fuzz-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// `-i x=VALUE`: parsed or refused as bad input; then checked against the
        /// `u32` the job takes: accepted only if it is one.
        #[test]
        fn input_values(v in values()) {
            let app = app();
            let wf = app.find("twice").unwrap();
            match inputs::parse(&[format!("x={v}")], None) {
                Ok(parsed) => {
                    let checked = inputs::check_types(wf, &parsed);
                    let is_u32 = parsed["x"].as_u64().is_some_and(|n| n <= u64::from(u32::MAX));
                    prop_assert_eq!(checked.is_ok(), is_u32, "{:?}", checked.err());
                    if let Err(e) = checked {
                        prop_assert_eq!(e.exit_code(), 2);
                        prop_assert!(e.to_string().contains("run input `x`"), "{e}");
                    }
                }
                Err(e) => {
                    prop_assert!(matches!(e, CliError::Usage(_)), "{e:?}");
                    prop_assert!(e.to_string().contains("--input `x`"), "{e}");
                }
            }
        }

        /// `--input-json FILE` of random bytes or deep nesting: an object of
        /// parameters, or bad input naming the file.
        #[test]
        fn input_json_files(bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            values().prop_map(String::into_bytes),
        ]) {
            let path = temp_file(&bytes);
            let parsed = inputs::parse(&[], Some(&path));
            let _ = std::fs::remove_file(&path);
            match parsed {
                Ok(v) => prop_assert!(v.is_object()),
                Err(e) => {
                    prop_assert_eq!(e.exit_code(), 2);
                    let shown = path.display().to_string();
                    prop_assert!(e.to_string().contains(&shown), "{e}");
                }
            }
        }

        /// A config file of random bytes: settings, or a config error naming the file.
        #[test]
        fn config_files(bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            "(store|executor|concurrency|poll_secs|x) = [\"a-z0-9.:/\\[\\]{}]{0,40}\n"
                .prop_map(String::into_bytes),
            (1usize..100_000, any::<bool>()).prop_map(|(d, c)| {
                format!("store = {}", nested(d, false, c)).into_bytes()
            }),
        ]) {
            let path = temp_file(&bytes);
            let global = Global {
                config: Some(path.clone()),
                ..Global::default()
            };
            let settings = Settings::resolve(&global);
            let _ = std::fs::remove_file(&path);
            if let Err(e) = settings {
                prop_assert!(
                    matches!(&e, CliError::Config { path: p, .. } if p == &path)
                        || matches!(e, CliError::Usage(_)),
                    "{e:?}"
                );
            }
        }

        /// Store URLs: a PostgreSQL URL is accepted only with a host and a database,
        /// and no error or redacted form shows its password.
        #[test]
        fn store_urls(
            url in prop_oneof![
                any::<String>(),
                "(postgres|postgresql|sqlite|memory|x)://[a-z:@/?=&.0-9\\[\\]%]{0,40}",
            ],
        ) {
            let secret = "Zq9SecretPw";
            let with_secret = match url.split_once("://") {
                Some((scheme, rest)) => format!("{scheme}://u:{secret}@{rest}"),
                None => url.clone(),
            };
            prop_assert!(!crate::redact::url(&with_secret).contains(secret));
            #[cfg(feature = "postgres")]
            if let Err(e) = crate::store::PostgresStore::check_url(&with_secret) {
                prop_assert!(!e.contains(secret), "{e}");
            }
        }
    }

    /// The caps: a config file or `--input-json` longer than allowed is refused by
    /// reading just past the cap.
    #[cfg(unix)]
    #[test]
    fn dev_zero_is_refused() {
        let zero = Path::new("/dev/zero");
        let e = inputs::parse(&[], Some(zero)).unwrap_err();
        assert!(
            e.to_string()
                .contains("--input-json /dev/zero: larger than"),
            "{e}"
        );
        let global = Global {
            config: Some(zero.to_path_buf()),
            ..Global::default()
        };
        let e = Settings::resolve(&global).unwrap_err();
        assert!(
            e.to_string().contains("config file /dev/zero: larger than"),
            "{e}"
        );
    }
}

/// The settings' `Debug` never shows the store's password.
#[test]
fn settings_debug_hides_the_store_password() {
    let global = Global {
        store: Some("postgres://app:Pw9secret@db:5432/runs".to_owned()),
        ..Global::default()
    };
    let settings = Settings::resolve(&global).unwrap();
    let shown = format!("{global:?} {settings:?} {}", settings.shown_store());
    assert!(!shown.contains("Pw9secret"), "{shown}");
    assert!(shown.contains("postgres://db:5432/runs"), "{shown}");
}

struct Count;
impl Job for Count {
    type Input = u32;
    type Output = Vec<u32>;
    const NAME: &'static str = "count";
    async fn run(&self, _: &JobContext, n: u32) -> Result<Vec<u32>, JobError> {
        Ok((0..n).collect())
    }
}

/// `run --wait` without a terminal prints a line per settled fan-out item with the
/// count settled of the total, the total worked out from the upstream output and the
/// run's inputs through the public API (`Workflow::fan_out_len`).
#[tokio::test]
async fn run_wait_counts_fan_out_items_of_their_total() {
    let mut wf = Workflow::builder("fan");
    let n = wf.param::<u32>("n");
    let numbers = wf.add("numbers", Count).input_from(n).handle();
    wf.add("doubled", Double).each_input(numbers);
    let app = App::new().name("t").workflow(wf.build().unwrap());
    let out = app
        .run_from([
            "t",
            "run",
            "fan",
            "-i",
            "n=3",
            "--wait",
            "--store",
            "memory://",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let text = format!("{}{}", out.stdout, out.stderr);
    for counted in ["[1/3]", "[2/3]", "[3/3]"] {
        assert!(text.contains(counted), "no {counted} in:\n{text}");
    }
}
