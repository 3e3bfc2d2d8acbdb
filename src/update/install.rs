//! Step 4 and its undoing: moving the staged release into the install dir
//! ([`apply`]), and putting the backup's release back ([`undo_apply`]).
//!
//! Both can be cut off at any instant and run again: the journal says
//! which one was under way (`applying` or `rolling_back`), and each part of
//! each is idempotent. Every file is put in place by one rename of a file
//! whose data is already on disk (a staged file flushed before the journal
//! said `staged`, a hard link to the backup's file, or a copy flushed
//! before its rename), and the directories are flushed before the journal
//! moves on, so a power cut leaves no empty file behind a durable name.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::backup::{self, same_dir};
use super::lock;
use crate::error::{io_err, Error, Result};
use crate::journal::{Journal, Step};
use crate::layout::{self, default_backup_dir};
use crate::release::file_list::{self, FileList, Item, FILE_LIST};

/// What [`apply`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    pub replaced: usize,
    pub removed: usize,
    /// Files the release did not change, left in place: the staged one is
    /// the installed file itself (a hard link of it, through the backup).
    pub kept: usize,
}

/// Step 4: brings the install dir to the staged release: each changed
/// release file moved in by one rename, files the old release shipped and
/// the new one dropped removed, files no release shipped left alone. The
/// file list goes last. This runs while the app is down, so it does only
/// that: a file the release did not change is left where it is (its staged
/// copy is a hard link of the installed file, so it holds the verified
/// content already), each folder is made once, and the archive and the
/// staging folder are removed later ([`discard_stage`]), once the new
/// version runs. Running it again after a crash finishes the job; a file
/// that an earlier run moved is checked against the release's file list,
/// never taken on trust because something is there.
pub(crate) fn apply(journal: &mut Journal) -> Result<Applied> {
    // A run after a crash finds what the earlier run did in place and so
    // does not know which folders it changed.
    let rerun = journal.step == Step::Applying;
    journal.advance(Step::Applying)?;
    let staging = journal.staging_dir();
    let install = journal.install_dir.clone();
    let new_list = new_release_list(journal).ok_or_else(|| Error::Journal {
        path: Journal::path_in(&journal.backup_dir),
        reason: format!("the staged file list is gone from {}", staging.display()),
    })?;
    // The backup holds the old install's list, untouched by this step.
    let old_list = FileList::read_installed(&journal.backup_dir)?;
    let mut done = Applied::default();
    // The folders known to be there, so that each is made (or looked at) once.
    let mut folders = HashSet::from([install.clone()]);
    // The folders whose entries this step changes, flushed at its end.
    let mut changed = BTreeSet::from([install.clone()]);

    for (path, item) in &new_list.items {
        let dst = file_list::join(&install, path);
        if let Item::Dir = item {
            match fs::symlink_metadata(&dst) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) if was_shipped(&old_list, path) => {
                    fs::remove_file(&dst).map_err(io_err("removing", &dst))?;
                    make_folder(&dst, &mut folders, &mut changed)?;
                }
                _ => make_folder(&dst, &mut folders, &mut changed)?,
            }
            folders.insert(dst);
            continue;
        }
        let src = file_list::join(&staging, path);
        match fs::symlink_metadata(&src) {
            Ok(staged) => {
                if fs::symlink_metadata(&dst).is_ok_and(|m| crate::os::same_file(&staged, &m)) {
                    done.kept += 1;
                    continue;
                }
                crate::failpoint::at("apply rename", &dst)?;
                move_into_place(&src, &dst, &mut folders, &mut changed)?;
                done.replaced += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Moved by an earlier run of this step: it must be there,
                // and be the release's.
                if !holds(&dst, item) {
                    return Err(Error::Journal {
                        path: Journal::path_in(&journal.backup_dir),
                        reason: format!(
                            "{} is gone from staging but {} does not hold the release's file; \
                             the update cannot be finished, so it is undone",
                            path,
                            dst.display()
                        ),
                    });
                }
            }
            Err(e) => return Err(io_err("reading", &src)(e)),
        }
    }
    if let Some(old) = &old_list {
        let mut dropped_dirs = Vec::new();
        for (path, item) in &old.items {
            if new_list.items.contains_key(path) {
                continue;
            }
            let dst = file_list::join(&install, path);
            if let Item::Dir = item {
                dropped_dirs.push(dst);
                continue;
            }
            crate::failpoint::at("apply remove", &dst)?;
            changed.extend(dst.parent().map(Path::to_owned));
            match fs::remove_file(&dst) {
                Ok(()) => done.removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("removing", &dst)(e)),
            }
        }
        // Deepest first; a dir that still holds user files stays.
        for dir in dropped_dirs.iter().rev() {
            if fs::remove_dir(dir).is_ok() {
                changed.extend(dir.parent().map(Path::to_owned));
            }
        }
    }
    let list_src = staging.join(FILE_LIST);
    if list_src.exists() {
        crate::failpoint::at("apply rename", &install.join(FILE_LIST))?;
        move_into_place(
            &list_src,
            &install.join(FILE_LIST),
            &mut folders,
            &mut changed,
        )?;
    }
    if let Some(config) = &journal.config {
        let path = install.join(config);
        if path.exists() {
            crate::config::write_current_version(&path, &journal.to_version)?;
        }
    }
    // The renamed files' data is on disk since staging: what remains to
    // flush is the entries of the folders this step changed, deepest first
    // (a folder's new entries before its own name in its parent), not the
    // whole file system, which holds the downloaded archive and whatever
    // else other programs wrote.
    crate::failpoint::at("apply sync dir", &install)?;
    for dir in changed.iter().rev() {
        if fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
            crate::os::sync_dir(dir)?;
        }
    }
    if rerun {
        crate::os::sync_fs(&install)?;
    }
    journal.advance(Step::Applied)?;
    log::info!(
        "applied {} {}: {} files replaced, {} removed, {} unchanged left in place",
        journal.program,
        journal.to_version,
        done.replaced,
        done.removed,
        done.kept
    );
    Ok(done)
}

