//! Unix: file-system calls, and processes replaced in place by `exec`
//! (keeping their PID).

use std::fs::{self, File, Metadata, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::Relaunch;
use crate::error::{io_err, Result};

/// The bytes an unprivileged user may still write on the file system of `dir`.
pub(crate) fn available_space(dir: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Whether any execute bit is set.
pub(crate) fn is_executable(meta: &Metadata) -> bool {
    meta.permissions().mode() & 0o111 != 0
}

/// Whether the entry's mode is exactly the one unpacking gives a file the
/// file list describes: 0755 or 0644 (no setuid, no group or world write).
pub(crate) fn mode_is(meta: &Metadata, executable: bool) -> bool {
    meta.permissions().mode() & 0o7777 == if executable { 0o755 } else { 0o644 }
}

/// Sets the mode to 0755 or 0644: no setuid, no group or world write.
pub(crate) fn set_executable(path: &Path, executable: bool) -> Result<()> {
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(io_err("setting the mode of", path))
}

/// Creates a symlink at `link` pointing to `target`.
pub(crate) fn symlink(target: &Path, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link).map_err(io_err("creating the symlink", link))
}

/// Flushes a directory's entries (renames, creations) to disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing the directory", dir))
}

/// Creates a new file readable and writable by its owner only (0600),
/// failing when it exists.
#[cfg(feature = "sign")]
pub(crate) fn create_private(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("creating", path))
}

/// Flushes everything written to the file system that holds `dir` (a
/// whole staged release, say) to disk: `syncfs` on Linux, `sync` elsewhere.
pub(crate) fn sync_fs(dir: &Path) -> Result<()> {
    crate::failpoint::at(crate::failpoint::SYNC_FS, dir)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        File::open(dir)
            .and_then(|d| rustix::fs::syncfs(&d).map_err(std::io::Error::from))
            .map_err(io_err("syncing the file system of", dir))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        rustix::fs::sync();
        Ok(())
    }
}

/// Whether two entries are one file (the same inode on the same device):
/// hard links of each other, so one holds exactly what the other does.
pub(crate) fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Whether two paths are on the same file system (device).
pub(crate) fn same_device(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    matches!((fs::metadata(a), fs::metadata(b)), (Ok(x), Ok(y)) if x.dev() == y.dev())
}

/// Files that another process holds open so that they cannot be replaced.
/// None on Unix: a file is replaced by rename even while open (the holder
/// keeps the old content).
pub(crate) fn held_open(_paths: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    Vec::new()
}

/// Fails unless this process may create files in `dir` (writes nothing:
/// a read-only file system, missing permission).
pub(crate) fn can_create_in(dir: &Path) -> std::io::Result<()> {
    use rustix::fs::{access, Access};
    access(dir, Access::WRITE_OK | Access::EXEC_OK).map_err(std::io::Error::from)
}

/// Whether a process with this id is running (debris of a dead one may go).
pub(crate) fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

