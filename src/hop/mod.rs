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

mod backup;
pub(crate) mod lock;
mod install;
mod tidy;
mod trial;

pub(crate) use tidy::tidy;

pub(crate) use install::{apply, undo_apply};

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::release::file_list::{self, FileList, Item, FILE_LIST};
use crate::error::{io_err, Error, Result};
use crate::fetch::{self, Expect, Limits, ProgressFn};
use crate::journal::{Journal, Step, JOURNAL_FORMAT};
use crate::layout;
use crate::release::manifest::Release;

/// More hops than an update needs (out, home) even with a resumed one.
const MAX_HOPS: u32 = 6;

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
    let existed = fs::symlink_metadata(&plan.backup_dir).is_ok();
    if let Err(e) = preflight(plan) {
        if !existed && backup::is_backup_of(&plan.backup_dir, &plan.install_dir) {
            let _ = fs::remove_dir_all(&plan.backup_dir);
        }
        return Err(e);
    }
    let result = stage_inner(plan);
    if result.is_err() {
        // A download that broke off is kept, to be continued next time;
        // everything else staged so far goes. (The backup dir is
        // leapfrog's: preflight checked its marker.)
        if backup::keep_partials(&plan.backup_dir.join(DOWNLOAD_DIR)) {
            let _ = backup::clear_except(&plan.backup_dir, &[DOWNLOAD_DIR, layout::MARKER]);
        } else {
            let _ = fs::remove_dir_all(&plan.backup_dir);
        }
    }
    result
}

/// The folder in the backup dir where archives are downloaded; it outlives
/// a failed stage so that a broken-off download can be continued.
pub(crate) const DOWNLOAD_DIR: &str = layout::DOWNLOAD;

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
        archive: crate::release::manifest::archive_name(&release.program, &release.version),
        sha256,
        config: plan.config.clone(),
        step: Step::Staged,
        trial_launches: 0,
        trial_failures: 0,
        trial: plan.trial,
        error: None,
        reported: false,
        bad_release: false,
        failed_at: None,
        retries: earlier_retries(&plan.backup_dir, &release.version.to_string()),
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
    let list = crate::release::archive::unpack(&archive, &staging)?;
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
    if !crate::os::same_device(&plan.install_dir, &plan.backup_dir) {
        // Applying will copy the release onto the install dir's disk.
        crate::os::need_space(&plan.install_dir, list.total_size())?;
    }
    // A power cut after the journal says `staged` must find the staged
    // files on disk, not only the journal.
    crate::os::sync_fs(&plan.backup_dir)?;
    journal.write()?;
    log::info!(
        "journal written: {}",
        Journal::path_in(&journal.backup_dir).display()
    );
    Ok(journal)
}

