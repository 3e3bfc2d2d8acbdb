//! The update's steps, one function each, in the order they run.
//!
//! | step | function | runs in | a crash here leaves |
//! |------|----------|---------|---------------------|
//! | 2 stage | [`stage`] | the old app, install dir | the install dir untouched; a backup dir without a journal, or with a `staged` journal (all verified) |
//! | 3 hop out | [`hop_out`] | the old app | a `staged` journal; the next launch hops out again |
//! | 4 apply | [`apply`] | the old binary's copy, backup dir | an `applying` journal; the next launch hops out and applies again (every part re-runnable) |
//! | 5 hop home | `trial::watch`, [`hop_home`] | the copy, watching the new app (its child) | an `applied` journal; the next launch hops out to be watched again |
//! | 6 confirm | [`confirm_healthy`], or the watcher | the new app | a `confirmed` journal |
//!
//! If applying fails (a file cannot be replaced), [`roll_back`] puts every
//! release file back from the backup copy and the old version is relaunched.
//!
//! Platform code lives in `unix` and `windows`, with the same names:
//! `replace_process` (exec on Unix; spawn then exit on Windows) and
//! `replace_file` (a rename; on Windows retried while the exiting process
//! still holds the file).

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as platform;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

mod trial;
#[cfg(feature = "failpoints")]
pub(crate) use trial::is_watched as trial_is_watched;

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::archive::{self, FileList, Item, FILE_LIST};
use crate::error::{io_err, Error, Result};
use crate::fetch::{self, Expect, Limits, ProgressFn};
use crate::journal::{Journal, Step, JOURNAL_FORMAT};
use crate::manifest::Release;

/// What the process will be replaced with: a pure description, so that the
/// choice is testable apart from the call that replaces the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Relaunch {
    /// The executable.
    pub program: PathBuf,
    /// The arguments, the original ones passed on unchanged.
    pub args: Vec<OsString>,
    /// How many hops this chain has made, this one included (see [`ENV_HOPS`]).
    pub hops: u32,
}

/// The environment variable that counts the hops of one update, so that an
/// update that cannot be finished never makes the app hop back and forth
/// forever.
pub(crate) const ENV_HOPS: &str = "LEAPFROG_HOPS";
/// More hops than an update needs (out, home) even with a resumed one.
const MAX_HOPS: u32 = 6;

fn hops_so_far() -> u32 {
    std::env::var(ENV_HOPS)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The command that runs `exe` (relative) inside `dir` with `args`, as hop
/// number `hops` of an update.
pub(crate) fn relaunch(
    dir: &Path,
    exe: &Path,
    args: impl IntoIterator<Item = OsString>,
    hops: u32,
) -> Relaunch {
    Relaunch {
        program: dir.join(exe),
        args: args.into_iter().collect(),
        hops,
    }
}

fn original_args() -> Vec<OsString> {
    std::env::args_os().skip(1).collect()
}

fn exec(relaunch: &Relaunch) -> Error {
    log::info!(
        "exec {} (pid {})",
        relaunch.program.display(),
        std::process::id()
    );
    let e = platform::replace_process(relaunch);
    io_err("starting", &relaunch.program)(e)
}

/// Everything [`stage`] needs to know.
pub(crate) struct StagePlan<'a> {
    pub program: &'a str,
    pub from_version: String,
    pub release: &'a Release,
    pub archive_url: String,
    pub install_dir: PathBuf,
    pub backup_dir: PathBuf,
    pub exe: PathBuf,
    pub config: Option<PathBuf>,
    pub limits: &'a Limits,
    pub progress: Option<&'a ProgressFn>,
    pub trial: crate::journal::Trial,
}