/// Removes what an applied update no longer needs: the staging folder (the
/// files left in it are links of installed ones), the archive and the
/// download folder. Called once the new version runs, outside the app's
/// downtime; what a crash leaves here is removed by the next launch's tidy
/// once the update is over.
pub(crate) fn discard_stage(journal: &Journal) {
    let _ = fs::remove_dir_all(journal.staging_dir());
    let _ = fs::remove_file(journal.archive_path());
    let _ = fs::remove_dir(journal.backup_dir.join(layout::DOWNLOAD));
}

/// The file list of the release being installed: staged, or (once moved)
/// the install dir's when it is that release's.
/// Checks, before anything is applied, that every staged item is still
/// what the release's file list says (by sha256 and size for files): a
/// stage left for a later launch may have been damaged meanwhile (a disk
/// error, a cleaner, a virus scanner, another program).
pub(crate) fn verify_staged(journal: &Journal) -> Result<()> {
    let staging = journal.staging_dir();
    let broken = |reason: String| Error::Journal {
        path: Journal::path_in(&journal.backup_dir),
        reason,
    };
    let list = read_list(&staging).ok_or_else(|| {
        broken(format!(
            "the staged file list is gone from {}",
            staging.display()
        ))
    })?;
    if list.version.to_string() != journal.to_version {
        return Err(broken(format!(
            "the staged release is {} {}, not the {} the update is for",
            list.program, list.version, journal.to_version
        )));
    }
    for (path, item) in &list.items {
        if !holds(&file_list::join(&staging, path), item) {
            return Err(broken(format!(
                "the staged {path} in {} is not the release's any more (changed or removed since it was verified)",
                staging.display()
            )));
        }
    }
    Ok(())
}

fn new_release_list(journal: &Journal) -> Option<FileList> {
    read_list(&journal.staging_dir()).or_else(|| {
        read_list(&journal.install_dir).filter(|l| l.version.to_string() == journal.to_version)
    })
}

fn read_list(dir: &Path) -> Option<FileList> {
    FileList::read_installed(dir).ok().flatten()
}

fn was_shipped(list: &Option<FileList>, path: &str) -> bool {
    list.as_ref().is_some_and(|l| l.items.contains_key(path))
}

/// Whether `at` is the item the file list describes (a file by its sha256
/// and size, a link by its target, a folder).
pub(crate) fn holds(at: &Path, item: &Item) -> bool {
    match item {
        Item::Dir => fs::symlink_metadata(at).is_ok_and(|m| m.is_dir()),
        Item::Link { target } => fs::read_link(at).is_ok_and(|t| t == Path::new(target)),
        Item::File { sha256, size, .. } => {
            fs::symlink_metadata(at).is_ok_and(|m| m.is_file() && m.len() == *size)
                && matches!(crate::release::hash::sha256_file(at), Ok((s, n)) if &s == sha256 && n == *size)
        }
    }
}

/// The install dir's file list, when every item of it is there with its
/// listed content.
pub(crate) fn intact(install: &Path) -> Result<Option<FileList>> {
    let Some(list) = FileList::read_installed(install)? else {
        return Ok(None);
    };
    let complete = list
        .items
        .iter()
        .all(|(path, item)| holds(&file_list::join(install, path), item));
    Ok(complete.then_some(list))
}

