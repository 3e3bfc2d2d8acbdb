//! One updater at a time: an advisory lock on `<backup>.lock`, beside the
//! backup dir.
//!
//! The lock is held while staging and while applying. The operating system
//! drops it when the holder exits, is killed or execs (files are opened
//! close-on-exec), so a lock is never left stale by a crash.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{io_err, Error, Result};

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct UpdateLock {
    _file: File,
}

use crate::layout::lock_path;

fn open(backup_dir: &Path) -> Result<File> {
    let path = lock_path(backup_dir);
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .and_then(|()| crate::os::open_no_follow(&path))
        .map_err(|e| Error::Unsuitable {
            path: backup_dir.to_owned(),
            reason: format!(
                "the backup dir cannot be made or written: its lock file {} cannot be created ({e}); \
                 choose another place for it (LEAPFROG_BACKUP_DIR, or the builder's backup_dir)",
                path.display()
            ),
        })
}

/// Takes the lock if no other process holds it.
pub fn try_lock(backup_dir: &Path) -> Result<Option<UpdateLock>> {
    let file = open(backup_dir)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(UpdateLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err("locking", lock_path(backup_dir))(e)),
    }
}

/// Whether another process holds the lock now (this one takes it and lets
/// it go at once).
pub fn is_held(backup_dir: &Path) -> Result<bool> {
    Ok(try_lock(backup_dir)?.is_none())
}

/// Waits up to `patience` for the lock.
pub fn lock(backup_dir: &Path, patience: Duration) -> Result<Option<UpdateLock>> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(lock) = try_lock(backup_dir)? {
            return Ok(Some(lock));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