/// Step 2: copies the install dir to the backup dir, downloads the archive
/// into it while hashing, unpacks it into the staging folder, checks that it
/// is the release the manifest named, and writes the `staged` journal.
///
/// The install dir is never written. On error everything staged so far is
/// removed again and the app goes on running the old version.
pub(crate) fn stage(plan: &StagePlan<'_>) -> Result<Journal> {
    // Refused here, nothing changes: the previous backup stays as it is.
    let existed = plan.backup_dir.exists();
    if let Err(e) = preflight(plan) {
        if !existed {
            let _ = fs::remove_dir(&plan.backup_dir);
        }
        return Err(e);
    }
    let result = stage_inner(plan);
    if result.is_err() {
        // A download that broke off is kept, to be continued next time;
        // everything else staged so far goes.
        let downloads = plan.backup_dir.join(DOWNLOAD_DIR);
        let partial = |name: &std::ffi::OsStr| {
            let name = name.to_string_lossy();
            name.ends_with(".partial") || name.ends_with(".partial.meta")
        };
        for entry in fs::read_dir(&downloads).into_iter().flatten().flatten() {
            if !partial(&entry.file_name()) {
                let _ = fs::remove_file(entry.path());
            }
        }
        let keep = fs::read_dir(&downloads).is_ok_and(|mut d| d.next().is_some());
        if keep {
            let _ = clear_dir_except(&plan.backup_dir, DOWNLOAD_DIR);
        } else {
            let _ = fs::remove_dir_all(&plan.backup_dir);
        }
    }
    result
}

/// The folder in the backup dir where archives are downloaded; it outlives
/// a failed stage so that a broken-off download can be continued.
pub(crate) const DOWNLOAD_DIR: &str = ".leapfrog-download";

