//! Unix: the process is replaced in place by `exec`, keeping its PID.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::Relaunch;

/// Replaces this process by `relaunch`; returns only when exec failed.
pub(crate) fn replace_process(relaunch: &Relaunch) -> io::Error {
    let mut command = Command::new(&relaunch.program);
    command
        .args(&relaunch.args)
        .env(super::ENV_HOPS, relaunch.hops.to_string());
    if let Some(count) = crate::failpoint::count() {
        command.env("LEAPFROG_FP_COUNT", count.to_string());
    }
    command.exec()
}

/// Replaces `dst` by `src` with one rename. Unix lets a running binary be
/// renamed over, so there is nothing to wait for.
pub(crate) fn replace_file(src: &Path, dst: &Path) -> io::Result<()> {
    std::fs::rename(src, dst)
}

/// Whether this process was started by `supervisor` (a pid): its parent.
pub(crate) fn supervised_by(supervisor: u32) -> bool {
    std::os::unix::process::parent_id() == supervisor
}

fn signal(child: &std::process::Child, sig: rustix::process::Signal) {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Asks a child to end (SIGTERM); it is killed if it has not after a while.
pub(crate) fn ask_to_stop(child: &std::process::Child) {
    signal(child, rustix::process::Signal::TERM);
}

/// Requests to end (SIGTERM, SIGHUP, SIGINT) that reach a process watching a
/// trial launch. They are caught, so that the watcher outlives its child
/// and passes its exit status on, and SIGTERM and SIGHUP are passed to the
/// child. (SIGINT from a terminal reaches the child by itself: it is in the
/// same process group.) Handlers, unlike ignored signals, are reset in a
/// child by exec, so the child sees these signals as usual.
pub(crate) struct Interrupts {
    term: std::sync::Arc<std::sync::atomic::AtomicBool>,
    hup: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Interrupts {
    pub(crate) fn catch() -> Interrupts {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let flag = || std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (term, hup, int) = (flag(), flag(), flag());
        for (sig, flag) in [(SIGTERM, &term), (SIGHUP, &hup), (SIGINT, &int)] {
            if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
                log::warn!("cannot catch signal {sig}: {e}");
            }
        }
        Interrupts { term, hup }
    }

    /// Passes the requests received since the last call on to `child`.
    pub(crate) fn forward(&self, child: &std::process::Child) {
        use std::sync::atomic::Ordering;
        if self.term.swap(false, Ordering::SeqCst) {
            signal(child, rustix::process::Signal::TERM);
        }
        if self.hup.swap(false, Ordering::SeqCst) {
            signal(child, rustix::process::Signal::HUP);
        }
    }
}

/// How a trial launch ended, from its exit status.
pub(crate) fn ending(status: std::process::ExitStatus) -> super::trial::Ending {
    use super::trial::Ending;
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        return Ending::Success;
    }
    if let Some(sig) = status.signal() {
        let name = match sig {
            1 => "SIGHUP",
            2 => "SIGINT",
            4 => "SIGILL",
            5 => "SIGTRAP",
            6 => "SIGABRT",
            7 => "SIGBUS",
            8 => "SIGFPE",
            9 => "SIGKILL",
            11 => "SIGSEGV",
            15 => "SIGTERM",
            _ => "signal",
        };
        return match sig {
            1 | 2 | 15 => Ending::Interrupted(format!("was stopped by {name}")),
            _ => Ending::Failed(format!("crashed ({name}, signal {sig})")),
        };
    }
    match status.code() {
        Some(127) => Ending::Failed(
            "could not start (exit status 127: a missing shared library or interpreter)".into(),
        ),
        Some(code) => Ending::Failed(format!("exited with status {code}")),
        None => Ending::Failed(format!("ended with {status}")),
    }
}

/// Ends this process the way `status` says its child ended.
pub(crate) fn exit_like(status: std::process::ExitStatus) -> ! {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    std::process::exit(code)
}

/// Whether a failure to start the new version is the release's own fault
/// (not an executable, or its interpreter is missing) rather than this
/// machine's (an I/O error, no memory, a file system mounted noexec).
pub(crate) fn release_cannot_start(e: &io::Error) -> bool {
    const ENOEXEC: i32 = 8;
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ENOEXEC)
}
