//! An app that updates itself, written the careful way: what to copy into
//! your `main`.
//!
//! ```text
//! cargo run --example embed -- https://downloads.example.com/myapp/versions.txt
//! ```
//!
//! `leapfrog.pub` beside this file is the publisher's public key (made with
//! `leapfrog keygen`); an app ships the key of the one who signs its
//! releases, so that it runs no build its publisher did not make.

use leapfrog::{Outcome, Pending, Restart, Updater};

fn main() {
    // leapfrog reports through `log`: without a logger, a failed update
    // check would go unseen.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    // First thing: finish (or undo) an update in progress. Returns at once
    // when there is none; may replace the process to finish one.
    match leapfrog::finish_pending() {
        Pending::Updated { from, to, .. } => log::info!("updated from {from} to {to}"),
        Pending::RolledBack { version, reason } => {
            // Tell the user: they saw the update start. (A GUI shows a dialog.)
            log::warn!("the update to {version} did not work and was undone: {reason}");
        }
        Pending::Failed(e) => log::error!("an update in progress could not be finished: {e}"),
        _ => {}
    }

    let manifest = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "https://downloads.example.com/myapp/versions.txt".into());
    let updater = match Updater::builder("myapp", env!("CARGO_PKG_VERSION"))
        .manifest_url(manifest)
        .public_key(include_str!("leapfrog.pub"))
        // The app is not interrupted: a staged update is applied at the
        // next start. (`Restart::Now` replaces the app as soon as it is staged.)
        .restart(Restart::NextLaunch)
        .build()
    {
        Ok(updater) => updater,
        Err(e) => {
            log::error!("updates are off: {e}");
            return run_the_app();
        }
    };
    // Never delays the start: the check runs in a background thread.
    let check = updater.spawn_startup_check();

    run_the_app();

    // Once this version is known to work, close the update's journal (a
    // version that never confirms is judged by how it runs and exits).
    if let Err(e) = leapfrog::confirm_healthy() {
        log::error!("could not record that this version works: {e}");
    }
    // See how the check ended. Exiting before it did loses nothing: a
    // broken-off download continues at the next start.
    match check.join() {
        Ok(Ok(Outcome::Staged(version))) => log::info!("{version} is installed at the next start"),
        Ok(Ok(outcome)) => log::info!("update check: {outcome:?}"),
        Ok(Err(e)) => log::warn!("no update this time: {e}"),
        Err(_) => log::error!("the update check panicked"),
    }
}

fn run_the_app() {
    std::thread::sleep(std::time::Duration::from_millis(100));
}
