//! The one place an updater's settings are resolved: the builder's
//! values, then `data/config.json` (when the app starts from one), then
//! the `LEAPFROG_*` environment variables (unless the app turned them off
//! with [`read_env(false)`](crate::UpdaterBuilder::read_env)), then the
//! defaults derived from the running executable.
//!
//! Every environment variable leapfrog reads (a value that is not valid
//! Unicode is refused, never ignored):
//!
//! | variable | what it sets | read when |
//! |----------|--------------|-----------|
//! | `LEAPFROG_MANIFEST_URL` | the manifest URL | only when the app allows it ([`allow_env_manifest_url`](crate::UpdaterBuilder::allow_env_manifest_url)) |
//! | `LEAPFROG_MIRRORS` | mirror manifest URLs, whitespace-separated | the same |
//! | `LEAPFROG_CHANNEL` | the release channel followed (`stable` by default) | `read_env` |
//! | `LEAPFROG_BACKUP_DIR` | the backup dir (also read by [`finish_pending`](crate::finish_pending)) | `read_env`; always by `finish_pending` |
//! | `LEAPFROG_ASSUME_YES=1` | answer yes without asking | `read_env` |
//! | `LEAPFROG_CONFIRM_AFTER`, `LEAPFROG_CONFIRM_WITHIN` | how the trial launch is judged (`30s`, `2m`) | `read_env` |
//! | `LEAPFROG_TRIAL_ATTEMPTS` | trial launches that may fail | `read_env` |
//! | `LEAPFROG_RETRY_AFTER` | the wait before retrying a release this machine made fail | `read_env` |
//! | `LEAPFROG_CHECK_INTERVAL` | the least time between automatic checks (`24h`; never under `1h`) | `read_env` |
//! | `LEAPFROG_START_DELAY` | the longest random wait before the check at a start (`30s`) | `read_env` |
//! | `LEAPFROG_CHECK_EVERY_START=1` | an automatic check at every start, at once (development and tests) | `read_env` |
//! | `LEAPFROG_CONNECT_TIMEOUT`, `LEAPFROG_READ_TIMEOUT`, `LEAPFROG_RATE_WINDOW` | network patience (`10s`, `500ms`) | `read_env` |
//! | `LEAPFROG_MIN_RATE`, `LEAPFROG_RETRIES` | slowest transfer accepted (bytes/s), retries | `read_env` |
//! | `LEAPFROG_AUTH_USER`, `LEAPFROG_AUTH_PASSWORD`, `LEAPFROG_AUTH_TOKEN`, `LEAPFROG_HEADERS` | credentials for a private host (never logged) | `read_env` |
//! | `LEAPFROG_CA_FILE` | root certificates (PEM) for a host with its own CA | `read_env` |
//! | `SSL_CERT_FILE`, `SSL_CERT_DIR` | where the system's certificate store is (Unix; as OpenSSL reads them) | always, by the store's loader |
//! | `LEAPFROG_HOPS`, `LEAPFROG_TRIAL` | leapfrog's own, between its processes | never set them |
//!
//! A `data/config.json` carries an `Update_app` block:
//!
//! ```json
//! { "Update_app": {
//!     "server": "https://downloads.example.com/demo",
//!     "api_get_version": "versions.txt",
//!     "main_app_name": "demo",
//!     "update_zip_name": "demo-{version}.tar.gz",
//!     "current_version": "1.0.0",
//!     "public_key": "RWQ...base64 of the minisign public key" } }
//! ```
//!
//! The manifest URL is `server` + `/` + `api_get_version`. `main_app_name` is
//! the program's name and the executable that relaunches (relative to the
//! install dir). `update_zip_name`, with `{version}` replaced, is the archive
//! name used when a manifest line names none. `current_version` is rewritten
//! after an update. Without `public_key`, `"allow_unsigned": true` must say
//! that unsigned updates are meant; `mirrors` (a list), `auth_user`,
//! `auth_password`, `auth_token` and `headers` (an object) are optional.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use semver::Version;

mod json;

pub(crate) use json::{write_current_version, AppConfig};

use crate::error::{io_err, Error, Result};
use crate::fetch::{Limits, ProgressFn};
use crate::journal::{Confirm, Trial};
use crate::release::signature::PublicKey;

