//! Unix file-system calls.

use std::fs::{self, File, Metadata, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{io_err, Result};

/// Whether any execute bit is set.
pub(crate) fn is_executable(meta: &Metadata) -> bool {
    meta.permissions().mode() & 0o111 != 0
}

/// Sets the mode to 0755 or 0644: no setuid, no group or world write.
pub(crate) fn set_executable(path: &Path, executable: bool) -> Result<()> {
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(io_err("setting the mode of", path))
}

/// Creates a symlink at `link` pointing to `target`.
pub(crate) fn symlink(target: &Path, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link).map_err(io_err("creating the symlink", link))
}

/// Flushes a directory's entries (renames, creations) to disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing the directory", dir))
}

/// Creates a new file readable and writable by its owner only (0600),
/// failing when it exists.
pub(crate) fn create_private(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("creating", path))
}

/// Flushes everything written to the file system that holds `dir` (a
/// whole staged release, say) to disk: `syncfs` on Linux, `sync` elsewhere.
pub(crate) fn sync_fs(dir: &Path) -> Result<()> {
    crate::failpoint::at(crate::failpoint::SYNC_FS, dir)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        File::open(dir)
            .and_then(|d| rustix::fs::syncfs(&d).map_err(std::io::Error::from))
            .map_err(io_err("syncing the file system of", dir))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        rustix::fs::sync();
        Ok(())
    }
}

/// Whether two paths are on the same file system (device).
pub(crate) fn same_device(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    matches!((fs::metadata(a), fs::metadata(b)), (Ok(x), Ok(y)) if x.dev() == y.dev())
}

/// Files that another process holds open so that they cannot be replaced.
/// None on Unix: a file is replaced by rename even while open (the holder
/// keeps the old content).
pub(crate) fn held_open(_paths: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    Vec::new()
}

/// Fails unless this process may create files in `dir` (writes nothing:
/// a read-only file system, missing permission).
pub(crate) fn can_create_in(dir: &Path) -> std::io::Result<()> {
    use rustix::fs::{access, Access};
    access(dir, Access::WRITE_OK | Access::EXEC_OK).map_err(std::io::Error::from)
}

/// Whether a process with this id is running (debris of a dead one may go).
pub(crate) fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

/// Opens (creating it when missing) the file at `path` for writing without
/// following a symlink there: a link in its place is an error.
pub(crate) fn open_no_follow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}
