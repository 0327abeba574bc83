//! Cancel means no job body runs: queued, delayed and raced cancels, `run --wait` and Ctrl-C.
