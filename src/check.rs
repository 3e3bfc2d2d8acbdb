//! The app's side: the [`Updater`], its builder, the startup check in a
//! background thread, asking the user, progress.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use semver::Version;

use crate::error::{io_err, Error, Result};
use crate::fetch::{self, Limits, ProgressFn};
use crate::hop::{self, StagePlan};
use crate::journal::{Confirm, Journal, Trial};
use crate::release::manifest::{self, Manifest, Release};
use crate::settings::{self, AppConfig};
use crate::release::signature::PublicKey;
use crate::release::trust::State;

/// How the user is asked whether to update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ask {
    /// A native dialog when one can be shown (the `dialog` feature; on
    /// Linux a display and `zenity`), else a y/n question when stdin and
    /// stderr are a terminal, else no update (nobody to ask).
    Auto,
    /// Always the native dialog.
    Dialog,
    /// Always the terminal question.
    Terminal,
    /// Never ask; update. (`LEAPFROG_ASSUME_YES=1` has the same effect.)
    AssumeYes,
    /// Never ask; never update, only report (for [`Updater::check`] users).
    Never,
}

/// What happens once an update is staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restart {
    /// Hop out at once: the app is replaced by the update (same PID on Unix).
    Now,
    /// Leave the staged update for the next launch, where
    /// [`finish_pending`](crate::finish_pending) applies it.
    NextLaunch,
}

/// An update found by [`Updater::check`].
#[derive(Debug, Clone)]
pub struct Available {
    /// The release line.
    pub release: Release,
    /// The version running now.
    pub current: Version,
    /// Where the archive is downloaded from.
    pub archive_url: String,
    /// Where the release notes are, when the manifest names a file.
    pub notes_url: Option<String>,
    /// The manifest it came from.
    pub manifest_url: String,
}

/// How a check or an update ended (when it did not replace the process).
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The running version is the newest.
    UpToDate,
    /// An update exists and the user (or the settings) said not now.
    Declined(Version),
    /// An update was staged and will be applied at the next launch.
    Staged(Version),
}

/// What [`find_update`] looks for.
#[derive(Clone)]
pub struct Query<'a> {
    /// The manifest's URL or path.
    pub manifest_url: &'a str,
    /// The program.
    pub program: &'a str,
    /// The running version.
    pub current: &'a Version,
    /// Whether a stable version is offered pre-releases.
    pub prereleases: bool,
    /// Whether a release without a sha256 may be returned.
    pub allow_unverified: bool,
    /// Archive name template (`{version}` replaced) for lines that name no file.
    pub archive_template: Option<&'a str>,
    /// The trusted public keys. With none, the manifest is not verified
    /// (and a warning is logged); with some, `versions.txt.minisig` must be a
    /// valid signature by one of them.
    pub keys: &'a [PublicKey],
    /// What this install accepted before (serial, hash), against replays.
    pub seen: Option<&'a State>,
}

/// The result of [`find_update`]: the update, if any, and what the manifest
/// said that an install should remember.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The update to install, if any.
    pub update: Option<Available>,
    /// Whether the manifest's signature was checked.
    pub signed: bool,
    /// The manifest's serial.
    pub serial: Option<u64>,
    /// The sha256 of the manifest's bytes.
    pub manifest_sha256: String,
    /// A next public key the (signed) manifest announced.
    pub next_key: Option<String>,
}

