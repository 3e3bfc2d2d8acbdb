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
use crate::release::file_list::{self, FileList, Item, FILE_LIST};

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
    backs(backup).is_some_and(|named| same_dir(&named, install))
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
            // Made folder by folder, each one's entry flushed in its parent:
            // a journal written in here later is only as durable as the
            // names that lead to it.
            let mut missing: Vec<&Path> = backup
                .ancestors()
                .take_while(|a| fs::symlink_metadata(a).is_err())
                .collect();
            missing.reverse();
            for dir in missing {
                match fs::create_dir(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir != backup => {}
                    Err(e) => return Err(cannot_make(backup, e)),
                }
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    crate::os::sync_dir(parent)?;
                }
            }
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
        if same_dir(&named, install) {
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
        Ok(Some(j)) if same_dir(&j.backup_dir, backup) && same_dir(&j.install_dir, install)
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

/// Empties the download folder but for what a later download can use:
/// broken-off downloads (`.partial` and its record) and the complete
/// archives `archive` accepts by name (checked against their hash before
/// any is used). Returns whether anything was kept. A symlink or file in
/// the folder's place is removed, never followed.
pub(crate) fn keep_downloads(downloads: &Path, archive: impl Fn(&str) -> bool) -> bool {
    match fs::symlink_metadata(downloads) {
        Ok(meta) if meta.is_dir() => {}
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
        let wanted = name.ends_with(layout::PARTIAL)
            || name.ends_with(layout::PARTIAL_META)
            || archive(&name);
        if plain && wanted {
            kept = true;
        } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(entry.path());
        } else {
            let _ = fs::remove_file(entry.path());
        }
    }
    kept
}

/// The bytes of `archive` already in the backup's download folder (whole,
/// or a broken-off download), counted only for plain files.
pub(crate) fn downloaded(backup: &Path, archive: &str) -> u64 {
    let downloads = backup.join(layout::DOWNLOAD);
    [archive.to_owned(), format!("{archive}{}", layout::PARTIAL)]
        .iter()
        .filter_map(|name| fs::symlink_metadata(downloads.join(name)).ok())
        .filter(|meta| meta.is_file())
        .map(|meta| meta.len())
        .max()
        .unwrap_or(0)
}

/// After a stage failed with an error: a broken-off download is kept, to
/// be continued next time; everything else staged goes, a complete
/// archive too (it failed to unpack, or the disk is full). Only a stage
/// cut short by the process ending (it runs no cleanup) leaves a complete
/// archive, which the next stage reuses once it verifies; so does a stage
/// the user cancelled (`keep_archive`). The update log of earlier updates
/// stays; a backup dir that has nothing to keep goes. (The backup dir is
/// leapfrog's: the preflight checked its marker.)
pub(crate) fn clear_after_failed_stage(backup: &Path, keep_archive: Option<&str>) {
    let downloads = keep_downloads(&backup.join(layout::DOWNLOAD), |name| {
        keep_archive == Some(name)
    });
    let log = fs::symlink_metadata(backup.join(layout::LOG_DIR)).is_ok_and(|m| m.is_dir());
    if downloads || log {
        let _ = clear_except(backup, &[layout::DOWNLOAD, layout::MARKER, layout::LOG_DIR]);
        let _ = fs::remove_dir(backup.join(layout::DOWNLOAD));
    } else {
        let _ = fs::remove_dir_all(backup);
    }
}

/// Whether `a` and `b` are the same folder (also through links).
pub(crate) fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Refuses an update that cannot succeed here, before anything changes: an
/// install dir (or a folder of the installed release) that cannot take new
/// files, a backup dir that cannot be made or written, too little free
/// space for the backup and the download, release files held open.
/// `exe` is the program's executable (relative), which the running
/// process holds open; `download` the archive's size.
pub(crate) fn preflight(install: &Path, backup: &Path, exe: &Path, download: u64) -> Result<()> {
    let install = &install.to_owned();
    let installed = FileList::read_installed(install).ok().flatten();
    let mut dirs = vec![install.clone()];
    let mut files = Vec::new();
    for (path, item) in installed.iter().flat_map(|l| &l.items) {
        match item {
            Item::Dir => dirs.push(file_list::join(install, path)),
            Item::File { .. } if Path::new(path) != exe => {
                files.push(file_list::join(install, path))
            }
            _ => {}
        }
    }
    for dir in &dirs {
        crate::os::can_create_in(dir).map_err(|e| Error::Unsuitable {
            path: dir.clone(),
            reason: format!(
                "new files cannot be written here ({e}); the update replaces the program's files in place. \
                 Install the program in a folder this user can write to, or update it as a user who can"
            ),
        })?;
    }
    let held = crate::os::held_open(&files);
    if let Some(first) = held.first() {
        return Err(Error::Unsuitable {
            path: first.clone(),
            reason: format!(
                "{} file(s) of the program are held open by another process and cannot be replaced; \
                 close the other programs (or instances) that use them and try again",
                held.len()
            ),
        });
    }
    claim(backup, install)?;
    crate::os::can_create_in(backup).map_err(|e| Error::Unsuitable {
        path: backup.to_owned(),
        reason: format!(
            "the backup dir cannot be made or written ({e}); choose another place for it \
                 (LEAPFROG_BACKUP_DIR, or the builder's backup_dir) on a disk with room"
        ),
    })?;
    // The download, and a full copy of the install dir where hard links
    // are impossible (another file system).
    let copy = if crate::os::same_device(install, backup) {
        0
    } else {
        tree_size(install)
    };
    crate::os::need_space(backup, download + copy)
}

