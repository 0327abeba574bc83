//! Spawn rate of no-op executions through the process executor, and its overhead per
//! execution next to a bare fork+exec of the same worker.
//!
//! ```sh
//! cargo bench -p benches --bench process
//! PROCESS_BENCH_ITEMS=1000 PROCESS_BENCH_CONCURRENCY=1,2,4,8 cargo bench -p benches --bench process
//! ```
//!
//! This binary is its own worker: started with `DAGFORGE_WORKER=1` it runs
//! `dagforge::worker::run` (a multi-thread tokio runtime, as `#[tokio::main]` gives).
//!
//! - **bare fork+exec**: `std::process::Command` starts the worker for one no-op
//!   execution (invocation in the environment, `null` on the protocol socket on its
//!   stdin) and waits for it;
//!   serial; min / p50 / p99 per execution.
//! - **executor, serial runs**: one-node runs, one after the other, through an engine
//!   (memory store) with the process executor; min / p50 / p99 per run (the job's
//!   process start to the run's result, orchestration included). The p50 overhead is
//!   this p50 minus the bare p50.
//! - **executor, fan-out**: one run whose node fans out over `PROCESS_BENCH_ITEMS`
//!   no-op items (one worker process each), with the executor's concurrency limit at
//!   each of `PROCESS_BENCH_CONCURRENCY`; executions per second.

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use dagforge::prelude::*;
use dagforge::worker::Invocation;
use dagforge::{ProcessExecutor, RunId};

struct Noop;
impl Job for Noop {
    type Input = ();
    type Output = ();
    const NAME: &'static str = "noop";
    async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
        Ok(())
    }
}

struct Item;
impl Job for Item {
    type Input = u32;
    type Output = ();
    const NAME: &'static str = "item";
    async fn run(&self, _: &JobContext, _: u32) -> Result<(), JobError> {
        Ok(())
    }
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (v[0], at(0.5), at(0.99))
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn executor(concurrency: usize) -> ProcessExecutor {
    ProcessExecutor::builder()
        .args(Vec::<String>::new())
        .concurrency(concurrency)
        .build()
}

/// One bare start of the worker for a no-op execution.
fn bare(exe: &std::path::Path) -> Duration {
    let invocation = Invocation::from_vars(|name| match name {
        dagforge::worker::ENV_JOB => Some("noop".into()),
        dagforge::worker::ENV_RUN_ID => Some(RunId::new().to_string().into()),
        dagforge::worker::ENV_NODE => Some("bare".into()),
        dagforge::worker::ENV_ATTEMPT => Some("1".into()),
        dagforge::worker::ENV_PROTOCOL => Some(dagforge::worker::VERSION.to_string().into()),
        _ => None,
    })
    .expect("a valid invocation");
    let t = Instant::now();
    // The protocol channel: a socket on the worker's stdin, as the executor gives it.
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
    let child = Command::new(exe)
        .envs(invocation.to_vars())
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the worker");
    ours.write_all(b"null").expect("write the input");
    ours.shutdown(std::net::Shutdown::Write)
        .expect("end the input");
    let out = child.wait_with_output().expect("wait for the worker");
    let took = t.elapsed();
    let mut protocol = String::new();
    std::io::Read::read_to_string(&mut ours, &mut protocol).expect("read the protocol lines");
    assert!(
        out.status.success() && protocol.contains(r#""type":"output""#),
        "bare worker failed: {out:?} {protocol}"
    );
    took
}

fn main() -> ExitCode {
    if dagforge::worker::is_worker_invocation() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let mut registry = Registry::new();
        registry
            .register(Noop)
            .and_then(|r| r.register(Item))
            .expect("distinct job names");
        return runtime.block_on(dagforge::worker::run(&registry));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench());
    ExitCode::SUCCESS
}

async fn bench() {
    let exe = std::env::current_exe().expect("this binary");
    let serial = env_num("PROCESS_BENCH_SERIAL", 200);
    let items = env_num("PROCESS_BENCH_ITEMS", 500) as u32;
    let levels: Vec<usize> = std::env::var("PROCESS_BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "1,2,4,8".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("process executor bench: {cores} cores, {serial} serial executions, {items} items");

    // Bare fork+exec (blocking, off the runtime's workers).
    let bare_exe = exe.clone();
    let bare_times = tokio::task::spawn_blocking(move || {
        for _ in 0..5 {
            bare(&bare_exe);
        }
        (0..serial).map(|_| bare(&bare_exe)).collect::<Vec<_>>()
    })
    .await
    .expect("the bare loop");
    let (bmin, bp50, bp99) = percentiles(bare_times);

    // Serial one-node runs through the executor.
    let mut wf = Workflow::builder("one");
    wf.add("noop", Noop);
    let one = wf.build().expect("a valid workflow");
    let engine = Engine::builder().executor(executor(1)).build();
    for _ in 0..5 {
        assert!(engine.run(&one, ()).await.expect("run").is_success());
    }
    let mut runs = Vec::with_capacity(serial);
    for _ in 0..serial {
        let t = Instant::now();
        let r = engine.run(&one, ()).await.expect("run");
        runs.push(t.elapsed());
        assert!(r.is_success(), "{}", r.table());
    }
    let (emin, ep50, ep99) = percentiles(runs);

    println!();
    println!("| per execution, serial | min ms | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    println!(
        "| bare fork+exec of the worker | {} | {} | {} |",
        ms(bmin),
        ms(bp50),
        ms(bp99)
    );
    println!(
        "| one-node run, process executor | {} | {} | {} |",
        ms(emin),
        ms(ep50),
        ms(ep99)
    );
    println!(
        "| p50 overhead of the executor + engine | | {} | |",
        ms(ep50.saturating_sub(bp50))
    );

    println!();
    println!("| fan-out of {items} no-op items, executor concurrency | executions/s | wall s |");
    println!("|---:|---:|---:|");
    for &c in &levels {
        let mut wf = Workflow::builder("fan");
        let list: Vec<u32> = (0..items).collect();
        wf.add("items", Item).each_input(Source::value(list));
        let fan = wf.build().expect("a valid workflow");
        let engine = Engine::builder().executor(executor(c)).build();
        let t = Instant::now();
        let r = engine.run(&fan, ()).await.expect("run");
        let took = t.elapsed();
        assert!(r.is_success(), "{}", r.table());
        let n = r.node("items").map_or(0, |n| n.items.len());
        assert_eq!(n, items as usize, "every item ran");
        println!(
            "| {c} | {:.0} | {:.2} |",
            f64::from(items) / took.as_secs_f64(),
            took.as_secs_f64()
        );
    }
}