/// Fetches a manifest (and, with keys, its signature), checks its
/// signature, expiry and serial, and returns the release of
/// `query.program` to move to, if any. A manifest that lists no release of
/// the program at all is an error (a wrong URL or name, most likely).
pub fn find_update(query: &Query<'_>, limits: &Limits) -> Result<Checked> {
    let url = query.manifest_url;
    // What is shown of the URL: never a password in it.
    let shown = crate::fetch::redact(url);
    log::info!(
        "checking {shown} for {} newer than {}",
        query.program,
        query.current
    );
    let text = fetch::fetch_text(url, limits)?;
    let signed = !query.keys.is_empty();
    if signed {
        let sig_url = format!("{url}{}", crate::release::signature::SIGNATURE_SUFFIX);
        let sig_limits = Limits {
            max_manifest_bytes: crate::release::signature::MAX_SIGNATURE_BYTES,
            ..limits.clone()
        };
        let signature = fetch::fetch_text(&sig_url, &sig_limits).map_err(|e| Error::Signature {
            url: shown.clone(),
            reason: format!("unsigned: its signature cannot be fetched ({})", e.chain()),
        })?;
        let which = crate::release::signature::verify(text.as_bytes(), &signature, query.keys, &shown)?;
        log::info!("{shown}: signature verified (key {})", which + 1);
    } else {
        log::warn!(
            "{shown}: no public key configured: this update is NOT verified against a signature"
        );
    }
    let manifest = Manifest::parse_any(&text, &shown, query.program)?;
    let manifest_sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    };
    if signed {
        check_fresh(&manifest, &shown, &manifest_sha256, query.seen)?;
    }
    let checked = |update| Checked {
        update,
        signed,
        serial: manifest.serial,
        manifest_sha256: manifest_sha256.clone(),
        next_key: manifest.next_key.clone(),
    };
    if manifest.newest(query.program).is_none() {
        return Err(Error::UnknownProgram {
            origin: shown.clone(),
            program: query.program.to_owned(),
        });
    }
    // Going back to an older version is only allowed when a signed manifest
    // withdraws the running one.
    let Some(release) =
        manifest.update_for(query.program, query.current, query.prereleases, signed)
    else {
        log::info!("{} {} is up to date", query.program, query.current);
        return Ok(checked(None));
    };
    if release.sha256.is_none() && !query.allow_unverified {
        return Err(Error::Unverified {
            origin: shown.clone(),
            program: release.program.clone(),
            version: release.version.to_string(),
        });
    }
    let file = match (&release.file, query.archive_template) {
        (Some(file), _) => file.clone(),
        (None, Some(template)) => template.replace("{version}", &release.version.to_string()),
        (None, None) => release.file_name(),
    };
    if release.version < *query.current {
        log::warn!(
            "{} {} is withdrawn by the publisher: going back to {}",
            query.program,
            query.current,
            release.version
        );
    } else {
        log::info!(
            "update available: {} {} -> {}",
            query.program,
            query.current,
            release.version
        );
    }
    let refuse = |reason: String| Error::BadRelease {
        origin: shown.clone(),
        program: release.program.clone(),
        version: release.version.to_string(),
        reason,
    };
    // The signature vouches for the size too: without one, a download
    // would have no bound but the time it takes.
    if signed && release.size.is_none() {
        return Err(refuse(
            "a signed release line must give the archive's size (size=); publish it with leapfrog, which writes it"
                .into(),
        ));
    }
    let archive_url = crate::release::trust::resolve(url, &file).map_err(&refuse)?;
    let notes_url = match &release.notes {
        Some(notes) => Some(crate::release::trust::resolve(url, notes).map_err(&refuse)?),
        None => None,
    };
    Ok(checked(Some(Available {
        archive_url,
        notes_url,
        release: release.clone(),
        current: query.current.clone(),
        manifest_url: url.to_owned(),
    })))
}

/// A signed manifest must carry a serial and an expiry, be unexpired, and
/// not be older than (or, at the same serial, differ from) one accepted before.
fn check_fresh(manifest: &Manifest, url: &str, sha256: &str, seen: Option<&State>) -> Result<()> {
    let (Some(serial), Some(expires)) = (manifest.serial, &manifest.expires) else {
        return Err(Error::Signature {
            url: url.to_owned(),
            reason: "a signed manifest must carry `serial` and `expires`; publish it with leapfrog"
                .into(),
        });
    };
    let deadline = humantime::parse_rfc3339(expires).expect("checked when parsed");
    if std::time::SystemTime::now() > deadline {
        return Err(Error::Expired {
            url: url.to_owned(),
            expires: expires.clone(),
        });
    }
    if let Some(State {
        serial: Some(highest),
        manifest_sha256,
        ..
    }) = seen
    {
        if serial < *highest {
            return Err(Error::Rollback {
                url: url.to_owned(),
                reason: format!("its serial {serial} is lower than {highest}, accepted before"),
            });
        }
        if serial == *highest && manifest_sha256.as_deref().is_some_and(|h| h != sha256) {
            return Err(Error::Rollback {
                url: url.to_owned(),
                reason: format!("serial {serial} was accepted before with other content"),
            });
        }
    }
    Ok(())
}

