//! What an app calls: the [`Updater`] and its builder.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use semver::Version;

use crate::config::{Ask, Resolved, Restart, Settings};
use crate::error::{Error, Result};
use crate::hooks::{HookCall, Lifecycle};
use crate::journal::{Confirm, Journal};
use crate::release::manifest::parse_version;
use crate::release::trust::State;
use crate::ui;
use crate::update::{self, Available, Check};

/// How an update ended, when it did not replace the process.
///
/// ```no_run
/// # let updater = leapfrog::Updater::builder("demo", "1.0.0")
/// #     .manifest_url("https://downloads.example.com/demo/versions.txt")
/// #     .allow_unsigned()
/// #     .build()?;
/// match updater.update() {
///     Ok(leapfrog::Outcome::Staged(version)) => log::info!("{version} installs at the next start"),
///     Ok(outcome) => log::info!("{outcome:?}"),
///     Err(e) => log::warn!("no update this time: {e}"),
/// }
/// # Ok::<(), leapfrog::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "an update may have been declined, staged or refused"]
#[non_exhaustive]
pub enum Outcome {
    /// The running version is the newest.
    UpToDate,
    /// An update exists and the user said not now ("Remind me later",
    /// "Skip this version", or no on the terminal).
    Declined(Version),
    /// An update exists, but nobody was asked: the settings say never to
    /// ask ([`Ask::Never`]), or there is no way to ask here (no dialog, no
    /// terminal; the log says why). Offer it in the app's own interface,
    /// then update with [`Ask::AssumeYes`].
    NotAsked(Version),
    /// An update was staged and will be applied at the next launch.
    Staged(Version),
    /// The user cancelled the download in the progress window. Nothing
    /// changed; the next update continues the download where it stopped.
    Cancelled(Version),
    /// An automatic check ([`spawn_startup_check`](Updater::spawn_startup_check))
    /// was not made: the last one is more recent than the check interval,
    /// or failed and backs off, or the host asked to wait. Nothing was
    /// fetched.
    NotDue {
        /// When the next automatic check may be made.
        next: std::time::SystemTime,
    },
    /// The newest release was rolled back here before and is not offered
    /// again yet (see [`Check::RolledBack`]).
    RolledBack(Version),
    /// The user skipped this version (`until` is `None`) or asked to be
    /// reminded later (see [`Check::PutOff`]).
    PutOff {
        /// The version put off.
        version: Version,
        /// Until when, for "Remind me later".
        until: Option<std::time::SystemTime>,
    },
}

/// Fetches a notes file and checks it against the manifest's sha256.
fn fetch_notes(url: &str, sha256: Option<&str>, updater: &Updater) -> Result<String> {
    let text = crate::fetch::fetch_text(url, &updater.settings().limits)?;
    if let Some(expected) = sha256 {
        use sha2::Digest;
        let got = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        if got != expected {
            return Err(Error::ChecksumMismatch {
                url: crate::fetch::redact(url),
                expected: expected.to_owned(),
                computed: got,
            });
        }
    }
    Ok(text)
}

/// Builds an [`Updater`]; `build()` checks the settings.
///
/// ```no_run
/// let updater = leapfrog::Updater::builder("demo", env!("CARGO_PKG_VERSION"))
///     .manifest_url("https://downloads.example.com/demo/versions.txt")
///     .public_key(include_str!("../examples/leapfrog.pub"))
///     .ask(leapfrog::Ask::Auto)
///     .build()?;
/// # Ok::<(), leapfrog::Error>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct UpdaterBuilder {
    settings: Settings,
}

/// Checks for, stages and starts updates of one program.
///
/// ```no_run
/// let updater = leapfrog::Updater::builder("demo", env!("CARGO_PKG_VERSION"))
///     .manifest_url("https://downloads.example.com/demo/versions.txt")
///     .public_key(include_str!("../examples/leapfrog.pub"))
///     .build()?;
/// // In a background thread, never delaying the start:
/// let check = updater.spawn_startup_check();
/// // ... the app ...
/// if let Ok(Err(e)) = check.join() {
///     log::warn!("no update this time: {e}");
/// }
/// # Ok::<(), leapfrog::Error>(())
/// ```
pub struct Updater {
    resolved: Resolved,
}

impl Updater {
    /// Starts a builder for `program` at version `current` (usually
    /// `env!("CARGO_PKG_VERSION")`).
    pub fn builder(program: impl Into<String>, current: impl Into<String>) -> UpdaterBuilder {
        UpdaterBuilder {
            settings: Settings::new(program.into(), current.into()),
        }
    }

    /// Starts a builder from a `data/config.json` (its `Update_app` block,
    /// described in the crate docs): the program and executable are
    /// `main_app_name`, the version is `current_version`, the manifest is
    /// `server`/`api_get_version`, and `current_version` is rewritten
    /// after an update. A relative `path` is taken from the running
    /// executable's folder (not the working directory); the install dir is
    /// the folder that holds `data/`.
    ///
    /// ```no_run
    /// let updater = leapfrog::Updater::from_config("data/config.json")?.build()?;
    /// # Ok::<(), leapfrog::Error>(())
    /// ```
    pub fn from_config(path: impl AsRef<Path>) -> Result<UpdaterBuilder> {
        Ok(UpdaterBuilder {
            settings: Settings::from_config(path.as_ref())?,
        })
    }