/// Makes `dir` and any missing folder above it, each once per run (known
/// ones in `folders`), noting the parent of each folder made in `changed`
/// so that its new entry is flushed.
fn make_folder(
    dir: &Path,
    folders: &mut HashSet<PathBuf>,
    changed: &mut BTreeSet<PathBuf>,
) -> Result<()> {
    if folders.contains(dir) {
        return Ok(());
    }
    let mut missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|a| !folders.contains(*a) && fs::symlink_metadata(a).is_err())
        .collect();
    missing.reverse();
    for d in missing {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(io_err("creating", d)(e)),
        }
        changed.extend(d.parent().map(Path::to_owned));
        folders.insert(d.to_owned());
    }
    if !dir.is_dir() {
        return Err(io_err("creating", dir)(io::Error::new(
            io::ErrorKind::NotADirectory,
            "something that is not a folder is in the way",
        )));
    }
    folders.insert(dir.to_owned());
    Ok(())
}

/// Moves `src` over `dst` by one rename, making `dst`'s parent first unless
/// it is among the `folders` known to be there. Across file systems (a
/// backup dir elsewhere) it puts a flushed copy in place, then removes `src`.
fn move_into_place(
    src: &Path,
    dst: &Path,
    folders: &mut HashSet<PathBuf>,
    changed: &mut BTreeSet<PathBuf>,
) -> Result<()> {
    if let Some(parent) = dst.parent() {
        make_folder(parent, folders, changed)?;
    }
    changed.insert(dst.parent().unwrap_or(dst).to_owned());
    match crate::os::replace_file(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            put_copy(src, dst)?;
            let _ = fs::remove_file(src);
            Ok(())
        }
        Err(e) => Err(io_err(&format!("renaming {} to", src.display()), dst)(e)),
    }
}

/// Puts a copy of `from` (a file or a symlink) at `to` by one rename of a
/// temp file beside `to` whose data is on disk already: a hard link to
/// `from` where the file system allows, else a copy flushed to disk.
pub(crate) fn put_copy(from: &Path, to: &Path) -> Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let name = to.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = layout::temp_path(dir, name);
    let meta = fs::symlink_metadata(from).map_err(io_err("reading", from))?;
    let made = if meta.file_type().is_symlink() {
        let target = fs::read_link(from).map_err(io_err("reading link", from))?;
        crate::os::symlink(&target, &tmp)
    } else if fs::hard_link(from, &tmp).is_ok() {
        Ok(())
    } else {
        copy_flushed(from, &tmp)
    };
    if let Err(e) = made {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    crate::failpoint::at("put copy rename", to)?;
    let renamed = crate::os::replace_file(&tmp, to);
    // A rename onto another link of the same file does nothing and leaves
    // the temp name behind: remove it in every case.
    let _ = fs::remove_file(&tmp);
    renamed.map_err(io_err(&format!("renaming {} to", tmp.display()), to))
}

/// Copies the file `from` to the new file `to` and flushes its data.
fn copy_flushed(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to).map_err(io_err(&format!("copying {} to", from.display()), to))?;
    crate::failpoint::at("put copy sync", to)?;
    fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(io_err("flushing", to))
}

