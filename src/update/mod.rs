//! The update's six steps, one function each, in the order they run.
//!
//! | step | function | runs in | a crash here leaves | the next launch |
//! |------|----------|---------|---------------------|-----------------|
//! | 1 | [`check`] | the old app (a background thread) | nothing changed | checks again |
//! | 2 | [`stage`] | the old app | the install dir untouched; a backup dir without a journal (a broken-off download or a complete archive kept in it) | runs the old version; the next stage continues the download or reuses the archive |
//! | 2 | [`stage`], done | the old app | a `staged` journal: every staged file verified and on disk | hops out and applies |
//! | 3 | [`hop_out`] | the old app, replaced by its copy in the backup dir | a `staged` journal | hops out again |
//! | 4 | [`apply`] | the copy | an `applying` journal, some files renamed | hops out and applies again: every part runs twice safely |
//! | 4, failed | [`undo_and_run_installed`] | the copy | a `rolling_back` journal | hops out and finishes putting the old release back |
//! | 5 | [`hop_home`] | the copy, watching the new version (its child) | an `applied` journal, the trial not judged | hops out to be watched again; after more unjudged trials than allowed attempts plus two, rolls back |
//! | 6 | [`confirm`] | the new version, or its watcher | a `confirmed` journal | nothing to do |
//! | — | a journal that cannot be read (torn, empty, another format) | | | copies it aside as `need_update.damaged`; keeps the install dir if it is a complete release by its own file list, else restores the backup's release |
//!
//! Everything heavy happens in step 2, while the old version runs, and
//! nothing in the install dir changes before step 4. The journal
//! (`need_update` in the backup dir) is written before each step is taken,
//! by write-temp, fsync, rename, fsync-dir; staged and applied files are on
//! disk before the journal moves past them. [`finish_pending`] (the
//! `recover` module), first thing in every launch, reads the journal and
//! does what the last column says; a journal is believed only inside the
//! backup dir whose marker names its install dir ([`crate::layout`]).
//!
//! Beside the steps: `check` (step 1's rules), `backup` (the backup dir:
//! marker, preflight, hard-linked copy), `install` (renames into place,
//! `undo_apply`, and [`rollback`] on request), `trial` (the watcher),
//! `recover` (finishing after a crash), `tidy` (debris of killed updates)
//! and `lock` (one updater at a time).

mod backup;
mod check;
mod install;
pub(crate) mod lock;
mod recover;
mod tidy;
mod trial;

pub(crate) use check::check_at;
pub use check::{find_update, Available, Check, Checked, Query};
pub use install::rollback;
pub use recover::{confirm_healthy, finish_pending, Pending};
pub(crate) use tidy::tidy;

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fetch::{self, Expect};
use crate::journal::{Journal, Step};
use crate::layout;
use crate::release::file_list::{FileList, Item};
use crate::updater::Updater;
use lock::UpdateLock;

/// More hops than an update needs (out, home) even with a resumed one.
const MAX_HOPS: u32 = 6;

/// Step 1: fetches the manifest (then the mirrors, in order) and returns
/// the release to move to, if any: signed, fresh, not rolled back here.
pub(crate) fn check(updater: &Updater) -> Result<Check> {
    check::newest(updater)
}

/// Step 2: copies the install dir to the backup dir, downloads the archive
/// into it while hashing (or reuses one verified before), unpacks it into
/// the staging folder, checks that it is the release the manifest named,
/// and writes the `staged` journal.
///
/// The install dir is never written. On error everything staged so far is
/// removed again (a broken-off download and a complete archive are kept
/// for the next try) and the app goes on running the old version.
pub(crate) fn stage(updater: &Updater, available: &Available) -> Result<Journal> {
    let _lock = lock::try_lock(updater.backup_dir())?
        .ok_or_else(|| Error::busy(updater.install_dir(), updater.backup_dir()))?;
    check::nothing_in_progress(updater.backup_dir())?;
    let plan = updater.plan(available);
    // Refused here, nothing changes: the previous backup stays as it is.
    let existed = fs::symlink_metadata(&plan.backup_dir).is_ok();
    if let Err(e) = backup::preflight(&plan) {
        if !existed && backup::is_backup_of(&plan.backup_dir, &plan.install_dir) {
            let _ = fs::remove_dir_all(&plan.backup_dir);
        }
        return Err(e);
    }
    let staged = stage_release(&plan);
    if staged.is_err() {
        let archive = crate::release::manifest::archive_name(
            &available.release.program,
            &available.release.version,
        );
        backup::clear_after_failed_stage(&plan.backup_dir, &archive);
    }
    staged
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

/// Step 4, run by the backup copy under the lock: brings the install dir to
/// the staged release, then goes on to step 5. When a file cannot be put in
/// place, the old release is put back and started instead. Returns only on
/// failure.
pub(crate) fn apply(mut journal: Journal, lock: UpdateLock) -> Error {
    log::info!(
        "running from the backup copy: applying {} {} to {}",
        journal.program,
        journal.to_version,
        journal.install_dir.display()
    );
    if let Err(error) = install::apply(&mut journal) {
        log::error!("applying the update failed: {}", error.chain());
        journal.failed_here(&format!("applying failed: {}", error.chain()));
        return undo_and_run_installed(journal);
    }
    hop_home(journal, Some(lock))
}

/// Step 5: starts the new version in the install dir. Its first launch is a
/// trial: the backup copy starts it as a child and watches it (`trial`),
/// rolling back a version that fails. Returns only on failure.
pub(crate) fn hop_home(journal: Journal, lock: Option<UpdateLock>) -> Error {
    trial::watch(journal, lock)
}

/// Step 6: records that the new version works (it said so through
/// [`confirm_healthy`], or its watcher judged it); the update is over, and
/// the backup keeps the old release for [`rollback`].
pub(crate) fn confirm(journal: &mut Journal, how: &str) -> Result<()> {
    journal.advance(Step::Confirmed)?;
    log::info!(
        "{} {} is healthy: {how}; the backup keeps {} for `leapfrog rollback`",
        journal.program,
        journal.to_version,
        journal.from_version
    );
    Ok(())
}

/// Replaces this process by whatever version the install dir holds (after
/// a rollback, or when another process watches the trial). Returns only on
/// failure.
pub(crate) fn run_installed(journal: &Journal) -> Error {
    log::info!(
        "starting {}",
        journal.install_dir.join(&journal.exe).display()
    );
    hop(&journal.install_dir, journal, true)
}

/// Undoes the update and starts the version the install dir then holds.
/// A rollback that fails midway leaves the journal `rolling_back`: the next
/// launch finishes it (the hop count bounds how often).
pub(crate) fn undo_and_run_installed(mut journal: Journal) -> Error {
    match install::undo_apply(&mut journal) {
        Ok(()) => log::warn!("rolled back to {}; relaunching it", journal.from_version),
        Err(e) => log::error!("rolling back failed: {}", e.chain()),
    }
    run_installed(&journal)
}

fn hop(dir: &Path, journal: &Journal, resumed: bool) -> Error {
    let hops = if resumed {
        crate::os::hops_so_far() + 1
    } else {
        1
    };
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
    let args = crate::os::original_args();
    crate::os::exec(&crate::os::relaunch(dir, &journal.exe, args, hops))
}

/// Everything [`stage`] needs to know, resolved by the [`Updater`].
pub(crate) struct StagePlan<'a> {
    pub program: &'a str,
    pub from_version: String,
    pub release: &'a crate::Release,
    pub archive_url: String,
    pub install_dir: PathBuf,
    pub backup_dir: PathBuf,
    pub exe: PathBuf,
    pub config: Option<PathBuf>,
    pub limits: &'a fetch::Limits,
    pub progress: Option<fetch::ProgressFn>,
    pub trial: crate::journal::Trial,
}