    /// The program's name.
    pub fn program(&self) -> &str {
        &self.resolved.settings.program
    }

    /// The running version.
    pub fn current_version(&self) -> &Version {
        &self.resolved.current
    }

    /// The manifest URL checked.
    pub fn manifest_url(&self) -> &str {
        &self.resolved.manifest_url
    }

    /// The install dir.
    pub fn install_dir(&self) -> &Path {
        &self.resolved.install_dir
    }

    /// The backup dir.
    pub fn backup_dir(&self) -> &Path {
        &self.resolved.backup_dir
    }

    /// The update log, `update.log` in the backup dir: a line for every
    /// check, stage, restart, apply, trial launch and rollback, kept across
    /// updates (the last 1 to 2 MiB). It exists from the first update on;
    /// an app can offer it to a user who asks for support.
    pub fn update_log(&self) -> PathBuf {
        update::history::path(self.backup_dir())
    }

    fn settings(&self) -> &Settings {
        &self.resolved.settings
    }

    /// Step 1: fetches the manifest (then the mirrors) and says whether
    /// there is an update to install. A signed manifest that is accepted
    /// is remembered (serial, hash, a next key) in the install dir's state
    /// file. A release that was rolled back here is reported as such, not
    /// offered.
    ///
    /// ```no_run
    /// # let updater = leapfrog::Updater::builder("demo", "1.0.0")
    /// #     .manifest_url("https://downloads.example.com/demo/versions.txt")
    /// #     .allow_unsigned()
    /// #     .build()?;
    /// match updater.check()? {
    ///     leapfrog::Check::Available(update) => log::info!("{} is available", update.release.version),
    ///     leapfrog::Check::RolledBack { version, .. } => log::info!("{version} failed here before"),
    ///     _ => log::info!("up to date"),
    /// }
    /// # Ok::<(), leapfrog::Error>(())
    /// ```
    pub fn check(&self) -> Result<Check> {
        update::check(&self.resolved)
    }

