//! The update's six steps, one function each, in the order they run.
//!
//! | step | function | runs in | a crash here leaves | the next launch |
//! |------|----------|---------|---------------------|-----------------|
//! | 1 | [`check`] | the old app (a background thread) | nothing changed | checks again |
//! | 2 | [`stage`] | the old app | the install dir untouched; a backup dir without a journal (a broken-off download, or a complete archive, in it) | runs the old version; the next stage continues the download, or reuses the archive once it verifies |
//! | 2 | [`stage`], done | the old app | a `staged` journal: every staged file verified and on disk | hops out and applies |
//! | 3 | [`hop_out`] | the old app, replaced by its copy in the backup dir | a `staged` journal | hops out again |
//! | 3, on exit | `apply_on_exit` | the old app starts its copy, which waits for the app to end | a `staged` journal | hops out and applies (the copy, woken, finds it taken on and exits) |
//! | 4 | [`apply`] | the copy | an `applying` journal, some files renamed | hops out and applies again: every part runs twice safely |
//! | 4, later | [`apply`] of a stage another process made | the copy | the staged files are checked again first; one that no longer verifies is dropped, nothing changed, a `rolled_back` journal (tried again later) | runs the old version |
//! | 4, failed | `hop::undo_and_run_installed` | the copy | a `rolling_back` journal | hops out and finishes putting the old release back |
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
//! Beside the steps, which the next launch re-enters through
//! [`finish_pending`] (below them): `check` (step 1's rules), `stage`
//! (step 2's parts), `backup` (the backup dir: marker, preflight,
//! hard-linked copy), `hop` (the re-executions), `install` (renames into
//! place, `undo_apply`, and [`rollback`] on request), `trial` (the
//! watcher), `recover` (finding the journal to believe, repairing a
//! damaged one), `tidy` (debris of killed updates) and `lock` (one
//! updater at a time). None of them calls back up into this module.

mod backup;
mod check;
pub(crate) mod history;
mod hop;
mod install;
pub(crate) mod lock;
mod recover;
pub mod schedule;
mod stage;
mod tidy;
mod trial;

pub(crate) use check::{check_at, nothing_in_progress, unix_seconds};
pub use check::{find_update, remember, Available, Check, Checked, Notes, Query};
pub(crate) use hop::ENV_STAGED_BY;
pub use install::rollback;
pub use recover::Pending;
pub(crate) use tidy::tidy;
pub(crate) use trial::{is_watched, started_ago, ENV_TRIAL, ENV_TRIAL_STARTED};

use std::fs;
use std::path::{Path, PathBuf};

use crate::config::Resolved;
use crate::error::{Error, Result};
use crate::fetch;
use crate::journal::{Journal, Step};
use lock::UpdateLock;
use recover::{Found, Place};

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Step 1: fetches the manifest (then the mirrors, in order) and returns
/// the release to move to, if any: signed, fresh, not rolled back here.
pub(crate) fn check(updater: &Resolved) -> Result<Check> {
    let checked = check::newest(updater);
    if checked.is_ok() {
        crate::adoption::maybe_ping(updater);
    }
    if let Err(e) = &checked {
        // The next automatic check backs off, or waits as the host asked.
        check::back_off(updater, e.retry_after());
    }
    let outcome = match &checked {
        Ok(Check::UpToDate) => "up to date".to_owned(),
        Ok(Check::Available(a)) if a.required => format!("{} is required", a.release.version),
        Ok(Check::Available(a)) => format!("{} is available", a.release.version),
        Ok(Check::RolledBack { version, .. }) => {
            format!("{version} was rolled back here before; not offered")
        }
        Ok(Check::PutOff {
            version,
            until: None,
        }) => format!("{version} was skipped by the user"),
        Ok(Check::PutOff { version, .. }) => format!("{version} was put off by the user"),
        Err(e) => format!("failed: {}", e.chain()),
    };
    history::record(
        updater.backup_dir(),
        updater.install_dir(),
        &format!(
            "{} {}: check of {}: {outcome}",
            updater.program(),
            updater.current_version(),
            fetch::redact(updater.manifest_urls().next().unwrap_or_default())
        ),
    );
    checked
}

