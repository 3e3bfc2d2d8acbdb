//! Recovery: what the next launch does with an update that a crash, a
//! kill or a power cut left unfinished ([`finish_pending`]), and the
//! new version's word that it works ([`confirm_healthy`]). The table in
//! the [`update`](super) module's doc says what each journal leads to.

use std::fs;
use std::path::{Path, PathBuf};

use super::backup::{self, same_dir};
use super::undo_and_run_installed;
use super::{apply, confirm, hop_home, hop_out, install, lock, run_installed, trial};
use crate::error::{io_err, Error, Result};
use crate::journal::{Journal, Step};
use crate::layout::{self, default_backup_dir};
use crate::release::file_list::FileList;

/// What [`finish_pending`] found and did.
///
/// ```no_run
/// match leapfrog::finish_pending() {
///     leapfrog::Pending::Updated { from, to, .. } => log::info!("updated from {from} to {to}"),
///     leapfrog::Pending::RolledBack { version, reason } => {
///         log::warn!("the update to {version} failed and was undone: {reason}") // tell the user
///     }
///     leapfrog::Pending::Failed(e) => log::error!("{e}"),
///     _ => {}
/// }
/// ```
#[derive(Debug)]
#[must_use = "a rollback must be told to the user, and a failure logged"]
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
///
/// ```no_run
/// // First thing in main; may exec.
/// let pending = leapfrog::finish_pending();
/// if let leapfrog::Pending::Failed(e) = &pending {
///     log::error!("an update in progress could not be finished: {e}");
/// }
/// // ... set up the updater, run the app ...
/// ```
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
///
/// ```no_run
/// // The new version's main window is up and its data loaded:
/// if let Err(e) = leapfrog::confirm_healthy() {
///     log::error!("could not record that this version works: {e}");
/// }
/// ```
pub fn confirm_healthy() -> Result<bool> {
    match locate()? {
        Some(Found::Journal(mut journal, Place::Install)) if journal.step == Step::Applied => {
            confirm(&mut journal, "it said so")?;
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
            let lock = match lock::lock(&journal.backup_dir, std::time::Duration::from_secs(60)) {
                Ok(Some(lock)) => lock,
                Ok(None) => {
                    return Pending::Failed(Error::Settings(format!(
                        "another instance kept the update lock {} for a minute",
                        layout::lock_path(&journal.backup_dir).display()
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
                return Pending::Failed(undo_and_run_installed(journal));
            }
            Pending::Failed(apply(journal, lock))
        }
        // The new version's trial, again: an earlier watcher was killed, or
        // the new version was launched unwatched and hopped out to be watched.
        (Place::Backup, Step::Applied) => match lock::try_lock(&journal.backup_dir) {
            Ok(Some(lock)) => Pending::Failed(hop_home(journal, Some(lock))),
            // Another process is watching a trial of it already.
            _ => Pending::Failed(run_installed(&journal)),
        },
        (Place::Backup, Step::RolledBack) => Pending::Failed(run_installed(&journal)),
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
                if let Ok(Some(lock)) = lock::try_lock(&journal.backup_dir) {
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
    let env_backup = std::env::var_os(crate::config::ENV_BACKUP_DIR).map(PathBuf::from);
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
    let to = FileList::read_installed(install)
        .ok()
        .flatten()
        .map_or_else(|| "unknown".to_owned(), |l| l.version.to_string());
    let mut journal = Journal::new(
        &old.program,
        (install, backup),
        exe,
        (old.version.to_string(), to),
    );
    journal.step = Step::Applying;
    journal.error = Some(format!(
        "the update journal was damaged and {} was not a complete release; {} {} was restored from {}",
        install.display(),
        old.program,
        old.version,
        backup.display()
    ));
    // The restored version is started in place of this process, and tells
    // its user what happened.
    match install::undo_apply(&mut journal) {
        Ok(()) => Pending::Failed(run_installed(&journal)),
        Err(e) => Pending::Failed(e),
    }
}
