//! The backup dir is leapfrog's only when it says so: a marker file
//! ([`layout::MARKER`]) names the install dir it backs up. leapfrog creates
//! the folder itself, empties only a folder that carries its marker for
//! this install, and never follows a symlink in place of one of its own
//! folders. A journal is believed only inside a folder whose marker names
//! the install dir the journal speaks of.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Error, Result};
use crate::journal::Journal;
use crate::layout;

const MARKER_FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: u32,
    install_dir: PathBuf,
}

/// The install dir that the marker in `backup` names, when `backup` is a
/// real folder (not a symlink) with a readable marker.
pub(crate) fn backs(backup: &Path) -> Option<PathBuf> {
    let meta = fs::symlink_metadata(backup).ok()?;
    if !meta.is_dir() {
        return None;
    }
    let path = backup.join(layout::MARKER);
    if !fs::symlink_metadata(&path).ok()?.is_file() {
        return None;
    }
    let marker: Marker = serde_json::from_slice(&fs::read(&path).ok()?).ok()?;
    (marker.format == MARKER_FORMAT).then_some(marker.install_dir)
}

/// Whether `backup` is leapfrog's backup dir of `install`.
pub(crate) fn is_backup_of(backup: &Path, install: &Path) -> bool {
    backs(backup).is_some_and(|named| super::same_dir(&named, install))
}

fn write_marker(backup: &Path, install: &Path) -> Result<()> {
    let marker = Marker {
        format: MARKER_FORMAT,
        install_dir: install.to_owned(),
    };
    let mut text = serde_json::to_vec_pretty(&marker).map_err(|e| Error::Unsuitable {
        path: install.to_owned(),
        reason: format!(
            "its path cannot be recorded ({e}); install the program under a UTF-8 path"
        ),
    })?;
    text.push(b'\n');
    crate::os::write_atomic(&backup.join(layout::MARKER), &text)
}

fn not_ours(backup: &Path, why: &str) -> Error {
    Error::Unsuitable {
        path: backup.to_owned(),
        reason: format!(
            "{why}; leapfrog only uses (and empties) a backup dir it made itself. \
             Remove it, or choose another place for the backup (LEAPFROG_BACKUP_DIR, or the builder's backup_dir)"
        ),
    }
}

/// Makes `backup` leapfrog's backup dir of `install`, or refuses: creates
/// it (with its marker) when it is not there, accepts it when its marker
/// names `install`, and refuses a symlink, a file, a folder that backs up
/// another install, and a folder with files in it but no marker.
///
/// A folder left by an older leapfrog (no marker, but a journal that names
/// this very folder and `install`) is adopted.
pub(crate) fn claim(backup: &Path, install: &Path) -> Result<()> {
    match fs::symlink_metadata(backup) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = backup.parent() {
                fs::create_dir_all(parent).map_err(|e| cannot_make(backup, e))?;
            }
            fs::create_dir(backup).map_err(|e| cannot_make(backup, e))?;
            return write_marker(backup, install);
        }
        Err(e) => return Err(cannot_make(backup, e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(not_ours(backup, "it is a symbolic link"))
        }
        Ok(meta) if !meta.is_dir() => return Err(not_ours(backup, "it is not a folder")),
        Ok(_) => {}
    }
    if let Some(named) = backs(backup) {
        if super::same_dir(&named, install) {
            return Ok(());
        }
        return Err(not_ours(
            backup,
            &format!("it is the backup dir of {}", named.display()),
        ));
    }
    if fs::symlink_metadata(backup.join(layout::MARKER)).is_ok() {
        return Err(not_ours(
            backup,
            "its marker .leapfrog-backup cannot be read",
        ));
    }
    let empty = fs::read_dir(backup)
        .map_err(io_err("listing", backup))?
        .next()
        .is_none();
    let legacy = matches!(
        Journal::read(backup),
        Ok(Some(j)) if super::same_dir(&j.backup_dir, backup) && super::same_dir(&j.install_dir, install)
    );
    if empty || legacy {
        return write_marker(backup, install);
    }
    Err(not_ours(
        backup,
        "it holds files but no leapfrog marker (.leapfrog-backup), so it is not leapfrog's",
    ))
}

fn cannot_make(backup: &Path, e: io::Error) -> Error {
    Error::Unsuitable {
        path: backup.to_owned(),
        reason: format!(
            "the backup dir cannot be made or written ({e}); choose another place for it \
             (LEAPFROG_BACKUP_DIR, or the builder's backup_dir) on a disk with room"
        ),
    }
}

/// Makes `dir` (inside the backup dir) a real folder: a symlink or file in
/// its place is removed (never followed), then the folder is created.
pub(crate) fn own_subdir(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {
            log::warn!("{} is not a folder; removing it", dir.display());
            fs::remove_file(dir).map_err(io_err("removing", dir))?;
        }
        Err(_) => {}
    }
    fs::create_dir(dir).map_err(io_err("creating", dir))
}

/// Removes everything in `dir` (a folder of leapfrog's) but the entries
/// named in `keep`. Symlinks are removed, never followed.
pub(crate) fn clear_except(dir: &Path, keep: &[&str]) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io_err("listing", dir))? {
        let entry = entry.map_err(io_err("listing", dir))?;
        if keep.iter().any(|k| entry.file_name() == *k) {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_err("removing", &path))?;
    }
    Ok(())
}

/// Keeps only downloads being continued (`*.partial`, `*.partial.meta`,
/// plain files) in the download folder: anything else (a symlink, a
/// folder, a finished archive) goes. Returns whether something was kept.
pub(crate) fn keep_partials(downloads: &Path) -> bool {
    match fs::symlink_metadata(downloads) {
        Ok(meta) if meta.is_dir() => {}
        // A symlink (or file) in its place is removed, never followed.
        Ok(_) => {
            let _ = fs::remove_file(downloads);
            return false;
        }
        Err(_) => return false,
    }
    let mut kept = false;
    for entry in fs::read_dir(downloads).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let plain = entry.file_type().is_ok_and(|t| t.is_file());
        if plain && (name.ends_with(layout::PARTIAL) || name.ends_with(layout::PARTIAL_META)) {
            kept = true;
        } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(entry.path());
        } else {
            let _ = fs::remove_file(entry.path());
        }
    }
    kept
}
