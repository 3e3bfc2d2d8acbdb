//! Step 5, watched: the new version's first launch is a trial.
//!
//! The old binary's copy in the backup dir, having applied the update, does
//! not replace itself by the new version (as later launches do) but starts
//! it as a child and watches it:
//!
//! - it counts as healthy when it calls [`confirm_healthy`](crate::confirm_healthy),
//!   when it has run long enough ([`Confirm::AfterMs`]), or when it exits
//!   with success; the watcher then waits for it and exits with its status;
//! - it failed when it crashes, exits with failure, cannot be started, or
//!   does not confirm in time ([`Confirm::WithinMs`]: it is stopped). After
//!   [`Trial::attempts`] failures the install dir is rolled back from the
//!   backup and the old version started in the watcher's place; the journal
//!   ends `rolled_back`, so the version is not offered again.
//!
//! The watcher is the process the user started (same PID, through the
//! execs of hop out), so whoever waits for the app still waits for it and
//! gets the new version's exit status. The counts live in the journal: a
//! watcher that is killed itself leaves an `applied` journal, and the next
//! launch of the program runs another watched trial, up to a bound.

use crate::os::Ending;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use super::lock::UpdateLock;
use crate::error::Error;
use crate::journal::{Confirm, Journal, Step};
use crate::Result;

/// The environment variable that tells a trial launch who watches it (the
/// watcher's pid).
pub(crate) const ENV_TRIAL: &str = "LEAPFROG_TRIAL";
/// When (milliseconds since the Unix epoch) the watcher started the trial
/// launch: what it counts its confirm time from.
pub(crate) const ENV_TRIAL_STARTED: &str = "LEAPFROG_TRIAL_STARTED";

/// How long ago the watcher started this trial launch, when this is one.
pub(crate) fn started_ago() -> Option<std::time::Duration> {
    let started: u128 = std::env::var(ENV_TRIAL_STARTED).ok()?.parse().ok()?;
    let now = super::unix_millis();
    Some(std::time::Duration::from_millis(
        u64::try_from(now.saturating_sub(started)).unwrap_or(u64::MAX),
    ))
}
const POLL: Duration = Duration::from_millis(50);
/// How long a hung version has after being asked to stop before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Trial launches that ended without a verdict (their watcher was killed
/// too) beyond the allowed failures, before the update is given up.
const UNFINISHED_TRIALS: u32 = 2;

/// Whether this process is a trial launch that a watcher is watching.
pub(crate) fn is_watched() -> bool {
    std::env::var(ENV_TRIAL)
        .ok()
        .and_then(|v| v.parse().ok())
        .is_some_and(crate::os::supervised_by)
}

/// Runs the new version's trial launch(es) and watches them; see the module
/// docs. Returns only when the process could not be replaced or ended.
pub(crate) fn watch(mut journal: Journal, lock: Option<UpdateLock>) -> Error {
    let interrupts = crate::os::Interrupts::catch();
    let attempts = journal.trial.attempts.max(1);
    loop {
        if journal.trial_failures >= attempts {
            return give_up(journal, true);
        }
        if journal.trial_launches >= attempts + UNFINISHED_TRIALS {
            // Killed or stopped from outside each time: nothing says the
            // release is bad.
            journal.failed_here(&format!(
                "{} trial launches of {} ended without a verdict",
                journal.trial_launches, journal.to_version
            ));
            return give_up(journal, false);
        }
        journal.trial_launches += 1;
        if let Err(e) = journal.write() {
            // Without a journal to count in, the trial cannot be judged
            // safely; the update's files are in place, so start the new
            // version as any later launch would.
            log::error!(
                "cannot record the trial launch ({}); starting {} {} unwatched",
                e.chain(),
                journal.program,
                journal.to_version
            );
            return super::hop::run_installed(&journal);
        }
        let exe = journal.install_dir.join(&journal.exe);
        let started = Instant::now();
        let outcome = match spawn(&journal) {
            Ok(mut child) => {
                log::info!(
                    "trial launch {} of {} {}: pid {}, watched by pid {}",
                    journal.trial_launches,
                    journal.program,
                    journal.to_version,
                    child.id(),
                    std::process::id()
                );
                super::history::record_journal(
                    &journal,
                    &format!(
                        "trial launch {} of {}: pid {}",
                        journal.trial_launches,
                        journal.to_version,
                        child.id()
                    ),
                );
                // Outside the app's downtime: what the update no longer needs.
                super::install::discard_stage(&journal);
                match watch_child(&mut child, &journal, &interrupts, started) {
                    Ok(how) => {
                        healthy(&journal, &how);
                        drop(lock);
                        let status = wait(&mut child, &interrupts);
                        log::info!(
                            "{} {} ended ({status})",
                            journal.program,
                            journal.to_version
                        );
                        crate::os::exit_like(status)
                    }
                    Err(unhealthy) => unhealthy,
                }
            }
            Err(e) => {
                log::error!(
                    "trial launch {} of {} {}: {} cannot be started: {e}",
                    journal.trial_launches,
                    journal.program,
                    journal.to_version,
                    exe.display()
                );
                let why = format!("could not be started ({}: {e})", exe.display());
                super::history::record_journal(
                    &journal,
                    &format!(
                        "trial launch {} of {}: {why}",
                        journal.trial_launches, journal.to_version
                    ),
                );
                if crate::os::release_cannot_start(&e) {
                    Unhealthy::Failed(why)
                } else {
                    Unhealthy::Environment(why)
                }
            }
        };
        // Re-read: the child may have written the journal meanwhile.
        if let Ok(Some(now)) = Journal::read(&journal.backup_dir) {
            journal = now;
        }
        match outcome {
            Unhealthy::Interrupted(status, how) => {
                // Not a verdict: the next launch is another trial.
                log::warn!(
                    "{} {} {how} before it counted as healthy; its next launch is a trial again",
                    journal.program,
                    journal.to_version
                );
                journal.trial_launches = journal.trial_launches.saturating_sub(1);
                let _ = journal.write();
                crate::os::exit_like(status);
            }
            Unhealthy::Environment(why) => {
                let why = format!("{} {why} on its trial launch", journal.to_version);
                log::error!("{why}");
                super::history::record_journal(&journal, &format!("trial failed: {why}"));
                journal.failed_here(&why);
                return give_up(journal, false);
            }
            Unhealthy::Failed(why) => {
                let why = format!("{} {why} on its trial launch", journal.to_version);
                log::error!("{why}");
                super::history::record_journal(&journal, &format!("trial failed: {why}"));
                journal.trial_failures += 1;
                journal.error = Some(why);
                if let Err(e) = journal.write() {
                    log::error!("cannot record the failed trial: {}", e.chain());
                }
                if journal.trial_failures < attempts {
                    log::warn!(
                        "trying again ({} of {attempts} attempts failed)",
                        journal.trial_failures
                    );
                }
            }
        }
    }
}

