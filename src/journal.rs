//! The `need_update` journal in the backup dir: what is being updated, where,
//! and which step was reached.
//!
//! It is a small JSON document written atomically (temp file, fsync, rename,
//! fsync of the dir), so a crash leaves the previous state or the next one,
//! never a torn file. A journal of another format version is a hard error.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The journal's file name in the backup dir.
pub const JOURNAL_NAME: &str = crate::layout::JOURNAL;
/// The journal format this library reads and writes.
pub const JOURNAL_FORMAT: u32 = 1;

/// How far an update got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The backup copy is complete, the archive verified and unpacked into
    /// the staging folder. Next: hop out to the backup copy.
    Staged,
    /// The backup copy is bringing the install dir to the new release. Every
    /// part of it can be run again. Next: finish applying.
    Applying,
    /// The install dir holds the new release. Next: its first (trial) launch.
    Applied,
    /// The update is being undone: the backup's release is put back. Every
    /// part can be run again. Next: finish undoing.
    RollingBack,
    /// The new version is healthy (it said so, ran long enough, or exited
    /// with success on its trial launch). Nothing more to do.
    Confirmed,
    /// Applying failed and the old release was put back. The version is not
    /// offered again until a newer one appears.
    RolledBack,
}

/// How the first launch of a new version (its trial) is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// What makes the new version count as healthy.
    pub confirm: Confirm,
    /// How many trial launches may fail before the update is rolled back.
    pub attempts: u32,
}

/// What makes a new version count as healthy on its trial launch. Either
/// way, a version that crashes, or exits with failure, before it counts as
/// healthy is rolled back; one that exits with success counts as healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirm {
    /// Having run this many milliseconds, or calling
    /// [`confirm_healthy`](crate::confirm_healthy), whichever comes first.
    AfterMs(u64),
    /// Calling [`confirm_healthy`](crate::confirm_healthy) within this many
    /// milliseconds; a version that does not is taken to hang, stopped, and
    /// rolled back.
    WithinMs(u64),
}

impl Default for Trial {
    /// Healthy after 10 seconds of running (or when it says so), one attempt.
    fn default() -> Self {
        Trial {
            confirm: Confirm::AfterMs(10_000),
            attempts: 1,
        }
    }
}

/// The journal document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Always [`JOURNAL_FORMAT`].
    pub format: u32,
    /// The program.
    pub program: String,
    /// The install dir being updated.
    pub install_dir: PathBuf,
    /// The backup dir holding the old version, the archive and the staging folder.
    pub backup_dir: PathBuf,
    /// The executable to relaunch, relative to the install (or backup) dir.
    pub exe: PathBuf,
    /// The version being replaced.
    pub from_version: String,
    /// The version being installed.
    pub to_version: String,
    /// The archive's file name in the backup dir.
    pub archive: String,
    /// The archive's sha256.
    pub sha256: String,
    /// A `data/config.json` (relative to the install dir) whose
    /// `current_version` is rewritten after the update.
    pub config: Option<PathBuf>,
    /// The step reached.
    pub step: Step,
    /// How often the new version was launched without confirming.
    pub trial_launches: u32,
    /// How many of those trial launches failed (crashed, exited with
    /// failure, hung, or could not start).
    #[serde(default)]
    pub trial_failures: u32,
    /// How the trial launch is judged.
    #[serde(default)]
    pub trial: Trial,
    /// Why the update was rolled back.
    #[serde(default)]
    pub error: Option<String>,
    /// Whether the old version has told its user about the rollback.
    #[serde(default)]
    pub reported: bool,
    /// Whether the release itself failed (its trial launch), rather than
    /// this machine (an I/O error, no permission, a full disk, a kill): a
    /// bad release is not offered again; the other kind is tried again
    /// later, waiting longer after each failure.
    #[serde(default)]
    pub bad_release: bool,
    /// When (seconds since the Unix epoch) the release last failed here
    /// through no fault of its own.
    #[serde(default)]
    pub failed_at: Option<u64>,
    /// How often this release failed here through no fault of its own.
    #[serde(default)]
    pub retries: u32,
    /// A random token of the process that staged the update, which it
    /// hands to its own hop out. Any other process that applies the update
    /// (a later launch, or the helper that applies when the app quits)
    /// checks the staged files again first.
    #[serde(default)]
    pub staged_by: Option<String>,
}

impl Journal {
    /// A journal of an update of `program` from `from` to `to` in
    /// `install_dir`, kept in `backup_dir`; it starts `staged`, with no
    /// trial launch, failure or retry counted.
    pub fn new(
        program: &str,
        (install_dir, backup_dir): (&Path, &Path),
        exe: &Path,
        (from, to): (String, String),
    ) -> Journal {
        Journal {
            format: JOURNAL_FORMAT,
            program: program.to_owned(),
            install_dir: install_dir.to_owned(),
            backup_dir: backup_dir.to_owned(),
            exe: exe.to_owned(),
            from_version: from,
            to_version: to,
            archive: String::new(),
            sha256: String::new(),
            config: None,
            step: Step::Staged,
            trial_launches: 0,
            trial_failures: 0,
            trial: Trial::default(),
            error: None,
            reported: false,
            bad_release: false,
            failed_at: None,
            retries: 0,
            staged_by: None,
        }
    }