    /// The release notes of every version from the running one up to
    /// `available`, newest first, each under a `## version` heading when
    /// there are several (Markdown or plain text, as published): inline
    /// ones, or the notes files fetched (capped like a manifest) and
    /// checked against the manifest's `notes_sha256`. A version whose notes
    /// cannot be fetched or do not match is left out (and logged); `None`
    /// when none are left.
    ///
    /// At most the ten newest versions' notes, 256 kB in all, are shown;
    /// the rest is said in a line.
    pub fn release_notes(&self, available: &Available) -> Option<String> {
        const MOST_VERSIONS: usize = 10;
        const MOST_BYTES: usize = 256 * 1000;
        let mut parts = Vec::new();
        let mut bytes = 0;
        let mut left_out = available.notes.len().saturating_sub(MOST_VERSIONS);
        for (i, notes) in available.notes.iter().take(MOST_VERSIONS).enumerate() {
            if bytes >= MOST_BYTES {
                left_out = available.notes.len() - i;
                break;
            }
            let text = match (&notes.text, &notes.url) {
                (Some(text), _) => text.clone(),
                (None, Some(url)) => match fetch_notes(url, notes.sha256.as_deref(), self) {
                    Ok(text) => text,
                    Err(e) => {
                        log::warn!(
                            "the release notes of {} are not shown: {}",
                            notes.version,
                            e.chain()
                        );
                        continue;
                    }
                },
                (None, None) => continue,
            };
            bytes += text.len();
            parts.push((notes.version.clone(), text));
        }
        let mut text = match parts.len() {
            0 => return None,
            1 if parts[0].0 == available.release.version && left_out == 0 => {
                return parts.pop().map(|(_, text)| text)
            }
            _ => parts
                .iter()
                .map(|(version, text)| format!("## {version}\n\n{}\n", text.trim()))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        if left_out > 0 {
            text.push_str(&format!(
                "\n(The notes of {left_out} older version(s) are left out.)\n"
            ));
        }
        Some(text)
    }

    /// The question about `available` as text, as the dialog and the
    /// terminal show it: what is offered (version, size, whether it is
    /// required), the release notes since the running version, and whether
    /// the app restarts. For an app that asks in its own interface (after
    /// [`Outcome::NotAsked`], or with [`Ask::Never`]).
    pub fn question(&self, available: &Available) -> String {
        ui::question_text(self.settings().restart, available, || {
            self.release_notes(available)
        })
    }

    /// Asks the user, as the builder's [`Ask`] says, whether to install
    /// `available`, showing the release notes of every version since the
    /// running one. Besides "Update", the user may answer "Remind me
    /// later" (not asked again about this version for
    /// [`remind_after`](UpdaterBuilder::remind_after)) or "Skip this
    /// version" (not until a newer one); both are remembered in the state
    /// file, and neither is offered for a required update.
    pub fn ask(&self, available: &Available) -> bool {
        self.answer(available) == ui::Answer::Update
    }

    /// [`ask`](Self::ask), with what was answered.
    fn answer(&self, available: &Available) -> ui::Answer {
        let settings = self.settings();
        let ask = if settings.assume_yes {
            Ask::AssumeYes
        } else {
            settings.ask
        };
        if ask == Ask::AssumeYes {
            // Nobody sees it: the log says what was said yes to.
            log::info!("saying yes (not asking) to:");
            for line in self.question(available).lines() {
                log::info!("  | {line}");
            }
        }
        let answer = ui::ask(ask, settings.restart, available, || {
            self.release_notes(available)
        });
        let version = available.release.version.to_string();
        let remember = |change: &dyn Fn(&mut crate::release::trust::State)| {
            let dir = self.install_dir();
            let kept = crate::release::trust::State::read(dir).and_then(|mut state| {
                change(&mut state);
                state.write(dir)
            });
            if let Err(e) = kept {
                log::warn!("the answer about {version} cannot be kept: {}", e.chain());
            }
        };
        match answer {
            ui::Answer::Update | ui::Answer::NotAsked => {}
            ui::Answer::Later => {
                let now = std::time::SystemTime::now();
                let until = now
                    .checked_add(settings.remind_after)
                    .unwrap_or(now + Duration::from_secs(100 * 365 * 24 * 3600));
                log::info!(
                    "{} {version}: reminding the user after {}",
                    self.program(),
                    humantime::format_rfc3339_seconds(until)
                );
                // The latest answer stands: "later" undoes a skip.
                remember(&|state| {
                    state.remind = Some(crate::release::trust::Reminder {
                        version: version.clone(),
                        until: crate::update::unix_seconds(until),
                    });
                    state.skipped = None;
                });
            }
            ui::Answer::Skip => {
                log::info!("{} {version}: skipped by the user", self.program());
                remember(&|state| {
                    state.skipped = Some(version.clone());
                    state.remind = None;
                });
            }
        }
        answer
    }

    /// Step 2: runs the before-update hooks, then stages `available` in the
    /// backup dir (copy, download, verify, unpack, journal). The install
    /// dir is not touched; on error nothing
    /// changes and the app goes on. [`Error::Busy`] when another copy of
    /// the program is updating, [`Error::InProgress`] when an earlier
    /// update is not finished.
    pub fn stage(&self, available: &Available) -> Result<StagedUpdate> {
        self.before_update(available)?;
        self.stage_only(available)
    }

    /// Runs the before-update hooks (see [`Lifecycle::BeforeUpdate`]).
    fn before_update(&self, available: &Available) -> Result<()> {
        let hooks = &self.settings().hooks;
        if std::env::var_os(crate::hooks::ENV_HOOK).is_some() {
            // This process is itself a hook command.
            return Ok(());
        }
        if hooks.any(Lifecycle::BeforeUpdate) {
            let call = HookCall::new(
                Lifecycle::BeforeUpdate,
                (
                    self.current_version().clone(),
                    available.release.version.clone(),
                ),
                self.install_dir(),
            );
            let limit = hooks.time_limit.unwrap_or(crate::hooks::DEFAULT_TIME_LIMIT);
            hooks
                .run(&call, limit, self.backup_dir())
                .inspect_err(|e| {
                    log::warn!("{}; no update this time, nothing was changed", e.chain())
                })?;
        }
        Ok(())
    }

    /// [`stage`](Self::stage) without the before-update hooks.
    fn stage_only(&self, available: &Available) -> Result<StagedUpdate> {
        let settings = self.settings();
        let shown = match settings.progress.clone() {
            Some(report) => ui::Progress::given(report),
            None => ui::progress(settings.ask, available),
        };
        let staged = update::stage(
            &self.resolved,
            available,
            (shown.report.clone(), shown.cancel.clone()),
        );
        // The progress window is gone before anything else happens.
        drop(shown);
        staged.map(StagedUpdate)
    }

    /// Steps 3 to 6: hops out to the backup copy, which applies the staged
    /// update and starts the new version. Returns only on failure.
    pub fn restart(&self, staged: &StagedUpdate) -> Error {
        update::hop_out(&staged.0, false)
    }

    /// Runs the lifecycle hooks due at this launch, after
    /// [`finish_pending`](crate::finish_pending) and before the app goes
    /// on: the after-update hooks when `pending` says this is the new
    /// version's first launch, and the first-run hooks on the first launch
    /// of the install. When an after-update hook fails on a watched trial
    /// launch, this launch ends with failure (exit status 1) and the update
    /// is rolled back; otherwise the error is returned (a failed first-run
    /// hook runs again next launch).
    ///
    /// ```no_run
    /// let pending = leapfrog::finish_pending();
    /// let updater = leapfrog::Updater::builder("demo", "1.0.0")
    ///     .manifest_url("https://example.com/versions.txt")
    ///     .allow_unsigned()
    ///     .hook(leapfrog::Lifecycle::FirstRun, |_| Ok(()))
    ///     .build()?;
    /// updater.run_hooks(&pending)?;
    /// # Ok::<(), leapfrog::Error>(())
    /// ```
    pub fn run_hooks(&self, pending: &crate::Pending) -> Result<()> {
        let hooks = &self.settings().hooks;
        let limit = hooks.time_limit.unwrap_or(crate::hooks::DEFAULT_TIME_LIMIT);
        if std::env::var_os(crate::hooks::ENV_HOOK).is_some() {
            // This process is itself a hook command.
            return Ok(());
        }
        // After-update hooks run in the watched trial launch only (not in
        // a second copy started meanwhile), and once per process.
        static AFTER_UPDATE_RAN: std::sync::atomic::AtomicBool =
            std::sync::atomic::AtomicBool::new(false);
        let after_update = matches!(pending, crate::Pending::Updated { .. })
            && hooks.any(Lifecycle::AfterUpdate)
            && update::is_watched()
            && !AFTER_UPDATE_RAN.swap(true, std::sync::atomic::Ordering::SeqCst);
        if let (crate::Pending::Updated { from, to, .. }, true) = (pending, after_update) {
            let call = HookCall::new(
                Lifecycle::AfterUpdate,
                (parse_version(from)?, parse_version(to)?),
                self.install_dir(),
            );
            // On trial (not yet judged), it must be done before the watcher
            // counts the trial healthy, counted from when the watcher
            // started this launch (with a margin of a tenth, at most a
            // second); once judged, a failure fails no trial any more.
            let journal = Journal::read(self.backup_dir()).ok().flatten();
            let on_trial = journal
                .as_ref()
                .is_some_and(|j| j.step == crate::journal::Step::Applied);
            let limit = match journal.filter(|_| on_trial).map(|j| j.trial.confirm) {
                Some(Confirm::AfterMs(ms) | Confirm::WithinMs(ms)) => {
                    let window = Duration::from_millis(ms);
                    let used = update::started_ago().unwrap_or_default();
                    let margin = (window / 10).min(Duration::from_secs(1));
                    let left = limit.min(window.saturating_sub(used + margin));
                    Duration::from_millis(u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
                }
                None => limit,
            };
            let outcome = if on_trial && limit.is_zero() {
                Err(Error::Hook {
                    hook: "after_update".into(),
                    reason: format!(
                        "no time was left for it in the trial launch of {to} ({} after its start); \
                         give the trial more time (confirm_after)",
                        humantime::format_duration(Duration::from_millis(
                            u64::try_from(update::started_ago().unwrap_or_default().as_millis())
                                .unwrap_or(u64::MAX)
                        ))
                    ),
                })
            } else {
                if on_trial {
                    log::info!(
                        "after-update hooks of {to}: {:.1} s to finish before the trial is judged",
                        limit.as_secs_f64()
                    );
                }
                hooks.run(&call, limit, self.backup_dir())
            };
            match outcome {
                Err(e) if on_trial => {
                    log::error!(
                        "{}; this trial launch of {} ends with failure, so the update is rolled back",
                        e.chain(),
                        call.to
                    );
                    std::process::exit(1);
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        if hooks.any(Lifecycle::FirstRun) {
            let install = self.install_dir();
            let state = State::read(install)?;
            if state.first_run.is_none() {
                // An install that has checked for updates before ran before
                // (with a leapfrog that had no first-run hooks): only noted.
                let ran_before = state.last_check.is_some() || state.serial.is_some();
                if !ran_before {
                    let current = self.current_version().clone();
                    let call =
                        HookCall::new(Lifecycle::FirstRun, (current.clone(), current), install);
                    hooks.run(&call, limit, self.backup_dir())?;
                }
                let mut state = State::read(install)?;
                state.first_run = Some(crate::release::trust::FirstRun {
                    version: self.current_version().to_string(),
                    at: update::unix_seconds(std::time::SystemTime::now()),
                });
                if let Err(e) = state.write(install) {
                    // A read-only install: the hooks run again next start.
                    log::warn!("the first run cannot be noted: {}", e.chain());
                }
            }
        }
        Ok(())
    }

    /// The whole update: check, ask, stage, and restart (or leave it for the
    /// next launch, as the builder's [`Restart`] says). Another copy of the
    /// program that is updating (it holds the lock) is seen before the
    /// user is asked: [`Error::Busy`].
    pub fn update(&self) -> Result<Outcome> {
        let outcome = self.update_steps();
        crate::adoption::finish();
        outcome
    }

    /// [`update`](Self::update)'s steps.
    fn update_steps(&self) -> Result<Outcome> {
        update::tidy(self.install_dir(), self.backup_dir());
        let available = match self.check() {
            Ok(Check::Available(available)) => *available,
            Ok(Check::RolledBack { version, .. }) => return Ok(Outcome::RolledBack(version)),
            Ok(Check::PutOff { version, until }) => return Ok(Outcome::PutOff { version, until }),
            Ok(_) => return Ok(Outcome::UpToDate),
            Err(e) => {
                log::warn!("checking for updates failed: {}", e.chain());
                return Err(e);
            }
        };
        // Ask only when this copy could go on to stage: not while an
        // update is under way (or on trial), nor while another copy
        // updating the same install holds the lock.
        update::nothing_in_progress(self.backup_dir())?;
        if crate::update::lock::is_held(self.backup_dir())? {
            let e = Error::busy(self.install_dir(), self.backup_dir());
            log::info!("{e}");
            return Err(e);
        }
        match self.answer(&available) {
            ui::Answer::Update => {}
            ui::Answer::NotAsked => return Ok(Outcome::NotAsked(available.release.version)),
            ui::Answer::Later | ui::Answer::Skip => {
                return Ok(Outcome::Declined(available.release.version))
            }
        }
        self.before_update(&available)?;
        let mut staged = self.stage_only(&available);
        // A mirror whose archive fails to download or verify is skipped; the
        // next mirror's manifest must offer the same release.
        for mirror in self.resolved.manifest_urls().skip(1) {
            let Err(e) = &staged else { break };
            if matches!(
                e,
                Error::Busy { .. } | Error::InProgress { .. } | Error::Cancelled { .. }
            ) {
                break;
            }
            log::warn!(
                "{}; trying mirror {}",
                e.chain(),
                crate::fetch::redact(mirror)
            );
            staged = match update::check_at(&self.resolved, mirror) {
                Ok(Check::Available(other)) if other.release == available.release => {
                    self.stage_only(&other)
                }
                Ok(_) => continue,
                Err(e) => Err(e),
            };
        }
        if let Err(Error::Cancelled { .. }) = &staged {
            log::info!(
                "{} {}: the user cancelled the download; nothing changed, {} keeps running",
                self.program(),
                available.release.version,
                self.current_version()
            );
            return Ok(Outcome::Cancelled(available.release.version));
        }
        let staged = staged.inspect_err(|e| {
            log::warn!(
                "{} {} was found, but downloading, verifying or staging it failed: {}; {} keeps running",
                self.program(),
                available.release.version,
                e.chain(),
                self.current_version()
            )
        })?;
        let version = available.release.version;
        match self.settings().restart {
            Restart::Now => {
                if let Some(before) = &self.settings().before_restart {
                    if !before(&version) {
                        log::info!(
                            "{} {version} is staged; the app put the restart off: it is installed at the next launch",
                            self.program()
                        );
                        return Ok(Outcome::Staged(version));
                    }
                }
                Err(self.restart(&staged))
            }
            Restart::NextLaunch => Ok(Outcome::Staged(version)),
            Restart::OnExit => {
                if let Err(e) = update::apply_on_exit(&staged.0) {
                    log::warn!(
                        "{}; {version} is installed at the next launch instead",
                        e.chain()
                    );
                }
                Ok(Outcome::Staged(version))
            }
        }
    }

    /// Watches the folder of a `file://` (or path) manifest and runs
    /// [`update`](Self::update) each time `versions.txt` changes there,
    /// handing its outcome to `on_outcome` (from the watching thread). A
    /// publisher's new release reaches a running app at once, and no
    /// polling loads the share. Refused for a web or FTP host. The watch
    /// ends when the returned [`ManifestWatch`](crate::ManifestWatch) is
    /// dropped.
    ///
    /// ```no_run
    /// let updater = leapfrog::Updater::builder("demo", "1.0.0")
    ///     .manifest_url("file:///srv/releases/versions.txt")
    ///     .allow_unsigned()
    ///     .build()?;
    /// let watch = updater.watch_manifest(|outcome| log::info!("{outcome:?}"))?;
    /// // ... the app runs; `watch` lives as long as it should ...
    /// # drop(watch);
    /// # Ok::<(), leapfrog::Error>(())
    /// ```
    #[cfg(feature = "watch")]
    pub fn watch_manifest(
        self,
        on_outcome: impl FnMut(Result<Outcome>) + Send + 'static,
    ) -> Result<crate::ManifestWatch> {
        crate::watch::watch(self, on_outcome)
    }

    /// Runs [`update`](Self::update) in a background thread, so the app's
    /// start is never delayed. With [`Restart::Now`], an accepted update
    /// replaces the process from that thread once it is staged. Join the
    /// handle (or let the app run on) to see how it ended; with
    /// [`Restart::NextLaunch`] an app that exits first loses nothing: a
    /// broken-off download continues, and a complete one is reused, at the
    /// next start.
    ///
    /// This is the automatic check, spaced as a host behind a CDN wants
    /// it: after a random wait of up to
    /// [`start_delay`](UpdaterBuilder::start_delay), and only when the
    /// last check is older than the [check interval](UpdaterBuilder::check_interval)
    /// (plus a random part of half of it) and no backoff after failures or
    /// `Retry-After` from the host holds it back; else the outcome is
    /// [`Outcome::NotDue`] and nothing is fetched. Call
    /// [`update`](Self::update) for a check the user asked for.
    pub fn spawn_startup_check(self) -> JoinHandle<Result<Outcome>> {
        std::thread::Builder::new()
            .name("leapfrog-check".into())
            .spawn(move || {
                // Whether a check is due costs a read of the state file;
                // only a check that is due waits its random moment.
                if let Some(next) = self.not_due() {
                    return Ok(Outcome::NotDue { next });
                }
                let schedule = self.settings().schedule;
                std::thread::sleep(schedule.start_wait(update::schedule::random()));
                // update() logs what failed: the check, or the staging.
                self.update()
            })
            .expect("spawning the update check thread")
    }

    /// When the next automatic check may run, if not now.
    fn not_due(&self) -> Option<std::time::SystemTime> {
        let schedule = self.settings().schedule;
        let state = match State::read(self.install_dir()) {
            Ok(state) => state,
            // The check says what is wrong with the state file.
            Err(_) => return None,
        };
        let now = update::unix_seconds(std::time::SystemTime::now());
        if schedule.due(&state, now) {
            return None;
        }
        let at = schedule.next_check(&state).unwrap_or(now);
        log::info!(
            "no automatic check now: the next is due in {} (the last {}; at most one a {})",
            humantime::format_duration(std::time::Duration::from_secs(at.saturating_sub(now))),
            match (&state.last_check, state.failed_checks) {
                (_, n) if n > 0 => format!("{n} failed"),
                (Some(last), _) => format!("was {} s ago", now.saturating_sub(last.at)),
                (None, _) => "never ran".into(),
            },
            humantime::format_duration(schedule.interval()),
        );
        Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(at))
    }
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater")
            .field("program", &self.program())
            .field("current_version", &self.current_version().to_string())
            .field("manifest_url", &crate::fetch::redact(self.manifest_url()))
            .field("install_dir", &self.install_dir())
            .field("backup_dir", &self.backup_dir())
            .finish_non_exhaustive()
    }
}

/// An update staged by [`Updater::stage`], ready for
/// [`Updater::restart`] (or for the next launch, which applies it).
///
/// ```no_run
/// # let updater = leapfrog::Updater::builder("demo", "1.0.0")
/// #     .manifest_url("https://downloads.example.com/demo/versions.txt")
/// #     .allow_unsigned()
/// #     .build()?;
/// if let Some(update) = updater.check()?.available() {
///     let staged = updater.stage(&update)?;
///     // Replaces the process; returns only if that failed:
///     let error = updater.restart(&staged);
///     log::error!("could not start the update of {}: {error}", staged.version());
/// }
/// # Ok::<(), leapfrog::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "a staged update is applied by restart() or at the next launch"]
pub struct StagedUpdate(Journal);

impl StagedUpdate {
    /// The version staged.
    pub fn version(&self) -> &str {
        &self.0.to_version
    }
}

impl UpdaterBuilder {
    /// The URL (or path) of `versions.txt`, or of a JSON version endpoint.
    pub fn manifest_url(mut self, url: impl Into<String>) -> Self {
        self.settings.manifest_url = Some(url.into());
        self
    }

    /// The install dir (default: the running executable's folder).
    pub fn install_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.settings.install_dir = Some(dir.into());
        self
    }

    /// The backup dir (default: the install dir's sibling `<install>.backup`).
    /// An app that sets this must tell [`finish_pending`](crate::finish_pending)
    /// through `LEAPFROG_BACKUP_DIR` as well (set it in the app's own
    /// environment before calling it).
    pub fn backup_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.settings.backup_dir = Some(dir.into());
        self
    }

    /// The executable to relaunch, relative to the install dir (default: the
    /// running one).
    pub fn executable(mut self, exe: impl Into<PathBuf>) -> Self {
        self.settings.exe = Some(exe.into());
        self
    }

    /// How to ask the user (default [`Ask::Auto`]).
    pub fn ask(mut self, ask: Ask) -> Self {
        self.settings.ask = ask;
        self
    }

    /// What to do once an update is staged (default [`Restart::Now`]).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.settings.restart = restart;
        self
    }

