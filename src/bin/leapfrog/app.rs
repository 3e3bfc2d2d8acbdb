//! The demo app: this same binary, installed as `demo` next to a
//! `data/config.json`. It embeds leapfrog the way a real app does.

use std::path::PathBuf;
use std::process::ExitCode;

use leapfrog::{Lifecycle, Outcome, Pending, Restart, Updater};

use crate::logger;

fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe().ok()?.parent().map(PathBuf::from)
}

/// Whether this binary runs as the demo app (`demo` with a `data/config.json`).
pub fn is_demo_app() -> bool {
    let Ok(exe) = std::env::current_exe() else {
        return false;
    };
    exe.file_stem().is_some_and(|s| s == "demo")
        && exe_dir().is_some_and(|d| d.join("data").join("config.json").is_file())
}

/// The app's own lines go through the same log as the library's, so they
/// carry the same prefix (and timestamps, for the benchmark).
macro_rules! say {
    ($($arg:tt)*) => {
        log::info!($($arg)*)
    };
}

/// A release of the demo app may play a broken version, to show (and test)
/// that a new version which fails its first launch is rolled back:
/// `data/misbehave` holding `crash`, `fail` (exit status 3), `hang` (never
/// confirms), or `late-fail` (runs 2 seconds without confirming, then exits
/// with status 3: healthy by then when the app confirms after a shorter time);
/// or hooks that break: `after-update-fails`, `after-update-hangs` (the
/// new version's), `before-update-fails` (the installed version's).
fn misbehave_if_asked(dir: &std::path::Path) {
    let Some(what) = misbehaviour(dir) else {
        return;
    };
    match what.as_str() {
        "crash" => {
            say!("this release is broken on purpose: crashing");
            std::process::abort()
        }
        "fail" => {
            say!("this release is broken on purpose: exiting with status 3");
            std::process::exit(3)
        }
        "hang" => {
            say!("this release is broken on purpose: hanging");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        "late-fail" => {
            say!("this release is broken on purpose: failing in 2 seconds");
            std::thread::sleep(std::time::Duration::from_secs(2));
            say!("failing now, with status 3");
            std::process::exit(3)
        }
        // Broken hooks (see main).
        "after-update-fails" | "after-update-hangs" | "before-update-fails" => {}
        other => say!("data/misbehave: unknown {other:?}; behaving"),
    }
}

/// What `data/misbehave` asks for, if anything.
fn misbehaviour(dir: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("data").join("misbehave")).ok()?;
    Some(text.trim().to_owned())
}