    /// The journal's path in `backup_dir`.
    pub fn path_in(backup_dir: &Path) -> PathBuf {
        backup_dir.join(JOURNAL_NAME)
    }

    /// The staging folder, where the new release is unpacked.
    pub fn staging_dir(&self) -> PathBuf {
        self.backup_dir.join(crate::layout::STAGING)
    }

    /// The archive's path in the backup dir's download folder.
    pub fn archive_path(&self) -> PathBuf {
        self.backup_dir
            .join(crate::layout::DOWNLOAD)
            .join(&self.archive)
    }

    /// Reads the journal in `backup_dir`; `None` when there is none.
    pub fn read(backup_dir: &Path) -> Result<Option<Journal>> {
        let path = Journal::path_in(backup_dir);
        let text = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // No such file, or no such folder (a path through a file).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(crate::error::io_err("reading", &path)(e)),
        };
        let fail = |reason: String| Error::Journal {
            path: path.clone(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| fail(format!("not a journal ({e})")))?;
        match value.get("format").and_then(|f| f.as_u64()) {
            Some(f) if f == u64::from(JOURNAL_FORMAT) => {}
            Some(f) => {
                return Err(fail(format!(
                    "format {f} is not {JOURNAL_FORMAT}; it was written by another leapfrog version"
                )))
            }
            None => return Err(fail("it has no format field".into())),
        }
        let journal: Journal =
            serde_json::from_value(value).map_err(|e| fail(format!("incomplete ({e})")))?;
        journal.check_paths().map_err(fail)?;
        Ok(Some(journal))
    }

    /// A journal may only speak of its two folders: both absolute, and the
    /// executable, archive and config plain relative names inside them.
    fn check_paths(&self) -> std::result::Result<(), String> {
        use std::path::Component;
        let plain = |p: &Path| {
            p.components().count() > 0 && p.components().all(|c| matches!(c, Component::Normal(_)))
        };
        if !self.install_dir.is_absolute() || !self.backup_dir.is_absolute() {
            return Err("its install_dir and backup_dir must be absolute paths".into());
        }
        if !plain(&self.exe) {
            return Err(format!(
                "its executable {:?} is not a relative path inside the install dir",
                self.exe
            ));
        }
        if !self.archive.is_empty() && Path::new(&self.archive).components().count() != 1
            || !self.archive.is_empty() && !plain(Path::new(&self.archive))
        {
            return Err(format!("its archive {:?} is not a file name", self.archive));
        }
        if let Some(config) = &self.config {
            if !plain(config) {
                return Err(format!(
                    "its config {config:?} is not a relative path inside the install dir"
                ));
            }
        }
        Ok(())
    }

    /// Writes the journal atomically into its backup dir.
    pub fn write(&self) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(self).expect("a journal serialises");
        text.push(b'\n');
        crate::os::write_atomic(&Journal::path_in(&self.backup_dir), &text)
    }

    /// Records that this machine, not the release, made the update fail
    /// (an I/O error, no permission, a full disk, a kill): the release is
    /// tried again later.
    pub fn failed_here(&mut self, why: &str) {
        self.error = Some(format!(
            "{why} (a problem of this machine, not of the release: it is tried again later)"
        ));
        self.bad_release = false;
        self.failed_at = Some(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        self.retries = self.retries.saturating_add(1);
    }

    /// Records that the release itself failed (its trial launch): it is not
    /// offered again until a newer one appears.
    pub fn release_failed(&mut self, why: String) {
        self.error = Some(why);
        self.bad_release = true;
    }

    /// Records `step` and writes the journal.
    pub fn advance(&mut self, step: Step) -> Result<()> {
        log::debug!("journal: {:?} -> {:?}", self.step, step);
        self.step = step;
        self.write()?;
        crate::update::history::record_journal(
            self,
            &crate::update::history::step_event(self, step),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> Journal {
        let mut journal = Journal::new(
            "demo",
            (&dir.join("demo"), dir),
            Path::new("demo"),
            ("1.0.0".into(), "1.1.0".into()),
        );
        journal.archive = "demo-1.1.0.tar.gz".into();
        journal.sha256 = "00".repeat(32);
        journal
    }

    #[test]
    fn round_trips_and_advances() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = sample(dir.path());
        j.write().unwrap();
        assert_eq!(Journal::read(dir.path()).unwrap(), Some(j.clone()));
        j.advance(Step::Applied).unwrap();
        assert_eq!(
            Journal::read(dir.path()).unwrap().unwrap().step,
            Step::Applied
        );
    }

    #[test]
    fn torn_empty_and_foreign_journals_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Journal::read(dir.path()).unwrap(), None);
        let path = Journal::path_in(dir.path());
        for (text, needle) in [
            ("", "not a journal"),
            ("{\"format\":1,\"program\":", "not a journal"),
            ("{\"format\":2}", "format 2 is not 1"),
            ("{\"program\":\"x\"}", "no format field"),
            ("{\"format\":1,\"program\":\"x\"}", "incomplete"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Journal::read(dir.path()).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