/// Removes everything in `dir` but the entry named `keep`.
fn clear_dir_except(dir: &Path, keep: &str) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io_err("listing", dir))? {
        let entry = entry.map_err(io_err("listing", dir))?;
        if entry.file_name() == keep {
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

fn stage_inner(plan: &StagePlan<'_>) -> Result<Journal> {
    let release = plan.release;
    let sha256 = release.sha256.clone().unwrap_or_default();
    let mut journal = Journal {
        format: JOURNAL_FORMAT,
        program: plan.program.to_owned(),
        install_dir: plan.install_dir.clone(),
        backup_dir: plan.backup_dir.clone(),
        exe: plan.exe.clone(),
        from_version: plan.from_version.clone(),
        to_version: release.version.to_string(),
        archive: crate::manifest::archive_name(&release.program, &release.version),
        sha256,
        config: plan.config.clone(),
        step: Step::Staged,
        trial_launches: 0,
        trial_failures: 0,
        trial: plan.trial,
        error: None,
        reported: false,
    };
    copy_to_backup(&plan.install_dir, &plan.backup_dir)?;
    let archive = journal.archive_path();
    log::info!(
        "downloading {} to {}",
        crate::fetch::redact(&plan.archive_url),
        archive.display()
    );
    let expect = Expect {
        sha256: release.sha256.as_deref(),
        size: release.size,
    };
    let (computed, size) = fetch::download(
        &plan.archive_url,
        &archive,
        &expect,
        plan.limits,
        plan.progress,
    )?;
    log::info!(
        "verified {} ({size} bytes, sha256 {computed})",
        archive.display()
    );
    journal.sha256 = computed;
    let staging = journal.staging_dir();
    let list = archive::unpack(&archive, &staging)?;
    if list.program != release.program || list.version != release.version {
        return Err(Error::BadArchive {
            archive,
            reason: format!(
                "it holds {} {}, but the manifest offered {} {}",
                list.program, list.version, release.program, release.version
            ),
        });
    }
    let exe_rel = to_list_path(&plan.exe);
    if !matches!(list.items.get(&exe_rel), Some(Item::File { .. })) {
        return Err(Error::BadArchive {
            archive,
            reason: format!("it does not contain the program's executable {exe_rel:?}; the update would leave nothing to start"),
        });
    }
    log::info!(
        "unpacked {} items ({} bytes) into {}",
        list.items.len(),
        list.total_size(),
        staging.display()
    );
    if !crate::sys::same_device(&plan.install_dir, &plan.backup_dir) {
        // Applying will copy the release onto the install dir's disk.
        need_space(&plan.install_dir, list.total_size())?;
    }
    // A power cut after the journal says `staged` must find the staged
    // files on disk, not only the journal.
    crate::sys::sync_fs(&plan.backup_dir)?;
    journal.write()?;
    log::info!(
        "journal written: {}",
        Journal::path_in(&journal.backup_dir).display()
    );
    Ok(journal)
}

/// Room kept free beyond what an update needs, for the journal, the
/// file system's own bookkeeping and the app.
const SPARE_BYTES: u64 = 16 << 20;

/// Refuses an update that cannot succeed here, before anything changes: an
/// install dir (or a folder of the installed release) that cannot take new
/// files, a backup dir that cannot be made or written, too little free
/// space for the backup and the download, release files held open.
fn preflight(plan: &StagePlan<'_>) -> Result<()> {
    let install = &plan.install_dir;
    let installed = FileList::read_installed(install).ok().flatten();
    let mut dirs = vec![install.clone()];
    let mut files = Vec::new();
    for (path, item) in installed.iter().flat_map(|l| &l.items) {
        match item {
            Item::Dir => dirs.push(archive::join(install, path)),
            Item::File { .. } if Path::new(path) != plan.exe => {
                files.push(archive::join(install, path))
            }
            _ => {}
        }
    }
    for dir in &dirs {
        probe_writable(dir).map_err(|e| Error::Unsuitable {
            path: dir.clone(),
            reason: format!(
                "new files cannot be written here ({e}); the update replaces the program's files in place. \
                 Install the program in a folder this user can write to, or update it as a user who can"
            ),
        })?;
    }
    let held = crate::sys::held_open(&files);
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
    let backup = &plan.backup_dir;
    fs::create_dir_all(backup)
        .and_then(|()| probe_writable(backup))
        .map_err(|e| Error::Unsuitable {
            path: backup.clone(),
            reason: format!(
                "the backup dir cannot be made or written ({e}); choose another place for it \
                 (LEAPFROG_BACKUP_DIR, or the builder's backup_dir) on a disk with room"
            ),
        })?;
    // The download, and a full copy of the install dir where hard links
    // are impossible (another file system).
    let copy = if crate::sys::same_device(install, backup) {
        0
    } else {
        tree_size(install)
    };
    need_space(backup, plan.release.size.unwrap_or(0) + copy)
}

/// Fails unless the file system of `dir` has `bytes` free, and some spare.
fn need_space(dir: &Path, bytes: u64) -> Result<()> {
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

/// Creates and removes a file in `dir`.
fn probe_writable(dir: &Path) -> io::Result<()> {
    let probe = dir.join(format!(".leapfrog-probe-{}", std::process::id()));
    fs::File::create(&probe)?;
    fs::remove_file(&probe)
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

fn to_list_path(p: &Path) -> String {
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
fn copy_to_backup(install: &Path, backup: &Path) -> Result<()> {
    if backup.exists() {
        clear_dir_except(backup, DOWNLOAD_DIR)?;
    }
    fs::create_dir_all(backup.join(DOWNLOAD_DIR))
        .map_err(io_err("creating the backup dir", backup))?;
    match link_tree(install, backup) {
        Ok(files) => {
            log::info!(
                "backed up {} to {} ({files} files as hard links)",
                install.display(),
                backup.display()
            );
            return Ok(());
        }
        Err(e) => {
            log::info!("hard links are not possible here ({e}); copying instead");
            clear_dir_except(backup, DOWNLOAD_DIR)?;
        }
    }
    log::info!("copying {} to {}", install.display(), backup.display());
    crate::failpoint::at("backup copy", backup)?;
    let options = fs_extra::dir::CopyOptions::new()
        .content_only(true)
        .overwrite(true);
    fs_extra::dir::copy(install, backup, &options).map_err(|e| Error::Io {
        action: format!("copying {} to", install.display()),
        path: backup.to_owned(),
        source: io::Error::other(e.to_string()),
    })?;
    Ok(())
}

/// Mirrors the tree at `src` into `dst` with hard links (and symlinks as
/// symlinks), returning the number of files linked.
fn link_tree(src: &Path, dst: &Path) -> io::Result<u64> {
    let mut files = 0;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type()?;
        crate::failpoint::hit("backup link")?;
        if kind.is_dir() {
            fs::create_dir_all(&to)?;
            files += link_tree(&from, &to)?;
        } else if kind.is_symlink() {
            crate::sys::symlink(&fs::read_link(&from)?, &to).map_err(io::Error::other)?;
        } else if kind.is_file() {
            fs::hard_link(&from, &to)?;
            files += 1;
        }
    }
    Ok(files)
}

/// Step 3: replaces this process by the old binary's copy in the backup dir,
/// which will apply the update. `resumed` when finishing an update that an
/// earlier process started. Returns only on failure.
pub(crate) fn hop_out(journal: &Journal, resumed: bool) -> Error {
    log::info!(
        "hopping out to the backup copy in {}",
        journal.backup_dir.display()
    );
    hop(&journal.backup_dir, journal, resumed)
}

/// Step 5: replaces this process by the new binary in the install dir.
/// Returns only on failure.
pub(crate) fn hop_home(journal: &Journal) -> Error {
    log::info!(
        "hopping home to {}",
        journal.install_dir.join(&journal.exe).display()
    );
    hop(&journal.install_dir, journal, true)
}

fn hop(dir: &Path, journal: &Journal, resumed: bool) -> Error {
    let hops = if resumed { hops_so_far() + 1 } else { 1 };
    if hops > MAX_HOPS {
        return Error::Journal {
            path: Journal::path_in(&journal.backup_dir),
            reason: format!(
                "the update to {} was not finished after {MAX_HOPS} relaunches; stopped to avoid a loop. \
                 The old version is kept in {}",
                journal.to_version,
                journal.backup_dir.display()
            ),
        };
    }
    exec(&relaunch(dir, &journal.exe, original_args(), hops))
}

/// What [`apply`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    pub replaced: usize,
    pub removed: usize,
}

/// Step 4: brings the install dir to the staged release: each release file
/// moved in by one rename, files the old release shipped and the new one
/// dropped removed, files no release shipped left alone. The file list goes
/// last. Running it again after a crash finishes the job.
pub(crate) fn apply(journal: &mut Journal) -> Result<Applied> {
    journal.advance(Step::Applying)?;
    let staging = journal.staging_dir();
    let install = journal.install_dir.clone();
    let new_list = read_list(&staging)
        .or_else(|| read_list(&install).filter(|l| l.version.to_string() == journal.to_version))
        .ok_or_else(|| Error::Journal {
            path: Journal::path_in(&journal.backup_dir),
            reason: format!("the staged file list is gone from {}", staging.display()),
        })?;
    // The backup holds the old install's list, untouched by this step.
    let old_list = FileList::read_installed(&journal.backup_dir)?;
    let mut done = Applied::default();

    for (path, item) in &new_list.items {
        let dst = archive::join(&install, path);
        if let Item::Dir = item {
            if fs::symlink_metadata(&dst).is_ok_and(|m| !m.is_dir()) && was_shipped(&old_list, path)
            {
                fs::remove_file(&dst).map_err(io_err("removing", &dst))?;
            }
            fs::create_dir_all(&dst).map_err(io_err("creating", &dst))?;
            continue;
        }
        let src = archive::join(&staging, path);
        match fs::symlink_metadata(&src) {
            Ok(_) => {
                crate::failpoint::at("apply rename", &dst)?;
                move_into_place(&src, &dst)?;
                done.replaced += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Moved by an earlier run of this step.
                fs::symlink_metadata(&dst).map_err(io_err("finding the already applied", &dst))?;
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
            let dst = archive::join(&install, path);
            if let Item::Dir = item {
                dropped_dirs.push(dst);
                continue;
            }
            crate::failpoint::at("apply remove", &dst)?;
            match fs::remove_file(&dst) {
                Ok(()) => done.removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("removing", &dst)(e)),
            }
        }
        // Deepest first; a dir that still holds user files stays.
        for dir in dropped_dirs.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
    let list_src = staging.join(FILE_LIST);
    if list_src.exists() {
        crate::failpoint::at("apply rename", &install.join(FILE_LIST))?;
        move_into_place(&list_src, &install.join(FILE_LIST))?;
    }
    if let Some(config) = &journal.config {
        let path = install.join(config);
        if path.exists() {
            crate::settings::write_current_version(&path, &journal.to_version)?;
        }
    }
    crate::failpoint::at("apply sync dir", &install)?;
    crate::sys::sync_dir(&install)?;
    crate::sys::sync_fs(&install)?;
    journal.advance(Step::Applied)?;
    let _ = fs::remove_dir_all(&staging);
    let _ = fs::remove_file(journal.archive_path());
    let _ = fs::remove_dir(journal.backup_dir.join(DOWNLOAD_DIR));
    log::info!(
        "applied {} {}: {} files replaced, {} removed",
        journal.program,
        journal.to_version,
        done.replaced,
        done.removed
    );
    Ok(done)
}

fn read_list(dir: &Path) -> Option<FileList> {
    FileList::read_installed(dir).ok().flatten()
}

fn was_shipped(list: &Option<FileList>, path: &str) -> bool {
    list.as_ref().is_some_and(|l| l.items.contains_key(path))
}

/// Moves `src` over `dst` by one rename, making `dst`'s parent first. Across
/// file systems (a backup dir elsewhere) it copies beside `dst`, then renames.
fn move_into_place(src: &Path, dst: &Path) -> Result<()> {
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
    }
    match platform::replace_file(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let tmp = sibling_temp(dst);
            copy_entry(src, &tmp)?;
            platform::replace_file(&tmp, dst)
                .map_err(io_err(&format!("renaming {} to", tmp.display()), dst))?;
            let _ = fs::remove_file(src);
            Ok(())
        }
        Err(e) => Err(io_err(&format!("renaming {} to", src.display()), dst)(e)),
    }
}

fn sibling_temp(dst: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(dst.file_name().unwrap_or_default());
    name.push(".leapfrog-tmp");
    dst.with_file_name(name)
}

/// Copies a file or symlink (as a symlink) to `dst`.
fn copy_entry(src: &Path, dst: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).map_err(io_err("reading", src))?;
    let _ = fs::remove_file(dst);
    if meta.file_type().is_symlink() {
        let target = fs::read_link(src).map_err(io_err("reading link", src))?;
        crate::sys::symlink(&target, dst)
    } else {
        fs::copy(src, dst).map_err(io_err(&format!("copying {} to", src.display()), dst))?;
        Ok(())
    }
}

/// Undoes a failed [`apply`]: every path of the new and the old release is
/// put back as the backup copy has it (or removed, where the backup has none).
/// The journal ends `rolled_back`, so the version is not offered again.
pub(crate) fn roll_back(journal: &mut Journal) -> Result<()> {
    log::warn!(
        "rolling {} back to {}",
        journal.install_dir.display(),
        journal.from_version
    );
    let install = journal.install_dir.clone();
    let backup = journal.backup_dir.clone();
    let new_list = read_list(&journal.staging_dir())
        .or_else(|| read_list(&install).filter(|l| l.version.to_string() == journal.to_version));
    let old_list = FileList::read_installed(&backup)?;
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
    let list_name = FILE_LIST.to_owned();
    paths.push(&list_name);
    for path in paths {
        let from = archive::join(&backup, path);
        let to = archive::join(&install, path);
        match fs::symlink_metadata(&from) {
            // A folder in the backup is the user's, never replaced: leave it.
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                crate::failpoint::at("rollback restore", &to)?;
                if let Some(parent) = to.parent() {
                    fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
                }
                let tmp = sibling_temp(&to);
                copy_entry(&from, &tmp)?;
                platform::replace_file(&tmp, &to)
                    .map_err(io_err(&format!("renaming {} to", tmp.display()), &to))?;
            }
            Err(_) => {
                let is_dir = fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir());
                match fs::remove_file(&to) {
                    Err(e) if !is_dir && e.kind() != io::ErrorKind::NotFound => {
                        return Err(io_err("removing", &to)(e))
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(new) = &new_list {
        for (path, item) in new.items.iter().rev() {
            if matches!(item, Item::Dir) && !was_shipped(&old_list, path) {
                let _ = fs::remove_dir(archive::join(&install, path));
            }
        }
    }
    if let Some(config) = &journal.config {
        let from = backup.join(config);
        let to = install.join(config);
        if from.exists() {
            let tmp = sibling_temp(&to);
            copy_entry(&from, &tmp)?;
            platform::replace_file(&tmp, &to).map_err(io_err("restoring", &to))?;
        }
    }
    crate::sys::sync_dir(&install)?;
    crate::sys::sync_fs(&install)?;
    let _ = fs::remove_dir_all(journal.staging_dir());
    let _ = fs::remove_file(journal.archive_path());
    let _ = fs::remove_dir(backup.join(DOWNLOAD_DIR));
    journal.advance(Step::RolledBack)
}

/// Puts the previous version back on request (`leapfrog rollback`): the
/// release files of the install dir are restored from the backup dir, and
/// the version rolled back from is not offered again until a newer one
/// appears. The program must not be running. Returns (from, to) versions.
pub fn rollback(install_dir: &Path, backup_dir: Option<&Path>) -> Result<(String, String)> {
    let install_dir = std::path::absolute(install_dir).map_err(io_err("resolving", install_dir))?;
    let backup_dir = match backup_dir {
        Some(dir) => std::path::absolute(dir).map_err(io_err("resolving", dir))?,
        None => default_backup_dir(&install_dir)
            .ok_or_else(|| Error::Settings(format!("{} has no name", install_dir.display())))?,
    };
    let _lock = crate::lock::try_lock(&backup_dir)?.ok_or_else(|| {
        Error::Settings(format!(
            "{} is being updated right now; try again when it is done",
            install_dir.display()
        ))
    })?;
    let mut journal = Journal::read(&backup_dir)?.ok_or_else(|| {
        Error::Settings(format!(
            "{} holds no update to roll back (no journal in {})",
            install_dir.display(),
            backup_dir.display()
        ))
    })?;
    if !same_dir(&journal.install_dir, &install_dir) {
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
    journal.error = Some("rolled back on request".into());
    roll_back(&mut journal)?;
    // Rolled back on request: nothing to tell the user at the next launch.
    journal.reported = true;
    journal.write()?;
    Ok((journal.to_version.clone(), journal.from_version.clone()))
}

/// What [`finish_pending`] found and did.
#[derive(Debug)]
#[non_exhaustive]
pub enum Pending {
    /// No update in progress: carry on.
    Nothing,
    /// This is the new version, launched after an update. Call
    /// [`confirm_healthy`] once it is known to work.
    Updated {
        /// The version replaced.
        from: String,
        /// This version.
        to: String,
        /// How often this version was launched since the update, this launch included.
        launches: u32,
    },
    /// An update failed and the old version was put back; this is the old
    /// version. Returned once, on the first launch after the rollback; the
    /// failed version is not offered again until a newer one appears.
    RolledBack {
        /// The version that could not be installed.
        version: String,
        /// Why.
        reason: String,
    },
    /// Something went wrong while finishing an update; the app keeps running
    /// the version it is, and the error says what and where.
    Failed(Error),
}

/// Call this first thing in `main`. It returns at once when no update is in
/// progress (a few `stat` calls). Otherwise it finishes or undoes the update
/// and may replace the process (exec) to do so:
///
/// - run as the backup copy with a `staged` or `applying` journal: apply the
///   update and relaunch the new version in the install dir;
/// - run from the install dir with a `staged` or `applying` journal (a hop
///   that was cut off): hop out again;
/// - run from the install dir with an `applied` journal: this is the new
///   version's launch; returns [`Pending::Updated`].
///
/// The backup dir looked at is `$LEAPFROG_BACKUP_DIR` when set, else the
/// install dir's sibling `<install>.backup`.
pub fn finish_pending() -> Pending {
    match locate() {
        Ok(None) => Pending::Nothing,
        Ok(Some(Found::Journal(journal, place))) => resume(*journal, place),
        Ok(Some(Found::Damaged {
            install,
            backup,
            exe,
        })) => handle_damaged(&install, &backup, &exe),
        Err(e) => Pending::Failed(e),
    }
}

/// Marks the running new version healthy, closing the update's journal.
/// Returns whether there was an update to confirm.
pub fn confirm_healthy() -> Result<bool> {
    match locate()? {
        Some(Found::Journal(mut journal, Place::Install)) if journal.step == Step::Applied => {
            journal.advance(Step::Confirmed)?;
            log::info!(
                "{} {} confirmed healthy",
                journal.program,
                journal.to_version
            );
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Backup,
    Install,
}

fn resume(mut journal: Journal, place: Place) -> Pending {
    match (place, journal.step) {
        (Place::Backup, Step::Staged | Step::Applying) => {
            // Another instance may be applying the same update: wait for it,
            // then look again at where the journal stands.
            let lock =
                match crate::lock::lock(&journal.backup_dir, std::time::Duration::from_secs(60)) {
                    Ok(Some(lock)) => lock,
                    Ok(None) => {
                        return Pending::Failed(Error::Settings(format!(
                            "another instance kept the update lock {} for a minute",
                            crate::lock::lock_path(&journal.backup_dir).display()
                        )))
                    }
                    Err(e) => return Pending::Failed(e),
                };
            match Journal::read(&journal.backup_dir) {
                Ok(Some(now)) if now.step != journal.step => {
                    drop(lock);
                    return resume(now, place);
                }
                Ok(_) => {}
                Err(e) => return Pending::Failed(e),
            }
            log::info!(
                "running from the backup copy: applying {} {} to {}",
                journal.program,
                journal.to_version,
                journal.install_dir.display()
            );
            if let Err(error) = apply(&mut journal) {
                log::error!("applying the update failed: {}", error.chain());
                journal.error = Some(error.chain());
                match roll_back(&mut journal) {
                    Ok(()) => log::warn!("rolled back to {}; relaunching it", journal.from_version),
                    // The journal still says `applying`: the next launch
                    // tries again (the hop count bounds how often).
                    Err(e) => log::error!("rolling back failed: {}", e.chain()),
                }
                return Pending::Failed(hop_home(&journal));
            }
            Pending::Failed(trial::watch(journal, Some(lock)))
        }
        // The new version's trial, again: an earlier watcher was killed, or
        // the new version was launched unwatched and hopped out to be watched.
        (Place::Backup, Step::Applied) => match crate::lock::try_lock(&journal.backup_dir) {
            Ok(Some(lock)) => Pending::Failed(trial::watch(journal, Some(lock))),
            // Another process is watching a trial of it already.
            _ => Pending::Failed(hop_home(&journal)),
        },
        (Place::Backup, Step::RolledBack) => Pending::Failed(hop_home(&journal)),
        (Place::Install, Step::RolledBack) if !journal.reported => {
            journal.reported = true;
            if let Err(e) = journal.write() {
                return Pending::Failed(e);
            }
            Pending::RolledBack {
                version: journal.to_version,
                reason: journal.error.unwrap_or_default(),
            }
        }
        (Place::Install, Step::RolledBack) => Pending::Nothing,
        (Place::Install, Step::Staged | Step::Applying) => Pending::Failed(hop_out(&journal, true)),
        (Place::Install, Step::Applied) => {
            // A launch of a version still on trial is watched by the backup
            // copy: hop out to it, unless this is the watched launch, or
            // another process watches a trial already.
            if !trial::is_watched() {
                if let Ok(Some(lock)) = crate::lock::try_lock(&journal.backup_dir) {
                    drop(lock);
                    return Pending::Failed(hop_out(&journal, true));
                }
            }
            Pending::Updated {
                from: journal.from_version,
                to: journal.to_version,
                launches: journal.trial_launches,
            }
        }
        (_, Step::Confirmed) => Pending::Nothing,
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Finds the journal that concerns the running executable.
fn locate() -> Result<Option<Found>> {
    let exe = std::env::current_exe().map_err(io_err("finding", "the running executable"))?;
    let env_backup = std::env::var_os(crate::settings::ENV_BACKUP_DIR).map(PathBuf::from);
    // The executable may sit in a subfolder of the install dir (bin/app).
    for dir in exe.ancestors().skip(1).take(4) {
        let Ok(rel) = exe.strip_prefix(dir) else {
            continue;
        };
        if let Ok(Some(journal)) = Journal::read(dir) {
            if same_dir(&journal.backup_dir, dir) && journal.exe == rel {
                return Ok(Some(Found::Journal(Box::new(journal), Place::Backup)));
            }
        }
        let candidates = env_backup.iter().cloned().chain(default_backup_dir(dir));
        for backup in candidates {
            match Journal::read(&backup) {
                Ok(Some(journal)) => {
                    if same_dir(&journal.install_dir, dir) && journal.exe == rel {
                        return Ok(Some(Found::Journal(Box::new(journal), Place::Install)));
                    }
                }
                Ok(None) => {}
                // Only the backup dir beside the executable's own folder is
                // surely this program's.
                Err(Error::Journal { .. }) if Some(dir) == exe.parent() => {
                    return Ok(Some(Found::Damaged {
                        install: dir.to_owned(),
                        backup,
                        exe: rel.to_owned(),
                    }))
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(None)
}

/// What [`locate`] found.
enum Found {
    Journal(Box<Journal>, Place),
    /// A journal that cannot be read (damaged, truncated, another format).
    Damaged {
        install: PathBuf,
        backup: PathBuf,
        exe: PathBuf,
    },
}

/// A journal that cannot be trusted is set aside, and the install dir is
/// checked against its own file list: a complete release is kept; anything
/// else is brought back to the backup's release, a complete copy.
fn handle_damaged(install: &Path, backup: &Path, exe: &Path) -> Pending {
    let path = Journal::path_in(backup);
    let aside = backup.join(format!("{}.damaged", crate::journal::JOURNAL_NAME));
    if let Err(e) = fs::rename(&path, &aside) {
        return Pending::Failed(io_err(
            &format!("setting aside the damaged journal {} as", path.display()),
            &aside,
        )(e));
    }
    log::warn!(
        "the update journal {} is damaged; set aside as {}",
        path.display(),
        aside.display()
    );
    match intact(install) {
        Ok(Some(list)) => {
            return Pending::Failed(Error::Journal {
                path,
                reason: format!(
                    "damaged, and set aside; {} holds a complete {} {}, so nothing was changed",
                    install.display(),
                    list.program,
                    list.version
                ),
            })
        }
        Ok(None) => {}
        Err(e) => return Pending::Failed(e),
    }
    let Ok(Some(old)) = FileList::read_installed(backup) else {
        return Pending::Failed(Error::Journal {
            path,
            reason: format!(
                "damaged, and {} is not a complete release, and the backup has no file list to restore from; reinstall the program",
                install.display()
            ),
        });
    };
    let mut journal = Journal {
        format: crate::journal::JOURNAL_FORMAT,
        program: old.program.clone(),
        install_dir: install.to_owned(),
        backup_dir: backup.to_owned(),
        exe: exe.to_owned(),
        from_version: old.version.to_string(),
        to_version: FileList::read_installed(install)
            .ok()
            .flatten()
            .map_or_else(|| "unknown".to_owned(), |l| l.version.to_string()),
        archive: String::new(),
        sha256: String::new(),
        config: None,
        step: Step::Applying,
        trial_launches: 0,
        trial_failures: 0,
        trial: crate::journal::Trial::default(),
        error: Some(format!(
            "the update journal was damaged and {} was not a complete release; {} {} was restored from {}",
            install.display(),
            old.program,
            old.version,
            backup.display()
        )),
        reported: false,
    };
    // The restored version is started in place of this process, and tells
    // its user what happened.
    match roll_back(&mut journal) {
        Ok(()) => Pending::Failed(hop_home(&journal)),
        Err(e) => Pending::Failed(e),
    }
}

/// The install dir's file list, when every file of it is there with its
/// listed content.
fn intact(install: &Path) -> Result<Option<FileList>> {
    let Some(list) = FileList::read_installed(install)? else {
        return Ok(None);
    };
    for (path, item) in &list.items {
        let at = archive::join(install, path);
        let good = match item {
            Item::Dir => at.is_dir(),
            Item::Link { target } => fs::read_link(&at).is_ok_and(|t| t == Path::new(target)),
            Item::File { sha256, size, .. } => {
                matches!(crate::verify::sha256_file(&at), Ok((s, n)) if &s == sha256 && n == *size)
            }
        };
        if !good {
            return Ok(None);
        }
    }
    Ok(Some(list))
}

/// The default backup dir of an install dir: its sibling `<name>.backup`.
pub fn default_backup_dir(install_dir: &Path) -> Option<PathBuf> {
    let name = install_dir.file_name()?;
    let mut backup = name.to_os_string();
    backup.push(".backup");
    Some(install_dir.with_file_name(backup))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaunch_keeps_arguments_and_picks_the_dir() {
        let r = relaunch(
            Path::new("/opt/demo.backup"),
            Path::new("bin/demo"),
            ["--flag".into(), "a b".into()],
            2,
        );
        assert_eq!(r.program, Path::new("/opt/demo.backup/bin/demo"));
        assert_eq!(
            r.args,
            vec![OsString::from("--flag"), OsString::from("a b")]
        );
    }

    #[test]
    fn default_backup_is_a_sibling() {
        assert_eq!(
            default_backup_dir(Path::new("/opt/demo")),
            Some(PathBuf::from("/opt/demo.backup"))
        );
    }
}