/// Refuses an AppImage that shares its folder: the folder is its install
/// dir (the backup mirrors it, the file list and state file lie in it), so
/// nothing else may be there but the release's files and leapfrog's own.
pub(crate) fn alone_in_its_folder(install: &Path, image: &Path) -> Result<()> {
    let listed = FileList::read_installed(install).ok().flatten();
    // An AppImage's portable mode keeps <image>.home and <image>.config
    // beside it.
    let portable = |suffix: &str| {
        let mut name = image.as_os_str().to_owned();
        name.push(suffix);
        name
    };
    let ours = |name: &str| {
        Path::new(name) == image
            || std::ffi::OsStr::new(name) == portable(".home")
            || std::ffi::OsStr::new(name) == portable(".config")
            || layout::is_reserved(name)
            || listed.as_ref().is_some_and(|l| l.items.contains_key(name))
    };
    let entries = fs::read_dir(install).map_err(io_err("listing", install))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !ours(&name) {
            return Err(Error::Unsuitable {
                path: install.to_owned(),
                reason: format!(
                    "the AppImage {} shares its folder with {name}, and an update would back up and \
                     manage the whole folder; move the AppImage into a folder of its own \
                     (e.g. ~/Applications/{}/) and start it from there",
                    image.display(),
                    image.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned())
                ),
            });
        }
    }
    Ok(())
}

/// The bytes of the files under `dir`.
fn tree_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => tree_size(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

pub(crate) fn to_list_path(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Makes `backup` a fresh copy of `install` (the old version, untouched).
///
/// On the same file system the copy is made of hard links: nothing is
/// written but directory entries, and it stays an untouched copy because
/// applying replaces files by rename and never writes into them. Where hard
/// links cannot be made (another file system, no permission) it copies.
/// The download folder keeps only what the next download can use: a
/// broken-off download of `archive`, or `archive` itself (checked against
/// its hash before it is used).
pub(crate) fn copy_to_backup(install: &Path, backup: &Path, archive: &str) -> Result<()> {
    let keep = [layout::DOWNLOAD, layout::MARKER, layout::LOG_DIR];
    // The journal of an earlier update goes first, and durably: a journal
    // left over a half-cleared backup would let an undo "restore" files
    // that are no longer there.
    let journal = Journal::path_in(backup);
    match fs::remove_file(&journal) {
        Ok(()) => crate::os::sync_dir(backup)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("removing", &journal)(e)),
    }
    clear_except(backup, &keep)?;
    own_subdir(&backup.join(layout::DOWNLOAD))?;
    keep_downloads(&backup.join(layout::DOWNLOAD), |name| name == archive);
    match link_tree(install, backup, true) {
        Ok(files) => {
            // The links must be on disk before a journal relies on them, and
            // so must the data they share with the installed files (written
            // by whatever installed them, perhaps moments ago): one flush of
            // the file system, which the app's downtime does not wait for.
            crate::failpoint::at("backup sync", backup)?;
            crate::os::sync_fs(backup)?;
            log::info!(
                "backed up {} to {} ({files} files as hard links)",
                install.display(),
                backup.display()
            );
            return Ok(());
        }
        Err(e) => {
            log::info!("hard links are not possible here ({e}); copying instead");
            clear_except(backup, &keep)?;
        }
    }
    log::info!("copying {} to {}", install.display(), backup.display());
    crate::failpoint::at("backup copy", backup)?;
    let options = fs_extra::dir::CopyOptions::new().overwrite(true);
    let items = release_entries(install).map_err(io_err("listing", install))?;
    fs_extra::copy_items(&items, backup, &options).map_err(|e| Error::Io {
        action: format!("copying {} to", install.display()),
        path: backup.to_owned(),
        source: io::Error::other(e.to_string()),
    })?;
    // A whole copy, on disk before a journal relies on it.
    crate::os::sync_fs(backup)
}

/// The entries at the root of `install` that belong in its backup: all but
/// leapfrog's own (state, temp files), the file list excepted.
fn release_entries(install: &Path) -> io::Result<Vec<PathBuf>> {
    let mut items = Vec::new();
    for entry in fs::read_dir(install)? {
        let entry = entry?;
        if backed_up(&entry.file_name()) {
            items.push(entry.path());
        }
    }
    Ok(items)
}

fn backed_up(name: &std::ffi::OsStr) -> bool {
    name == FILE_LIST || !name.to_str().is_some_and(layout::is_reserved)
}

/// Mirrors the tree at `src` into `dst` with hard links (and symlinks as
/// symlinks), returning the number of files linked. At the `root`,
/// leapfrog's own files are left out.
fn link_tree(src: &Path, dst: &Path, root: bool) -> io::Result<u64> {
    let mut files = 0;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        if root && !backed_up(&entry.file_name()) {
            continue;
        }
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type()?;
        crate::failpoint::hit("backup link")?;
        if kind.is_dir() {
            fs::create_dir_all(&to)?;
            files += link_tree(&from, &to, false)?;
        } else if kind.is_symlink() {
            crate::os::symlink(&fs::read_link(&from)?, &to).map_err(io::Error::other)?;
        } else if kind.is_file() {
            fs::hard_link(&from, &to)?;
            files += 1;
        }
    }
    Ok(files)
}
