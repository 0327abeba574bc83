//! The guides' shell examples stay true: every `$ catalog …` command in the CLI guide's
//! `console` blocks is run, in order, on the catalog example app (the app the guide's
//! outputs come from) over a fresh store, and every line the guide shows under it must
//! be a line the command printed, its exit code must agree (non-zero exactly when the
//! guide shows an `error:`), once ids, times and durations are put aside.

use dagforge::App;

/// Commands of the guide not run here, and why. Everything else is run.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "postgres://app:s3cret@db:5432/nope",
        "needs a PostgreSQL server named `db` (the redaction is tested in tests/integration/hygiene.rs)",
    ),
    (
        "mode=ro",
        "needs a read-only database file (tested in tests/integration/hygiene.rs)",
    ),
    (
        "run squares",
        "needs an app with a typed parameter (tests/integration/hygiene.rs runs it on cli-typed)",
    ),
    (
        "catalog serve",
        "serves until Ctrl-C (the help examples test runs `serve` on the real binary)",
    ),
    (
        "runs watch",
        "follows a run served by another process (usability::app_bin tests it)",
    ),
];

/// One `$ command` of a console block and the lines shown under it.
#[derive(Debug)]
struct Example {
    command: String,
    shown: Vec<String>,
}

fn examples(markdown: &str, program: &str) -> Vec<Example> {
    let mut all = Vec::new();
    let mut in_console = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_console = line.trim() == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            all.push(Example {
                command: cmd.to_owned(),
                shown: Vec::new(),
            });
        } else if let Some(last) = all.last_mut() {
            last.shown.push(line.to_owned());
        }
    }
    all.retain(|e| e.command.starts_with(&format!("{program} ")));
    all
}

/// `line` with run ids, times and durations replaced by placeholders, and runs of
/// spaces by one.
fn normal(line: &str) -> String {
    let mut words = Vec::new();
    for w in line.split_whitespace() {
        words.push(normal_word(w));
    }
    words.join(" ")
}