    /// Called with the new version just before [`update`](Updater::update)
    /// restarts the app into it ([`Restart::Now`]), from the thread that
    /// runs the update: the app saves its work there, and returns `true`
    /// to go ahead, or `false` to put the restart off, and the staged
    /// update is installed at the next launch ([`Outcome::Staged`]).
    ///
    /// ```
    /// let builder = leapfrog::Updater::builder("demo", "1.0.0").before_restart(|version| {
    ///     log::info!("saving the document before restarting into {version}");
    ///     true
    /// });
    /// # let _ = builder;
    /// ```
    pub fn before_restart(mut self, f: impl Fn(&Version) -> bool + Send + Sync + 'static) -> Self {
        self.settings.before_restart = Some(std::sync::Arc::new(f));
        self
    }

    /// Adds a lifecycle hook: `f` runs at `when` (see [`Lifecycle`]),
    /// within the time limit ([`hook_time_limit`](Self::hook_time_limit));
    /// `Err` says why it failed. A failing after-update hook fails the new
    /// version's trial, and the update is rolled back; a failing
    /// before-update hook means no update this time. First-run and
    /// after-update hooks run in [`Updater::run_hooks`], before-update
    /// hooks in [`Updater::stage`] (and so in [`Updater::update`]). A release can name commands for the
    /// same moments in its `data/config.json` (`after_update_command`, …);
    /// they run after the app's own.
    ///
    /// ```
    /// use leapfrog::Lifecycle;
    /// let builder = leapfrog::Updater::builder("demo", "1.0.0").hook(Lifecycle::AfterUpdate, |call| {
    ///     log::info!("moving the settings of {} to {}", call.from, call.to);
    ///     Ok(())
    /// });
    /// # let _ = builder;
    /// ```
    pub fn hook(
        mut self,
        when: Lifecycle,
        f: impl Fn(&HookCall) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.settings
            .hooks
            .callbacks
            .push((when, std::sync::Arc::new(f)));
        self
    }

