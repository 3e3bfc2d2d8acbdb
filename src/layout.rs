//! Every name leapfrog owns on disk, in one place.
//!
//! | name | where | what |
//! |------|-------|------|
//! | `need_update` | backup dir | the journal: what is being updated, which step |
//! | `need_update.damaged` | backup dir | a journal that could not be read, set aside |
//! | `.leapfrog-backup` | backup dir | the marker: this folder is leapfrog's, and backs up this install dir |
//! | `.leapfrog-staging/` | backup dir | the new release, unpacked and verified |
//! | `.leapfrog-download/` | backup dir | archives, and `*.partial` / `*.partial.meta` downloads being continued |
//! | `.leapfrog-undo-list` | backup dir | the file list of the release being rolled back |
//! | `.leapfrog-release` | install and backup dir, staging | the release's file list |
//! | `.leapfrog-log/update.log` | backup dir | the update log, kept across updates; `update.log.1` is the part before the last 1 MiB |
//! | `.leapfrog-state.json` | install dir | the newest signed manifest accepted, announced keys |
//! | `.leapfrog-tmp.*` | any of them | a file being written, before the rename that publishes it |
//! | `.leapfrog-probe.*` | install dir (Windows) | a test that a folder takes new files |
//! | `<backup>.lock` | beside the backup dir | the update lock |
//!
//! One rule follows: a release may contain no path component that is, in
//! any letter case, `need_update` (or `need_update.` anything) or begins
//! with `.leapfrog` ([`is_reserved`]). It is checked at publish and at
//! unpack, so nothing a release ships can ever be mistaken for leapfrog's
//! own bookkeeping — the file list is the one exception, written by
//! leapfrog itself from the list it verified.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The journal, in the backup dir.
pub const JOURNAL: &str = "need_update";
/// Where a journal that cannot be read is set aside, in the backup dir.
pub const JOURNAL_DAMAGED: &str = "need_update.damaged";
/// The marker that makes a folder leapfrog's backup dir.
pub const MARKER: &str = ".leapfrog-backup";
/// The staging folder, in the backup dir.
pub const STAGING: &str = ".leapfrog-staging";
/// The download folder, in the backup dir.
pub const DOWNLOAD: &str = ".leapfrog-download";
/// The file list of a release being undone, kept before anything changes.
pub const UNDO_LIST: &str = ".leapfrog-undo-list";
/// The file list, at the root of every release tree.
pub const FILE_LIST: &str = ".leapfrog-release";
/// The update log's folder, in the backup dir.
pub const LOG_DIR: &str = ".leapfrog-log";
/// The update log, in [`LOG_DIR`].
pub const LOG: &str = "update.log";
/// The update log's previous part, in [`LOG_DIR`].
pub const LOG_OLD: &str = "update.log.1";
/// The state file, in the install dir.
pub const STATE: &str = ".leapfrog-state.json";
/// The beginning of every temp file's name.
pub const TEMP_PREFIX: &str = ".leapfrog-tmp.";
/// The beginning of every probe file's name.
pub const PROBE_PREFIX: &str = ".leapfrog-probe.";
/// The suffix of a download being continued.
pub const PARTIAL: &str = ".partial";
/// The suffix of what is remembered about a download being continued.
pub const PARTIAL_META: &str = ".partial.meta";

/// The names this module reserves, for messages and docs.
pub fn reserved_names() -> &'static [&'static str] {
    &[JOURNAL, "need_update.*", ".leapfrog*"]
}

/// Whether one path component is a name leapfrog owns (in any letter case).
pub fn is_reserved(component: &str) -> bool {
    let lower = component.to_lowercase();
    lower == JOURNAL || lower.starts_with("need_update.") || lower.starts_with(".leapfrog")
}

/// The first component of a `/`-separated release path that leapfrog owns.
pub fn reserved_component(path: &str) -> Option<&str> {
    path.split('/').find(|part| is_reserved(part))
}

/// The default backup dir of an install dir: its sibling `<name>.backup`.
pub fn default_backup_dir(install_dir: &Path) -> Option<PathBuf> {
    let name = install_dir.file_name()?;
    let mut backup = name.to_os_string();
    backup.push(".backup");
    Some(install_dir.with_file_name(backup))
}

/// The lock file of a backup dir: `<backup>.lock`, beside it.
pub fn lock_path(backup_dir: &Path) -> PathBuf {
    let mut name = backup_dir.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    backup_dir.with_file_name(name)
}

/// A fresh temp file name in `dir` for writing `name`:
/// `.leapfrog-tmp.<pid>.<n>.<name>`. The pid lets a later launch tell a
/// dead process's debris from a live one's work.
pub fn temp_path(dir: &Path, name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{TEMP_PREFIX}{}.{n}.{name}", std::process::id()))
}

/// A probe file name in `dir`.
pub fn probe_path(dir: &Path) -> PathBuf {
    dir.join(format!("{PROBE_PREFIX}{}", std::process::id()))
}

/// When `name` is a temp or probe file leapfrog left, the pid that made it.
pub fn debris_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix(TEMP_PREFIX)
        .or_else(|| name.strip_prefix(PROBE_PREFIX))?;
    rest.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_in_any_case_and_at_any_depth() {
        for name in [
            "need_update",
            "NEED_UPDATE",
            "need_update.damaged",
            ".leapfrog-state.json",
            ".Leapfrog-State.json",
            ".LEAPFROG-RELEASE",
            ".leapfrog-backup",
            ".leapfrog-tmp.1.2.x",
        ] {
            assert!(is_reserved(name), "{name}");
            assert_eq!(reserved_component(&format!("bin/{name}")), Some(name));
        }
        for name in [
            "need_updates",
            "leapfrog-state.json",
            "a.leapfrog",
            "update",
        ] {
            assert!(!is_reserved(name), "{name}");
        }
    }

    #[test]
    fn debris_names_carry_their_pid() {
        let tmp = temp_path(Path::new("/x"), "need_update");
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert_eq!(debris_pid(name), Some(std::process::id()));
        assert_eq!(debris_pid(".leapfrog-probe.42"), Some(42));
        assert_eq!(debris_pid("user.txt"), None);
        assert!(is_reserved(name));
    }
}
