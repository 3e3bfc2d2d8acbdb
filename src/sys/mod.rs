//! File-system calls that differ by platform, with the same names on each.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

use std::fs::File;
use std::path::Path;

use crate::error::{io_err, Error, Result};

/// Writes `bytes` to `path` so that a crash leaves either the old content or
/// the new one: write a temp file beside it, fsync, rename over, fsync the dir.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = crate::layout::temp_path(dir, name);
    crate::failpoint::at("write_atomic create", &tmp)?;
    let mut file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
    let written = crate::failpoint::hit("write_atomic write")
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err("writing", &tmp)(e));
    }
    drop(file);
    crate::failpoint::hit("write_atomic rename")
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(&format!("renaming {} to", tmp.display()), path)(e)
        })?;
    crate::failpoint::at("write_atomic sync dir", dir)?;
    sync_dir(dir)
}

/// Room kept free beyond what an update needs, for the journal, the
/// file system's own bookkeeping and the app.
const SPARE_BYTES: u64 = 16 << 20;

/// Fails unless the file system of `dir` has `bytes` free, and some spare.
pub(crate) fn need_space(dir: &Path, bytes: u64) -> Result<()> {
    let free = fs4::available_space(dir).map_err(io_err("finding the free space of", dir))?;
    if free < bytes.saturating_add(SPARE_BYTES) {
        let mib = |b: u64| b.div_ceil(1 << 20);
        return Err(Error::Unsuitable {
            path: dir.to_owned(),
            reason: format!(
                "not enough free space on its disk: the update needs {} MiB (and {} MiB to spare), {} MiB are free; \
                 free some space and try again",
                mib(bytes),
                mib(SPARE_BYTES),
                mib(free)
            ),
        });
    }
    Ok(())
}
