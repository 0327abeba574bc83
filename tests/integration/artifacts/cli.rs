//! Where an App (the CLI) puts artifacts, through the real binary: `--artifacts`, then
//! `DAGFORGE_ARTIFACTS`, then `artifacts` in the config file, else a private directory
//! beside the SQLite store's file; a bad setting is a usage error naming it, without the
//! URL's secrets.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::TempDir;

/// Runs the test App in `dir` with the `DAGFORGE_*` variables cleared and `env` set:
/// (exit code, stdout, stderr).
fn app(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dagforge-cli-app"));
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("DAGFORGE_") {
            cmd.env_remove(k);
        }
    }
    // The per-user default must not be where these tests look.
    cmd.env("HOME", dir.join("home"));
    cmd.env_remove("XDG_DATA_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn workdir() -> TempDir {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    dir
}

/// The files named `kept.txt` under `root`.
fn kept(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "kept.txt") {
                found.push(path);
            }
        }
    }
    found
}

fn run_keep(dir: &Path, extra: &[&str], env: &[(&str, &str)]) {
    let mut args = vec![
        "run",
        "cli-artifact",
        "--wait",
        "--store",
        "sqlite://state.db",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = app(dir, &args, env);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn by_default_artifacts_go_beside_the_database_in_a_private_directory() {
    let dir = workdir();
    run_keep(&dir.0, &[], &[]);
    let root = dir.0.join("state-artifacts");
    assert_eq!(kept(&root).len(), 1, "{}", root.display());
    let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(kept(&dir.0.join("home")).is_empty());
}

#[test]
fn the_setting_is_honoured_flag_over_env_over_file() {
    let dir = workdir();
    let url = |name: &str| format!("file://{}", dir.0.join(name).display());
    // The config file.
    std::fs::write(
        dir.0.join("dagforge.toml"),
        format!("artifacts = \"{}\"\n", url("from-file")),
    )
    .unwrap();
    run_keep(&dir.0, &[], &[]);
    assert_eq!(kept(&dir.0.join("from-file")).len(), 1);
    // The environment over the file.
    run_keep(&dir.0, &[], &[("DAGFORGE_ARTIFACTS", &url("from-env"))]);
    assert_eq!(kept(&dir.0.join("from-env")).len(), 1);
    // The flag over the environment.
    let flag = url("from-flag");
    run_keep(
        &dir.0,
        &["--artifacts", &flag],
        &[("DAGFORGE_ARTIFACTS", &url("not-this"))],
    );
    assert_eq!(kept(&dir.0.join("from-flag")).len(), 1);
    assert!(!dir.0.join("not-this").exists());
    assert_eq!(
        kept(&dir.0.join("from-file")).len(),
        1,
        "once, the first time"
    );
    assert!(!dir.0.join("state-artifacts").exists());
}

#[test]
fn a_bad_setting_is_a_usage_error_naming_it_without_secrets() {
    let dir = workdir();
    for args in [
        &["runs", "list"][..],
        &[
            "run",
            "cli-artifact",
            "--wait",
            "--store",
            "sqlite://state.db",
        ][..],
    ] {
        let (code, out, err) = app(
            &dir.0,
            args,
            &[(
                "DAGFORGE_ARTIFACTS",
                "ftp://ops:hunter2@files.example/x?token=s3cr3t",
            )],
        );
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains("DAGFORGE_ARTIFACTS"), "{err}");
        assert!(err.contains("unknown scheme"), "{err}");
        for secret in ["hunter2", "s3cr3t"] {
            assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
        }
    }
    let (code, _, err) = app(
        &dir.0,
        &["runs", "list", "--artifacts", "relative/dir"],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--artifacts"), "{err}");
    // A directory others may write to.
    let open = dir.0.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let url = format!("file://{}", open.display());
    let (code, out, err) = app(
        &dir.0,
        &["run", "cli-artifact", "--wait", "--artifacts", &url],
        &[],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("writable by group or others"), "{err}");
    assert!(kept(&open).is_empty());
}
