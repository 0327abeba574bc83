//! Whether an S3-compatible server is configured for the S3 artifact tests
//! (`tests/integration/artifacts/s3.rs`): `DAGFORGE_TEST_S3=required` (what `.ci/run`
//! sets), `DAGFORGE_TEST_S3=auto` or `DAGFORGE_TEST_S3_ENDPOINT`. Without any of them
//! the S3 cases are compiled `#[ignore]`d with the reason, so that `ok` always means
//! tested.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(dagforge_s3_server)");
    println!("cargo:rerun-if-env-changed=DAGFORGE_TEST_S3");
    println!("cargo:rerun-if-env-changed=DAGFORGE_TEST_S3_ENDPOINT");
    let mode = std::env::var("DAGFORGE_TEST_S3").unwrap_or_default();
    let endpoint = std::env::var_os("DAGFORGE_TEST_S3_ENDPOINT").is_some();
    if matches!(mode.as_str(), "required" | "auto") || (endpoint && mode != "off") {
        println!("cargo:rustc-cfg=dagforge_s3_server");
    }
}