/// How the user is asked whether to update.
///
/// ```
/// let builder = leapfrog::Updater::builder("demo", "1.0.0").ask(leapfrog::Ask::Terminal);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ask {
    /// A native dialog when one can be shown (the `dialog` feature; on
    /// Linux a display and `zenity`), else a y/n question when stdin and
    /// stderr are a terminal, else no update (nobody to ask) unless the
    /// update is required by a signed manifest.
    Auto,
    /// Always the native dialog.
    Dialog,
    /// Always the terminal question.
    Terminal,
    /// Never ask; update. (`LEAPFROG_ASSUME_YES=1` has the same effect.)
    AssumeYes,
    /// Never ask; never update, only report (for [`Updater::check`](crate::Updater::check) users).
    Never,
}

/// What happens once an update is staged.
///
/// ```
/// let builder = leapfrog::Updater::builder("demo", "1.0.0").restart(leapfrog::Restart::NextLaunch);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restart {
    /// Hop out at once: the app is replaced by the update (same PID on Unix).
    Now,
    /// Leave the staged update for the next launch, where
    /// [`finish_pending`](crate::finish_pending) applies it.
    NextLaunch,
    /// Apply it when the app quits on its own: a copy of the program waits,
    /// in the background, for this process to end, then applies the update
    /// (checking the staged files again first). The new version's first
    /// launch, the next time the user starts the app, is its trial. Nothing
    /// interrupts the user; if the app is started again before it quits,
    /// that launch applies the update instead.
    OnExit,
}

/// Overrides the manifest URL, when the app allows it.
pub(crate) const ENV_MANIFEST_URL: &str = "LEAPFROG_MANIFEST_URL";
/// The channel followed.
pub(crate) const ENV_CHANNEL: &str = "LEAPFROG_CHANNEL";
/// Overrides the backup dir.
pub(crate) const ENV_BACKUP_DIR: &str = "LEAPFROG_BACKUP_DIR";
/// Mirror manifest URLs, whitespace-separated.
pub(crate) const ENV_MIRRORS: &str = "LEAPFROG_MIRRORS";
/// Set to `1`, answers yes without asking.
pub(crate) const ENV_ASSUME_YES: &str = "LEAPFROG_ASSUME_YES";
/// The time after which a new version counts as healthy on its trial launch.
pub(crate) const ENV_CONFIRM_AFTER: &str = "LEAPFROG_CONFIRM_AFTER";
/// The time within which a new version must confirm on its trial launch.
pub(crate) const ENV_CONFIRM_WITHIN: &str = "LEAPFROG_CONFIRM_WITHIN";
/// The number of trial launches that may fail.
pub(crate) const ENV_TRIAL_ATTEMPTS: &str = "LEAPFROG_TRIAL_ATTEMPTS";
/// The wait before trying again a release that failed here through no
/// fault of its own.
pub(crate) const ENV_RETRY_AFTER: &str = "LEAPFROG_RETRY_AFTER";
/// The least time between automatic checks.
pub(crate) const ENV_CHECK_INTERVAL: &str = "LEAPFROG_CHECK_INTERVAL";
/// The longest random wait before the check at a start.
pub(crate) const ENV_START_DELAY: &str = "LEAPFROG_START_DELAY";
/// An automatic check at every start (development and tests).
pub(crate) const ENV_CHECK_EVERY_START: &str = "LEAPFROG_CHECK_EVERY_START";

impl Resolved {
    pub(crate) fn program(&self) -> &str {
        &self.settings.program
    }

    pub(crate) fn current_version(&self) -> &Version {
        &self.current
    }

    pub(crate) fn install_dir(&self) -> &Path {
        &self.install_dir
    }

    pub(crate) fn backup_dir(&self) -> &Path {
        &self.backup_dir
    }

    pub(crate) fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The manifest URL, then the mirrors, in order.
    pub(crate) fn manifest_urls(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.manifest_url.as_str())
            .chain(self.settings.mirrors.iter().map(String::as_str))
    }
}

/// Looks up an environment variable.
type Env<'a> = &'a dyn Fn(&str) -> Option<std::ffi::OsString>;

/// The text of the variable `name`, refused when it is not Unicode (a
/// value that cannot be read is never silently ignored).
fn text(env: Env<'_>, name: &str) -> Result<Option<String>> {
    match env(name) {
        None => Ok(None),
        Some(value) => value
            .into_string()
            .map(Some)
            .map_err(|value| Error::Settings(format!("{name}={value:?}: not valid Unicode"))),
    }
}

