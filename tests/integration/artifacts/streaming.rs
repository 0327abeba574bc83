//! A large artifact moves from one node to the next through `file://` in bounded
//! memory. The measurement runs in a child process of this test binary, so that
//! the memory of tests running alongside does not count.

use dagforge::artifact::{ArtifactRef, Blob, Bytes};
use dagforge::prelude::*;
use futures_util::StreamExt;

/// Bytes moved by the test.
const SIZE: u64 = 64 * 1024 * 1024;
/// Most the peak RSS may grow while moving them (half the payload; the transfer
/// itself needs about part size × (parts in flight + 1) = 24 MiB at most).
const LIMIT_KIB: u64 = 32 * 1024;

/// The `i`-th generated chunk (256 KiB, content depends on `i`).
fn chunk(i: u64) -> Bytes {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(256 * 1024);
    while out.len() < 256 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(out)
}

/// Order-sensitive checksum of a byte sequence, fed chunk by chunk.
fn fold(mut acc: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        acc = acc.rotate_left(5) ^ u64::from(b);
    }
    acc
}

#[job]
async fn generate(ctx: &JobContext, size: u64) -> Result<ArtifactRef<Blob>, JobError> {
    let chunks = size.div_ceil(256 * 1024);
    let stream = futures_util::stream::iter(0..chunks).map(move |i| {
        let mut c = chunk(i);
        let end = ((i + 1) * 256 * 1024).min(size);
        c.truncate((end - i * 256 * 1024) as usize);
        Ok::<_, std::io::Error>(c)
    });
    Ok(ctx.save_stream("big.bin", stream).await?)
}

#[job]
async fn consume(ctx: &JobContext, data: ArtifactRef<Blob>) -> Result<(u64, u64), JobError> {
    let mut stream = ctx.load_stream(&data).await?;
    let (mut n, mut acc) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        n += chunk.len() as u64;
        acc = fold(acc, &chunk);
    }
    Ok((n, acc))
}

#[workflow(name = "artifact-streaming")]
fn streaming(size: u64) {
    let data = generate(size);
    let sum = consume(data);
}

#[cfg(target_os = "linux")]
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn a_64_mib_artifact_moves_between_nodes_in_bounded_memory() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "artifacts::streaming::measure_in_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DAGFORGE_STREAMING_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let delta: u64 = stdout
        .lines()
        .find_map(|l| l.split_once("PEAK_RSS_GROWTH_KIB=").map(|(_, v)| v))
        .unwrap_or_else(|| panic!("no measurement in: {stdout}"))
        .trim()
        .parse()
        .unwrap();
    eprintln!(
        "moving {} MiB grew the peak RSS by {} KiB",
        SIZE >> 20,
        delta
    );
    assert!(
        delta < LIMIT_KIB,
        "peak RSS grew by {delta} KiB moving {SIZE} bytes (limit {LIMIT_KIB} KiB)"
    );
}

/// The measurement, in the child process.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "run in a child process by a_64_mib_artifact_moves_between_nodes_in_bounded_memory"]
fn measure_in_child() {
    if std::env::var_os("DAGFORGE_STREAMING_CHILD").is_none() {
        eprintln!("only meaningful in the child process; see the test above");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = super::TempDir::new();
    let store = dagforge::artifact::ArtifactConfig::local(&dir.0)
        .unwrap()
        .part_size(5 * 1024 * 1024)
        .upload_concurrency(2)
        .build()
        .unwrap();
    let engine = Engine::builder().artifacts(store).build();
    let wf = streaming().unwrap();
    let expected = (0..SIZE / (256 * 1024)).fold(0, |acc, i| fold(acc, &chunk(i)));

    // A small run first: the code the run goes through is paged in before the
    // measurement (file-backed pages count in VmHWM too, and a test binary with every
    // feature is large), so that what is measured is the data the move holds.
    let warm = rt
        .block_on(engine.run(&wf, serde_json::json!({ "size": 1 << 20 })))
        .unwrap();
    assert!(warm.is_success(), "{}", warm.table());
    // Reset the peak to the current RSS (Linux: `echo 5 > /proc/self/clear_refs`).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = vm_hwm_kib();
    let run = rt
        .block_on(engine.run(&wf, serde_json::json!({ "size": SIZE })))
        .unwrap();
    let after = vm_hwm_kib();
    assert!(run.is_success(), "{}", run.table());
    assert_eq!(run.output::<(u64, u64)>("sum").unwrap(), (SIZE, expected));
    println!("PEAK_RSS_GROWTH_KIB={}", after.saturating_sub(before));
}