/// Why a trial launch did not count as healthy.
enum Unhealthy {
    /// This machine, not the release, kept it from running (an I/O error,
    /// no memory, no permission to execute here): tried again later.
    Environment(String),
    /// It was stopped from outside before that: how.
    Interrupted(ExitStatus, String),
    /// It crashed, exited with failure, could not be started, or hung and
    /// was stopped: why.
    Failed(String),
}

fn spawn(journal: &Journal) -> std::io::Result<Child> {
    let mut command = Command::new(journal.install_dir.join(&journal.exe));
    command
        .args(crate::os::original_args())
        .env_remove(crate::os::ENV_HOPS)
        .env_remove(super::hop::ENV_STAGED_BY)
        .env_remove(super::ENV_APPLY_ON_EXIT)
        .env(ENV_TRIAL, std::process::id().to_string())
        .env(ENV_TRIAL_STARTED, super::unix_millis().to_string());
    if let Some(count) = crate::failpoint::count() {
        command.env("LEAPFROG_FP_COUNT", count.to_string());
    }
    command.spawn()
}

fn watch_child(
    child: &mut Child,
    journal: &Journal,
    interrupts: &crate::os::Interrupts,
    started: Instant,
) -> Result<String, Unhealthy> {
    use Unhealthy::{Failed, Interrupted};
    let confirmed = || {
        Journal::read(&journal.backup_dir)
            .ok()
            .flatten()
            .is_some_and(|j| j.step == Step::Confirmed)
    };
    loop {
        interrupts.forward(child);
        match child.try_wait() {
            Ok(Some(status)) => {
                if confirmed() {
                    return Ok("it confirmed, then ended".into());
                }
                return match crate::os::ending(status) {
                    Ending::Success => Ok("it ended with success".into()),
                    Ending::Interrupted(how) => Err(Interrupted(status, how)),
                    Ending::Failed(why) => Err(Failed(why)),
                };
            }
            Ok(None) => {}
            Err(e) => return Err(Failed(format!("could not be watched ({e})"))),
        }
        if confirmed() {
            return Ok("it confirmed".into());
        }
        let ran = started.elapsed();
        match journal.trial.confirm {
            Confirm::AfterMs(ms) if ran >= Duration::from_millis(ms) => {
                return Ok(format!("it ran {} without failing", seconds(ms)));
            }
            Confirm::WithinMs(ms) if ran >= Duration::from_millis(ms) => {
                stop(child);
                if confirmed() {
                    return Ok("it confirmed as its time ran out".into());
                }
                return Err(Failed(format!(
                    "hung: it did not confirm it works within {}, and was stopped",
                    seconds(ms)
                )));
            }
            _ => {}
        }
        std::thread::sleep(POLL);
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Asks the child to end, and kills it if it has not after [`STOP_GRACE`].
fn stop(child: &mut Child) {
    crate::os::ask_to_stop(child);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for the child to end, passing on requests to end.
fn wait(child: &mut Child, interrupts: &crate::os::Interrupts) -> ExitStatus {
    loop {
        interrupts.forward(child);
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) => std::thread::sleep(POLL * 2),
            Err(_) => match child.wait() {
                Ok(status) => return status,
                Err(e) => {
                    log::error!("lost track of the new version's process: {e}");
                    std::process::exit(1)
                }
            },
        }
    }
}

/// Step 6: records in the journal that the new version works.
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

/// Step 6 for the new version, unless it confirmed itself.
fn healthy(journal: &Journal, how: &str) {
    match Journal::read(&journal.backup_dir) {
        Ok(Some(mut now)) if now.step == Step::Applied => {
            if let Err(e) = confirm(&mut now, how) {
                log::error!("cannot record that the update is healthy: {}", e.chain());
            }
        }
        _ => log::info!(
            "{} {} is healthy: {how}",
            journal.program,
            journal.to_version
        ),
    }
}

/// Rolls the install dir back to the old version and starts it in this
/// process's place; it tells its user what happened. A release that
/// failed its trial (`release_fault`) is not offered again; one that this
/// machine kept from running is tried again later.
fn give_up(mut journal: Journal, release_fault: bool) -> Error {
    if release_fault {
        let why = journal
            .error
            .clone()
            .unwrap_or_else(|| format!("{} failed its trial launch", journal.to_version));
        journal.release_failed(format!(
            "{why}; rolled back to {} (not offered again until a newer release)",
            journal.from_version
        ));
    }
    super::hop::undo_and_run_installed(journal)
}
