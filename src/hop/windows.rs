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

/// Whether this process was started by `supervisor`. std has no parent pid
/// on Windows; the environment variable that names the supervisor is
/// trusted.
pub(crate) fn supervised_by(_supervisor: u32) -> bool {
    true
}

/// Windows has no gentle request to end a console-less process through
/// std: the child is killed when its time is up.
pub(crate) fn ask_to_stop(_child: &std::process::Child) {}

/// Console control events reach the whole console group by themselves;
/// nothing to catch or pass on.
pub(crate) struct Interrupts;

impl Interrupts {
    pub(crate) fn catch() -> Interrupts {
        Interrupts
    }

    pub(crate) fn forward(&self, _child: &std::process::Child) {}
}

/// How a trial launch ended, from its exit status (an NTSTATUS exception
/// code such as 0xC0000005 is a crash; 0xC0000135 a missing DLL).
pub(crate) fn ending(status: std::process::ExitStatus) -> super::trial::Ending {
    use super::trial::Ending;
    match status.code() {
        Some(0) => Ending::Success,
        Some(code) if code as u32 == 0xC000_0135 => {
            Ending::Failed("could not start (0xC0000135: a missing DLL)".into())
        }
        Some(code) if code as u32 >= 0xC000_0000 => {
            Ending::Failed(format!("crashed (exception 0x{:08X})", code as u32))
        }
        Some(code) => Ending::Failed(format!("exited with status {code}")),
        None => Ending::Failed(format!("ended with {status}")),
    }
}

/// Ends this process the way `status` says its child ended.
pub(crate) fn exit_like(status: std::process::ExitStatus) -> ! {
    std::process::exit(status.code().unwrap_or(1))
}

/// Whether a failure to start the new version is the release's own fault
/// (not a valid executable, or a file it needs is missing) rather than
/// this machine's.
pub(crate) fn release_cannot_start(e: &io::Error) -> bool {
    const ERROR_BAD_EXE_FORMAT: i32 = 193;
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ERROR_BAD_EXE_FORMAT)
}