/// Opens (creating it when missing) the file at `path` for writing without
/// following a symlink there: a link in its place is an error.
pub(crate) fn open_no_follow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// Opens (creating it when missing) the file at `path` for appending,
/// without following a symlink there: a link in its place is an error.
pub(crate) fn append_no_follow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .create(true)
        .append(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

// Processes: the hops, and the watcher of a trial launch.

/// Replaces this process by `relaunch`; returns only when exec failed.
pub(crate) fn replace_process(relaunch: &Relaunch) -> io::Error {
    let mut command = Command::new(&relaunch.program);
    command
        .args(&relaunch.args)
        .env(super::ENV_HOPS, relaunch.hops.to_string())
        .envs(relaunch.env.iter().map(|(k, v)| (k, v)));
    for name in &relaunch.env_remove {
        command.env_remove(name);
    }
    if let Some(count) = crate::failpoint::count() {
        command.env("LEAPFROG_FP_COUNT", count.to_string());
    }
    command.exec()
}

/// Replaces `dst` by `src` with one rename. Unix lets a running binary be
/// renamed over, so there is nothing to wait for.
pub(crate) fn replace_file(src: &Path, dst: &Path) -> io::Result<()> {
    std::fs::rename(src, dst)
}

/// Whether this process was started by `supervisor` (a pid): its parent.
pub(crate) fn supervised_by(supervisor: u32) -> bool {
    std::os::unix::process::parent_id() == supervisor
}

fn signal(child: &std::process::Child, sig: rustix::process::Signal) {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Asks a child to end (SIGTERM); it is killed if it has not after a while.
pub(crate) fn ask_to_stop(child: &std::process::Child) {
    signal(child, rustix::process::Signal::TERM);
}

/// Requests to end (SIGTERM, SIGHUP, SIGINT) that reach a process watching a
/// trial launch. They are caught, so that the watcher outlives its child
/// and passes its exit status on, and SIGTERM and SIGHUP are passed to the
/// child. (SIGINT from a terminal reaches the child by itself: it is in the
/// same process group.) Handlers, unlike ignored signals, are reset in a
/// child by exec, so the child sees these signals as usual.
pub(crate) struct Interrupts {
    term: std::sync::Arc<std::sync::atomic::AtomicBool>,
    hup: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Interrupts {
    pub(crate) fn catch() -> Interrupts {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let flag = || std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (term, hup, int) = (flag(), flag(), flag());
        for (sig, flag) in [(SIGTERM, &term), (SIGHUP, &hup), (SIGINT, &int)] {
            if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
                log::warn!("cannot catch signal {sig}: {e}");
            }
        }
        Interrupts { term, hup }
    }

    /// Passes the requests received since the last call on to `child`.
    pub(crate) fn forward(&self, child: &std::process::Child) {
        use std::sync::atomic::Ordering;
        if self.term.swap(false, Ordering::SeqCst) {
            signal(child, rustix::process::Signal::TERM);
        }
        if self.hup.swap(false, Ordering::SeqCst) {
            signal(child, rustix::process::Signal::HUP);
        }
    }
}

/// How a trial launch ended, from its exit status.
pub(crate) fn ending(status: std::process::ExitStatus) -> super::Ending {
    use super::Ending;
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        return Ending::Success;
    }
    if let Some(sig) = status.signal() {
        let name = match sig {
            1 => "SIGHUP",
            2 => "SIGINT",
            4 => "SIGILL",
            5 => "SIGTRAP",
            6 => "SIGABRT",
            7 => "SIGBUS",
            8 => "SIGFPE",
            9 => "SIGKILL",
            11 => "SIGSEGV",
            15 => "SIGTERM",
            _ => "signal",
        };
        return match sig {
            1 | 2 | 15 => Ending::Interrupted(format!("was stopped by {name}")),
            _ => Ending::Failed(format!("crashed ({name}, signal {sig})")),
        };
    }
    match status.code() {
        Some(127) => Ending::Failed(
            "could not start (exit status 127: a missing shared library or interpreter)".into(),
        ),
        Some(code) => Ending::Failed(format!("exited with status {code}")),
        None => Ending::Failed(format!("ended with {status}")),
    }
}

/// Ends this process the way `status` says its child ended.
pub(crate) fn exit_like(status: std::process::ExitStatus) -> ! {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    std::process::exit(code)
}

/// Whether a failure to start the new version is the release's own fault
/// (not an executable, or its interpreter is missing) rather than this
/// machine's (an I/O error, no memory, a file system mounted noexec).
pub(crate) fn release_cannot_start(e: &io::Error) -> bool {
    const ENOEXEC: i32 = 8;
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ENOEXEC)
}

/// The program that draws dialogs here: zenity, else KDE's kdialog;
/// `None` on macOS or when neither is on the PATH.
pub(crate) fn dialog_program() -> Option<&'static str> {
    if cfg!(target_os = "macos") {
        return None;
    }
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
    };
    ["zenity", "kdialog"].into_iter().find(|name| on_path(name))
}

