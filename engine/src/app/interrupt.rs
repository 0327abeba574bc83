//! Ctrl-C, heard on a thread of its own, and leaving at once on the second one.
//!
//! The application's runtime hears Ctrl-C only while one of its worker threads is
//! free to run the signal driver, and a job that blocks its thread (a
//! `std::thread::sleep` loop, blocking I/O) can take them all; shutting that runtime
//! down then waits for the blocked thread forever. So interrupts are counted on a
//! dedicated thread with a one-thread runtime of its own, which wakes whoever waits for
//! them from any thread. From the second interrupt on, a command leaves with
//! [`exit`] (after recording what it can) instead of returning, and this thread makes
//! sure the process ends soon (within [`LAST_CHANCE`] unless the command said
//! otherwise) even if the command cannot get that far: it prints the command's
//! [fallback](Interrupts::fallback) message and exits.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

/// How long after the second interrupt the process ends, whatever the command is doing.
pub(super) const LAST_CHANCE: Duration = Duration::from_millis(1500);

/// Exit code of an interrupted command (128 + SIGINT, as shells report it).
pub(super) const INTERRUPTED: i32 = 130;

/// The interrupt count, from the listener thread (`None`: it could not start).
static COUNT: OnceLock<Option<watch::Receiver<u32>>> = OnceLock::new();

/// What to print when the process has to end on its own after a second interrupt,
/// and how long to give the command before that.
static FALLBACK: Mutex<Option<(String, Duration)>> = Mutex::new(None);

/// Set by the first of the command and the listener thread to start leaving.
static LEAVING: AtomicBool = AtomicBool::new(false);

/// Interrupts (Ctrl-C, SIGINT) received since [`listen`](Interrupts::listen).
#[derive(Debug)]
pub(super) struct Interrupts {
    rx: Option<watch::Receiver<u32>>,
    base: u32,
}

impl Interrupts {
    /// Starts the listener thread (once per process) and counts interrupts from now.
    pub(super) fn listen() -> Self {
        let rx = COUNT.get_or_init(start).clone();
        let base = rx.as_ref().map_or(0, |rx| *rx.borrow());
        Interrupts { rx, base }
    }

    /// Waits for the next interrupt and returns how many there were since
    /// [`listen`](Interrupts::listen). Never completes if the listener could not start.
    pub(super) async fn next(&mut self) -> u32 {
        let Some(rx) = self.rx.as_mut() else {
            return std::future::pending().await;
        };
        if rx.changed().await.is_err() {
            // The listener thread ended (the process is going).
            return std::future::pending().await;
        }
        rx.borrow_and_update().wrapping_sub(self.base)
    }

    /// What the listener prints if the process must end on its own, `after` a second
    /// interrupt (the command did not get to [`exit`] itself): it must describe what
    /// the store holds whether or not the command recorded anything.
    pub(super) fn fallback(&self, message: impl Into<String>, after: Duration) {
        *FALLBACK.lock().unwrap_or_else(|e| e.into_inner()) = Some((message.into(), after));
    }
}

/// Starts the listener thread.
fn start() -> Option<watch::Receiver<u32>> {
    let (tx, rx) = watch::channel(0u32);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C on a thread of its own");
            return None;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("dagforge-interrupts".to_owned())
        .spawn(move || {
            while rt.block_on(tokio::signal::ctrl_c()).is_ok() {
                let mut n = 0;
                tx.send_modify(|c| {
                    *c = c.wrapping_add(1);
                    n = *c;
                });
                if n >= 2 {
                    // From the second interrupt on, the process ends soon whatever
                    // the command is doing.
                    let fallback = FALLBACK.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let (message, after) = match fallback {
                        Some((m, after)) => (Some(m), after),
                        None => (None, LAST_CHANCE),
                    };
                    std::thread::spawn(move || {
                        std::thread::sleep(after);
                        exit(message.as_deref(), INTERRUPTED);
                    });
                }
            }
        });
    match spawned {
        Ok(_) => Some(rx),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C on a thread of its own");
            None
        }
    }
}

/// Ends the process now: prints `message` (if any) on standard error, flushes
/// standard output and error, and exits with `code` without shutting the runtime down
/// (that would wait for threads that jobs may be blocking). If the process is already
/// leaving (the listener's deadline and the command raced), waits for that instead.
pub(super) fn exit(message: Option<&str>, code: i32) -> ! {
    if LEAVING.swap(true, Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    let mut err = std::io::stderr().lock();
    if let Some(m) = message {
        let _ = writeln!(err, "{m}");
    }
    let _ = err.flush();
    let _ = std::io::stdout().lock().flush();
    leave(code)
}

#[allow(
    clippy::exit,
    reason = "a second Ctrl-C must end the process at once: returning would shut the \
              runtime down, which waits for worker threads that blocking jobs may hold forever"
)]
fn leave(code: i32) -> ! {
    std::process::exit(code)
}
