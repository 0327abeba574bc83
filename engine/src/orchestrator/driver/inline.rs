//! Running a sequential stretch's one attempt inside the driver task (see
//! `Executor::runs_inline`).

use super::Driver;
use crate::error::{ErrorInfo, ErrorKind};
use crate::executor::Execution;
use crate::signal::Signal;

impl Driver {
    /// Runs one attempt inside the driver task while still serving the run's signals
    /// (log lines, progress, cancellation and its grace deadline), then applies its
    /// outcome.
    pub(super) async fn run_inline(&mut self, key: usize, exec: Execution) {
        let attempt = exec.run_inline();
        tokio::pin!(attempt);
        loop {
            tokio::select! {
                biased;
                outcome = &mut attempt => {
                    // Log lines the attempt sent just before finishing come first.
                    while let Ok((k, signal)) = self.rx.try_recv() {
                        self.signals.push((k, signal));
                    }
                    self.clock();
                    let mut signals = std::mem::take(&mut self.signals);
                    for (k, signal) in signals.drain(..) {
                        self.on_signal(k, signal);
                    }
                    self.signals = signals;
                    self.on_signal(key as u32, Signal::Done(outcome));
                    self.continue_step = true;
                    return;
                }
                () = async {
                    match self.deadline.as_mut() {
                        Some(d) => d.as_mut().await,
                        None => std::future::pending().await,
                    }
                }, if self.deadline.is_some() => {
                    self.clock();
                    self.deadline = None;
                    // Dropping the attempt's future stops it, as aborting a task would.
                    let e = ErrorInfo::new(
                        ErrorKind::Cancelled,
                        format!("stopped after the cancellation grace period ({:?})", self.sh.grace),
                    );
                    self.on_signal(key as u32, Signal::Done(Err(e)));
                    self.continue_step = true;
                    return;
                }
                () = self.renew.as_mut() => {
                    self.renew_lease().await;
                    if self.lost.is_some() {
                        return;
                    }
                }
                _ = self.rx.recv_many(&mut self.signals, 1024) => {
                    self.clock();
                    let mut signals = std::mem::take(&mut self.signals);
                    for (k, signal) in signals.drain(..) {
                        self.on_signal(k, signal);
                    }
                    self.signals = signals;
                    self.flush().await;
                    if self.lost.is_some() {
                        return;
                    }
                }
            }
        }
    }
}