/// The app's say before it is restarted into an update.
pub(crate) type BeforeRestartFn = Arc<dyn Fn(&semver::Version) -> bool + Send + Sync>;

/// Everything an app can set, as given (the builder's state).
pub(crate) struct Settings {
    pub program: String,
    pub current: String,
    pub manifest_url: Option<String>,
    pub env_manifest_url: bool,
    pub install_dir: Option<PathBuf>,
    pub backup_dir: Option<PathBuf>,
    pub exe: Option<PathBuf>,
    pub config: Option<AppConfig>,
    pub archive_template: Option<String>,
    pub channel: Option<String>,
    pub channel_downgrade: bool,
    pub ask: Ask,
    pub restart: Restart,
    pub progress: Option<ProgressFn>,
    /// Called before the app is restarted into a staged update; `false`
    /// puts the restart off to the next launch.
    pub before_restart: Option<BeforeRestartFn>,
    pub limits: Limits,
    pub allow_unverified: bool,
    pub allow_unsigned: bool,
    pub prereleases: bool,
    pub read_env: bool,
    /// `LEAPFROG_ASSUME_YES`: yes without asking, whatever `ask` says.
    pub assume_yes: bool,
    pub public_keys: Vec<String>,
    pub mirrors: Vec<String>,
    pub trial: Trial,
    pub retry_after: Duration,
    /// The user asked for this check: staged rollouts (not halted ones),
    /// a skipped version and "Remind me later" are passed over.
    pub by_user: bool,
    /// How long "Remind me later" puts a version off.
    pub remind_after: Duration,
    /// The app's lifecycle hooks and its release's hook commands.
    pub hooks: crate::hooks::Hooks,
    /// Opt-in adoption pings (see [`crate::adoption`]).
    pub adoption_ping: bool,
    /// How automatic checks are spaced.
    pub schedule: crate::update::schedule::Schedule,
}

impl Settings {
    /// The defaults for `program` at version `current`.
    pub(crate) fn new(program: String, current: String) -> Settings {
        Settings {
            program,
            current,
            manifest_url: None,
            env_manifest_url: false,
            install_dir: None,
            backup_dir: None,
            exe: None,
            config: None,
            archive_template: None,
            channel: None,
            channel_downgrade: false,
            ask: Ask::Auto,
            restart: Restart::Now,
            progress: None,
            before_restart: None,
            limits: Limits::default(),
            allow_unverified: false,
            allow_unsigned: false,
            prereleases: false,
            read_env: true,
            assume_yes: false,
            public_keys: Vec::new(),
            mirrors: Vec::new(),
            trial: Trial::default(),
            retry_after: Duration::from_secs(3600),
            by_user: false,
            remind_after: Duration::from_secs(24 * 3600),
            hooks: crate::hooks::Hooks::default(),
            adoption_ping: false,
            schedule: crate::update::schedule::Schedule::default(),
        }
    }

    /// Sets the progress callback.
    pub(crate) fn on_progress(&mut self, f: impl Fn(u64, Option<u64>) + Send + Sync + 'static) {
        self.progress = Some(Arc::new(f));
    }

    /// The settings of the `Update_app` block of the `data/config.json` at
    /// `path`, relative to the running executable's folder unless absolute:
    /// the program and executable are `main_app_name`, the version is
    /// `current_version`, the install dir is the folder that holds `data/`.
    pub(crate) fn from_config(path: &Path) -> Result<Settings> {
        let path = if path.is_absolute() {
            path.to_owned()
        } else {
            let exe =
                std::env::current_exe().map_err(io_err("finding", "the running executable"))?;
            exe.parent().unwrap_or(Path::new(".")).join(path)
        };
        let config = AppConfig::read(&path)?;
        let install_dir = path
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
        let mut settings = Settings::new(program, config.current_version.clone());
        settings.manifest_url = Some(config.manifest_url());
        settings.install_dir = Some(install_dir);
        settings.exe = Some(config.main_app_name.clone().into());
        // An AppImage reads its config inside the image; what an update
        // replaces is the image file, in the folder it lies in.
        let running = crate::os::running_exe().ok();
        if let Some(image) = running.filter(|r| std::env::current_exe().is_ok_and(|e| &e != r)) {
            settings.install_dir = image.parent().map(Path::to_owned);
            settings.exe = image.file_name().map(PathBuf::from);
        }
        settings.archive_template = config.update_zip_name.clone();
        settings.channel = config.channel.clone();
        settings.public_keys.extend(config.public_key.clone());
        settings.allow_unsigned = config.allow_unsigned;
        settings.mirrors = config.mirrors.clone();
        settings.limits.credentials = config.credentials.clone();
        settings.hooks.commands = config.hook_commands.clone();
        settings.hooks.time_limit = config.hook_time_limit;
        settings.adoption_ping = config.adoption_ping;
        settings.config = Some(AppConfig { path, ..config });
        Ok(settings)
    }