pub fn main() -> ExitCode {
    logger::init_app("demo");
    // First thing: finish (or undo) an update in progress. May exec.
    let pending = leapfrog::finish_pending();
    let dir = exe_dir().unwrap_or_default();
    // `demo --next-launch` stages an update and applies it at the next launch.
    // `demo --on-exit` stages it and has it applied when the app quits.
    let restart = if std::env::args().any(|a| a == "--next-launch") {
        Restart::NextLaunch
    } else if std::env::args().any(|a| a == "--on-exit") {
        Restart::OnExit
    } else {
        Restart::Now
    };
    // The demo lets LEAPFROG_MANIFEST_URL point it at another host (the
    // tests' servers); a shipped app leaves that off.
    // `demo --downgrade-to-channel` goes down to its channel's newest
    // release when that is lower (an explicit change of channel).
    let downgrade = std::env::args().any(|a| a == "--downgrade-to-channel");
    // `demo --check-now` is the "Check for updates" menu item: the user
    // asked, so a staged rollout (not a halted one) and a version skipped
    // or put off are offered.
    let by_user = std::env::args().any(|a| a == "--check-now");
    // Before it is restarted into an update, the app saves its work; `demo
    // --put-off-restart` has work it cannot stop, and asks for the update
    // at the next launch instead.
    let put_off = std::env::args().any(|a| a == "--put-off-restart");
    let updater = match Updater::from_config(dir.join("data").join("config.json")).and_then(|b| {
        let b = b.restart(restart).allow_env_manifest_url();
        let b = if by_user { b.asked_by_user() } else { b };
        // Lifecycle hooks: what a real app would migrate or set up. A
        // release may break its own on purpose (data/misbehave, below).
        let misbehaving = misbehaviour(&dir);
        let b = b
            .hook(Lifecycle::FirstRun, |call| {
                say!("first-run hook: welcome to demo {}", call.to);
                Ok(())
            })
            .hook(Lifecycle::BeforeUpdate, {
                let misbehaving = misbehaving.clone();
                move |call| {
                    say!(
                        "before-update hook: {} is about to be replaced by {}",
                        call.from,
                        call.to
                    );
                    match misbehaving.as_deref() {
                        Some("before-update-fails") => Err("it refuses on purpose".into()),
                        _ => Ok(()),
                    }
                }
            })
            .hook(Lifecycle::AfterUpdate, move |call| {
                say!(
                    "after-update hook: moving the demo's data from {} to {}",
                    call.from,
                    call.to
                );
                match misbehaving.as_deref() {
                    Some("after-update-fails") => {
                        Err("this release's migration fails on purpose".into())
                    }
                    Some("after-update-hangs") => loop {
                        std::thread::sleep(std::time::Duration::from_secs(3600));
                    },
                    _ => Ok(()),
                }
            });
        let b = b.before_restart(move |version| {
            if put_off {
                say!("busy: putting the restart into {version} off to the next launch");
                return false;
            }
            say!("saving work before restarting into {version}");
            true
        });
        if downgrade {
            b.downgrade_to_channel()
        } else {
            b
        }
        .build()
    }) {
        Ok(updater) => updater,
        Err(e) => {
            say!("cannot set up updates: {}", e.chain());
            return ExitCode::FAILURE;
        }
    };
    say!(
        "demo {} running from {}",
        updater.current_version(),
        dir.display()
    );
    if let Err(e) = updater.run_hooks(&pending) {
        say!("{}", e.chain());
    }
    match pending {
        Pending::Updated { from, to, .. } => {
            misbehave_if_asked(&dir);
            say!("updated from {from} to {to}; the new version starts fine");
            match leapfrog::confirm_healthy() {
                Ok(_) => {}
                Err(e) => say!("could not confirm: {}", e.chain()),
            }
            return ExitCode::SUCCESS;
        }
        Pending::RolledBack { version, reason } => {
            say!("the update to {version} failed and was undone: {reason}")
        }
        Pending::Failed(e) => say!("an update in progress could not be finished: {}", e.chain()),
        _ => {}
    }
    // `demo --watch` (a manifest in a folder or on a share): waits for the
    // publisher's next release instead of checking once, for a minute.
    if std::env::args().any(|a| a == "--watch") {
        let watch = match updater.watch_manifest(move |outcome| say_outcome(outcome, restart)) {
            Ok(watch) => watch,
            Err(e) => {
                say!("cannot watch for updates: {}", e.chain());
                return ExitCode::FAILURE;
            }
        };
        say!("watching {} for a new release", watch.folder().display());
        std::thread::sleep(std::time::Duration::from_secs(60));
        say!("no new release came; quitting");
        return ExitCode::SUCCESS;
    }
    // Never delays the start: the check runs in the background. This demo
    // has no other work, so it waits for the check to end.
    // A check the user asked for (`--check-now`) is made at once; the
    // automatic one keeps the schedule.
    let check = if by_user {
        std::thread::spawn(move || updater.update())
    } else {
        updater.spawn_startup_check()
    };
    match check.join() {
        Ok(outcome) => say_outcome(outcome, restart),
        Err(_) => say!("the update check panicked"),
    }
    ExitCode::SUCCESS
}

/// Says how an update ended.
fn say_outcome(outcome: leapfrog::Result<Outcome>, restart: Restart) {
    match outcome {
        Ok(Outcome::UpToDate) => say!("up to date"),
        Ok(Outcome::Declined(v)) => say!("{v} is available; not updating now"),
        Ok(Outcome::NotAsked(v)) => {
            say!("{v} is available, but nobody could be asked; not updating now")
        }
        Ok(Outcome::Staged(v)) if restart == Restart::OnExit => {
            say!("{v} is staged; it is installed when the app quits");
            say!("quitting");
        }
        Ok(Outcome::Staged(v)) => say!("{v} is staged; it is installed at the next launch"),
        Ok(Outcome::Cancelled(v)) => {
            say!("the download of {v} was cancelled; still running the installed version")
        }
        Ok(Outcome::PutOff {
            version,
            until: None,
        }) => {
            say!("{version} was skipped by the user; not asking again until a newer release")
        }
        Ok(Outcome::PutOff {
            version,
            until: Some(until),
        }) => say!(
            "{version} was put off by the user; asking again after {}",
            humantime::format_rfc3339_seconds(until)
        ),
        Ok(Outcome::RolledBack(v)) => {
            say!("{v} was rolled back here before; not installing it again now")
        }
        Ok(Outcome::NotDue { next }) => say!(
            "no check now: the next automatic check is due at {}",
            humantime::format_rfc3339_seconds(next)
        ),
        Ok(other) => say!("{other:?}"),
        Err(e) => say!(
            "update failed, still running the installed version: {}",
            e.chain()
        ),
    }
}