struct Options {
    program: String,
    current: String,
    manifest_url: Option<String>,
    install_dir: Option<PathBuf>,
    backup_dir: Option<PathBuf>,
    exe: Option<PathBuf>,
    config: Option<AppConfig>,
    archive_template: Option<String>,
    ask: Ask,
    restart: Restart,
    progress: Option<ProgressFn>,
    limits: Limits,
    allow_unverified: bool,
    prereleases: bool,
    read_env: bool,
    public_keys: Vec<String>,
    mirrors: Vec<String>,
    trial: Trial,
    retry_after: Duration,
}

/// Builds an [`Updater`]; `build()` checks the settings.
pub struct UpdaterBuilder {
    opts: Options,
}

/// Checks for, stages and starts updates of one program.
pub struct Updater {
    opts: Options,
    keys: Vec<PublicKey>,
    current: Version,
    manifest_url: String,
    install_dir: PathBuf,
    backup_dir: PathBuf,
    exe: PathBuf,
}

impl Updater {
    /// Starts a builder for `program` at version `current` (usually
    /// `env!("CARGO_PKG_VERSION")`).
    pub fn builder(program: impl Into<String>, current: impl Into<String>) -> UpdaterBuilder {
        UpdaterBuilder {
            opts: Options {
                program: program.into(),
                current: current.into(),
                manifest_url: None,
                install_dir: None,
                backup_dir: None,
                exe: None,
                config: None,
                archive_template: None,
                ask: Ask::Auto,
                restart: Restart::Now,
                progress: None,
                limits: Limits::default(),
                allow_unverified: false,
                prereleases: false,
                read_env: true,
                public_keys: Vec::new(),
                mirrors: Vec::new(),
                trial: Trial::default(),
                retry_after: Duration::from_secs(3600),
            },
        }
    }

