//! Lifecycle hooks: code the app runs at three moments of its life with
//! updates, each a callback in the app ([`UpdaterBuilder::hook`]) or a
//! command the release names in its `data/config.json`, each within a
//! time limit, with its outcome (and a command's output) in the log and
//! the update log.
//!
//! | moment | runs in | when | a failure |
//! |--------|---------|------|-----------|
//! | [`Lifecycle::FirstRun`] | the app | the first launch of the install ([`Updater::run_hooks`]) | is logged; tried again next launch |
//! | [`Lifecycle::BeforeUpdate`] | the old version | the user said yes, before anything is staged ([`Updater::update`]) | no update this time; nothing changed |
//! | [`Lifecycle::AfterUpdate`] | the new version | its trial launch ([`Updater::run_hooks`]) | fails the trial: the update is rolled back |
//!
//! [`UpdaterBuilder::hook`]: crate::UpdaterBuilder::hook
//! [`Updater::run_hooks`]: crate::Updater::run_hooks
//! [`Updater::update`]: crate::Updater::update

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use semver::Version;

use crate::error::{Error, Result};

/// A moment at which the app's hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Lifecycle {
    /// The first launch of this install (known by the state file).
    FirstRun,
    /// In the old version, once the user said yes, before the update is
    /// downloaded; a failure means no update this time.
    BeforeUpdate,
    /// In the new version, on its trial launch, before it counts as
    /// healthy; a failure (or running out of time) fails the trial, and
    /// the update is rolled back.
    AfterUpdate,
}

impl Lifecycle {
    /// The name used in `data/config.json` (`<name>_command`), the log,
    /// and a command's `LEAPFROG_HOOK`.
    pub fn name(self) -> &'static str {
        match self {
            Lifecycle::FirstRun => "first_run",
            Lifecycle::BeforeUpdate => "before_update",
            Lifecycle::AfterUpdate => "after_update",
        }
    }
}

/// What a hook is told.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HookCall {
    /// The moment.
    pub when: Lifecycle,
    /// The version before the update (the running one for a first run).
    pub from: Version,
    /// The version after it (the running one for a first run).
    pub to: Version,
    /// The install dir.
    pub install_dir: PathBuf,
}

impl HookCall {
    pub(crate) fn new(
        when: Lifecycle,
        (from, to): (Version, Version),
        install_dir: &Path,
    ) -> HookCall {
        HookCall {
            when,
            from,
            to,
            install_dir: install_dir.to_owned(),
        }
    }
}

/// Set for a hook command: the moment (`first_run`, …). An app started as
/// a hook command runs no hooks itself.
pub(crate) const ENV_HOOK: &str = "LEAPFROG_HOOK";

/// An app's hook: `Err` says why it failed.
pub(crate) type HookFn = Arc<dyn Fn(&HookCall) -> std::result::Result<(), String> + Send + Sync>;

/// The hooks an app set, and the commands its config names.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub callbacks: Vec<(Lifecycle, HookFn)>,
    /// Commands from `data/config.json`, by moment: words, the first a
    /// path relative to the install dir.
    pub commands: Vec<(Lifecycle, Vec<String>)>,
    /// The time each hook may take (default one minute).
    pub time_limit: Option<Duration>,
}

/// The time a hook may take unless the app says otherwise.
pub(crate) const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(60);

impl Hooks {
    /// Whether any hook runs at `when`.
    pub(crate) fn any(&self, when: Lifecycle) -> bool {
        self.callbacks.iter().any(|(w, _)| *w == when)
            || self.commands.iter().any(|(w, _)| *w == when)
    }