/// A dialog window where the desktop offers one: zenity (or kdialog) on
/// Linux and the BSDs. With `scrolling`, `text` is shown in a scrolling
/// box (zenity's text window; kdialog has none: `None`), else as a
/// question; `buttons` go below it (the first is the default, the second
/// answers a closed window). Returns the index of the button chosen;
/// `None` when there is no such window here (macOS, neither program, no
/// display), for the caller to fall back.
///
/// The window never outlives this process: the program runs under a
/// small `sh` that reads this process's end of a pipe and closes the
/// window when it ends, however it ends (even killed), so no question is
/// left on screen by an app that has quit.
#[cfg(feature = "dialog")]
pub(crate) fn dialog(title: &str, text: &str, buttons: &[&str], scrolling: bool) -> Option<usize> {
    use std::io::Read;
    use std::process::Stdio;
    if buttons.is_empty() || buttons.len() > 3 {
        return None;
    }
    let kde = match dialog_program()? {
        "kdialog" if scrolling => return None,
        program => program == "kdialog",
    };
    let mut zenity: Vec<&str> = vec!["zenity", "--title", title];
    if kde {
        // kdialog: Yes, No, Cancel; "No" is the third button, "Cancel"
        // (a closed window too) the second.
        zenity = vec!["kdialog", "--title", title];
        match buttons {
            [only] => zenity.extend(["--msgbox", text, "--ok-label", only]),
            [yes, no] => zenity.extend(["--yesno", text, "--yes-label", yes, "--no-label", no]),
            [yes, cancel, no, ..] => zenity.extend([
                "--yesnocancel",
                text,
                "--yes-label",
                yes,
                "--no-label",
                no,
                "--cancel-label",
                cancel,
            ]),
            [] => return None,
        }
    } else {
        if scrolling {
            // The text comes on stdin.
            zenity.extend(["--text-info", "--width=640", "--height=480"]);
        } else if buttons.len() == 1 {
            zenity.extend(["--info", "--no-markup", "--text", text]);
        } else {
            zenity.extend(["--question", "--no-markup", "--text", text]);
        }
        zenity.extend(["--ok-label", buttons[0]]);
        if let Some(cancel) = buttons.get(1) {
            zenity.extend(["--cancel-label", cancel]);
        }
        for extra in buttons.iter().skip(2) {
            zenity.extend(["--extra-button", extra]);
        }
    }
    // The stdin of the guard stays open while this process lives, and its
    // end closes the window; nothing is ever written to it. (A background
    // job of sh reads /dev/null unless told otherwise; `read` is sh's own,
    // so killing the reader leaves no process behind.)
    const GUARD: &str = r#"exec 3<&0 0</dev/null
"$@" 3<&- &
z=$!
{ while read -r _; do :; done <&3; kill "$z"; } >/dev/null 2>&1 &
w=$!
wait "$z"; s=$?
kill "$w" 2>/dev/null
exit "$s""#;
    let mut command = Command::new("/bin/sh");
    command.args(["-c", GUARD, "leapfrog-dialog"]);
    // zenity's scrolling text comes from a file of its own.
    let text_file = if scrolling {
        Some(NotesFile::write(text)?)
    } else {
        None
    };
    let filename = text_file
        .as_ref()
        .map(|f| format!("--filename={}", f.0.display()));
    let shown = if kde {
        kdialog_text(text)
    } else {
        String::new()
    };
    let args: Vec<&str> = zenity
        .iter()
        .map(|a| if kde && *a == text { shown.as_str() } else { a })
        .chain(filename.as_deref())
        .collect();
    let spawned = command
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = spawned.ok()?;
    let stdin = child.stdin.take()?;
    let mut stderr = child.stderr.take()?;
    let errors = std::thread::spawn(move || {
        let mut said = String::new();
        let _ = stderr.read_to_string(&mut said);
        said
    });
    let mut said = String::new();
    let _ = child.stdout.take()?.read_to_string(&mut said);
    let status = child.wait().ok()?;
    drop(stdin);
    drop(text_file);
    let errors = errors.join().unwrap_or_default();
    // zenity that cannot open the display also ends with 1, as kdialog
    // does on a usage error: no answer.
    if ["cannot open display", "Unknown option", "Usage:"]
        .iter()
        .any(|e| errors.contains(e))
    {
        return None;
    }
    let said = said.trim();
    if kde {
        return match (status.code(), buttons.len()) {
            (Some(0), _) | (_, 1) => Some(0),
            (Some(1), 2) => Some(1),
            (Some(1), _) => Some(2),
            (Some(2), _) => Some(1),
            _ => None,
        };
    }
    match status.code() {
        Some(0) => Some(0),
        Some(1) if buttons.len() > 1 => Some(
            buttons[2..]
                .iter()
                .position(|b| *b == said)
                .map_or(1, |i| i + 2),
        ),
        // zenity could not show the window (none installed, no display).
        _ => None,
    }
}

/// A temp file holding a dialog's text, removed when dropped (on every
/// way out of [`dialog`]).
#[cfg(feature = "dialog")]
struct NotesFile(std::path::PathBuf);

#[cfg(feature = "dialog")]
impl NotesFile {
    /// Writes `text` to a new file of a random name in the temp dir.
    fn write(text: &str) -> Option<NotesFile> {
        use std::io::Write;
        let name = format!(
            "leapfrog-notes-{}.txt",
            crate::release::trust::new_install_id()
        );
        let path = std::env::temp_dir().join(name);
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .ok()?;
        let notes = NotesFile(path);
        file.write_all(text.as_bytes()).ok()?;
        Some(notes)
    }
}

#[cfg(feature = "dialog")]
impl Drop for NotesFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// `text` for kdialog, which shows text that looks like HTML as HTML:
/// angle brackets are replaced by look-alike quotation marks.
#[cfg(feature = "dialog")]
fn kdialog_text(text: &str) -> String {
    text.replace('<', "‹").replace('>', "›")
}