/// Step 2: copies the install dir to the backup dir, downloads the archive
/// into it while hashing (or reuses one verified before), unpacks it into
/// the staging folder, checks that it is the release the manifest named,
/// and writes the `staged` journal.
///
/// The install dir is never written. On error everything staged so far is
/// removed again (a broken-off download is kept, to be continued) and the
/// app goes on running the old version; a stage cut short by the app
/// exiting leaves its download, or its complete archive, for the next one.
pub(crate) fn stage(
    updater: &Resolved,
    available: &Available,
    watch: (
        Option<fetch::ProgressFn>,
        Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ),
) -> Result<Journal> {
    let _lock = lock::try_lock(updater.backup_dir())?
        .ok_or_else(|| Error::busy(updater.install_dir(), updater.backup_dir()))?;
    check::nothing_in_progress(updater.backup_dir())?;
    if available.release.program != updater.program() {
        return Err(Error::Settings(format!(
            "{} {} is not a release of {}; stage what this updater's check found",
            available.release.program,
            available.release.version,
            updater.program()
        )));
    }
    let plan = stage::StagePlan::new(updater, available, watch);
    if crate::os::is_appimage() {
        backup::alone_in_its_folder(&plan.install_dir, &plan.exe)?;
    }
    // Refused here, nothing changes: the previous backup stays as it is.
    let existed = fs::symlink_metadata(&plan.backup_dir).is_ok();
    // What is downloaded already (a broken-off or complete archive kept for
    // this release) needs no room again.
    let archive = crate::release::manifest::archive_name(
        &available.release.program,
        &available.release.version,
    );
    let have = backup::downloaded(&plan.backup_dir, &archive);
    let download = available.release.size.unwrap_or(0).saturating_sub(have);
    if let Err(e) = backup::preflight(&plan.install_dir, &plan.backup_dir, &plan.exe, download) {
        if !existed && backup::is_backup_of(&plan.backup_dir, &plan.install_dir) {
            let _ = fs::remove_dir_all(&plan.backup_dir);
        }
        return Err(e);
    }
    let staged = stage::stage_release(&plan);
    if let Err(e) = &staged {
        let cancelled = matches!(e, Error::Cancelled { .. });
        backup::clear_after_failed_stage(&plan.backup_dir, cancelled.then_some(archive.as_str()));
        history::record(
            &plan.backup_dir,
            &plan.install_dir,
            &format!(
                "{} {} -> {}: staging failed, nothing was changed: {}",
                updater.program(),
                updater.current_version(),
                available.release.version,
                e.chain()
            ),
        );
    }
    staged
}

/// Step 3: replaces this process by the old binary's copy in the backup dir,
/// which will apply the update. `resumed` when finishing an update that an
/// earlier process started. Returns only on failure.
pub(crate) fn hop_out(journal: &Journal, resumed: bool) -> Error {
    crate::adoption::finish();
    log::info!(
        "hopping out to the backup copy in {}",
        journal.backup_dir.display()
    );
    history::record_journal(
        journal,
        &format!(
            "restarting from the backup copy to apply{}",
            if resumed {
                " (an update an earlier launch began)"
            } else {
                ""
            }
        ),
    );
    hop::hop(&journal.backup_dir, journal, resumed)
}

/// Step 3 for [`Restart::OnExit`](crate::Restart::OnExit): starts the
/// backup copy in the background, to apply the update once this process
/// has ended. It learns of the end through a pipe: this process holds its
/// writing end until it ends, however it ends (the system closes it).
pub(crate) fn apply_on_exit(journal: &Journal) -> Result<()> {
    static HELD: std::sync::Mutex<Vec<std::process::ChildStdin>> =
        std::sync::Mutex::new(Vec::new());
    let exe = journal.backup_dir.join(&journal.exe);
    let mut command = std::process::Command::new(&exe);
    command
        .args(crate::os::original_args())
        .env(crate::os::ENV_HOPS, "1")
        .env(
            ENV_APPLY_ON_EXIT,
            format!(
                "{}:{}",
                std::process::id(),
                journal.staged_by.as_deref().unwrap_or_default()
            ),
        )
        .stdin(std::process::Stdio::piped());
    // Out of reach of a Ctrl-C or a closed terminal meant for the app.
    crate::os::own_process_group(&mut command);
    let mut child = command
        .spawn()
        .map_err(crate::error::io_err("starting", &exe))?;
    if let Some(stdin) = child.stdin.take() {
        HELD.lock().unwrap_or_else(|e| e.into_inner()).push(stdin);
    }
    log::info!(
        "{} {} is applied when this process ends (by pid {}, waiting)",
        journal.program,
        journal.to_version,
        child.id()
    );
    history::record_journal(
        journal,
        &format!(
            "applied when the app quits: pid {} waits for it",
            child.id()
        ),
    );
    Ok(())
}

