//! The one error type of the library.
//!
//! Every variant names the file, URL or manifest line it is about, so that a
//! message shown to a user or written to a log says what failed and where.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while checking, staging or applying an update.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read, written, renamed or removed.
    #[error("{action} {path}")]
    Io {
        /// What was being done ("reading", "renaming ... to", ...).
        action: String,
        /// The path touched.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A line of a manifest could not be understood.
    #[error("{origin}:{line}: {message}")]
    Manifest {
        /// Where the manifest came from (URL or path).
        origin: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },

    /// A version string is not semver.
    #[error("{version:?} is not a valid version (expected MAJOR.MINOR.PATCH, e.g. 1.2.0)")]
    Version {
        /// The rejected text.
        version: String,
        /// The parser's complaint.
        #[source]
        source: semver::Error,
    },

    /// A download failed: connection, HTTP status, or transport error.
    #[error("downloading {url}: {message}")]
    Download {
        /// The URL fetched.
        url: String,
        /// What went wrong, with advice where there is some.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// Every manifest URL (the first and each mirror) failed.
    #[error("every mirror failed ({} tried): {}", failures.len() + 1, each_but_last(failures))]
    Mirrors {
        /// The errors of the URLs tried before the last, in order.
        failures: Vec<Error>,
        /// The last URL's error (its message follows, as the cause).
        #[source]
        last: Box<Error>,
    },

    /// Another process (another copy of the app, or `leapfrog rollback`)
    /// is updating this install right now; this one changes nothing.
    #[error("another copy of the program is updating {install_dir} right now (it holds the lock {lock}); this one carries on unchanged")]
    Busy {
        /// The install dir.
        install_dir: PathBuf,
        /// The lock file held by the other process.
        lock: PathBuf,
    },

    /// An update of this install is under way: staged and waiting for the
    /// next launch, being applied, or on its trial launch. Restarting the
    /// app finishes it.
    #[error("{}", in_progress_message(.backup_dir, .version, *.on_trial))]
    InProgress {
        /// The backup dir holding the update's journal.
        backup_dir: PathBuf,
        /// The version being installed.
        version: String,
        /// Whether the new version is installed and its trial launch not
        /// over (the backup is kept until it is).
        on_trial: bool,
    },

    /// A downloaded file does not match what the manifest promised.
    #[error("{url}: checksum mismatch: expected sha256 {expected}, got {computed}; the file on the server is not the one that was published (re-upload it, or publish again)")]
    ChecksumMismatch {
        /// The URL fetched.
        url: String,
        /// The sha256 named by the manifest.
        expected: String,
        /// The sha256 of what arrived.
        computed: String,
    },

    /// A download ended at another size than the manifest promised.
    #[error("{url}: size mismatch: expected {expected} bytes, got {got}{hint}", hint = if got < expected { " (the download was cut short; try again)" } else { "" })]
    SizeMismatch {
        /// The URL fetched.
        url: String,
        /// The size named by the manifest.
        expected: u64,
        /// What arrived (or would have, where the server said in advance).
        got: u64,
    },

    /// A release archive holds something that may not be unpacked.
    #[error("unsafe release archive {archive}: entry {entry:?}: {reason}; nothing was installed")]
    UnsafeArchive {
        /// The archive.
        archive: PathBuf,
        /// The offending entry's path as stored.
        entry: String,
        /// Why it is refused.
        reason: String,
    },

    /// A release archive is not shaped as leapfrog packs them.
    #[error("bad release archive {archive}: {reason}")]
    BadArchive {
        /// The archive.
        archive: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A delta patch cannot be applied: damaged, crafted, or made for
    /// another old file.
    #[error("delta {patch}: {reason}")]
    BadDelta {
        /// The patch file.
        patch: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The need_update journal could not be understood.
    #[error("update journal {path}: {reason}")]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The update was refused before anything changed: this place cannot
    /// take it (read-only, no room, a file held open).
    #[error("update refused, nothing was changed: {path}: {reason}")]
    Unsuitable {
        /// The folder or file that cannot take the update.
        path: PathBuf,
        /// What is wrong and what to do about it.
        reason: String,
    },

    /// The updater or a publish was given settings that cannot work.
    #[error("invalid settings: {0}")]
    Settings(String),

    /// A publish was refused (version not newer, bad input dir, ...).
    #[error("publish refused: {0}")]
    Publish(String),

    /// The manifest has no release of this program at all.
    #[error(
        "{origin} lists no release of {program:?}; check the program name and the manifest URL"
    )]
    UnknownProgram {
        /// Where the manifest came from.
        origin: String,
        /// The program asked for.
        program: String,
    },

    /// A manifest's signature is missing, malformed, or not by a trusted key.
    #[error("{url}: {reason}; nothing was downloaded")]
    Signature {
        /// The manifest's URL.
        url: String,
        /// What is wrong.
        reason: String,
        /// Why the signature could not be had, when it could not be fetched.
        #[source]
        source: Option<Box<Error>>,
    },

    /// A signed manifest is past its `expires` time (a frozen or stale mirror).
    #[error("{url}: the manifest expired at {expires}; the host serves a stale copy (the publisher must publish again, or the mirror must sync)")]
    Expired {
        /// The manifest's URL.
        url: String,
        /// Its `expires` value.
        expires: String,
    },

    /// The manifest fetched is not the one its freshness file names: a
    /// cache between the client and the host holds an older or newer copy
    /// of one of them. No update this time; the next check tries again.
    #[error("{url}: {reason}; no update this time, the next check tries again")]
    Stale {
        /// The manifest's URL.
        url: String,
        /// What did not match.
        reason: String,
    },

    /// A signed manifest is older than one already accepted (a replay).
    #[error("{url}: {reason}; refusing an older manifest than one already seen")]
    Rollback {
        /// The manifest's URL.
        url: String,
        /// What was seen.
        reason: String,
    },

    /// A key file could not be used.
    #[error("key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A release line asks for something a manifest may not: an archive or
    /// notes file away from the manifest, a signed release without a size.
    #[error("{origin}: {program} {version}: {reason}; nothing was downloaded")]
    BadRelease {
        /// Where the manifest came from.
        origin: String,
        /// The program.
        program: String,
        /// The version.
        version: String,
        /// What is wrong, and what to do.
        reason: String,
    },

    /// A lifecycle hook (the app's, or a command its release names) failed
    /// or ran out of time.
    #[error("the {hook} hook failed: {reason}")]
    Hook {
        /// Which hook: the moment and the app's callback or the command.
        hook: String,
        /// Why.
        reason: String,
    },

    /// The user cancelled the download (the progress window's Cancel).
    /// Nothing was changed; what arrived is kept, and the next download
    /// of this release continues from there.
    #[error("the download of {url} was cancelled by the user; nothing was changed")]
    Cancelled {
        /// The archive's URL.
        url: String,
    },

    /// A release line has no sha256 and unverified updates were not allowed.
    #[error("{origin}: {program} {version} has no sha256, and unverified updates are not allowed; publish it with `leapfrog publish`")]
    Unverified {
        /// Where the manifest came from.
        origin: String,
        /// The program.
        program: String,
        /// The version.
        version: String,
    },
}

fn each_but_last(failures: &[Error]) -> String {
    failures
        .iter()
        .map(|e| format!("{}; ", e.chain()))
        .collect::<String>()
        + "and last"
}

fn in_progress_message(backup_dir: &std::path::Path, version: &str, on_trial: bool) -> String {
    if on_trial {
        format!(
            "{version} is installed but its trial launch is not over; the backup in {} is kept until it is (restart the app to finish the trial)",
            backup_dir.display()
        )
    } else {
        format!(
            "an update to {version} is already in progress in {}; restart the app to finish it",
            backup_dir.display()
        )
    }
}

impl Error {
    /// An [`Error::Busy`] for the install dir whose backup dir is `backup_dir`.
    pub(crate) fn busy(install_dir: &std::path::Path, backup_dir: &std::path::Path) -> Error {
        Error::Busy {
            install_dir: install_dir.to_owned(),
            lock: crate::layout::lock_path(backup_dir),
        }
    }

    /// The file or folder the error is about, when it is about one.
    ///
    /// ```
    /// use std::path::Path;
    /// let err = leapfrog::Error::Journal {
    ///     path: "/opt/demo.backup/need_update".into(),
    ///     reason: "torn".into(),
    /// };
    /// assert_eq!(err.path(), Some(Path::new("/opt/demo.backup/need_update")));
    /// ```
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. }
            | Error::Journal { path, .. }
            | Error::Unsuitable { path, .. }
            | Error::Key { path, .. } => Some(path),
            Error::UnsafeArchive { archive, .. } | Error::BadArchive { archive, .. } => {
                Some(archive)
            }
            Error::BadDelta { patch, .. } => Some(patch),
            Error::Busy { lock, .. } => Some(lock),
            Error::InProgress { backup_dir, .. } => Some(backup_dir),
            _ => None,
        }
    }

    /// How long the host asked to be left alone (an HTTP 429 or 503 with
    /// `Retry-After`), when it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.find_source::<crate::fetch::RetryAfter>().map(|r| r.0)
    }

    /// The HTTP status a request failed with, when it failed with one.
    pub fn http_status(&self) -> Option<u16> {
        self.find_source::<crate::fetch::Status>().map(|s| s.0)
    }

    /// Whether the file asked for is not on the host (HTTP 404 or 410, a
    /// missing file).
    pub fn is_not_found(&self) -> bool {
        matches!(self.http_status(), Some(404 | 410))
            || self
                .find_source::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    }

    /// The first error of type `T` in this one's sources.
    fn find_source<T: std::error::Error + 'static>(&self) -> Option<&T> {
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            if let Some(found) = e.downcast_ref::<T>() {
                return Some(found);
            }
            next = e.source();
        }
        None
    }

    /// The URL (or, for a manifest read from a file, its path) the error is
    /// about, when it is about one. Passwords in it are never shown.
    ///
    /// ```
    /// # fn show(err: &leapfrog::Error) {
    /// if let Some(url) = err.url() {
    ///     eprintln!("the update host {url} failed: {err}");
    /// }
    /// # }
    /// ```
    pub fn url(&self) -> Option<&str> {
        match self {
            Error::Download { url, .. }
            | Error::ChecksumMismatch { url, .. }
            | Error::SizeMismatch { url, .. }
            | Error::Signature { url, .. }
            | Error::Expired { url, .. }
            | Error::Stale { url, .. }
            | Error::Rollback { url, .. } => Some(url),
            Error::Manifest { origin, .. }
            | Error::UnknownProgram { origin, .. }
            | Error::BadRelease { origin, .. }
            | Error::Unverified { origin, .. } => Some(origin),
            Error::Mirrors { last, .. } => last.url(),
            _ => None,
        }
    }

    /// The message with every cause after it, `: `-separated, for showing to
    /// a user in one line (the same as anyhow's `{:#}`).
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            source = cause.source();
        }
        out
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A size as leapfrog shows it everywhere (messages, logs, the dialog):
/// decimal units (kB, MB, GB), one decimal.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Builds a closure that wraps an [`io::Error`] with the action and path, for `map_err`.
pub(crate) fn io_err(action: &str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let action = action.to_owned();
    let path = path.into();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_are_shown_in_decimal_units() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1000), "1.0 kB");
        assert_eq!(human_size(1_500_000), "1.5 MB");
        assert_eq!(human_size(209_715_200), "209.7 MB");
        assert_eq!(human_size(3_000_000_000), "3.0 GB");
    }
}