    /// Sends an adoption ping after a check, at most once a day: a request
    /// for `ping.txt` beside the manifest whose query names the program,
    /// version, channel and days since the previous ping, and nothing
    /// else (see [`adoption`](crate::adoption)). Off unless turned on here
    /// (or by `"adoption_ping": true` in `data/config.json`).
    pub fn adoption_ping(mut self) -> Self {
        self.settings.adoption_ping = true;
        self
    }

    /// The least time between automatic checks
    /// ([`spawn_startup_check`](Updater::spawn_startup_check)): 24 h by
    /// default, never under an hour (a lower value is raised). Each check
    /// waits this plus a random part of half of it after the last.
    pub fn check_interval(mut self, interval: Duration) -> Self {
        if interval < crate::update::schedule::MIN_INTERVAL {
            log::warn!(
                "check interval {} is below the floor of an hour; an hour it is",
                humantime::format_duration(interval)
            );
        }
        self.settings.schedule.interval = interval;
        self
    }

    /// The longest random wait after the start before the automatic check
    /// (30 s by default), so that installs started together do not all
    /// ask at once.
    pub fn start_delay(mut self, delay: Duration) -> Self {
        self.settings.schedule.start_delay = delay;
        self
    }

    /// The time each lifecycle hook may take (default one minute); one that
    /// runs longer has failed. An after-update hook also has to finish
    /// before its trial launch counts as healthy (see
    /// [`confirm_after`](Self::confirm_after)).
    pub fn hook_time_limit(mut self, limit: Duration) -> Self {
        self.settings.hooks.time_limit = Some(limit);
        self
    }

