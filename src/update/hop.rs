//! The two re-executions, and starting whatever the install dir holds: a
//! hop replaces this process (exec on Unix; spawn then exit on Windows)
//! with the same arguments, and the hops of one update are counted so that
//! one that cannot be finished never makes the app hop back and forth.

use std::path::Path;

use super::install;
use crate::error::Error;
use crate::journal::Journal;

/// Set by the process that staged an update when it hops out: the
/// journal's `staged_by` token.
pub(crate) const ENV_STAGED_BY: &str = "LEAPFROG_STAGED_BY";

/// More hops than an update needs (out, home) even with a resumed one.
const MAX_HOPS: u32 = 6;

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

pub(crate) fn hop(dir: &Path, journal: &Journal, resumed: bool) -> Error {
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
    let mut relaunch = crate::os::relaunch(dir, &journal.exe, args, hops);
    // The process that staged the update tells its copy so: that copy
    // need not check the staged files again.
    match (resumed, &journal.staged_by) {
        (false, Some(token)) => relaunch.env.push((ENV_STAGED_BY, token.clone())),
        _ => relaunch.env_remove.push(ENV_STAGED_BY),
    }
    // The on-exit helper's variable never crosses a hop.
    relaunch.env_remove.push(super::ENV_APPLY_ON_EXIT);
    crate::os::exec(&relaunch)
}
