//! A worker's console output (what the job prints on stdout and stderr), forwarded to
//! the run's log within a byte limit per attempt: the head and the tail are kept, the
//! middle is dropped with a marker line saying how much.

use std::collections::VecDeque;

use crate::context::JobContext;
use crate::log_level::LogLevel;

/// The longest console line kept; the rest of a longer line is dropped (and said so).
pub(in crate::executor) const MAX_LINE: usize = 16 << 10;

/// The console lines of one attempt.
pub(in crate::executor) struct Console {
    limit: usize,
    /// What may still be logged as it comes (the head: half the limit).
    live_left: usize,
    /// The lines after the head, held back: only the last half of the limit is kept.
    held: VecDeque<String>,
    held_bytes: usize,
    holding: bool,
    dropped_lines: u64,
    dropped_bytes: u64,
    total_bytes: u64,
}

impl Console {
    pub(in crate::executor) fn new(limit: usize) -> Self {
        Console {
            limit,
            live_left: limit / 2,
            held: VecDeque::new(),
            held_bytes: 0,
            holding: false,
            dropped_lines: 0,
            dropped_bytes: 0,
            total_bytes: 0,
        }
    }

    /// The tail's share of the limit.
    fn tail_budget(&self) -> usize {
        self.limit - self.limit / 2
    }

    /// One console line (`[stdout] …`, `[stderr] …`): logged now while the head's
    /// budget lasts, held back after that.
    pub(in crate::executor) fn push(&mut self, ctx: &JobContext, line: String) {
        let n = line.len();
        self.total_bytes += n as u64;
        if !self.holding {
            if n <= self.live_left {
                self.live_left -= n;
                ctx.log(LogLevel::Info, line);
                return;
            }
            self.holding = true;
            ctx.log(
                LogLevel::Warn,
                format!(
                    "[console] this attempt's console output reached half of its {}-byte limit \
                     (ProcessExecutorBuilder::console_limit): later lines are held back and \
                     only the last {} bytes of them are logged, when the worker ends",
                    self.limit,
                    self.tail_budget()
                ),
            );
        }
        self.held_bytes += n;
        self.held.push_back(line);
        while self.held_bytes > self.tail_budget() {
            let Some(first) = self.held.pop_front() else {
                break;
            };
            self.held_bytes -= first.len();
            self.dropped_lines += 1;
            self.dropped_bytes += first.len() as u64;
        }
    }

    /// The worker ended: the marker for what was dropped, then the held-back tail.
    pub(in crate::executor) fn finish(&mut self, ctx: &JobContext) {
        if self.dropped_lines > 0 {
            ctx.log(
                LogLevel::Warn,
                format!(
                    "[console] {} console lines ({} bytes) dropped here: this attempt printed \
                     {} bytes, over its {}-byte console limit \
                     (ProcessExecutorBuilder::console_limit); its first and last lines are kept",
                    self.dropped_lines, self.dropped_bytes, self.total_bytes, self.limit
                ),
            );
        }
        for line in self.held.drain(..) {
            ctx.log(LogLevel::Info, line);
        }
        self.held_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::mpsc::unbounded_channel;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::ids::RunId;
    use crate::signal::{Signal, SignalSender};

    fn logged(limit: usize, lines: impl IntoIterator<Item = String>) -> Vec<(LogLevel, String)> {
        let (tx, mut rx) = unbounded_channel();
        let ctx = JobContext::new(
            RunId::new(),
            Arc::from("n"),
            None,
            1,
            CancellationToken::new(),
            Some(SignalSender::new(tx, 0)),
        );
        let mut console = Console::new(limit);
        for l in lines {
            console.push(&ctx, l);
        }
        console.finish(&ctx);
        drop(ctx);
        let mut out = Vec::new();
        while let Ok((_, s)) = rx.try_recv() {
            if let Signal::Log { level, message } = s {
                out.push((level, message));
            }
        }
        out
    }

    #[test]
    fn under_the_limit_every_line_is_logged_in_order() {
        let lines: Vec<String> = (0..10).map(|i| format!("[stdout] {i}")).collect();
        let out = logged(1000, lines.clone());
        let messages: Vec<String> = out.into_iter().map(|(_, m)| m).collect();
        assert_eq!(messages, lines);
    }

    #[test]
    fn over_the_limit_the_head_and_the_tail_are_kept_with_a_marker() {
        // 10,000 lines of 10 bytes against a 1,000-byte limit.
        let lines: Vec<String> = (0..10_000).map(|i| format!("[o] {i:06}")).collect();
        let out = logged(1000, lines.clone());
        let kept: usize = out
            .iter()
            .filter(|(l, _)| *l == LogLevel::Info)
            .map(|(_, m)| m.len())
            .sum();
        assert!(kept <= 1000, "{kept}");
        let messages: Vec<&str> = out.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(messages[0], "[o] 000000", "the head");
        assert_eq!(*messages.last().unwrap(), "[o] 009999", "the tail");
        let marker = messages
            .iter()
            .find(|m| m.contains("dropped here"))
            .expect("a marker");
        assert!(
            marker.contains("9900 console lines (99000 bytes)"),
            "{marker}"
        );
        assert!(marker.contains("printed 100000 bytes"), "{marker}");
        assert!(marker.contains("1000-byte console limit"), "{marker}");
        // The marker stands between the head and the tail.
        let at = messages
            .iter()
            .position(|m| m.contains("dropped here"))
            .unwrap();
        assert_eq!(messages[at - 2], "[o] 000049");
        assert!(
            messages[at - 1].contains("held back"),
            "{}",
            messages[at - 1]
        );
        assert_eq!(messages[at + 1], "[o] 009950");
    }
}