    /// Reports download progress (bytes so far, total) to `f`, e.g. for a GUI.
    ///
    /// ```
    /// let builder = leapfrog::Updater::builder("demo", "1.0.0")
    ///     .on_progress(|done, total| log::info!("{done} of {total:?} bytes"));
    /// # let _ = builder;
    /// ```
    pub fn on_progress(mut self, f: impl Fn(u64, Option<u64>) + Send + Sync + 'static) -> Self {
        self.settings.on_progress(f);
        self
    }

    /// How long to wait for the host: to connect, and for each byte
    /// (defaults 10 s and 30 s; `LEAPFROG_CONNECT_TIMEOUT`,
    /// `LEAPFROG_READ_TIMEOUT`).
    pub fn timeouts(mut self, connect: Duration, read: Duration) -> Self {
        self.settings.limits.connect_timeout = connect;
        self.settings.limits.read_timeout = read;
        self
    }

    /// Installs releases whose manifest line has no sha256 (default: refused).
    pub fn allow_unverified(mut self, allow: bool) -> Self {
        self.settings.allow_unverified = allow;
        self
    }

    /// Follows the release channel `name` (default `stable`;
    /// `LEAPFROG_CHANNEL`, `"channel"` in `data/config.json`): only releases
    /// published on it (`leapfrog publish --channel`) are offered. Moving
    /// to another channel never installs a lower version by itself.
    ///
    /// ```
    /// let builder = leapfrog::Updater::builder("demo", "1.0.0").channel("beta");
    /// # let _ = builder;
    /// ```
    pub fn channel(mut self, name: impl Into<String>) -> Self {
        self.settings.channel = Some(name.into());
        self
    }