/// Set in the helper that [`apply_on_exit`] starts: the pid it waits for.
pub(crate) const ENV_APPLY_ON_EXIT: &str = "LEAPFROG_APPLY_ON_EXIT";

/// The helper's part, first thing in its `finish_pending`: waits until the
/// app has ended (its end of the pipe on stdin closes), then applies the
/// update under the lock, unless another launch has taken it on
/// meanwhile; starts nothing, and exits whatever happens.
fn apply_when_the_app_ends(app: &str, backup: &Path, token: &str) -> ! {
    // Nothing is ever written to the pipe: it ends when the app does.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    log::info!("pid {app} has ended: applying the update it staged");
    // This copy never goes on as the app: whatever it finds, it exits.
    let Some((mut journal, lock)) = lock_and_read_staged(backup, token) else {
        std::process::exit(0);
    };
    let code = if let Err(error) = install::verify_staged(&journal) {
        i32::from(drop_stage(&mut journal, &error).is_err())
    } else {
        match install::apply(&mut journal) {
            Ok(done) => {
                install::discard_stage(&journal);
                log::info!(
                    "{} {} is installed ({} files replaced, {} removed); its next launch is its trial",
                    journal.program,
                    journal.to_version,
                    done.replaced,
                    done.removed
                );
                0
            }
            Err(error) => {
                log::error!("applying the update failed: {}", error.chain());
                journal.failed_here(&format!("applying failed: {}", error.chain()));
                if let Err(e) = install::undo_apply(&mut journal) {
                    log::error!("rolling back failed: {}", e.chain());
                }
                1
            }
        }
    };
    drop(lock);
    std::process::exit(code)
}

/// What a process with [`ENV_APPLY_ON_EXIT`] set is.
enum Helper {
    /// The helper of the update staged here: the app's pid, the backup
    /// dir, the stage's token.
    Of {
        app: String,
        backup: PathBuf,
        token: String,
    },
    /// A backup copy, but not (or no longer) of that stage.
    Stale,
    /// Not a backup copy: the variable merely reached this process.
    NotOne,
}

/// What `value` (`<app pid>:<token>`) makes this process: the helper when
/// it runs as the backup copy of a `staged` journal with that token.
fn helper_of(value: &str) -> Helper {
    let (app, token) = value.split_once(':').unwrap_or((value, ""));
    match recover::locate() {
        Ok(Some(Found::Journal(journal, Place::Backup))) => {
            if journal.step == Step::Staged
                && !token.is_empty()
                && journal.staged_by.as_deref() == Some(token)
            {
                Helper::Of {
                    app: app.to_owned(),
                    backup: journal.backup_dir,
                    token: token.to_owned(),
                }
            } else {
                Helper::Stale
            }
        }
        Ok(Some(Found::Journal(_, Place::Install)) | None) => Helper::NotOne,
        _ => Helper::Stale,
    }
}