    /// Checks the settings, applies the environment and the defaults.
    pub(crate) fn resolve(self) -> Result<Resolved> {
        self.resolve_with(&|name| std::env::var_os(name))
    }

    /// [`resolve`](Self::resolve) with `env` as the environment.
    fn resolve_with(mut self, env: Env<'_>) -> Result<Resolved> {
        if self.read_env {
            self.apply_env(env)?;
        }
        if let Some(channel) = &self.channel {
            if channel.is_empty()
                || !channel
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(Error::Settings(format!(
                    "channel {channel:?}: letters, digits, '-', '_' and '.' only"
                )));
            }
        }
        if self.program.is_empty() {
            return Err(Error::Settings("the program name is empty".into()));
        }
        let current = crate::release::manifest::parse_version(&self.current)?;
        let keys = self
            .public_keys
            .iter()
            .map(|k| {
                crate::release::signature::parse_public_key(k)
                    .map_err(|e| Error::Settings(format!("public key: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        if keys.is_empty() && !self.allow_unsigned {
            return Err(Error::Settings(
                "no public key: set the publisher's key with .public_key(include_str!(\"leapfrog.pub\")) \
                 (or public_key in data/config.json); an app that really takes unsigned updates says so \
                 with .allow_unsigned() (or \"allow_unsigned\": true)"
                    .into(),
            ));
        }
        if self.limits.user_agent == Limits::default().user_agent {
            self.limits.user_agent = format!(
                "leapfrog/{} ({}/{})",
                env!("CARGO_PKG_VERSION"),
                self.program,
                self.current
            );
        }
        let manifest_url = self.manifest_url.clone().ok_or_else(|| {
            Error::Settings(
                "no manifest URL: set one with .manifest_url() or in data/config.json".into(),
            )
        })?;
        let exe_path =
            crate::os::running_exe().map_err(io_err("finding", "the running executable"))?;
        let install_dir = match &self.install_dir {
            Some(dir) => std::path::absolute(dir).map_err(io_err("resolving", dir))?,
            None => crate::os::default_install_dir(&exe_path)
                .ok_or_else(|| Error::Settings("the executable has no folder".into()))?,
        };
        let exe = match &self.exe {
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
        let backup_dir = match &self.backup_dir {
            Some(dir) => std::path::absolute(dir).map_err(io_err("resolving", dir))?,
            None => crate::layout::default_backup_dir(&install_dir)
                .ok_or_else(|| Error::Settings(format!("{} has no name", install_dir.display())))?,
        };
        if backup_dir.starts_with(&install_dir) || install_dir.starts_with(&backup_dir) {
            return Err(Error::Settings(format!(
                "the backup dir {} and the install dir {} may not contain each other",
                backup_dir.display(),
                install_dir.display()
            )));
        }
        Ok(Resolved {
            settings: self,
            keys,
            current,
            manifest_url,
            install_dir,
            backup_dir,
            exe,
        })
    }

    /// The `LEAPFROG_*` variables of the table above, over the settings;
    /// `env` looks a variable up.
    fn apply_env(&mut self, env: Env<'_>) -> Result<()> {
        // Where updates come from is the app's to choose.
        if self.env_manifest_url {
            if let Some(url) = text(env, ENV_MANIFEST_URL)? {
                self.manifest_url = Some(url);
            }
            if let Some(mirrors) = text(env, ENV_MIRRORS)? {
                self.mirrors = mirrors.split_whitespace().map(str::to_owned).collect();
            }
        }
        if let Some(channel) = text(env, ENV_CHANNEL)? {
            self.channel = Some(channel);
        }
        if let Some(dir) = env(ENV_BACKUP_DIR) {
            self.backup_dir = Some(dir.into());
        }
        self.assume_yes = assume_yes_from_env(env)?;
        self.trial = trial_from_env(self.trial, env)?;
        if let Some(wait) = duration_from_env(ENV_RETRY_AFTER, env)? {
            self.retry_after = wait;
        }
        if let Some(interval) = duration_from_env(ENV_CHECK_INTERVAL, env)? {
            self.schedule.interval = interval;
        }
        if let Some(delay) = duration_from_env(ENV_START_DELAY, env)? {
            self.schedule.start_delay = delay;
        }
        if text(env, ENV_CHECK_EVERY_START)?
            .is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
        {
            self.schedule.every_start = true;
        }
        limits_from_env(&mut self.limits, env)
    }
}

/// Settings checked and completed: what an [`Updater`](crate::Updater) runs on.
pub(crate) struct Resolved {
    pub settings: Settings,
    pub keys: Vec<PublicKey>,
    pub current: Version,
    pub manifest_url: String,
    pub install_dir: PathBuf,
    pub backup_dir: PathBuf,
    pub exe: PathBuf,
}

/// `limits` with the network variables of the table above applied.
fn limits_from_env(limits: &mut Limits, env: Env<'_>) -> Result<()> {
    let duration = |name: &str, slot: &mut Duration| -> Result<()> {
        if let Some(d) = duration_from_env(name, env)? {
            *slot = d;
        }
        Ok(())
    };
    duration("LEAPFROG_CONNECT_TIMEOUT", &mut limits.connect_timeout)?;
    duration("LEAPFROG_READ_TIMEOUT", &mut limits.read_timeout)?;
    duration("LEAPFROG_RATE_WINDOW", &mut limits.rate_window)?;
    let number = |name: &str| -> Result<Option<u64>> {
        match text(env, name)? {
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::Settings(format!("{name}={v:?}: expected a whole number"))),
            None => Ok(None),
        }
    };
    if let Some(rate) = number("LEAPFROG_MIN_RATE")? {
        limits.min_rate = rate;
    }
    if let Some(retries) = number("LEAPFROG_RETRIES")? {
        limits.retries = retries.min(100) as u32;
    }
    if let Some(user) = text(env, "LEAPFROG_AUTH_USER")? {
        let password = text(env, "LEAPFROG_AUTH_PASSWORD")?.unwrap_or_default();
        limits.credentials.basic = Some((user, password));
    }
    if let Some(token) = text(env, "LEAPFROG_AUTH_TOKEN")? {
        limits.credentials.bearer = Some(token);
    }
    if let Some(path) = env("LEAPFROG_CA_FILE") {
        let path = PathBuf::from(path);
        limits.tls_roots_pem =
            Some(std::fs::read(&path).map_err(io_err("reading LEAPFROG_CA_FILE", &path))?);
    }
    if let Some(headers) = text(env, "LEAPFROG_HEADERS")? {
        for line in headers.lines().filter(|l| !l.trim().is_empty()) {
            let (name, value) = line.split_once(':').ok_or_else(|| {
                Error::Settings("LEAPFROG_HEADERS: expected `Name: value` lines".into())
            })?;
            limits
                .credentials
                .headers
                .push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    Ok(())
}

/// A duration from the environment variable `name` (humantime: `30s`, `1h`).
fn duration_from_env(name: &str, env: Env<'_>) -> Result<Option<Duration>> {
    let Some(v) = text(env, name)? else {
        return Ok(None);
    };
    humantime::parse_duration(v.trim())
        .map(Some)
        .map_err(|e| Error::Settings(format!("{name}={v:?}: {e} (e.g. 30s, 10m, 1h)")))
}

/// A duration in whole milliseconds, as the journal keeps trial times.
pub(crate) fn millis(time: Duration) -> u64 {
    u64::try_from(time.as_millis()).unwrap_or(u64::MAX)
}

/// `trial` with the `LEAPFROG_CONFIRM_*` and `LEAPFROG_TRIAL_ATTEMPTS`
/// environment variables applied.
fn trial_from_env(mut trial: Trial, env: Env<'_>) -> Result<Trial> {
    let millis = |name: &str| -> Result<Option<u64>> {
        let Some(v) = text(env, name)? else {
            return Ok(None);
        };
        let time = humantime::parse_duration(v.trim())
            .map_err(|e| Error::Settings(format!("{name}={v:?}: {e} (e.g. 30s, 500ms)")))?;
        Ok(Some(millis(time)))
    };
    if let Some(ms) = millis(ENV_CONFIRM_AFTER)? {
        trial.confirm = Confirm::AfterMs(ms);
    }
    if let Some(ms) = millis(ENV_CONFIRM_WITHIN)? {
        trial.confirm = Confirm::WithinMs(ms);
    }
    if let Some(v) = text(env, ENV_TRIAL_ATTEMPTS)? {
        trial.attempts = v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| {
                Error::Settings(format!(
                    "{ENV_TRIAL_ATTEMPTS}={v:?}: not a whole number of at least 1"
                ))
            })?;
    }
    Ok(trial)
}

/// Whether `LEAPFROG_ASSUME_YES` is set to a true value.
fn assume_yes_from_env(env: Env<'_>) -> Result<bool> {
    Ok(text(env, ENV_ASSUME_YES)?.is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> Settings {
        let mut s = Settings::new("demo".into(), "1.0.0".into());
        s.manifest_url = Some("https://h/demo/versions.txt".into());
        s.install_dir = Some(dir.join("demo"));
        s.exe = Some("demo".into());
        s.allow_unsigned = true;
        s
    }

    #[test]
    fn the_environment_redirects_the_manifest_only_when_the_app_allows_it() {
        let dir = tempfile::tempdir().unwrap();
        let env = |name: &str| {
            let value = match name {
                ENV_MANIFEST_URL => "http://evil/versions.txt",
                ENV_MIRRORS => "http://evil-mirror/versions.txt",
                "LEAPFROG_RETRIES" => "7",
                _ => return None,
            };
            Some(value.into())
        };
        let resolved = settings(dir.path()).resolve_with(&env).unwrap();
        assert_eq!(resolved.manifest_url, "https://h/demo/versions.txt");
        assert!(resolved.settings.mirrors.is_empty());
        // Other variables still apply without the opt-in.
        assert_eq!(resolved.settings.limits.retries, 7);
        let mut allowed = settings(dir.path());
        allowed.env_manifest_url = true;
        let resolved = allowed.resolve_with(&env).unwrap();
        assert_eq!(resolved.manifest_url, "http://evil/versions.txt");
        assert_eq!(
            resolved.settings.mirrors,
            ["http://evil-mirror/versions.txt"]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_unicode_is_refused_not_ignored() {
        use std::os::unix::ffi::OsStringExt;
        let dir = tempfile::tempdir().unwrap();
        let env = |name: &str| {
            (name == "LEAPFROG_AUTH_TOKEN").then(|| std::ffi::OsString::from_vec(vec![0xff, b'x']))
        };
        let err = match settings(dir.path()).resolve_with(&env) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a token that is not Unicode was ignored"),
        };
        assert!(
            err.contains("LEAPFROG_AUTH_TOKEN") && err.contains("not valid Unicode"),
            "{err}"
        );
    }

    #[test]
    fn unsigned_updates_must_be_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let mut unsigned = settings(dir.path());
        unsigned.allow_unsigned = false;
        let err = match unsigned.resolve_with(&|_| None) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("an app without a key and without allow_unsigned was built"),
        };
        assert!(
            err.contains("no public key") && err.contains("allow_unsigned"),
            "{err}"
        );
        assert!(settings(dir.path()).resolve_with(&|_| None).is_ok());
    }

    #[test]
    fn a_relative_config_path_is_found_beside_the_executable() {
        let exe_dir = std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .to_owned();
        let data = exe_dir.join(format!("leapfrog-config-test-{}", std::process::id()));
        std::fs::create_dir_all(data.join("data")).unwrap();
        std::fs::write(
            data.join("data/config.json"),
            r#"{"Update_app":{"server":"http://h","api_get_version":"v.txt","main_app_name":"demo","current_version":"1.0.0"}}"#,
        )
        .unwrap();
        let rel = Path::new(data.file_name().unwrap()).join("data/config.json");
        let found = Settings::from_config(&rel);
        std::fs::remove_dir_all(&data).unwrap();
        let found = found.unwrap();
        assert_eq!(found.install_dir.as_deref(), Some(data.as_path()));
        assert_eq!(found.manifest_url.as_deref(), Some("http://h/v.txt"));
    }
}