    /// Moves to the newest release of the followed [`channel`](Self::channel)
    /// even when it is lower than the running version: an explicit change
    /// of channel (from `beta` back to `stable`, say). Without it, a lower
    /// version is never installed by itself. Signatures and the
    /// anti-rollback rules hold as for any update.
    ///
    /// ```
    /// let builder = leapfrog::Updater::builder("demo", "2.0.0-beta.1")
    ///     .channel("stable")
    ///     .downgrade_to_channel();
    /// # let _ = builder;
    /// ```
    pub fn downgrade_to_channel(mut self) -> Self {
        self.settings.channel_downgrade = true;
        self
    }

    /// This check was asked for by the user (a "Check for updates" menu
    /// item): a release in a staged rollout is offered whatever this
    /// install's place in it (unless the rollout is halted), and a version
    /// the user skipped or put off is offered again. Build such an updater
    /// for the menu item; the startup check stays as it is.
    ///
    /// ```
    /// let builder = leapfrog::Updater::builder("demo", "1.0.0").asked_by_user();
    /// # let _ = builder;
    /// ```
    pub fn asked_by_user(mut self) -> Self {
        self.settings.by_user = true;
        self
    }

    /// How long "Remind me later" puts an offered version off (default a
    /// day). A required update is never put off.
    ///
    /// ```
    /// let builder = leapfrog::Updater::builder("demo", "1.0.0")
    ///     .remind_after(std::time::Duration::from_secs(3 * 24 * 3600));
    /// # let _ = builder;
    /// ```
    pub fn remind_after(mut self, wait: Duration) -> Self {
        self.settings.remind_after = wait;
        self
    }

    /// Offers pre-releases to a program running a stable version.
    pub fn prereleases(mut self, allow: bool) -> Self {
        self.settings.prereleases = allow;
        self
    }

