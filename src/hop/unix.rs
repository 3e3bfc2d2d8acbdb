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