/// How often `version` failed here before through no fault of its own
/// (an earlier journal in the backup dir says so).
fn earlier_retries(backup: &Path, version: &str) -> u32 {
    match Journal::read(backup) {
        Ok(Some(j)) if j.step == Step::RolledBack && j.to_version == version && !j.bad_release => {
            j.retries
        }
        _ => 0,
    }
}

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
            Item::Dir => dirs.push(file_list::join(install, path)),
            Item::File { .. } if Path::new(path) != plan.exe => {
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
    let backup = &plan.backup_dir;
    backup::claim(backup, install)?;
    crate::os::can_create_in(backup).map_err(|e| Error::Unsuitable {
        path: backup.clone(),
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
    crate::os::need_space(backup, plan.release.size.unwrap_or(0) + copy)
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
    let keep = [DOWNLOAD_DIR, layout::MARKER];
    backup::clear_except(backup, &keep)?;
    backup::own_subdir(&backup.join(DOWNLOAD_DIR))?;
    backup::keep_partials(&backup.join(DOWNLOAD_DIR));
    match link_tree(install, backup, true) {
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
            backup::clear_except(backup, &keep)?;
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
    Ok(())
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
    let hops = if resumed { crate::os::hops_so_far() + 1 } else { 1 };
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
    crate::os::exec(&crate::os::relaunch(dir, &journal.exe, crate::os::original_args(), hops))
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
    let _lock = crate::hop::lock::try_lock(&backup_dir)?.ok_or_else(|| {
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
        (Place::Backup, Step::Staged | Step::Applying | Step::RollingBack) => {
            // Another instance may be applying the same update: wait for it,
            // then look again at where the journal stands.
            let lock =
                match crate::hop::lock::lock(&journal.backup_dir, std::time::Duration::from_secs(60)) {
                    Ok(Some(lock)) => lock,
                    Ok(None) => {
                        return Pending::Failed(Error::Settings(format!(
                            "another instance kept the update lock {} for a minute",
                            crate::hop::lock::lock_path(&journal.backup_dir).display()
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
            if journal.step == Step::RollingBack {
                log::info!(
                    "running from the backup copy: finishing the rollback of {} to {}",
                    journal.install_dir.display(),
                    journal.from_version
                );
                return Pending::Failed(undo_and_go_home(journal));
            }
            log::info!(
                "running from the backup copy: applying {} {} to {}",
                journal.program,
                journal.to_version,
                journal.install_dir.display()
            );
            if let Err(error) = apply(&mut journal) {
                log::error!("applying the update failed: {}", error.chain());
                journal.failed_here(&format!("applying failed: {}", error.chain()));
                return Pending::Failed(undo_and_go_home(journal));
            }
            Pending::Failed(trial::watch(journal, Some(lock)))
        }
        // The new version's trial, again: an earlier watcher was killed, or
        // the new version was launched unwatched and hopped out to be watched.
        (Place::Backup, Step::Applied) => match crate::hop::lock::try_lock(&journal.backup_dir) {
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
        (Place::Install, Step::Staged | Step::Applying | Step::RollingBack) => {
            Pending::Failed(hop_out(&journal, true))
        }
        (Place::Install, Step::Applied) => {
            // A launch of a version still on trial is watched by the backup
            // copy: hop out to it, unless this is the watched launch, or
            // another process watches a trial already.
            if !trial::is_watched() {
                if let Ok(Some(lock)) = crate::hop::lock::try_lock(&journal.backup_dir) {
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

/// Undoes the update and starts the version the install dir then holds.
/// A rollback that fails midway leaves the journal `rolling_back`: the next
/// launch finishes it (the hop count bounds how often).
fn undo_and_go_home(mut journal: Journal) -> Error {
    match undo_apply(&mut journal) {
        Ok(()) => log::warn!("rolled back to {}; relaunching it", journal.from_version),
        Err(e) => log::error!("rolling back failed: {}", e.chain()),
    }
    hop_home(&journal)
}

pub(crate) fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Finds the journal that concerns the running executable.
///
/// A journal is believed only about the folder it lies in and the install
/// dir it was staged for: run from the backup copy, the journal must lie in
/// that copy's folder, name it as its backup dir, and the folder's marker
/// must name the journal's install dir; run from the install dir, the
/// journal must lie in the backup dir whose marker names this install dir,
/// and name both. Anything else is refused, never followed.
fn locate() -> Result<Option<Found>> {
    let exe = std::env::current_exe().map_err(io_err("finding", "the running executable"))?;
    let env_backup = std::env::var_os(crate::settings::ENV_BACKUP_DIR).map(PathBuf::from);
    // The executable may sit in a subfolder of the install dir (bin/app).
    for dir in exe.ancestors().skip(1).take(4) {
        let Ok(rel) = exe.strip_prefix(dir) else {
            continue;
        };
        if let Ok(Some(journal)) = Journal::read(dir) {
            if journal.exe == rel {
                if !same_dir(&journal.backup_dir, dir) {
                    log::warn!(
                        "ignoring the journal {}: it names {} as its backup dir, not the folder it lies in",
                        Journal::path_in(dir).display(),
                        journal.backup_dir.display()
                    );
                } else if backup::is_backup_of(dir, &journal.install_dir) {
                    return Ok(Some(Found::Journal(Box::new(journal), Place::Backup)));
                } else {
                    return Err(untrusted(
                        dir,
                        format!(
                            "this folder is not leapfrog's backup dir of {} (its marker {} does not name it); nothing was followed",
                            journal.install_dir.display(),
                            layout::MARKER
                        ),
                    ));
                }
            }
        }
        let candidates = env_backup.iter().cloned().chain(default_backup_dir(dir));
        for backup in candidates {
            match Journal::read(&backup) {
                Ok(Some(journal)) => {
                    if !(same_dir(&journal.install_dir, dir) && journal.exe == rel) {
                        continue;
                    }
                    if !same_dir(&journal.backup_dir, &backup) {
                        return Err(untrusted(
                            &backup,
                            format!(
                                "it names {} as its backup dir, not the folder it lies in; nothing was followed",
                                journal.backup_dir.display()
                            ),
                        ));
                    }
                    if !backup::is_backup_of(&backup, dir) {
                        return Err(untrusted(
                            &backup,
                            format!(
                                "{} is not leapfrog's backup dir of {} (no marker {} naming it); nothing was followed",
                                backup.display(),
                                dir.display(),
                                layout::MARKER
                            ),
                        ));
                    }
                    return Ok(Some(Found::Journal(Box::new(journal), Place::Install)));
                }
                Ok(None) => {}
                // Only the backup dir beside the executable's own folder,
                // marked as its backup, is surely this program's.
                Err(Error::Journal { .. })
                    if Some(dir) == exe.parent() && backup::is_backup_of(&backup, dir) =>
                {
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

fn untrusted(dir: &Path, reason: String) -> Error {
    Error::Journal {
        path: Journal::path_in(dir),
        reason: format!("{reason}. Remove it if no update of this program is in progress"),
    }
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
    let aside = backup.join(layout::JOURNAL_DAMAGED);
    // Kept aside first, and the damaged journal left in place until a
    // journal of the repair replaces it: a crash in between repeats this.
    let kept = fs::read(&path)
        .map_err(io_err("reading", &path))
        .and_then(|bytes| crate::os::write_atomic(&aside, &bytes));
    if let Err(e) = kept {
        return Pending::Failed(e);
    }
    log::warn!(
        "the update journal {} is damaged; set aside as {}",
        path.display(),
        aside.display()
    );
    let intact = install::intact(install);
    if let Ok(Some(_)) = intact {
        if let Err(e) = fs::remove_file(&path) {
            return Pending::Failed(io_err("removing", &path)(e));
        }
    }
    match intact {
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
        bad_release: false,
        failed_at: None,
        retries: 0,
    };
    // The restored version is started in place of this process, and tells
    // its user what happened.
    match undo_apply(&mut journal) {
        Ok(()) => Pending::Failed(hop_home(&journal)),
        Err(e) => Pending::Failed(e),
    }
}

pub use crate::layout::default_backup_dir;

/// The install dir that `dir` is leapfrog's backup copy of, if it is one.
pub(crate) fn backup_of(dir: &Path) -> Option<PathBuf> {
    backup::backs(dir)
}