    /// Trusts manifests signed by this minisign public key (the `.pub`
    /// file's text, or its base64 line). May be given more than once. With
    /// a key, unsigned or badly signed manifests are refused. An app
    /// without a key must say [`allow_unsigned`](Self::allow_unsigned).
    ///
    /// ```no_run
    /// let updater = leapfrog::Updater::builder("demo", env!("CARGO_PKG_VERSION"))
    ///     .manifest_url("https://downloads.example.com/demo/versions.txt")
    ///     .public_key(include_str!("../examples/leapfrog.pub"))
    ///     .build()?;
    /// # Ok::<(), leapfrog::Error>(())
    /// ```
    pub fn public_key(mut self, key: impl Into<String>) -> Self {
        self.settings.public_keys.push(key.into());
        self
    }

    /// The new version counts as healthy on its first (trial) launch once
    /// it has run this long without crashing or exiting with failure, or
    /// when it calls [`confirm_healthy`](crate::confirm_healthy), whichever
    /// comes first. This is the default, with 10 seconds.
    /// (`LEAPFROG_CONFIRM_AFTER`, e.g. `30s`.)
    pub fn confirm_after(mut self, time: Duration) -> Self {
        self.settings.trial.confirm = Confirm::AfterMs(crate::config::millis(time));
        self
    }

    /// The new version must call [`confirm_healthy`](crate::confirm_healthy)
    /// within this time on its first (trial) launch; one that does not is
    /// taken to hang, stopped, and rolled back. (`LEAPFROG_CONFIRM_WITHIN`.)
    pub fn confirm_within(mut self, time: Duration) -> Self {
        self.settings.trial.confirm = Confirm::WithinMs(crate::config::millis(time));
        self
    }

    /// How long to wait before trying again a release that failed to
    /// install here through no fault of its own (an I/O error, no
    /// permission, a full disk, a kill); doubled after each such failure,
    /// a day at most. Default one hour; `LEAPFROG_RETRY_AFTER` (e.g. `10m`).
    /// A release that fails its trial launch is not tried again.
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.settings.retry_after = wait;
        self
    }

    /// How many trial launches of a new version may fail before it is
    /// rolled back (default 1; at least 1). (`LEAPFROG_TRIAL_ATTEMPTS`.)
    pub fn trial_attempts(mut self, attempts: u32) -> Self {
        self.settings.trial.attempts = attempts.max(1);
        self
    }

    /// Another manifest URL to try, in order, when the first is down, slow,
    /// or serves something that fails verification. May be given more than once.
    pub fn mirror(mut self, url: impl Into<String>) -> Self {
        self.settings.mirrors.push(url.into());
        self
    }

    /// HTTP basic auth (and the FTP login) for a private host.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.settings.limits.credentials.basic = Some((user.into(), password.into()));
        self
    }

    /// An HTTP bearer token for a private host.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.settings.limits.credentials.bearer = Some(token.into());
        self
    }

    /// An extra HTTP header sent with every request (e.g. an API key).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings
            .limits
            .credentials
            .headers
            .push((name.into(), value.into()));
        self
    }

    /// Trusts these root certificates (PEM) instead of the public ones, for
    /// an HTTPS or FTPS host with its own certificate authority.
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.settings.limits.tls_roots_pem = Some(pem.into());
        self
    }

    /// Whether `LEAPFROG_*` environment variables override the settings
    /// (default yes; the table is in the crate docs). The manifest URL is
    /// overridden only when the app also allows it
    /// ([`allow_env_manifest_url`](Self::allow_env_manifest_url)).
    pub fn read_env(mut self, read: bool) -> Self {
        self.settings.read_env = read;
        self
    }

    /// Lets `LEAPFROG_MANIFEST_URL` replace the manifest URL (for testing a
    /// release against a staging host). Off by default: whoever sets the
    /// environment of the app could otherwise choose where it updates from.
    pub fn allow_env_manifest_url(mut self) -> Self {
        self.settings.env_manifest_url = true;
        self
    }

    /// Takes updates whose manifest is not signed. Without a
    /// [`public_key`](Self::public_key), `build()` refuses unless this is
    /// said: an app that updates from an unsigned host runs whatever that
    /// host (or anyone between) serves, so it must be a choice.
    ///
    /// ```
    /// let updater = leapfrog::Updater::builder("demo", "1.0.0")
    ///     .manifest_url("http://127.0.0.1:8000/versions.txt")
    ///     .allow_unsigned()
    ///     .install_dir(std::env::temp_dir().join("demo"))
    ///     .executable("demo")
    ///     .build();
    /// assert!(updater.is_ok());
    /// ```
    pub fn allow_unsigned(mut self) -> Self {
        self.settings.allow_unsigned = true;
        self
    }

    /// Checks the settings and builds the updater: a program name, a
    /// valid version, a manifest URL, a public key (or
    /// [`allow_unsigned`](Self::allow_unsigned)), an install dir that is
    /// not a backup copy. [`Error::Settings`] says what is missing.
    pub fn build(self) -> Result<Updater> {
        let resolved = self.settings.resolve()?;
        let install_dir = &resolved.install_dir;
        // The backup copy only ever applies an update and hops home; should
        // it run on (its hop home failed), it must not update itself.
        if let Some(origin) = crate::update::backup_of(install_dir) {
            return Err(Error::Settings(format!(
                "{} is the backup copy of {}; start the program from there",
                install_dir.display(),
                origin.display()
            )));
        }
        Ok(Updater { resolved })
    }
}
