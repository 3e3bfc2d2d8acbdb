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