/// The journal and the update lock, when the journal (read under the
/// lock) still says `staged`, with the stage's `token`.
fn lock_and_read_staged(backup: &Path, token: &str) -> Option<(Journal, UpdateLock)> {
    let lock = lock::lock(backup, std::time::Duration::from_secs(60)).ok()??;
    match Journal::read(backup) {
        Ok(Some(journal))
            if journal.step == Step::Staged && journal.staged_by.as_deref() == Some(token) =>
        {
            Some((journal, lock))
        }
        _ => {
            log::info!("the update was taken on by another launch meanwhile");
            None
        }
    }
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
    // A stage that another process made (a later launch applies it, or
    // the helper that applies when the app quits) is checked again first;
    // one that no longer verifies is dropped before anything changes.
    let staged_here =
        journal.staged_by.is_some() && std::env::var(hop::ENV_STAGED_BY).ok() == journal.staged_by;
    if journal.step == Step::Staged && !staged_here {
        if let Err(error) = install::verify_staged(&journal) {
            return match drop_stage(&mut journal, &error) {
                Ok(()) => hop::run_installed(&journal),
                Err(e) => e,
            };
        }
    }
    if let Err(error) = install::apply(&mut journal) {
        log::error!("applying the update failed: {}", error.chain());
        journal.failed_here(&format!("applying failed: {}", error.chain()));
        return hop::undo_and_run_installed(journal);
    }
    hop_home(journal, Some(lock))
}

/// Drops a staged update that no longer verifies: nothing was applied, so
/// the journal says rolled back (through no fault of the release: it is
/// tried again later, staged afresh), and the old version's user is told.
fn drop_stage(journal: &mut Journal, error: &Error) -> Result<()> {
    log::error!(
        "the staged update to {} does not verify any more: {}; it is dropped, nothing was changed",
        journal.to_version,
        error.chain()
    );
    journal.failed_here(&format!(
        "the staged update did not verify any more, so nothing was changed ({})",
        error.chain()
    ));
    journal.advance(Step::RolledBack)?;
    let _ = fs::remove_dir_all(journal.staging_dir());
    Ok(())
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
    trial::confirm(journal, how)
}

// The next launch: finishing or undoing what a crash left.

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
    // The helper the app started for Restart::OnExit: only when the
    // journal it names is there, staged, with its token; a variable that
    // merely reached another process is ignored.
    if let Ok(value) = std::env::var(ENV_APPLY_ON_EXIT) {
        match helper_of(&value) {
            Helper::Of { app, backup, token } => apply_when_the_app_ends(&app, &backup, &token),
            // A backup copy with the variable is a helper too late or
            // astray: it never goes on as the app.
            Helper::Stale => {
                log::info!("the update this copy was started to apply is not here any more");
                std::process::exit(0)
            }
            Helper::NotOne => {
                log::warn!("{ENV_APPLY_ON_EXIT} is set, but names no update staged here; ignored")
            }
        }
    }
    match recover::locate() {
        Ok(None) => Pending::Nothing,
        Ok(Some(Found::Journal(journal, place))) => resume(*journal, place),
        Ok(Some(Found::Damaged {
            install,
            backup,
            exe,
        })) => recover::handle_damaged(&install, &backup, &exe),
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
    match recover::locate()? {
        Some(Found::Journal(mut journal, Place::Install)) if journal.step == Step::Applied => {
            confirm(&mut journal, "it said so")?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Re-enters the update where the journal says it stands, from where this
/// process runs (see the table above).
fn resume(mut journal: Journal, place: Place) -> Pending {
    match (place, journal.step) {
        (Place::Backup, Step::Staged | Step::Applying | Step::RollingBack) => {
            // Another instance may be applying the same update: wait for it,
            // then look again at where the journal stands.
            let lock = match lock::lock(&journal.backup_dir, std::time::Duration::from_secs(60)) {
                Ok(Some(lock)) => lock,
                Ok(None) => {
                    // Another copy kept the lock for a minute.
                    return Pending::Failed(Error::busy(&journal.install_dir, &journal.backup_dir));
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
                return Pending::Failed(hop::undo_and_run_installed(journal));
            }
            Pending::Failed(apply(journal, lock))
        }
        // The new version's trial, again: an earlier watcher was killed, or
        // the new version was launched unwatched and hopped out to be watched.
        (Place::Backup, Step::Applied) => match lock::try_lock(&journal.backup_dir) {
            Ok(Some(lock)) => Pending::Failed(hop_home(journal, Some(lock))),
            // Another process is watching a trial of it already.
            _ => Pending::Failed(hop::run_installed(&journal)),
        },
        (Place::Backup, Step::RolledBack) => Pending::Failed(hop::run_installed(&journal)),
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

/// The install dir that `dir` is leapfrog's backup copy of, if it is one.
pub(crate) fn backup_of(dir: &Path) -> Option<PathBuf> {
    backup::backs(dir)
}
