//! Starting a worker: its command, its environment, its protocol channel, and the
//! process group it leads.

use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::process::Stdio;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::{Inner, WorkerCommand};
use crate::artifact::{ENV_URL, Provider};
use crate::error::{ErrorInfo, ErrorKind};
use crate::executor::Execution;
use crate::worker::Invocation;

/// What no worker inherits from the engine's environment: every `DAGFORGE_*` setting
/// (the store URL with its password, the config file, the engine's own options). A
/// worker gets the variables of its invocation, the artifact store's URL, and whatever
/// the executor's `env` and `configure` set explicitly.
const ENGINE_ONLY: &[u8] = b"DAGFORGE_";

/// A started worker: the child and the executor's end of the protocol channel.
pub(super) struct Started {
    pub(super) worker: Worker,
    /// The protocol channel: the input goes out on it, protocol lines come back.
    pub(super) channel: tokio::net::UnixStream,
}

/// Starts the worker of `invocation`.
pub(super) fn start(
    inner: &Inner,
    exec: &Execution,
    program: &std::path::Path,
    invocation: &Invocation,
) -> Result<Started, ErrorInfo> {
    let job = exec.job().name();
    let failed = |what: &str, e: std::io::Error| {
        ErrorInfo::new(
            ErrorKind::Executor,
            format!(
                "job `{job}`: cannot start the worker `{}`: {what}{e}",
                program.display()
            ),
        )
    };
    let mut wc = WorkerCommand {
        args: inner.args.clone(),
        env: Vec::new(),
        current_dir: inner.current_dir.clone(),
    };
    if let Some(f) = &inner.configure {
        f(exec, &mut wc);
    }

    let mut cmd = Command::new(program);
    cmd.args(&wc.args);
    for (name, _) in std::env::vars_os() {
        if name.as_bytes().starts_with(ENGINE_ONLY) {
            cmd.env_remove(name);
        }
    }
    let artifacts = exec.context().artifact_store();
    if artifacts.provider() != Provider::Memory {
        cmd.env(ENV_URL, artifacts.url());
    }
    for (k, v) in &inner.env {
        cmd.env(k, v);
    }
    for (k, v) in invocation.to_vars() {
        cmd.env(k, v);
    }
    for (k, v) in &wc.env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    if let Some(dir) = &wc.current_dir {
        cmd.current_dir(dir);
    }
    // The protocol channel: a socket pair (both ends close-on-exec), the worker's end
    // on its stdin. The worker reads its input there, then takes the socket off fd 0
    // and writes its protocol lines to it; stdout and stderr are the job's console.
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| failed("no socket pair: ", e))?;
    ours.set_nonblocking(true)
        .map_err(|e| failed("socket: ", e))?;
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, which the worker leads: its pgid is its pid.
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| failed("", e))?;
    // The command holds the worker's end of the socket: close it here, or the channel
    // never ends.
    drop(cmd);
    let worker = Worker::new(child);
    let channel = tokio::net::UnixStream::from_std(ours).map_err(|e| failed("socket: ", e))?;
    Ok(Started { worker, channel })
}

/// A worker process, leader of its own process group (spawned with
/// `process_group(0)`, so the group's id is the worker's pid).
///
/// Signals go to the whole group. Dropped before the worker was waited for (the
/// execution was aborted: the engine's grace period ran out, the run's driver went
/// away, the runtime shut down), it kills the group with SIGKILL; the child is then
/// dropped, which kills it again (`kill_on_drop`) and leaves it to tokio's reaper.
pub(super) struct Worker {
    pub(super) child: Child,
    /// The group's id; `None` if the child had no pid (it cannot happen right after
    /// a spawn).
    group: Option<Pid>,
    /// The worker was waited for (its pid is no longer ours).
    reaped: bool,
}

impl Worker {
    fn new(child: Child) -> Self {
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .filter(|&id| id > 0)
            .map(Pid::from_raw);
        Worker {
            child,
            group,
            reaped: false,
        }
    }

    /// Sends `sig` to the worker's process group. Until the worker is reaped its pid
    /// — the group's id — cannot be reused, so the signal reaches only its group.
    pub(super) fn signal(&mut self, sig: Signal) {
        if self.reaped {
            return;
        }
        let sent = self
            .group
            .is_some_and(|g| nix::sys::signal::killpg(g, sig).is_ok());
        if !sent && sig == Signal::SIGKILL {
            // No group to signal (cannot happen): at least the worker itself.
            let _ = self.child.start_kill();
        }
    }

    /// The worker was waited for: kills whatever is left in its group (processes the
    /// job started and did not end), so none outlives the attempt.
    ///
    /// Right after the wait the group's id is still the group's: a pid is reused only
    /// once it is neither a process's nor a group's id, and Linux hands pids out
    /// cyclically, so the id of a group that just emptied comes back only after the
    /// whole pid range was used.
    pub(super) fn exited(&mut self) {
        if !self.reaped {
            self.reaped = true;
            if let Some(g) = self.group {
                // ESRCH: the group is empty already, as it usually is.
                let _ = nix::sys::signal::killpg(g, Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}
