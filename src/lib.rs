//! leapfrog makes a desktop program update itself from a static host (a web
//! server, CDN, FTP server or file share), with no separate updater program.
//!
//! # The update, step by step
//!
//! 1. **check**: `versions.txt` is fetched (in a background thread at startup
//!    with [`Updater::spawn_startup_check`], at most once a day after a
//!    random wait) and the newest release picked. A signed repository's
//!    small freshness file `versions.txt.fresh` comes first, conditionally
//!    (a 304 when nothing changed); the manifest only when its hash did.
//! 2. **stage**: the install dir is copied to the backup dir (default
//!    `<install>.backup`); the release archive is streamed into it while
//!    hashed, unpacked into a staging folder only once its sha256 and size
//!    match, and every file checked against the release's file list (a
//!    file the installed release has unchanged is hard-linked from the
//!    backup and hashed instead); then the `need_update` journal is
//!    written. The install dir is untouched.
//! 3. **hop out**: the app re-executes itself from the backup copy (exec on
//!    Unix, keeping the PID and arguments; spawn then exit on Windows).
//! 4. **apply**: the copy brings the install dir to the new release, each
//!    changed file replaced by one rename (an unchanged one is the
//!    installed file itself, and stays); files the old release shipped and
//!    the new one dropped are removed; files no release shipped (user data)
//!    stay. Nothing else happens while the app is down: the archive and the
//!    staging folder are removed once the new version runs.
//! 5. **hop home**: the copy starts the new binary in the install dir. Its
//!    first launch is a *trial*: the copy starts it as a child and watches
//!    it (see below); later launches are plain.
//! 6. **confirm**: the new version calls [`confirm_healthy`], or runs long
//!    enough ([`UpdaterBuilder::confirm_after`], 10 s by default), or exits
//!    with success.
//!
//! Everything heavy happens in step 2, while the old version runs. Before
//! it starts, the places are checked: an install dir (or a folder of the
//! installed release) that cannot take new files, a backup dir that cannot
//! be made or written, too little free space for the backup and the
//! download, and (on Windows) release files held open by another process
//! refuse the update with [`Error::Unsuitable`], before anything changes.
//! A failure in step 2 leaves the install dir untouched; a failure in step
//! 4 puts the old files back from the backup copy and relaunches the old
//! version.
//!
//! # Recovery rules
//!
//! The journal (`need_update` in the backup dir) is written before each
//! step is taken, by write-temp, fsync, rename, fsync-dir; the backup
//! (one `syncfs` after its links), staged files (each file written and each
//! folder) and applied ones (each folder the step changed) are flushed to
//! disk before the journal moves past them. A crash or power cut at any
//! instant leaves one of these, and
//! [`finish_pending`], first thing in the next launch of the program (old
//! binary or new), does what the table says:
//!
//! | the crash left | the next launch |
//! |----------------|-----------------|
//! | no journal, or a stage half done (no `staged` journal) | runs the installed version; the half-made backup is cleared by the next stage, and a broken-off download is continued |
//! | journal `staged` | hops out to the backup copy and applies |
//! | journal `applying` (some files renamed) | hops out and applies again: every part of applying can run twice |
//! | journal `applied` (the new version's trial not judged) | hops out to the backup copy, which runs another watched trial; after more unjudged trials than allowed attempts plus two, rolls back |
//! | journal `rolling_back` (undoing an update) | hops out to the backup copy, which finishes putting the old release back |
//! | journal `confirmed` or `rolled_back` | nothing to do (a rollback is told to the user once; a release that failed through no fault of its own is tried again later) |
//! | a journal that cannot be read (torn, empty, another format) | copies it aside as `need_update.damaged`; keeps the install dir if it is a complete release by its own file list, else restores the backup's release |
//!
//! A journal is believed only inside the backup dir whose marker
//! (`.leapfrog-backup`) names the journal's install dir, and only about
//! those two folders (the README's Security section lists every name
//! leapfrog owns on disk).
//!
//! Recovery goes forward when the staged release is complete (it was
//! verified before the journal said `staged`), back otherwise. The install
//! dir is always exactly the old release or exactly the new one, with the
//! user's files untouched: `tests/crash.rs` kills the update at every point
//! that changes the disk and checks it.
//!
//! # The trial launch
//!
//! The backup copy, after applying, starts the new version as its child and
//! watches it; the process the user started (same PID through the execs)
//! stays, and ends with the new version's exit status. A new version that
//! crashes, exits with failure before it counts as healthy, hangs without
//! confirming ([`UpdaterBuilder::confirm_within`]) or cannot start at all
//! (a missing library, a bad executable) has failed its trial; after
//! [`UpdaterBuilder::trial_attempts`] failures (default 1) the install dir
//! is rolled back from the backup and the old version started in its
//! place, which gets [`Pending::RolledBack`] to tell its user. The failed
//! version is not offered again until a newer one appears. The backup dir
//! keeps the old release untouched until the next update, so
//! [`rollback`] (`leapfrog rollback`) can go back on request.
//!
//! # Embedding
//!
//! ```no_run
//! use leapfrog::{Outcome, Pending, Restart, Updater};
//!
//! // A `log` logger first: leapfrog reports through `log`, never by printing.
//! // First thing in main: finish (or undo) an update in progress; may exec.
//! match leapfrog::finish_pending() {
//!     Pending::Updated { from, to, .. } => log::info!("updated from {from} to {to}"),
//!     Pending::RolledBack { version, reason } => {
//!         log::warn!("the update to {version} did not work and was undone: {reason}")
//!     }
//!     Pending::Failed(e) => log::error!("an update in progress could not be finished: {e}"),
//!     _ => {}
//! }
//! let updater = Updater::builder("demo", env!("CARGO_PKG_VERSION"))
//!     .manifest_url("https://downloads.example.com/demo/versions.txt")
//!     .public_key(include_str!("../examples/leapfrog.pub"))
//!     .restart(Restart::NextLaunch) // apply at the next start; Restart::Now hops at once
//!     .build()?;
//! let check = updater.spawn_startup_check(); // never delays the app's start
//! // ... the app ...
//! leapfrog::confirm_healthy()?; // once this version is known to work
//! match check.join() {
//!     Ok(Ok(Outcome::Staged(version))) => log::info!("{version} installs at the next start"),
//!     Ok(Ok(outcome)) => log::info!("{outcome:?}"),
//!     Ok(Err(e)) => log::warn!("no update this time: {e}"),
//!     Err(_) => log::error!("the update check panicked"),
//! }
//! # Ok::<(), leapfrog::Error>(())
//! ```
//!
//! The publisher's side (pack, sign, publish, refresh, yank, verify,
//! upload) is the [`publish`] module; the `leapfrog` command wraps it.
//!
//! # Settings from the environment
//!
//! Unless the app says [`read_env(false)`](UpdaterBuilder::read_env):
//!
//! | variable | what it sets |
//! |----------|--------------|
//! | `LEAPFROG_MANIFEST_URL` | the manifest URL, only when the app allows it ([`UpdaterBuilder::allow_env_manifest_url`]) |
//! | `LEAPFROG_MIRRORS` | mirror manifest URLs, whitespace-separated; only when the app allows the above |
//! | `LEAPFROG_CHANNEL` | the release channel followed (`stable` by default) |
//! | `LEAPFROG_BACKUP_DIR` | the backup dir (also read by [`finish_pending`]) |
//! | `LEAPFROG_ASSUME_YES=1` | answer yes without asking |
//! | `LEAPFROG_CONFIRM_AFTER`, `LEAPFROG_CONFIRM_WITHIN` | how the trial launch is judged (`30s`, `2m`) |
//! | `LEAPFROG_TRIAL_ATTEMPTS` | trial launches that may fail |
//! | `LEAPFROG_RETRY_AFTER` | the wait before retrying a release this machine made fail |
//! | `LEAPFROG_CONNECT_TIMEOUT`, `LEAPFROG_READ_TIMEOUT`, `LEAPFROG_RATE_WINDOW` | network patience (`10s`, `500ms`) |
//! | `LEAPFROG_MIN_RATE`, `LEAPFROG_RETRIES` | the slowest transfer accepted (bytes/s), retries |
//! | `LEAPFROG_AUTH_USER`, `LEAPFROG_AUTH_PASSWORD`, `LEAPFROG_AUTH_TOKEN`, `LEAPFROG_HEADERS` | credentials for a private host (never logged) |
//! | `LEAPFROG_CA_FILE` | root certificates (PEM) for a host with its own CA, instead of the public and system ones |
//! | `SSL_CERT_FILE`, `SSL_CERT_DIR` | where the system's certificate store is (Unix), read by the store's loader |
//!
//! A value that is not valid Unicode is refused, never ignored.
//!
//! # Features
//!
//! - `dialog` (default): the native Update / Later dialog, through rfd.
//! - `progress-bar` (default): an indicatif progress bar for terminal apps.
//! - `ftp` (default): releases on FTP and explicit FTPS hosts, through suppaftp.
//! - `sign`: key generation and signing for publishers ([`publish::keygen`],
//!   [`publish::sign`]); verifying is always built in.
//! - `serve`: the small static file server ([`serve`]) of the demo and tests.
//! - `cli` (default): the `leapfrog` command; pulls in clap and the above.
//! - `failpoints`: fail points for the crash tests; never in a release build.
//!
//! An app embeds the library with `default-features = false` and the
//! features it wants (`features = ["dialog"]`, say): then none of the
//! command's crates (clap, tiny_http, indicatif) are built.
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
//! - The watcher of a trial launch passes SIGTERM and SIGHUP on to the new
//!   version (Unix); other signals sent to its PID alone are not passed on.
//! - A new version that misbehaves only after it counted as healthy is not
//!   rolled back by itself; `leapfrog rollback` puts the old one back.

