//! Leapfrog's own debris, and only its own: temp and probe files that a
//! killed process left (found by the names in [`layout`], and only when the
//! process that made them is gone), and a staging folder, archive or
//! rollback list that an update no longer needs.

use std::fs;
use std::path::Path;

use crate::journal::{Journal, Step};
use crate::layout;
use crate::release::file_list::{self, FileList, Item};

/// Removes leapfrog's debris from the install dir (its root and every
/// folder of the installed release) and from its backup dir. Does nothing
/// while another process holds the update lock, or when the backup dir is
/// not leapfrog's backup of `install`.
pub(crate) fn tidy(install: &Path, backup: &Path) {
    let Ok(Some(_lock)) = crate::update::lock::try_lock(backup) else {
        return;
    };
    let mut dirs = vec![install.to_owned()];
    if let Ok(Some(list)) = FileList::read_installed(install) {
        dirs.extend(
            list.items
                .iter()
                .filter(|(_, item)| matches!(item, Item::Dir))
                .map(|(path, _)| file_list::join(install, path)),
        );
    }
    if !super::backup::is_backup_of(backup, install) {
        dirs.iter().for_each(|dir| remove_dead_debris(dir));
        return;
    }
    dirs.push(backup.to_owned());
    dirs.iter().for_each(|dir| remove_dead_debris(dir));
    // After an update: its archive is done with. With no journal, a stage
    // was cut short: a complete archive is kept, for the next stage to
    // reuse once it verifies.
    let keep_archives = match Journal::read(backup) {
        Ok(Some(journal)) if matches!(journal.step, Step::Confirmed | Step::RolledBack) => false,
        Ok(None) => true,
        _ => return,
    };
    remove(&backup.join(layout::STAGING));
    remove(&backup.join(layout::UNDO_LIST));
    let downloads = backup.join(layout::DOWNLOAD);
    let archive = |name: &str| keep_archives && name.ends_with(".tar.gz");
    if !super::backup::keep_downloads(&downloads, archive) {
        let _ = fs::remove_dir(&downloads);
    }
}

/// Removes the temp and probe files in `dir` whose process is gone.
fn remove_dead_debris(dir: &Path) {
    if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        return;
    }
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(layout::debris_pid) else {
            continue;
        };
        if pid != std::process::id() && !crate::os::process_alive(pid) {
            log::info!(
                "removing {}, left by a process that is gone",
                entry.path().display()
            );
            remove(&entry.path());
        }
    }
}

fn remove(path: &Path) {
    let removed = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(e) = removed {
        log::warn!("cannot remove {}: {e}", path.display());
    }
}