/// Step 2 after the preflight: backup, archive, staging, journal.
fn stage_release(plan: &StagePlan<'_>) -> Result<Journal> {
    let release = plan.release;
    let mut journal = Journal::new(
        plan.program,
        (&plan.install_dir, &plan.backup_dir),
        &plan.exe,
        (plan.from_version.clone(), release.version.to_string()),
    );
    journal.archive = crate::release::manifest::archive_name(&release.program, &release.version);
    journal.config = plan.config.clone();
    journal.trial = plan.trial;
    journal.retries = check::earlier_retries(&plan.backup_dir, &journal.to_version);
    backup::copy_to_backup(&plan.install_dir, &plan.backup_dir, &journal.archive)?;
    journal.sha256 = fetch_archive(plan, &journal.archive_path())?;
    unpack_archive(plan, &journal)?;
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

/// Downloads the release's archive to `archive` while hashing it, or keeps
/// the one a stage cut short left there when it still verifies; returns
/// its sha256.
fn fetch_archive(plan: &StagePlan<'_>, archive: &Path) -> Result<String> {
    let release = plan.release;
    if let (Some(sha256), Some(size)) = (&release.sha256, release.size) {
        match crate::release::hash::sha256_file(archive) {
            Ok((found, length)) if &found == sha256 && length == size => {
                log::info!(
                    "reusing {}, downloaded and verified before (sha256 {found})",
                    archive.display()
                );
                return Ok(found);
            }
            Ok(_) => {
                log::info!(
                    "{} does not verify; downloading it again",
                    archive.display()
                );
                let _ = fs::remove_file(archive);
            }
            Err(_) => {}
        }
    }
    let _ = fs::remove_file(archive);
    log::info!(
        "downloading {} to {}",
        fetch::redact(&plan.archive_url),
        archive.display()
    );
    let expect = Expect {
        sha256: release.sha256.as_deref(),
        size: release.size,
    };
    let (computed, size) = fetch::download(
        &plan.archive_url,
        archive,
        &expect,
        plan.limits,
        plan.progress.as_ref(),
    )?;
    log::info!(
        "verified {} ({}, sha256 {computed})",
        archive.display(),
        crate::error::human_size(size)
    );
    Ok(computed)
}

/// Unpacks the archive into the staging folder and checks that it is the
/// release the manifest offered, with the program's executable in it, and
/// that the install dir's disk can take it.
fn unpack_archive(plan: &StagePlan<'_>, journal: &Journal) -> Result<FileList> {
    let release = plan.release;
    let archive = journal.archive_path();
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
    let exe_rel = backup::to_list_path(&plan.exe);
    if !matches!(list.items.get(&exe_rel), Some(Item::File { .. })) {
        return Err(Error::BadArchive {
            archive,
            reason: format!("it does not contain the program's executable {exe_rel:?}; the update would leave nothing to start"),
        });
    }
    log::info!(
        "unpacked {} items ({}) into {}",
        list.items.len(),
        crate::error::human_size(list.total_size()),
        staging.display()
    );
    if !crate::os::same_device(&plan.install_dir, &plan.backup_dir) {
        // Applying will copy the release onto the install dir's disk.
        crate::os::need_space(&plan.install_dir, list.total_size())?;
    }
    Ok(list)
}

/// The install dir that `dir` is leapfrog's backup copy of, if it is one.
pub(crate) fn backup_of(dir: &Path) -> Option<PathBuf> {
    backup::backs(dir)
}

/// The folder in the backup dir where archives are downloaded; it outlives
/// a failed stage so that a broken-off download can be continued.
pub(crate) const DOWNLOAD_DIR: &str = layout::DOWNLOAD;
