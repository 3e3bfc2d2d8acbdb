//! The one platform pair: `unix.rs` and `windows.rs` hold the same
//! function names (file-system calls, replacing the process, watching a
//! child), re-exported here; step code never branches on the platform.
//!
//! Re-executing is split in two: [`relaunch`] is a pure description of the
//! command that will run (unit-tested), `replace_process` the call that
//! replaces the process (exec on Unix; spawn then exit on Windows).

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{human_size, io_err, Error, Result};

/// Writes `bytes` to `path` so that a crash leaves either the old content or
/// the new one: write a temp file beside it, fsync, rename over, fsync the dir.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = crate::layout::temp_path(dir, name);
    crate::failpoint::at("write_atomic create", &tmp)?;
    let mut file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
    let written = crate::failpoint::hit("write_atomic write")
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err("writing", &tmp)(e));
    }
    drop(file);
    crate::failpoint::hit("write_atomic rename")
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(&format!("renaming {} to", tmp.display()), path)(e)
        })?;
    crate::failpoint::at("write_atomic sync dir", dir)?;
    sync_dir(dir)
}

/// Room kept free beyond what an update needs, for the journal, the
/// file system's own bookkeeping and the app.
const SPARE_BYTES: u64 = 16 << 20;

/// Fails unless the file system of `dir` has `bytes` free, and some spare.
pub(crate) fn need_space(dir: &Path, bytes: u64) -> Result<()> {
    let free = available_space(dir).map_err(io_err("finding the free space of", dir))?;
    if free < bytes.saturating_add(SPARE_BYTES) {
        return Err(Error::Unsuitable {
            path: dir.to_owned(),
            reason: format!(
                "not enough free space on its disk: the update needs {} (and {} to spare), {} are free; \
                 free some space and try again",
                human_size(bytes),
                human_size(SPARE_BYTES),
                human_size(free)
            ),
        });
    }
    Ok(())
}

/// How a trial launch ended, from its exit status (see `ending`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Exit status 0.
    Success,
    /// Stopped from outside (SIGINT, SIGTERM, SIGHUP): no verdict.
    Interrupted(String),
    /// Crashed, exited with failure or could not start: why.
    Failed(String),
}

/// What the process will be replaced with: a pure description, so that the
/// choice is testable apart from the call that replaces the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Relaunch {
    /// The executable.
    pub program: PathBuf,
    /// The arguments, the original ones passed on unchanged.
    pub args: Vec<OsString>,
    /// How many hops this chain has made, this one included (see [`ENV_HOPS`]).
    pub hops: u32,
    /// More environment for the new process.
    pub env: Vec<(&'static str, String)>,
    /// Environment the new process must not have.
    pub env_remove: Vec<&'static str>,
}

/// The environment variable that counts the hops of one update, so that an
/// update that cannot be finished never makes the app hop back and forth
/// forever.
pub(crate) const ENV_HOPS: &str = "LEAPFROG_HOPS";

/// How many hops the running process's chain has made so far.
pub(crate) fn hops_so_far() -> u32 {
    std::env::var(ENV_HOPS)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The command that runs `exe` (relative) inside `dir` with `args`, as hop
/// number `hops` of an update.
pub(crate) fn relaunch(
    dir: &Path,
    exe: &Path,
    args: impl IntoIterator<Item = OsString>,
    hops: u32,
) -> Relaunch {
    Relaunch {
        program: dir.join(exe),
        args: args.into_iter().collect(),
        hops,
        env: Vec::new(),
        env_remove: Vec::new(),
    }
}

/// The file that is the running program, which an update replaces: the
/// executable, except in a Linux AppImage, whose executable runs from the
/// image's read-only mount (`$APPDIR`): there it is the `.AppImage` file
/// itself (`$APPIMAGE`, set by the AppImage runtime).
pub(crate) fn running_exe() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(appimage(&exe, &|name| std::env::var_os(name)).unwrap_or(exe))
}

