//! Watching the release folder instead of polling it: for a manifest on a
//! local folder or a file share (`file://` or a path), the app can be told
//! when `versions.txt` (or its signature) changes, through the system's
//! change events (notify: inotify, ReadDirectoryChangesW, kqueue); on a
//! network share whose changes Linux does not report (NFS, SMB), the
//! folder is looked at every 30 seconds instead. Each change, once the
//! folder has been quiet for half a second, runs [`Updater::update`].

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use notify::Watcher;

use crate::error::{Error, Result};
use crate::updater::{Outcome, Updater};

/// How long the folder must be quiet before a change is acted on: a
/// publisher writes the manifest and its signature one after the other.
const QUIET: Duration = Duration::from_millis(500);

/// How often a network share is looked at, where its changes are not
/// reported.
const POLL: Duration = Duration::from_secs(30);

/// A watch of the release folder; it ends when this is dropped.
#[must_use = "the watch ends when this is dropped"]
pub struct ManifestWatch {
    _watcher: Box<dyn Watcher + Send>,
    folder: PathBuf,
    _thread: JoinHandle<()>,
}

impl std::fmt::Debug for ManifestWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestWatch")
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

impl ManifestWatch {
    /// The folder watched.
    pub fn folder(&self) -> &Path {
        &self.folder
    }
}

pub(crate) fn watch(
    updater: Updater,
    mut on_outcome: impl FnMut(Result<Outcome>) + Send + 'static,
) -> Result<ManifestWatch> {
    let url = updater.manifest_url().to_owned();
    let lower = url.to_ascii_lowercase();
    if lower.contains("://") && !lower.starts_with("file://") {
        return Err(Error::Settings(format!(
            "{}: only a manifest in a folder or on a file share (file:// or a path) can be watched; \
             a web or FTP host is checked at startup instead (spawn_startup_check)",
            crate::fetch::redact(&url)
        )));
    }
    let manifest = crate::fetch::file::to_path(&url);
    let (folder, name) = match (manifest.parent(), manifest.file_name()) {
        (Some(folder), Some(name)) => (folder.to_owned(), name.to_owned()),
        _ => {
            return Err(Error::Settings(format!(
                "{}: not a file in a folder",
                manifest.display()
            )))
        }
    };
    let (tx, rx) = mpsc::channel();
    let handler = move |event: notify::Result<notify::Event>| {
        let _ = tx.send(event);
    };
    let mut watcher: Box<dyn Watcher + Send> = if crate::os::on_network_share(&folder) {
        log::info!(
            "{} is on a network share that does not report changes: looking every {}s",
            folder.display(),
            POLL.as_secs()
        );
        Box::new(
            notify::PollWatcher::new(handler, notify::Config::default().with_poll_interval(POLL))
                .map_err(|e| cannot_watch(&folder, e))?,
        )
    } else {
        Box::new(notify::recommended_watcher(handler).map_err(|e| cannot_watch(&folder, e))?)
    };
    watcher
        .watch(&folder, notify::RecursiveMode::NonRecursive)
        .map_err(|e| cannot_watch(&folder, e))?;
    log::info!(
        "watching {} for a new {}",
        folder.display(),
        name.to_string_lossy()
    );
    // The manifest, its signature and its freshness file (a refresh, or
    // the last file of a publish, changes only that one).
    let names: Vec<std::ffi::OsString> = [
        "",
        crate::release::signature::SIGNATURE_SUFFIX,
        crate::release::freshness::FRESH_SUFFIX,
    ]
    .into_iter()
    .map(|suffix| {
        let mut n = name.clone();
        n.push(suffix);
        n
    })
    .collect();
    let concerns = move |event: &notify::Event| {
        event
            .paths
            .iter()
            .any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n)))
    };
    let thread = std::thread::Builder::new()
        .name("leapfrog-watch".into())
        .spawn(move || {
            // Ends when the watcher (and so the sender) is dropped.
            while let Ok(event) = rx.recv() {
                match event {
                    Ok(event) if concerns(&event) => {}
                    Ok(_) => continue,
                    Err(e) => {
                        log::warn!("watching the release folder: {e}");
                        continue;
                    }
                }
                // Let the publisher finish writing.
                loop {
                    match rx.recv_timeout(QUIET) {
                        Ok(_) => continue,
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                log::info!("the manifest changed: checking for an update");
                on_outcome(updater.update());
            }
        })
        .map_err(|e| Error::Settings(format!("the watching thread cannot be started: {e}")))?;
    Ok(ManifestWatch {
        _watcher: watcher,
        folder: folder.clone(),
        _thread: thread,
    })
}

fn cannot_watch(folder: &Path, e: notify::Error) -> Error {
    Error::Settings(format!(
        "{} cannot be watched ({e}); check for updates at startup instead",
        folder.display()
    ))
}
