//! The smallest app that updates itself: what to copy into your `main`.
//!
//! ```text
//! cargo run --example embed -- https://downloads.example.com/myapp/versions.txt
//! ```

#![allow(clippy::print_stderr)]

use std::time::Duration;

fn main() {
    // First thing: finish (or undo) an update in progress. Returns at once
    // when there is none; may replace the process to finish one.
    if let leapfrog::Pending::Updated { from, to, .. } = leapfrog::finish_pending() {
        eprintln!("updated from {from} to {to}");
    }

    let manifest = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "https://downloads.example.com/myapp/versions.txt".into());
    let updater = leapfrog::Updater::builder("myapp", env!("CARGO_PKG_VERSION"))
        .manifest_url(manifest)
        .ask(leapfrog::Ask::Auto) // dialog, terminal question, or nothing when unattended
        .build()
        .expect("valid update settings");
    // Never delays the start: the check runs in a background thread.
    let check = updater.spawn_startup_check();

    // ... the app's real work ...
    std::thread::sleep(Duration::from_millis(100));

    // Once this version is known to work, close the update's journal.
    let _ = leapfrog::confirm_healthy();
    if let Ok(Err(e)) = check.join() {
        eprintln!("no update this time: {}", e.chain());
    }
}
