//! The update log: `update.log` in the backup dir's `.leapfrog-log/`
//! folder, a line for every check, stage, hop, apply, trial launch and
//! rollback, with its time, the process, the versions and the outcome. It
//! is the file a support person asks a user to send.
//!
//! The folder is leapfrog's own (a reserved name no release can carry, and
//! never part of the hard-linked copy of the install dir), so the log
//! outlives every update. At 1 MiB the log is moved to `update.log.1` and
//! begun again, so at most 2 MiB are ever kept.
//!
//! Writing it is best effort: the log never makes an update fail. It is
//! written only into a backup dir that carries leapfrog's marker for this
//! install, and never through a symlink, so a check makes no folder and a
//! planted link writes nothing outside it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::journal::{Journal, Step};
use crate::layout;

/// The size at which the log is moved aside and begun again.
pub(crate) const ROTATE_AT: u64 = 1 << 20;

/// The update log of the backup dir `backup`.
pub(crate) fn path(backup: &Path) -> PathBuf {
    backup.join(layout::LOG_DIR).join(layout::LOG)
}

/// Adds a line saying `event` to the update log of `install`'s backup dir
/// `backup`, when that folder is leapfrog's.
pub(crate) fn record(backup: &Path, install: &Path, event: &str) {
    if !super::backup::is_backup_of(backup, install) {
        return;
    }
    if let Err(e) = append(backup, event) {
        log::debug!(
            "the update log {} cannot be written: {e}",
            path(backup).display()
        );
    }
}

/// Adds a line about the update `journal` speaks of.
pub(crate) fn record_journal(journal: &Journal, event: &str) {
    record(
        &journal.backup_dir,
        &journal.install_dir,
        &format!(
            "{} {} -> {}: {event}",
            journal.program, journal.from_version, journal.to_version
        ),
    );
}

/// What reaching `step` means, for the log.
pub(crate) fn step_event(journal: &Journal, step: Step) -> String {
    let why = journal
        .error
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    match step {
        Step::Staged => {
            "staged: downloaded, verified and unpacked; the app restarts to apply it".into()
        }
        Step::Applying => {
            "applying: the backup copy is bringing the install dir to the new release".into()
        }
        Step::Applied => {
            "applied: the install dir holds the new release; its first launch is a trial".into()
        }
        Step::RollingBack => format!("rolling back: the old release is being put back{why}"),
        Step::Confirmed => "confirmed: the new version is healthy".into(),
        Step::RolledBack => format!("rolled back: the old version is installed again{why}"),
    }
}

fn append(backup: &Path, event: &str) -> io::Result<()> {
    let dir = backup.join(layout::LOG_DIR);
    match fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(io::Error::other(
                "something else stands in its folder's place",
            ))
        }
        Err(_) => fs::create_dir(&dir)?,
    }
    let log = dir.join(layout::LOG);
    if fs::symlink_metadata(&log).is_ok_and(|m| m.is_file() && m.len() >= ROTATE_AT) {
        fs::rename(&log, dir.join(layout::LOG_OLD))?;
    }
    let line = format!(
        "{} [pid {}] {}\n",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        std::process::id(),
        one_line(event)
    );
    crate::os::append_no_follow(&log)?.write_all(line.as_bytes())
}

/// `text` on one line, with no control characters.
fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_and_the_log_is_rotated_at_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let install = dir.path().join("app");
        let backup = dir.path().join("app.backup");
        fs::create_dir(&install).unwrap();
        // Not leapfrog's backup dir (yet): nothing is made.
        record(&backup, &install, "check: up to date");
        assert!(!backup.exists());
        super::super::backup::claim(&backup, &install).unwrap();
        record(&backup, &install, "check: up to date");
        record(&backup, &install, "two\nlines\x1b[31m");
        let text = fs::read_to_string(path(&backup)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with("] check: up to date"), "{text}");
        assert!(lines[1].ends_with("] two / lines[31m"), "{text}");
        assert!(lines[0].contains(&format!("[pid {}]", std::process::id())));
        // Past the limit, the log starts again and the full one is kept.
        let full = vec![b'x'; ROTATE_AT as usize];
        fs::write(path(&backup), &full).unwrap();
        record(&backup, &install, "after rotation");
        let dir_log = backup.join(layout::LOG_DIR);
        assert_eq!(fs::read(dir_log.join(layout::LOG_OLD)).unwrap(), full);
        let text = fs::read_to_string(path(&backup)).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.contains("after rotation"));
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let install = dir.path().join("app");
        let backup = dir.path().join("app.backup");
        fs::create_dir(&install).unwrap();
        super::super::backup::claim(&backup, &install).unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, "mine\n").unwrap();
        fs::create_dir(backup.join(layout::LOG_DIR)).unwrap();
        std::os::unix::fs::symlink(&outside, path(&backup)).unwrap();
        record(&backup, &install, "check: up to date");
        assert_eq!(fs::read_to_string(&outside).unwrap(), "mine\n");
        fs::remove_file(path(&backup)).unwrap();
        fs::remove_dir(backup.join(layout::LOG_DIR)).unwrap();
        std::os::unix::fs::symlink(dir.path(), backup.join(layout::LOG_DIR)).unwrap();
        record(&backup, &install, "check: up to date");
        assert!(!dir.path().join(layout::LOG).exists());
    }
}
