//! Windows file-system calls (std only; not compiled on the Linux CI).

use std::fs::{File, Metadata};
use std::path::Path;

use crate::error::{io_err, Result};

/// Windows has no execute bit; executables are known by their extension.
pub(crate) fn is_executable(_meta: &Metadata) -> bool {
    false
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
