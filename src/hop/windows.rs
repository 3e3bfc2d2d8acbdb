//! Windows: a process cannot be replaced in place, so the new one is spawned
//! and this one exits; the files of the exited process stay locked for a
//! moment, so replacing them retries for a while. (std only; not compiled on
//! the Linux CI.)

use std::io;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::Relaunch;

/// Starts `relaunch` and exits this process; returns only when the spawn failed.
pub(crate) fn replace_process(relaunch: &Relaunch) -> io::Error {
    let spawned = Command::new(&relaunch.program)
        .args(&relaunch.args)
        .env(super::ENV_HOPS, relaunch.hops.to_string())
        .spawn();
    match spawned {
        Ok(_) => std::process::exit(0),
        Err(e) => e,
    }
}

/// Replaces `dst` by `src`, retrying for up to 30 s while `dst` is still held
/// open by the process that is exiting.
pub(crate) fn replace_file(src: &Path, dst: &Path) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match std::fs::rename(src, dst) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}