/// A progress window that zenity draws (Linux and the BSDs): a bar, a line
/// of text and a Cancel button. Closed (the zenity process ended and
/// reaped) by [`ProgressWindow::close`] or when dropped.
#[cfg(feature = "dialog")]
pub(crate) struct ProgressWindow {
    child: std::sync::Arc<std::sync::Mutex<std::process::Child>>,
    stdin: Option<std::process::ChildStdin>,
    closing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

/// Opens a progress window titled `title` showing `text`; when the user
/// cancels it (its Cancel button, or closing it), `cancelled` is set.
/// `None` where there is no such window (macOS, no zenity).
#[cfg(feature = "dialog")]
pub(crate) fn progress_window(
    title: &str,
    text: &str,
    cancelled: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Option<ProgressWindow> {
    use std::process::Stdio;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    if cfg!(target_os = "macos") {
        return None;
    }
    let mut child = Command::new("zenity")
        .args(["--progress", "--title", title, "--text"])
        .arg(pango_escape(text))
        // --auto-close: the window also closes when stdin ends, which is
        // when this process ends, however it ends.
        .args(["--percentage=0", "--width=480", "--auto-close"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let stdin = child.stdin.take();
    let child = Arc::new(Mutex::new(child));
    let closing = Arc::new(AtomicBool::new(false));
    // zenity ends with failure when the user cancels or closes the window.
    let watcher = {
        let (child, closing) = (child.clone(), closing.clone());
        std::thread::Builder::new()
            .name("leapfrog-progress".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_millis(100));
                if closing.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut child) = child.lock() else { return };
                match child.try_wait() {
                    Ok(None) => {}
                    Ok(Some(status)) => {
                        let mut said = String::new();
                        if let Some(mut stderr) = child.stderr.take() {
                            let _ = std::io::Read::read_to_string(&mut stderr, &mut said);
                        }
                        // A window that could not be shown was not cancelled.
                        if said.contains("cannot open display") {
                            log::warn!("the progress window cannot be shown: {}", said.trim());
                        } else if !status.success() && !closing.load(Ordering::Relaxed) {
                            cancelled.store(true, Ordering::Relaxed);
                        }
                        return;
                    }
                    Err(_) => return,
                }
            })
            .ok()
    };
    Some(ProgressWindow {
        child,
        stdin,
        closing,
        watcher,
    })
}

#[cfg(feature = "dialog")]
impl ProgressWindow {
    /// Moves the bar to `percent` (when known) and shows `text`.
    pub(crate) fn show(&mut self, percent: Option<u8>, text: &str) {
        use std::io::Write;
        let Some(stdin) = &mut self.stdin else { return };
        let mut lines = String::new();
        if let Some(percent) = percent {
            lines.push_str(&format!("{}\n", percent.min(100)));
        }
        // One line of text: zenity reads a line that starts with '#'.
        lines.push_str(&format!("#{}\n", pango_escape(&text.replace('\n', " "))));
        if stdin.write_all(lines.as_bytes()).is_err() {
            self.stdin = None;
        }
    }

    /// Closes the window and waits until it is gone.
    pub(crate) fn close(&mut self) {
        use std::sync::atomic::Ordering;
        self.closing.store(true, Ordering::Relaxed);
        self.stdin = None;
        if let Ok(mut child) = self.child.lock() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
    }
}

#[cfg(feature = "dialog")]
impl Drop for ProgressWindow {
    fn drop(&mut self) {
        self.close();
    }
}

/// `text` with the characters Pango markup gives meaning to escaped.
#[cfg(feature = "dialog")]
fn pango_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Whether `dir` is on a network file system whose changes the system
/// does not report to watchers (NFS, SMB/CIFS), on Linux.
#[cfg(feature = "watch")]
pub(crate) fn on_network_share(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        const NFS: i64 = 0x6969;
        const SMB: i64 = 0x517b;
        const CIFS: i64 = 0xff53_4d42;
        const SMB2: i64 = 0xfe53_4d42;
        // f_type's width differs between architectures.
        #[allow(clippy::useless_conversion)]
        let kind = |s: rustix::fs::StatFs| i64::from(s.f_type);
        rustix::fs::statfs(dir)
            .map(kind)
            .is_ok_and(|t| [NFS, SMB, CIFS, SMB2].contains(&t))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        false
    }
}

/// Makes the process `command` starts the leader of a process group of its
/// own: a Ctrl-C or a closed terminal meant for the app does not reach it,
/// and [`kill_group`] stops it with everything it started.
pub(crate) fn own_process_group(command: &mut Command) {
    command.process_group(0);
}

/// Stops `child`, which leads its own process group, and every process in
/// that group.
pub(crate) fn kill_group(child: &mut std::process::Child) {
    if let Some(pid) = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
}