    /// Starts a builder from a `data/config.json` (its `Update_app` block):
    /// the program and executable are `main_app_name`, the version is
    /// `current_version`, the manifest is `server`/`api_get_version`, and
    /// `current_version` is rewritten after an update. The install dir is the
    /// folder that holds `data/`.
    pub fn from_config(path: impl AsRef<Path>) -> Result<UpdaterBuilder> {
        let path = path.as_ref();
        let config = AppConfig::read(path)?;
        let absolute = std::path::absolute(path).map_err(io_err("resolving", path))?;
        let install_dir = absolute
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| {
                Error::Settings(format!("{}: expected it in a data/ folder", path.display()))
            })?
            .to_owned();
        let program = Path::new(&config.main_app_name)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(&config.main_app_name)
            .to_owned();
        let mut builder = Updater::builder(program, config.current_version.clone())
            .manifest_url(config.manifest_url())
            .install_dir(install_dir)
            .executable(config.main_app_name.clone());
        builder.opts.archive_template = config.update_zip_name.clone();
        if let Some(key) = &config.public_key {
            builder = builder.public_key(key.clone());
        }
        for mirror in &config.mirrors {
            builder = builder.mirror(mirror.clone());
        }
        builder.opts.limits.credentials = config.credentials.clone();
        builder.opts.config = Some(AppConfig {
            path: absolute,
            ..config
        });
        Ok(builder)
    }

    /// The program's name.
    pub fn program(&self) -> &str {
        &self.opts.program
    }

    /// The running version.
    pub fn current_version(&self) -> &Version {
        &self.current
    }

    /// The manifest URL checked.
    pub fn manifest_url(&self) -> &str {
        &self.manifest_url
    }

    /// The install dir.
    pub fn install_dir(&self) -> &Path {
        &self.install_dir
    }

    /// The backup dir.
    pub fn backup_dir(&self) -> &Path {
        &self.backup_dir
    }

    /// Fetches the manifest and returns the update to install, if any. A
    /// signed manifest that is accepted is remembered (serial, hash, a
    /// next key) in the install dir's state file.
    pub fn check(&self) -> Result<Option<Available>> {
        let mut failures = Vec::new();
        let mut expired = 0;
        for url in self.manifest_urls() {
            match self.check_at(url) {
                Ok(found) => return Ok(found),
                Err(e) => {
                    if matches!(e, Error::Expired { .. }) {
                        expired += 1;
                    }
                    if self.opts.mirrors.is_empty() && expired == 0 {
                        return Err(e);
                    }
                    if !self.opts.mirrors.is_empty() {
                        log::warn!(
                            "mirror {} skipped: {}",
                            crate::fetch::redact(url),
                            e.chain()
                        );
                    }
                    failures.push(e);
                }
            }
        }
        // A signed manifest past its expiry is the publisher's to renew
        // (`leapfrog refresh`), not the user's problem: no update this time.
        if expired == failures.len() {
            for e in &failures {
                log::warn!(
                    "{}; no update this time, the next check tries again",
                    e.chain()
                );
            }
            return Ok(None);
        }
        Err(Error::Download {
            url: crate::fetch::redact(&self.manifest_url),
            message: format!(
                "every mirror failed: {}",
                failures
                    .iter()
                    .map(Error::chain)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        })
    }

    /// The manifest URL, then the mirrors, in order.
    fn manifest_urls(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.manifest_url.as_str())
            .chain(self.opts.mirrors.iter().map(String::as_str))
    }

    /// [`check`](Self::check) against one manifest URL.
    pub fn check_at(&self, manifest_url: &str) -> Result<Option<Available>> {
        let mut state = State::read(&self.install_dir)?;
        let mut keys = self.keys.clone();
        for next in &state.next_keys {
            if let Ok(key) = crate::release::signature::parse_public_key(next) {
                keys.push(key);
            }
        }
        let query = Query {
            manifest_url,
            program: &self.opts.program,
            current: &self.current,
            prereleases: self.opts.prereleases,
            allow_unverified: self.opts.allow_unverified,
            archive_template: self.opts.archive_template.as_deref(),
            keys: if self.keys.is_empty() { &[] } else { &keys },
            seen: Some(&state),
        };
        let checked = find_update(&query, &self.opts.limits)?;
        if checked.signed {
            let mut changed = false;
            if checked.serial > state.serial || state.manifest_sha256.is_none() {
                state.serial = checked.serial;
                state.manifest_sha256 = Some(checked.manifest_sha256.clone());
                changed = true;
            }
            if let Some(next) = &checked.next_key {
                if !state.next_keys.contains(next) {
                    log::info!("trusting the publisher's next key {next}, announced by the signed manifest");
                    state.next_keys.push(next.clone());
                    changed = true;
                }
            }
            if changed {
                state.write(&self.install_dir)?;
            }
        }
        let found = checked.update;
        if let (Some(available), Ok(Some(journal))) = (&found, Journal::read(&self.backup_dir)) {
            if journal.step == crate::journal::Step::RolledBack
                && journal.to_version == available.release.version.to_string()
                && !self.may_retry(&journal)
            {
                return Ok(None);
            }
        }
        Ok(found)
    }

    /// Whether a version rolled back here may be tried again: never when
    /// the release itself failed (or was rolled back on request) — not
    /// until a newer one appears; when this machine made it fail (an I/O
    /// error, no permission, a full disk, a kill), once the wait is over:
    /// [`UpdaterBuilder::retry_after`], doubled after each failure, a day
    /// at most.
    fn may_retry(&self, journal: &Journal) -> bool {
        let why = journal.error.as_deref().unwrap_or("no reason recorded");
        let (Some(failed_at), false) = (journal.failed_at, journal.bad_release) else {
            log::debug!("{} {}: {why}", self.opts.program, journal.to_version);
            log::warn!(
                "{} {} was rolled back here before; waiting for a newer release",
                self.opts.program,
                journal.to_version
            );
            return false;
        };
        let doubled = 1u32 << journal.retries.saturating_sub(1).min(16);
        let wait = self
            .opts
            .retry_after
            .saturating_mul(doubled)
            .min(Duration::from_secs(24 * 3600));
        let due = std::time::UNIX_EPOCH + Duration::from_secs(failed_at) + wait;
        if std::time::SystemTime::now() < due {
            log::info!(
                "{} {} could not be installed here ({why}); trying again after {}",
                self.opts.program,
                journal.to_version,
                humantime::format_rfc3339_seconds(due)
            );
            return false;
        }
        log::info!(
            "trying {} {} again: it failed here before through no fault of its own ({why})",
            self.opts.program,
            journal.to_version
        );
        true
    }

    /// The release notes of `available`: inline ones, or the notes file
    /// fetched (capped like a manifest). `None` when there are none or they
    /// cannot be fetched.
    pub fn release_notes(&self, available: &Available) -> Option<String> {
        if let Some(text) = &available.release.notes_text {
            return Some(text.clone());
        }
        let url = available.notes_url.as_ref()?;
        match fetch::fetch_text(url, &self.opts.limits) {
            Ok(text) => Some(text),
            Err(e) => {
                log::warn!("release notes unavailable: {e}");
                None
            }
        }
    }

    /// Asks the user, as the builder's [`Ask`] says, whether to install `available`.
    pub fn ask(&self, available: &Available) -> bool {
        let ask = if self.opts.read_env && settings::assume_yes_from_env() {
            Ask::AssumeYes
        } else {
            self.opts.ask
        };
        match ask {
            Ask::AssumeYes => true,
            Ask::Never => false,
            Ask::Dialog => ask_dialog(self, available),
            Ask::Terminal => ask_terminal(self, available),
            Ask::Auto => {
                if cfg!(feature = "dialog") && dialog_available() {
                    ask_dialog(self, available)
                } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
                    ask_terminal(self, available)
                } else {
                    log::info!("no display and no terminal to ask on: not updating now");
                    false
                }
            }
        }
    }

    /// Step 2: stages `available` in the backup dir (copy, download, verify,
    /// unpack, journal). The install dir is not touched; on error nothing
    /// changes and the app goes on.
    pub fn stage(&self, available: &Available) -> Result<Journal> {
        // Another instance of the app may be updating the same install.
        let _lock = crate::hop::lock::try_lock(&self.backup_dir)?.ok_or_else(|| {
            Error::Settings(format!(
                "another instance is already updating {} (lock {}); this one carries on unchanged",
                self.install_dir.display(),
                crate::hop::lock::lock_path(&self.backup_dir).display()
            ))
        })?;
        if let Some(journal) = Journal::read(&self.backup_dir)? {
            use crate::journal::Step;
            match journal.step {
                Step::Confirmed | Step::RolledBack => {}
                // The backup holds the only good copy of the old version
                // until the new one has proven itself.
                Step::Applied => {
                    return Err(Error::Settings(format!(
                        "{} {} has not finished its trial launch yet; the backup of {} in {} is kept until it has \
                         (restart the app to finish the trial)",
                        journal.program,
                        journal.to_version,
                        journal.from_version,
                        self.backup_dir.display()
                    )))
                }
                Step::Staged | Step::Applying | Step::RollingBack => {
                    return Err(Error::Settings(format!(
                        "an update to {} is already in progress in {}; restart the app to finish it",
                        journal.to_version,
                        self.backup_dir.display()
                    )))
                }
            }
        }
        let progress = self.progress();
        let plan = StagePlan {
            program: &self.opts.program,
            from_version: self.current.to_string(),
            release: &available.release,
            archive_url: available.archive_url.clone(),
            install_dir: self.install_dir.clone(),
            backup_dir: self.backup_dir.clone(),
            exe: self.exe.clone(),
            config: self.opts.config.as_ref().and_then(|c| {
                c.path
                    .strip_prefix(&self.install_dir)
                    .ok()
                    .map(Path::to_owned)
            }),
            limits: &self.opts.limits,
            progress: progress.as_ref(),
            trial: self.opts.trial,
        };
        hop::stage(&plan)
    }

    /// Steps 3 to 5: hops out to the backup copy, which applies the staged
    /// update and relaunches the new version. Returns only on failure.
    pub fn restart(&self, journal: &Journal) -> Error {
        hop::hop_out(journal, false)
    }

    /// The whole update: check, ask, stage, and restart (or leave it for the
    /// next launch, as the builder's [`Restart`] says).
    pub fn update(&self) -> Result<Outcome> {
        hop::tidy(&self.install_dir, &self.backup_dir);
        let available = match self.check() {
            Ok(Some(available)) => available,
            Ok(None) => return Ok(Outcome::UpToDate),
            Err(e) => {
                log::warn!("checking for updates failed: {}", e.chain());
                return Err(e);
            }
        };
        if !self.ask(&available) {
            return Ok(Outcome::Declined(available.release.version));
        }
        let mut staged = self.stage(&available);
        // A mirror whose archive fails to download or verify is skipped; the
        // next mirror's manifest must offer the same release.
        for mirror in self.manifest_urls().skip(1) {
            let Err(e) = &staged else { break };
            log::warn!(
                "{}; trying mirror {}",
                e.chain(),
                crate::fetch::redact(mirror)
            );
            staged = match self.check_at(mirror) {
                Ok(Some(other)) if other.release == available.release => self.stage(&other),
                Ok(_) => continue,
                Err(e) => Err(e),
            };
        }
        let journal = staged.inspect_err(|e| {
            log::warn!(
                "{} {} was found, but downloading, verifying or staging it failed: {}; {} keeps running",
                self.opts.program,
                available.release.version,
                e.chain(),
                self.current
            )
        })?;
        match self.opts.restart {
            Restart::Now => Err(self.restart(&journal)),
            Restart::NextLaunch => Ok(Outcome::Staged(available.release.version)),
        }
    }

    /// Runs [`update`](Self::update) in a background thread, so the app's start is
    /// never delayed. With [`Restart::Now`], an accepted update replaces the
    /// process from that thread once it is staged.
    pub fn spawn_startup_check(self) -> JoinHandle<Result<Outcome>> {
        std::thread::Builder::new()
            .name("leapfrog-check".into())
            .spawn(move || {
                // update() logs what failed: the check, or the staging.
                self.update()
            })
            .expect("spawning the update check thread")
    }

    fn progress(&self) -> Option<ProgressFn> {
        if let Some(p) = &self.opts.progress {
            return Some(p.clone());
        }
        #[cfg(feature = "progress-bar")]
        if matches!(self.opts.ask, Ask::Auto | Ask::Terminal) && std::io::stderr().is_terminal() {
            return Some(terminal_progress());
        }
        None
    }
}