/// Undoes an update (a failed [`apply`], a failed trial, or on request):
/// every path of the new and the old release is put back as the backup
/// copy has it (or removed, where the backup has none), the file list
/// first. The journal says `rolling_back` throughout, and the new
/// release's file list is kept in the backup dir before anything changes,
/// so a run that is cut off is finished by the next launch, never taken
/// for a half-applied update. The journal ends `rolled_back`.
pub(crate) fn undo_apply(journal: &mut Journal) -> Result<()> {
    log::warn!(
        "rolling {} back to {}",
        journal.install_dir.display(),
        journal.from_version
    );
    let install = journal.install_dir.clone();
    let backup = journal.backup_dir.clone();
    let undo_list = backup.join(layout::UNDO_LIST);
    let new_list = if journal.step == Step::RollingBack {
        read_list_file(&undo_list)
    } else {
        let list = new_release_list(journal);
        match &list {
            Some(list) => crate::os::write_atomic(&undo_list, list.render().as_bytes())?,
            None => {
                let _ = fs::remove_file(&undo_list);
            }
        }
        journal.advance(Step::RollingBack)?;
        list
    };
    let old_list = FileList::read_installed(&backup)?;
    // The file list first: from here on the install dir claims to be the
    // old release, and is checked against that claim.
    restore(&backup, &install, FILE_LIST)?;
    let mut paths: Vec<&String> = Vec::new();
    for list in [&new_list, &old_list].into_iter().flatten() {
        paths.extend(
            list.items
                .iter()
                .filter(|(_, i)| !matches!(i, Item::Dir))
                .map(|(p, _)| p),
        );
    }
    paths.sort();
    paths.dedup();
    for path in paths {
        restore(&backup, &install, path)?;
    }
    if let Some(new) = &new_list {
        for (path, item) in new.items.iter().rev() {
            if matches!(item, Item::Dir) && !was_shipped(&old_list, path) {
                let _ = fs::remove_dir(file_list::join(&install, path));
            }
        }
    }
    if let Some(config) = &journal.config {
        if backup.join(config).exists() {
            put_copy(&backup.join(config), &install.join(config))?;
        }
    }
    crate::failpoint::at("rollback sync dir", &install)?;
    crate::os::sync_dir(&install)?;
    crate::os::sync_fs(&install)?;
    journal.advance(Step::RolledBack)?;
    let _ = fs::remove_dir_all(journal.staging_dir());
    let _ = fs::remove_file(journal.archive_path());
    let _ = fs::remove_file(&undo_list);
    let _ = fs::remove_dir(backup.join(layout::DOWNLOAD));
    Ok(())
}

fn read_list_file(path: &Path) -> Option<FileList> {
    let text = fs::read_to_string(path).ok()?;
    FileList::parse(&text, path).ok()
}

/// Puts the backup's `path` back in the install dir, or removes the
/// install dir's when the backup has none. A folder is the user's: left alone.
fn restore(backup: &Path, install: &Path, path: &str) -> Result<()> {
    let from = file_list::join(backup, path);
    let to = file_list::join(install, path);
    match fs::symlink_metadata(&from) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => {
            crate::failpoint::at("rollback restore", &to)?;
            put_copy(&from, &to)
        }
        Err(_) => {
            let is_dir = fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir());
            match fs::remove_file(&to) {
                Err(e) if !is_dir && e.kind() != io::ErrorKind::NotFound => {
                    Err(io_err("removing", &to)(e))
                }
                _ => Ok(()),
            }
        }
    }
}

/// Puts the previous version back on request (`leapfrog rollback`): the
/// release files of the install dir are restored from the backup dir, and
/// the version rolled back from is not offered again until a newer one
/// appears. The program must not be running. Returns (from, to) versions.
///
/// ```no_run
/// let (from, to) = leapfrog::rollback(std::path::Path::new("/opt/demo"), None)?;
/// println!("rolled back from {from} to {to}");
/// # Ok::<(), leapfrog::Error>(())
/// ```
pub fn rollback(install_dir: &Path, backup_dir: Option<&Path>) -> Result<(String, String)> {
    let install_dir = std::path::absolute(install_dir).map_err(io_err("resolving", install_dir))?;
    let backup_dir = match backup_dir {
        Some(dir) => std::path::absolute(dir).map_err(io_err("resolving", dir))?,
        None => default_backup_dir(&install_dir)
            .ok_or_else(|| Error::Settings(format!("{} has no name", install_dir.display())))?,
    };
    let _lock =
        lock::try_lock(&backup_dir)?.ok_or_else(|| Error::busy(&install_dir, &backup_dir))?;
    let mut journal = Journal::read(&backup_dir)?.ok_or_else(|| {
        Error::Settings(format!(
            "{} holds no update to roll back (no journal in {})",
            install_dir.display(),
            backup_dir.display()
        ))
    })?;
    if !same_dir(&journal.install_dir, &install_dir)
        || !same_dir(&journal.backup_dir, &backup_dir)
        || !backup::is_backup_of(&backup_dir, &install_dir)
    {
        return Err(Error::Settings(format!(
            "{} is the backup of {}, not of {}",
            backup_dir.display(),
            journal.install_dir.display(),
            install_dir.display()
        )));
    }
    if !matches!(journal.step, Step::Applied | Step::Confirmed) {
        return Err(Error::Settings(format!(
            "the last update of {} ({} -> {}) is {:?}, not installed; nothing to roll back",
            install_dir.display(),
            journal.from_version,
            journal.to_version,
            journal.step
        )));
    }
    journal.release_failed("rolled back on request".into());
    undo_apply(&mut journal)?;
    // Rolled back on request: nothing to tell the user at the next launch.
    journal.reported = true;
    journal.write()?;
    Ok((journal.to_version.clone(), journal.from_version.clone()))
}
