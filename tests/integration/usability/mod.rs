//! The CLI as a user meets it (issue 18): run ids by prefix and `@latest`, `--json`
//! shapes, outputs and errors in `runs show` and `runs logs`, fan-out retries shown
//! with their real states, `runs watch`, `serve`'s lines, `jobs run`, the help's
//! examples run as shown, and the guides' shell examples kept true.

mod app_bin;
mod guides;
mod runs;