impl UpdaterBuilder {
    /// The URL (or path) of `versions.txt`, or of a JSON version endpoint.
    pub fn manifest_url(mut self, url: impl Into<String>) -> Self {
        self.opts.manifest_url = Some(url.into());
        self
    }

    /// The install dir (default: the running executable's folder).
    pub fn install_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.opts.install_dir = Some(dir.into());
        self
    }

    /// The backup dir (default: the install dir's sibling `<install>.backup`).
    /// An app that sets this must tell [`finish_pending`](crate::finish_pending)
    /// through `LEAPFROG_BACKUP_DIR` as well.
    pub fn backup_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.opts.backup_dir = Some(dir.into());
        self
    }

    /// The executable to relaunch, relative to the install dir (default: the
    /// running one).
    pub fn executable(mut self, exe: impl Into<PathBuf>) -> Self {
        self.opts.exe = Some(exe.into());
        self
    }

    /// How to ask the user (default [`Ask::Auto`]).
    pub fn ask(mut self, ask: Ask) -> Self {
        self.opts.ask = ask;
        self
    }

    /// What to do once an update is staged (default [`Restart::Now`]).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.opts.restart = restart;
        self
    }

    /// Reports download progress (bytes so far, total) to `f`, e.g. for a GUI.
    pub fn on_progress(mut self, f: impl Fn(u64, Option<u64>) + Send + Sync + 'static) -> Self {
        self.opts.progress = Some(Arc::new(f));
        self
    }

    /// Network limits and timeouts.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.opts.limits = limits;
        self
    }

    /// Installs releases whose manifest line has no sha256 (default: refused).
    pub fn allow_unverified(mut self, allow: bool) -> Self {
        self.opts.allow_unverified = allow;
        self
    }

    /// Offers pre-releases to a program running a stable version.
    pub fn prereleases(mut self, allow: bool) -> Self {
        self.opts.prereleases = allow;
        self
    }

    /// Trusts manifests signed by this minisign public key (the `.pub`
    /// file's text, or its base64 line). May be given more than once. With
    /// a key, unsigned or badly signed manifests are refused.
    pub fn public_key(mut self, key: impl Into<String>) -> Self {
        self.opts.public_keys.push(key.into());
        self
    }

    /// The new version counts as healthy on its first (trial) launch once
    /// it has run this long without crashing or exiting with failure, or
    /// when it calls [`confirm_healthy`](crate::confirm_healthy), whichever
    /// comes first. This is the default, with 10 seconds.
    /// (`LEAPFROG_CONFIRM_AFTER`, e.g. `30s`.)
    pub fn confirm_after(mut self, time: Duration) -> Self {
        self.opts.trial.confirm = Confirm::AfterMs(settings::millis(time));
        self
    }

    /// The new version must call [`confirm_healthy`](crate::confirm_healthy)
    /// within this time on its first (trial) launch; one that does not is
    /// taken to hang, stopped, and rolled back. (`LEAPFROG_CONFIRM_WITHIN`.)
    pub fn confirm_within(mut self, time: Duration) -> Self {
        self.opts.trial.confirm = Confirm::WithinMs(settings::millis(time));
        self
    }

    /// How long to wait before trying again a release that failed to
    /// install here through no fault of its own (an I/O error, no
    /// permission, a full disk, a kill); doubled after each such failure,
    /// a day at most. Default one hour; `LEAPFROG_RETRY_AFTER` (e.g. `10m`).
    /// A release that fails its trial launch is not tried again.
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.opts.retry_after = wait;
        self
    }

    /// How many trial launches of a new version may fail before it is
    /// rolled back (default 1; at least 1). (`LEAPFROG_TRIAL_ATTEMPTS`.)
    pub fn trial_attempts(mut self, attempts: u32) -> Self {
        self.opts.trial.attempts = attempts.max(1);
        self
    }

    /// Another manifest URL to try, in order, when the first is down, slow,
    /// or serves something that fails verification. May be given more than once.
    pub fn mirror(mut self, url: impl Into<String>) -> Self {
        self.opts.mirrors.push(url.into());
        self
    }

    /// HTTP basic auth (and the FTP login) for a private host.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.opts.limits.credentials.basic = Some((user.into(), password.into()));
        self
    }

    /// An HTTP bearer token for a private host.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.opts.limits.credentials.bearer = Some(token.into());
        self
    }

    /// An extra HTTP header sent with every request (e.g. an API key).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.opts
            .limits
            .credentials
            .headers
            .push((name.into(), value.into()));
        self
    }

    /// Trusts these root certificates (PEM) instead of the public ones, for
    /// an HTTPS or FTPS host with its own certificate authority.
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.opts.limits.tls_roots_pem = Some(pem.into());
        self
    }

    /// Whether `LEAPFROG_*` environment variables override the settings (default yes).
    pub fn read_env(mut self, read: bool) -> Self {
        self.opts.read_env = read;
        self
    }

    /// Checks the settings and builds the updater.
    pub fn build(self) -> Result<Updater> {
        let mut opts = self.opts;
        if opts.read_env {
            if let Ok(url) = std::env::var(settings::ENV_MANIFEST_URL) {
                opts.manifest_url = Some(url);
            }
            if let Some(dir) = std::env::var_os(settings::ENV_BACKUP_DIR) {
                opts.backup_dir = Some(dir.into());
            }
        }
        if opts.program.is_empty() {
            return Err(Error::Settings("the program name is empty".into()));
        }
        let current = manifest::parse_version(&opts.current)?;
        let keys = opts
            .public_keys
            .iter()
            .map(|k| {
                crate::release::signature::parse_public_key(k)
                    .map_err(|e| Error::Settings(format!("public key: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        if opts.read_env {
            opts.limits.apply_env()?;
            if let Ok(mirrors) = std::env::var(settings::ENV_MIRRORS) {
                opts.mirrors = mirrors.split_whitespace().map(str::to_owned).collect();
            }
            opts.trial = settings::trial_from_env(opts.trial)?;
            if let Some(wait) = settings::duration_from_env(settings::ENV_RETRY_AFTER)? {
                opts.retry_after = wait;
            }
        }
        if opts.limits.user_agent == crate::fetch::Limits::default().user_agent {
            opts.limits.user_agent = format!(
                "leapfrog/{} ({}/{})",
                env!("CARGO_PKG_VERSION"),
                opts.program,
                opts.current
            );
        }
        let manifest_url = opts.manifest_url.clone().ok_or_else(|| {
            Error::Settings(format!(
                "no manifest URL: set one with .manifest_url(), {} or data/config.json",
                settings::ENV_MANIFEST_URL
            ))
        })?;
        let exe_path =
            std::env::current_exe().map_err(io_err("finding", "the running executable"))?;
        let install_dir = match &opts.install_dir {
            Some(dir) => std::path::absolute(dir).map_err(io_err("resolving", dir))?,
            None => exe_path
                .parent()
                .ok_or_else(|| Error::Settings("the executable has no folder".into()))?
                .to_owned(),
        };
        let exe = match &opts.exe {
            Some(exe) if exe.is_absolute() => exe
                .strip_prefix(&install_dir)
                .map_err(|_| {
                    Error::Settings(format!(
                        "the executable {} is not inside the install dir {}",
                        exe.display(),
                        install_dir.display()
                    ))
                })?
                .to_owned(),
            Some(exe) => exe.clone(),
            None => exe_path
                .strip_prefix(&install_dir)
                .map(Path::to_owned)
                .map_err(|_| {
                    Error::Settings(format!(
                    "the running executable {} is not inside the install dir {}; set .executable()",
                    exe_path.display(),
                    install_dir.display()
                ))
                })?,
        };
        let backup_dir = match &opts.backup_dir {
            Some(dir) => std::path::absolute(dir).map_err(io_err("resolving", dir))?,
            None => hop::default_backup_dir(&install_dir)
                .ok_or_else(|| Error::Settings(format!("{} has no name", install_dir.display())))?,
        };
        // The backup copy only ever applies an update and hops home; should
        // it run on (its hop home failed), it must not update itself.
        if let Some(origin) = hop::backup_of(&install_dir) {
            return Err(Error::Settings(format!(
                "{} is the backup copy of {}; start the program from there",
                install_dir.display(),
                origin.display()
            )));
        }
        if backup_dir.starts_with(&install_dir) || install_dir.starts_with(&backup_dir) {
            return Err(Error::Settings(format!(
                "the backup dir {} and the install dir {} may not contain each other",
                backup_dir.display(),
                install_dir.display()
            )));
        }
        Ok(Updater {
            opts,
            keys,
            current,
            manifest_url,
            install_dir,
            backup_dir,
            exe,
        })
    }
}

fn human_size(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) if b >= 1 << 20 => format!("{:.1} MB", b as f64 / 1e6),
        Some(b) => format!("{:.0} kB", (b as f64 / 1e3).ceil()),
        None => "unknown size".into(),
    }
}

fn question(updater: &Updater, available: &Available) -> (String, Option<String>) {
    let r = &available.release;
    let title = format!(
        "{} {} is available (you have {}, download {})",
        r.program,
        r.version,
        available.current,
        human_size(r.size)
    );
    (title, updater.release_notes(available))
}

fn ask_terminal(updater: &Updater, available: &Available) -> bool {
    let (title, notes) = question(updater, available);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{title}");
    if let Some(notes) = notes {
        for line in notes.lines().take(20) {
            let _ = writeln!(err, "  {line}");
        }
    }
    let _ = write!(err, "Update now? [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Whether a native dialog can be shown: always on Windows and macOS; on
/// other systems rfd shows message dialogs through `zenity`, so a display
/// and `zenity` on the PATH are needed.
fn dialog_available() -> bool {
    if cfg!(any(windows, target_os = "macos")) {
        return true;
    }
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    display
        && std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join("zenity").is_file())
        })
}