    /// Runs every hook for `call.when` (the app's callbacks, then the
    /// release's command), each within `limit`; the first failure ends it.
    pub(crate) fn run(&self, call: &HookCall, limit: Duration, backup: &Path) -> Result<()> {
        let record = |line: &str| {
            log::info!("{line}");
            crate::update::history::record(backup, &call.install_dir, line);
        };
        let fail = |what: String, reason: String| {
            let line = format!("{} hook {what} failed: {reason}", call.when.name());
            log::error!("{line}");
            crate::update::history::record(backup, &call.install_dir, &line);
            Error::Hook {
                hook: format!("{} {what}", call.when.name()),
                reason,
            }
        };
        let mut n = 0;
        for (_, callback) in self.callbacks.iter().filter(|(w, _)| *w == call.when) {
            n += 1;
            let started = Instant::now();
            run_callback(callback.clone(), call, limit)
                .map_err(|reason| fail(format!("(the app's, #{n})"), reason))?;
            record(&format!(
                "{} hook (the app's, #{n}) {} -> {}: done in {:.1} s",
                call.when.name(),
                call.from,
                call.to,
                started.elapsed().as_secs_f64()
            ));
        }
        for (_, words) in self.commands.iter().filter(|(w, _)| *w == call.when) {
            let shown = words.join(" ");
            let started = Instant::now();
            let output =
                run_command(words, call, limit).map_err(|reason| fail(shown.clone(), reason))?;
            record(&format!(
                "{} hook {shown} {} -> {}: done in {:.1} s{}",
                call.when.name(),
                call.from,
                call.to,
                started.elapsed().as_secs_f64(),
                said(&output)
            ));
        }
        Ok(())
    }
}

/// A command's output for the log: its last 2,000 characters, or nothing.
fn said(output: &str) -> String {
    let text = output.trim();
    if text.is_empty() {
        return String::new();
    }
    let tail: String = text
        .chars()
        .rev()
        .take(2000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("; it said: {tail}")
}

/// Runs `callback` in a thread of its own, waiting at most `limit`.
fn run_callback(
    callback: HookFn,
    call: &HookCall,
    limit: Duration,
) -> std::result::Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let call = call.clone();
    std::thread::Builder::new()
        .name("leapfrog-hook".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(&call)))
                .unwrap_or_else(|_| Err("it panicked".into()));
            let _ = tx.send(result);
        })
        .map_err(|e| format!("its thread cannot be started ({e})"))?;
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => Err(format!(
            "it did not finish within {}",
            humantime::format_duration(limit)
        )),
    }
}

/// Runs the release's command `words` in the install dir, killing it
/// after `limit`; returns what it wrote (stdout and stderr).
fn run_command(
    words: &[String],
    call: &HookCall,
    limit: Duration,
) -> std::result::Result<String, String> {
    let (program, args) = words.split_first().ok_or("the command is empty")?;
    let path = Path::new(program);
    if path.is_absolute()
        || !path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!(
            "{program:?} is not a path inside the install dir; name a program the release ships, relative to it"
        ));
    }
    let exe = call.install_dir.join(path);
    let mut command = Command::new(&exe);
    // Its own process group, stopped as a whole when out of time; none of
    // the update's own variables (the command may be the app itself).
    crate::os::own_process_group(&mut command);
    for name in [
        crate::os::ENV_HOPS,
        crate::update::ENV_TRIAL,
        crate::update::ENV_TRIAL_STARTED,
        crate::update::ENV_APPLY_ON_EXIT,
        crate::update::ENV_STAGED_BY,
    ] {
        command.env_remove(name);
    }
    let mut child = command
        .args(args)
        .current_dir(&call.install_dir)
        .env(ENV_HOOK, call.when.name())
        .env("LEAPFROG_FROM_VERSION", call.from.to_string())
        .env("LEAPFROG_TO_VERSION", call.to.to_string())
        .env("LEAPFROG_INSTALL_DIR", &call.install_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{} cannot be started: {e}", exe.display()))?;
    let (tx, rx) = mpsc::channel();
    let pipes = [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>),
    ];
    for mut pipe in pipes.into_iter().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            // Never more than 64 kB of it is kept.
            let mut text = Vec::new();
            let _ = (&mut pipe).take(64 * 1024).read_to_end(&mut text);
            let _ = std::io::copy(&mut pipe, &mut std::io::sink());
            let _ = tx.send(String::from_utf8_lossy(&text).into_owned());
        });
    }
    drop(tx);
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                crate::os::kill_group(&mut child);
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for it failed: {e}")),
        }
    };
    // What it wrote; a pipe that something it started still holds open
    // is not waited for long.
    let mut output = String::new();
    while let Ok(part) = rx.recv_timeout(Duration::from_secs(1)) {
        output.push_str(&part);
    }
    match status {
        None => Err(format!(
            "it did not finish within {} and was stopped{}",
            humantime::format_duration(limit),
            said(&output)
        )),
        Some(status) if status.success() => Ok(output),
        Some(status) => Err(format!("it ended with {status}{}", said(&output))),
    }
}