/// Whether this process runs from an AppImage's mount.
pub(crate) fn is_appimage() -> bool {
    std::env::current_exe()
        .is_ok_and(|exe| appimage(&exe, &|name| std::env::var_os(name)).is_some())
}

/// The AppImage file `exe` runs from, by the runtime's variables.
fn appimage(exe: &Path, env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let image = PathBuf::from(env("APPIMAGE")?);
    let mount = PathBuf::from(env("APPDIR")?);
    (image.is_absolute() && mount.is_absolute() && exe.starts_with(&mount)).then_some(image)
}

/// The install dir of the program at `exe` (absolute) when the app does
/// not name one: the folder it is in, or for a macOS app bundle
/// (`Name.app/Contents/MacOS/exe`) the bundle, updated as a whole (its
/// backup, `Name.app.backup`, lies outside it).
pub(crate) fn default_install_dir(exe: &Path) -> Option<PathBuf> {
    let folder = exe.parent()?;
    if cfg!(target_os = "macos") {
        if let Some(bundle) = bundle_of(exe) {
            return Some(bundle);
        }
    }
    Some(folder.to_owned())
}

/// The `.app` bundle `exe` is the executable of.
fn bundle_of(exe: &Path) -> Option<PathBuf> {
    let macos = exe.parent()?;
    let contents = macos.parent()?;
    let bundle = contents.parent()?;
    let named = |p: &Path, n: &str| p.file_name().is_some_and(|f| f == n);
    let app = bundle
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("app"));
    (named(macos, "MacOS") && named(contents, "Contents") && app).then(|| bundle.to_owned())
}

/// The arguments this process was started with, to pass on unchanged.
pub(crate) fn original_args() -> Vec<OsString> {
    std::env::args_os().skip(1).collect()
}

/// Replaces this process by `relaunch`; returns only on failure.
pub(crate) fn exec(relaunch: &Relaunch) -> Error {
    log::info!(
        "exec {} (pid {})",
        relaunch.program.display(),
        std::process::id()
    );
    let e = replace_process(relaunch);
    io_err("starting", &relaunch.program)(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaunch_keeps_arguments_and_picks_the_dir() {
        let r = relaunch(
            Path::new("/opt/demo.backup"),
            Path::new("bin/demo"),
            ["--flag".into(), "a b".into()],
            2,
        );
        assert_eq!(r.program, Path::new("/opt/demo.backup/bin/demo"));
        assert_eq!(
            r.args,
            vec![OsString::from("--flag"), OsString::from("a b")]
        );
        assert_eq!(r.hops, 2);
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn an_appimage_is_the_image_file_not_its_mount() {
        let env = |name: &str| match name {
            "APPIMAGE" => Some(OsString::from("/home/u/Apps/Demo/Demo.AppImage")),
            "APPDIR" => Some(OsString::from("/tmp/.mount_DemoAb12")),
            _ => None,
        };
        let inside = Path::new("/tmp/.mount_DemoAb12/usr/bin/demo");
        let found = appimage(inside, &env);
        if cfg!(target_os = "linux") {
            assert_eq!(
                found,
                Some(PathBuf::from("/home/u/Apps/Demo/Demo.AppImage"))
            );
        } else {
            assert_eq!(found, None);
        }
        // An executable outside the mount is itself (stale variables).
        assert_eq!(appimage(Path::new("/opt/demo/demo"), &env), None);
        assert_eq!(appimage(inside, &|_| None), None);
    }

    #[test]
    fn a_macos_bundle_is_updated_as_a_whole() {
        assert_eq!(
            bundle_of(Path::new("/Applications/Demo.app/Contents/MacOS/demo")),
            Some(PathBuf::from("/Applications/Demo.app"))
        );
        assert_eq!(bundle_of(Path::new("/opt/demo/bin/demo")), None);
        assert_eq!(bundle_of(Path::new("/x/Demo/Contents/MacOS/demo")), None);
        let plain = default_install_dir(Path::new("/opt/demo/demo")).unwrap();
        assert_eq!(plain, PathBuf::from("/opt/demo"));
    }
}