#[cfg(feature = "dialog")]
fn ask_dialog(updater: &Updater, available: &Available) -> bool {
    let (title, notes) = question(updater, available);
    let mut text = title;
    if let Some(notes) = notes {
        text.push_str("\n\n");
        text.push_str(&notes.lines().take(30).collect::<Vec<_>>().join("\n"));
    }
    let answer = rfd::MessageDialog::new()
        .set_title(format!("Update {}", available.release.program))
        .set_description(text)
        .set_buttons(rfd::MessageButtons::OkCancelCustom(
            "Update".into(),
            "Later".into(),
        ))
        .show();
    matches!(answer, rfd::MessageDialogResult::Custom(ref s) if s == "Update")
        || matches!(answer, rfd::MessageDialogResult::Ok)
}

#[cfg(not(feature = "dialog"))]
fn ask_dialog(updater: &Updater, available: &Available) -> bool {
    log::warn!("built without the `dialog` feature: asking on the terminal instead");
    ask_terminal(updater, available)
}

#[cfg(feature = "progress-bar")]
fn terminal_progress() -> ProgressFn {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bytes}/{total_bytes} [{bar:30}] {bytes_per_sec} {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    Arc::new(move |done, total| {
        if let Some(total) = total {
            bar.set_length(total);
        }
        bar.set_position(done);
        if Some(done) == total {
            bar.finish_and_clear();
        }
    })
}
