//! Step 2's parts, after the preflight: the backup copy, the archive
//! (downloaded while hashed, or reused when it still verifies), the
//! staging folder, the `staged` journal.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::backup;
use super::check::{earlier_retries, Available};
use crate::config::Resolved;
use crate::error::{Error, Result};
use crate::fetch::{self, Expect};
use crate::journal::{Journal, Step};
use crate::release::file_list::{FileList, Item};
use crate::release::unpack::Earlier;

/// Everything [`stage`] needs to know.
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
    /// Set (by the progress window's Cancel) to stop the stage.
    pub cancel: Option<Arc<AtomicBool>>,
    pub trial: crate::journal::Trial,
}

impl<'a> StagePlan<'a> {
    pub(crate) fn new(
        updater: &'a Resolved,
        available: &'a Available,
        (progress, cancel): (Option<fetch::ProgressFn>, Option<Arc<AtomicBool>>),
    ) -> StagePlan<'a> {
        let settings = updater.settings();
        StagePlan {
            program: updater.program(),
            from_version: updater.current_version().to_string(),
            release: &available.release,
            archive_url: available.archive_url.clone(),
            install_dir: updater.install_dir().to_owned(),
            backup_dir: updater.backup_dir().to_owned(),
            exe: updater.exe.clone(),
            config: settings.config.as_ref().and_then(|c| {
                c.path
                    .strip_prefix(updater.install_dir())
                    .ok()
                    .map(Path::to_owned)
            }),
            limits: &settings.limits,
            progress,
            cancel,
            trial: settings.trial,
        }
    }
}

/// Step 2 after the preflight: backup, archive, staging, journal.
pub(crate) fn stage_release(plan: &StagePlan<'_>) -> Result<Journal> {
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
    journal.staged_by = Some(crate::release::trust::new_install_id());
    journal.retries = earlier_retries(&plan.backup_dir, &journal.to_version);
    backup::copy_to_backup(&plan.install_dir, &plan.backup_dir, &journal.archive)?;
    journal.sha256 = fetch_archive(plan, &journal.archive_path())?;
    unpack_archive(plan, &journal)?;
    if plan
        .cancel
        .as_ref()
        .is_some_and(|c| c.load(Ordering::Relaxed))
    {
        // Cancelled once the download was done: the archive is kept, to
        // be reused once it verifies again.
        return Err(Error::Cancelled {
            url: fetch::redact(&plan.archive_url),
        });
    }
    // A power cut after the journal says `staged` must find the staged
    // files on disk, not only the journal: the unpack flushed each file it
    // wrote and each folder (the archive and the linked files need none).
    journal.write()?;
    super::history::record_journal(
        &journal,
        &super::history::step_event(&journal, Step::Staged),
    );
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
    // Only a plain file of the right size is hashed: nothing planted in
    // its place (a FIFO, a link, a huge file) is read or followed.
    let kept = fs::symlink_metadata(archive)
        .is_ok_and(|meta| meta.is_file() && Some(meta.len()) == release.size);
    if let (Some(sha256), Some(size), true) = (&release.sha256, release.size, kept) {
        match crate::release::hash::sha256_file(archive) {
            Ok((found, length)) if &found == sha256 && length == size => {
                log::info!(
                    "reusing {}, downloaded and verified before (sha256 {found})",
                    archive.display()
                );
                if let Some(progress) = &plan.progress {
                    progress(size, Some(size));
                }
                return Ok(found);
            }
            _ => log::info!(
                "{} does not verify; downloading it again",
                archive.display()
            ),
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
    let (computed, size) = fetch::download_until(
        &plan.archive_url,
        archive,
        &expect,
        plan.limits,
        plan.progress.as_ref(),
        plan.cancel.as_deref(),
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
    // The installed release, as backed up: its unchanged files are linked,
    // not unpacked and written again.
    let installed = FileList::read_installed(&plan.backup_dir).ok().flatten();
    let unpacked = crate::release::unpack::unpack_with(
        &archive,
        &staging,
        crate::release::unpack::Options {
            earlier: installed.as_ref().map(|list| Earlier {
                dir: &plan.backup_dir,
                list,
            }),
            durable: true,
        },
    )?;
    let list = unpacked.list;
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
        "unpacked {} items ({}) into {}: {} files written, {} unchanged ones linked from the backup",
        list.items.len(),
        crate::error::human_size(list.total_size()),
        staging.display(),
        unpacked.written,
        unpacked.linked
    );
    if !crate::os::same_device(&plan.install_dir, &plan.backup_dir) {
        // Applying will copy the release onto the install dir's disk.
        crate::os::need_space(&plan.install_dir, list.total_size())?;
    }
    Ok(list)
}
