//! Windows: file-system calls, and processes that cannot be replaced in
//! place (the new one is spawned and this one exits; the exited process's
//! files stay locked for a moment, so replacing them retries). std only;
//! not compiled on the Linux CI.

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::Relaunch;
use crate::error::{io_err, Result};

/// The bytes this user may still write on the disk of `dir` (through
/// `fs4`, the one call std lacks).
pub(crate) fn available_space(dir: &Path) -> io::Result<u64> {
    fs4::available_space(dir)
}

/// Windows has no execute bit; executables are known by their extension.
pub(crate) fn is_executable(_meta: &Metadata) -> bool {
    false
}

/// Whether two entries are one file. std offers no stable file index on
/// Windows, so this says no, and the caller falls back to its slower path.
pub(crate) fn same_file(_a: &Metadata, _b: &Metadata) -> bool {
    false
}

/// Windows has no execute bit: any mode is the one the file list says.
pub(crate) fn mode_is(_meta: &Metadata, _executable: bool) -> bool {
    true
}

/// Windows has no execute bit: nothing to set.
pub(crate) fn set_executable(_path: &Path, _executable: bool) -> Result<()> {
    Ok(())
}

/// Creates a symlink at `link` (a directory link when `target` resolves to a directory).
pub(crate) fn symlink(target: &Path, link: &Path) -> Result<()> {
    let resolved = link.parent().unwrap_or(Path::new(".")).join(target);
    let made = if resolved.is_dir() {
        std::os::windows::fs::symlink_dir(target, link)
    } else {
        std::os::windows::fs::symlink_file(target, link)
    };
    made.map_err(io_err("creating the symlink", link))
}

/// Windows flushes directory entries with the rename itself.
pub(crate) fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

/// Creates a new file, failing when it exists. (Windows gives a new file in
/// a user's folder to that user; no mode to set.)
#[cfg(feature = "sign")]
pub(crate) fn create_private(path: &Path) -> Result<File> {
    File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err("creating", path))
}

/// Flushes every file under `dir` to disk (Windows has no per-volume
/// flush for unprivileged users).
pub(crate) fn sync_fs(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err("listing", dir))? {
        let path = entry.map_err(io_err("listing", dir))?.path();
        if path.is_dir() {
            sync_fs(&path)?;
        } else if path.is_file() {
            File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io_err("flushing", &path))?;
        }
    }
    Ok(())
}

/// Whether two paths are on the same volume (the same path prefix).
pub(crate) fn same_device(a: &Path, b: &Path) -> bool {
    let root = |p: &Path| {
        std::path::absolute(p)
            .ok()
            .and_then(|p| p.components().next().map(|c| c.as_os_str().to_owned()))
    };
    root(a).is_some() && root(a) == root(b)
}

/// Files that another process holds open so that they cannot be replaced:
/// those that cannot be opened with no sharing allowed.
pub(crate) fn held_open(paths: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    use std::os::windows::fs::OpenOptionsExt;
    paths
        .iter()
        .filter(|p| {
            File::options()
                .read(true)
                .share_mode(0)
                .open(p)
                .is_err_and(|e| e.raw_os_error() == Some(32)) // ERROR_SHARING_VIOLATION
        })
        .cloned()
        .collect()
}

/// Fails unless this process may create files in `dir`: creates and
/// removes a probe file (`.leapfrog-probe.<pid>`).
pub(crate) fn can_create_in(dir: &Path) -> std::io::Result<()> {
    let probe = crate::layout::probe_path(dir);
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}

/// Whether a process with this id may be running. std cannot tell on
/// Windows, so debris is kept (taken as a live process's).
pub(crate) fn process_alive(_pid: u32) -> bool {
    true
}

/// Opens (creating it when missing) the file at `path` for writing, after
/// checking that no symlink stands in its place.
pub(crate) fn open_no_follow(path: &Path) -> std::io::Result<File> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(std::io::Error::other("a symbolic link stands in its place"));
    }
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

/// Opens (creating it when missing) the file at `path` for appending,
/// after checking that no symlink stands in its place.
pub(crate) fn append_no_follow(path: &Path) -> std::io::Result<File> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(std::io::Error::other("a symbolic link stands in its place"));
    }
    File::options().create(true).append(true).open(path)
}

// Processes: the hops, and the watcher of a trial launch.

/// Starts `relaunch` and exits this process; returns only when the spawn failed.
pub(crate) fn replace_process(relaunch: &Relaunch) -> io::Error {
    let mut command = Command::new(&relaunch.program);
    command
        .args(&relaunch.args)
        .env(super::ENV_HOPS, relaunch.hops.to_string())
        .envs(relaunch.env.iter().map(|(k, v)| (k, v)));
    for name in &relaunch.env_remove {
        command.env_remove(name);
    }
    let spawned = command.spawn();
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
pub(crate) fn ending(status: std::process::ExitStatus) -> super::Ending {
    use super::Ending;
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

/// The program that draws dialogs: none on Windows (rfd's message box
/// is used).
pub(crate) fn dialog_program() -> Option<&'static str> {
    None
}

/// A dialog window of the desktop's own; none on Windows (the caller falls
/// back to rfd's message box).
#[cfg(feature = "dialog")]
pub(crate) fn dialog(
    _title: &str,
    _text: &str,
    _buttons: &[&str],
    _scrolling: bool,
) -> Option<usize> {
    None
}

/// A progress window; none yet on Windows (the caller shows none, or the
/// app's own through `on_progress`).
#[cfg(feature = "dialog")]
pub(crate) struct ProgressWindow;

/// No progress window on Windows yet: `None`.
#[cfg(feature = "dialog")]
pub(crate) fn progress_window(
    _title: &str,
    _text: &str,
    _cancelled: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Option<ProgressWindow> {
    None
}

#[cfg(feature = "dialog")]
impl ProgressWindow {
    /// Nothing to show.
    pub(crate) fn show(&mut self, _percent: Option<u8>, _text: &str) {}

    /// Nothing to close.
    pub(crate) fn close(&mut self) {}
}

/// Whether `dir` is on a share whose changes are not reported: Windows
/// reports changes on SMB shares too.
#[cfg(feature = "watch")]
pub(crate) fn on_network_share(_dir: &Path) -> bool {
    false
}

/// Starts the process of `command` in a process group of its own
/// (CREATE_NEW_PROCESS_GROUP), out of reach of the app's Ctrl-C.
pub(crate) fn own_process_group(command: &mut Command) {
    use std::os::windows::process::CommandExt;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    command.creation_flags(CREATE_NEW_PROCESS_GROUP);
}

/// Stops `child` (std cannot reach the processes it started).
pub(crate) fn kill_group(child: &mut std::process::Child) {
    let _ = child.kill();
}