fn normal_word(w: &str) -> String {
    let is_hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
    let mut out = String::new();
    let mut rest = w;
    while !rest.is_empty() {
        // A UUID (8-4-4-4-12).
        if rest.len() >= 36
            && rest.is_char_boundary(36)
            && rest[..36].split('-').map(str::len).eq([8, 4, 4, 4, 12])
            && rest[..36].split('-').all(is_hex)
        {
            out.push_str("<ID>");
            rest = &rest[36..];
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c.is_ascii_digit() {
            // A number with its unit: a time of day, a date or a duration.
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-')))
                .unwrap_or(rest.len());
            let token = &rest[..end];
            let unitless = token.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let unit = &token[unitless.len()..];
            if matches!(unit, "ms" | "s" | "Z") || token.contains('m') && unit == "s" {
                out.push_str("<N>");
                rest = &rest[end..];
                continue;
            }
            if token.len() == 10 && token.matches('-').count() == 2 {
                out.push_str("<DATE>");
                rest = &rest[end..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Whether `shown` (a guide's line, where `…` stands for any text) is `actual`.
fn same(shown: &str, actual: &str) -> bool {
    let parts: Vec<&str> = shown.split('…').map(str::trim).collect();
    if parts.len() == 1 {
        return shown == actual;
    }
    let mut at = 0;
    for (i, p) in parts.iter().enumerate() {
        match actual[at..].find(p) {
            Some(found) if i > 0 || found == 0 => at += found + p.len(),
            _ => return false,
        }
    }
    parts.last().is_some_and(|p| p.is_empty()) || at == actual.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_guide_console_examples_hold() {
    let guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/guide/cli.md"))
            .unwrap();
    let app = App::new()
        .name("catalog")
        .workflow(examples::catalog::macros::catalog().unwrap());
    let dir = crate::cli::temp_dir("guide");
    let store = format!("sqlite://{}", dir.join("dagforge.db").display());
    let mut latest: Option<String> = None;
    let mut ran = 0;
    for ex in examples(&guide, "catalog") {
        if let Some((_, why)) = NOT_RUN.iter().find(|(k, _)| ex.command.contains(k)) {
            eprintln!("not run: `{}`: {why}", ex.command);
            continue;
        }
        let mut args: Vec<String> = Vec::new();
        for w in ex.command.split_whitespace() {
            if w == ">" {
                break;
            }
            // A run id in a command: the newest run here.
            let w = if normal_word(w) == "<ID>" {
                latest.clone().unwrap_or_else(|| w.to_owned())
            } else {
                w.to_owned()
            };
            args.push(w);
        }
        // `--executor process` runs the same jobs in workers of the real binary; here,
        // in-process (the outputs are the same).
        if let Some(i) = args.iter().position(|a| a == "--executor") {
            args.drain(i..i + 2);
        }
        args.extend(["--store".to_owned(), store.clone()]);
        let out = app.run_from(&args).await;
        ran += 1;
        // The guide's store is the default one, in the current directory.
        let printed: Vec<String> = out
            .stdout
            .lines()
            .chain(out.stderr.lines())
            .map(|l| normal(&l.replace(&store, "sqlite://dagforge.db")))
            .collect();
        let shows_error = ex.shown.iter().any(|l| l.starts_with("error:"));
        assert_eq!(
            out.code != 0,
            shows_error,
            "`{}` exited with {}:\n{}{}",
            ex.command,
            out.code,
            out.stdout,
            out.stderr
        );
        for line in &ex.shown {
            let want = normal(line);
            if want.is_empty() || want == "…" {
                continue;
            }
            assert!(
                printed.iter().any(|p| same(&want, p)),
                "the guide shows `{line}` under `$ {}`, which printed:\n{}{}",
                ex.command,
                out.stdout,
                out.stderr
            );
        }
        let ids = dagforge::store::SqliteStore::open(&store).await.unwrap();
        let page = dagforge::store::RunQueries::list_runs(
            &ids,
            &dagforge::store::RunQuery::new().limit(1),
        )
        .await
        .unwrap();
        latest = page.items.first().map(|r| r.id.to_string());
    }
    assert!(ran >= 12, "only {ran} examples ran");
}

#[test]
fn normalising_puts_ids_times_and_durations_aside() {
    assert_eq!(
        normal("run 01a2293d-cced-72ff-b60e-699b30700a60 succeeded in 822.8ms"),
        "run <ID> succeeded in <N>"
    );
    assert_eq!(
        normal("2026-11-29 21:37:25Z  publish #1"),
        "<DATE> <N> publish #1"
    );
    assert_eq!(
        normal("  0.313s  integration[1]  2m05s"),
        "<N> integration[1] <N>"
    );
    assert_eq!(normal("markets  1  v1"), "markets 1 v1");
    assert!(same(
        "integrating it from datasets/…/catalog.parquet",
        "integrating it from datasets/x/catalog.parquet"
    ));
    assert!(!same("a … b", "a c"));
}

/// The guides are read on GitHub, in a local Markdown reader and, the pages that
/// `dagforge::guide` includes, in rustdoc: a link must work in all of them, so no
/// rustdoc-only paths (`crate::guide::…`) anywhere, and no links relative to the file
/// in the pages rustdoc shows (it moves the page).
#[test]
fn guide_links_work_outside_rustdoc_too() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/guide");
    let in_rustdoc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../engine/src/guide.rs"
    ))
    .unwrap();
    let mut bad = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let rustdoc = in_rustdoc.contains(&format!("guide/{name}\""));
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            for link in line.split("](").skip(1) {
                let target = link.split(')').next().unwrap_or_default();
                let relative = rustdoc && !target.contains("://") && !target.starts_with('#');
                if target.starts_with("crate::") || target.starts_with("super::") || relative {
                    bad.push(format!("{}:{}: {target}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "links that break outside rustdoc or inside it:\n{}",
        bad.join("\n")
    );
}
