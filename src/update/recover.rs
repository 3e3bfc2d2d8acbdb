//! Recovery: finding the journal that concerns the running executable
//! (and believing it only where it may be believed), and repairing a
//! journal that cannot be read. What each journal then leads to is
//! `finish_pending`'s, in the parent module, by the table in its doc.

use std::fs;
use std::path::{Path, PathBuf};

use super::backup::{self, same_dir};
use super::hop::run_installed;
use super::install;
use crate::error::{io_err, Error, Result};
use crate::journal::{Journal, Step};
use crate::layout::{self, default_backup_dir};
use crate::release::file_list::FileList;

/// What [`finish_pending`](crate::finish_pending) found and did.
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
    /// [`confirm_healthy`](crate::confirm_healthy) once it is known to work.
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

/// Where the running executable is: the backup copy, or the install dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Backup,
    Install,
}

/// Finds the journal that concerns the running executable.
///
/// A journal is believed only about the folder it lies in and the install
/// dir it was staged for: run from the backup copy, the journal must lie in
/// that copy's folder, name it as its backup dir, and the folder's marker
/// must name the journal's install dir; run from the install dir, the
/// journal must lie in the backup dir whose marker names this install dir,
/// and name both. Anything else is refused, never followed.
pub(crate) fn locate() -> Result<Option<Found>> {
    let exe = crate::os::running_exe().map_err(io_err("finding", "the running executable"))?;
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
pub(crate) enum Found {
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
pub(crate) fn handle_damaged(install: &Path, backup: &Path, exe: &Path) -> Pending {
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
