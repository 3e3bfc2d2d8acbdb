//! Fail points for the crash and fault tests (the `failpoints` feature,
//! never in a release build).
//!
//! Every step that changes the disk calls [`hit`] first. The points are
//! numbered in the order they are reached, across the execs of one update
//! (the count travels in `LEAPFROG_FP_COUNT`). `LEAPFROG_FAILPOINT=N:MODE`
//! makes point N abort the process (`crash`, as a kill or power cut would;
//! a trial launch takes its watcher with it)
//! or fail with ENOSPC (`enospc`), EACCES (`eacces`) or EIO (`eio`); several
//! may be given, comma-separated (`12:eio,20:crash`). This module imports
//! nothing from the rest of the crate but its error type.
//! `LEAPFROG_FP_LOG=FILE` appends `N name` for every point reached.

use std::io;

#[cfg(feature = "failpoints")]
mod imp {
    use std::io::{self, Write};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    enum Mode {
        Crash,
        Enospc,
        Eacces,
        Eio,
    }

    struct Config {
        targets: Vec<(u64, Mode)>,
        log: Option<std::path::PathBuf>,
    }

    static COUNT: AtomicU64 = AtomicU64::new(0);

    fn config() -> &'static Config {
        static CONFIG: OnceLock<Config> = OnceLock::new();
        CONFIG.get_or_init(|| {
            let base = std::env::var("LEAPFROG_FP_COUNT")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            COUNT.store(base, Ordering::SeqCst);
            let targets = std::env::var("LEAPFROG_FAILPOINT")
                .unwrap_or_default()
                .split(',')
                .filter_map(|one| {
                    let (n, mode) = one.split_once(':')?;
                    let mode = match mode {
                        "crash" => Mode::Crash,
                        "enospc" => Mode::Enospc,
                        "eacces" => Mode::Eacces,
                        "eio" => Mode::Eio,
                        _ => return None,
                    };
                    Some((n.parse().ok()?, mode))
                })
                .collect();
            Config {
                targets,
                log: std::env::var_os("LEAPFROG_FP_LOG").map(Into::into),
            }
        })
    }

    pub fn hit(name: &str) -> io::Result<()> {
        let config = config();
        let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(path) = &config.log {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{n} {name}");
            }
        }
        match config.targets.iter().find(|(target, _)| *target == n) {
            Some((_, mode)) => match mode {
                Mode::Crash => {
                    // A power cut takes the watcher of a trial launch too:
                    // the watcher's pid is in LEAPFROG_TRIAL, and it is this
                    // process's parent.
                    #[cfg(unix)]
                    {
                        let watcher = rustix::process::getppid();
                        let named = std::env::var("LEAPFROG_TRIAL").ok();
                        if let Some(pid) = watcher.filter(|p| {
                            named.as_deref() == Some(p.as_raw_nonzero().to_string().as_str())
                        }) {
                            let _ =
                                rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                        }
                    }
                    std::process::abort()
                }
                Mode::Enospc => Err(io::Error::from_raw_os_error(28)),
                Mode::Eacces => Err(io::Error::from_raw_os_error(13)),
                Mode::Eio => Err(io::Error::from_raw_os_error(5)),
            },
            None => Ok(()),
        }
    }

    pub fn count() -> Option<u64> {
        let _ = config();
        Some(COUNT.load(Ordering::SeqCst))
    }
}

#[cfg(not(feature = "failpoints"))]
mod imp {
    use std::io;

    #[inline(always)]
    pub fn hit(_name: &str) -> io::Result<()> {
        Ok(())
    }

    #[inline(always)]
    pub fn count() -> Option<u64> {
        None
    }
}

/// A point that changes the disk: may crash or fail here in fault tests.
#[inline(always)]
pub(crate) fn hit(name: &str) -> io::Result<()> {
    imp::hit(name)
}

/// The points reached so far, to carry across an exec (fault tests only).
pub(crate) fn count() -> Option<u64> {
    imp::count()
}

/// [`hit`], with the library's error naming `path`.
pub(crate) fn at(name: &str, path: &std::path::Path) -> crate::Result<()> {
    hit(name).map_err(crate::error::io_err(name, path))?;
    #[cfg(feature = "failpoints")]
    if name == SYNC_FS && std::env::var_os("LEAPFROG_FP_SYNCFS_PROBE").is_some() {
        // The power-cut tests' file system cannot see syncfs(2) (FUSE is not
        // told of it): this look-up of a name that never exists tells it,
        // synchronously, that everything is being flushed now.
        let _ = std::fs::symlink_metadata(path.join(".leapfrog-syncfs"));
    }
    Ok(())
}

/// The fail point hit just before a whole file system is flushed.
pub(crate) const SYNC_FS: &str = "sync file system";

/// A writer with a fail point every 256 KiB written (a kill in the middle
/// of writing a file), named `name`.
pub(crate) struct Writer<W> {
    inner: W,
    name: &'static str,
    written: u64,
}

impl<W> Writer<W> {
    pub(crate) fn new(inner: W, name: &'static str) -> Self {
        Writer {
            inner,
            name,
            written: 0,
        }
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: io::Write> io::Write for Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let next = self.written + buf.len() as u64;
        for _ in self.written >> 18..next >> 18 {
            hit(self.name)?;
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