#![deny(missing_docs)]

pub mod adoption;
mod config;
mod error;
mod failpoint;
mod fetch;
mod hooks;
mod journal;
mod layout;
mod os;
pub mod publish;
mod release;
#[cfg(feature = "serve")]
pub mod serve;
mod ui;
mod update;
mod updater;
#[cfg(feature = "watch")]
mod watch;

pub use config::{Ask, Restart};
pub use error::{Error, Result};
pub use hooks::{HookCall, Lifecycle};
/// File deltas: `make` a patch from an old and a new file, `apply` it.
#[cfg(feature = "delta")]
pub use release::delta;
pub use release::manifest::{Manifest, Release};
pub use update::{confirm_healthy, finish_pending, rollback, Available, Check, Notes, Pending};
pub use updater::{Outcome, StagedUpdate, Updater, UpdaterBuilder};
#[cfg(feature = "watch")]
pub use watch::ManifestWatch;

/// Not part of the API: the pieces leapfrog's own command, tests and
/// benchmarks look into (the journal, the names on disk, the fetcher).
/// They may change in any release; an app must not use them.
#[doc(hidden)]
pub mod internal {
    pub use crate::fetch::{download, redact, Expect, Limits, ProgressFn};
    pub use crate::journal::{Confirm, Journal, Step, Trial, JOURNAL_FORMAT, JOURNAL_NAME};
    /// Every name leapfrog owns on disk.
    pub mod layout {
        pub use crate::layout::*;
    }
    pub use crate::release::manifest::{parse_version, MAX_SERIAL};
    /// The freshness file.
    pub mod freshness {
        pub use crate::release::freshness::*;
    }
    pub use crate::release::policy::{this_target, Audience, DEFAULT_CHANNEL};
    pub use crate::release::trust::{LastCheck, State, STATE_NAME};
    pub use crate::update::schedule;
    pub use crate::update::{find_update, remember, Checked, Query};
}
