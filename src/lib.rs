//! leapfrog makes a desktop program update itself from a static host (a web
//! server, CDN, FTP server or file share), with no separate updater program.
//!
//! # The update, step by step
//!
//! 1. **check**: `versions.txt` is fetched (in a background thread at startup
//!    with [`Updater::spawn_startup_check`]) and the newest release picked.
//! 2. **stage**: the install dir is copied to the backup dir (default
//!    `<install>.backup`); the release archive is streamed into it while
//!    hashed, unpacked into a staging folder only once its sha256 and size
//!    match, and every file checked against the release's file list; then
//!    the `need_update` journal is written. The install dir is untouched.
//! 3. **hop out**: the app re-executes itself from the backup copy (exec on
//!    Unix, keeping the PID and arguments; spawn then exit on Windows).
//! 4. **apply**: the copy brings the install dir to the new release, each
//!    file replaced by one rename; files the old release shipped and the new
//!    one dropped are removed; files no release shipped (user data) stay.
//! 5. **hop home**: the copy re-executes the new binary in the install dir.
//! 6. **confirm**: the new version calls [`confirm_healthy`].
//!
//! Everything heavy happens in step 2, while the old version runs. A failure
//! there leaves the install dir untouched; a failure in step 4 puts the old
//! files back from the backup copy and relaunches the old version.
//!
//! ```no_run
//! // First thing in main:
//! leapfrog::finish_pending(); // resumes or undoes an update; may exec
//! let updater = leapfrog::Updater::builder("demo", env!("CARGO_PKG_VERSION"))
//!     .manifest_url("https://downloads.example.com/demo/versions.txt")
//!     .build()
//!     .expect("valid update settings");
//! updater.spawn_startup_check(); // never delays the app's start
//! // ... the app ...
//! let _ = leapfrog::confirm_healthy(); // once the new version is known to work
//! ```
//!
//! # Limitations
//!
//! - A file that a user created at a path a new release also ships is
//!   replaced by the release's file (the backup keeps the user's copy).
//! - An install dir that was not installed from a leapfrog archive has no
//!   file list, so the first update removes no files (it cannot tell the old
//!   release's files from the user's).
//! - With a custom backup dir, `finish_pending` finds the journal only
//!   through `LEAPFROG_BACKUP_DIR`.
//! - The Windows code is small and std-only, and not compiled by the Linux CI.

#![deny(missing_docs)]

pub mod archive;
mod check;
pub mod error;
mod failpoint;
pub mod fetch;
mod hop;
pub mod journal;
pub mod lock;
pub mod manifest;
pub mod publish;
#[cfg(feature = "serve")]
pub mod serve;
pub mod settings;
pub mod sign;
pub mod state;
mod sys;
pub mod verify;

pub use check::{
    find_update, Ask, Available, Checked, Outcome, Query, Restart, Updater, UpdaterBuilder,
};
pub use error::{Error, Result};
pub use hop::{confirm_healthy, default_backup_dir, finish_pending, rollback, Pending};
pub use manifest::{Manifest, Release};
