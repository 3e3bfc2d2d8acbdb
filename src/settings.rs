//! Where an app's update settings come from: the builder, `LEAPFROG_*`
//! environment variables, and a `data/config.json` with an `Update_app` block:
//!
//! ```json
//! { "Update_app": {
//!     "server": "https://downloads.example.com/demo",
//!     "api_get_version": "versions.txt",
//!     "main_app_name": "demo",
//!     "update_zip_name": "demo-{version}.tar.gz",
//!     "current_version": "1.0.0",
//!     "public_key": "RWQ...base64 of the minisign public key (optional)" } }
//! ```
//!
//! The manifest URL is `server` + `/` + `api_get_version`. `main_app_name` is
//! the program's name and the executable that relaunches (relative to the
//! install dir). `update_zip_name`, with `{version}` replaced, is the archive
//! name used when a manifest line names none. `current_version` is rewritten
//! after an update.
//!
//! Environment variables, read by [`crate::UpdaterBuilder::build`]:
//! `LEAPFROG_MANIFEST_URL`, `LEAPFROG_MIRRORS`, `LEAPFROG_BACKUP_DIR`,
//! `LEAPFROG_ASSUME_YES=1`, and those of [`crate::fetch::Limits::apply_env`]
//! (timeouts, retries, credentials). Credentials are never logged.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{io_err, Error, Result};

/// The environment variable that overrides the manifest URL.
pub const ENV_MANIFEST_URL: &str = "LEAPFROG_MANIFEST_URL";
/// The environment variable that overrides the backup dir.
pub const ENV_BACKUP_DIR: &str = "LEAPFROG_BACKUP_DIR";
/// The environment variable with mirror manifest URLs (whitespace-separated).
pub const ENV_MIRRORS: &str = "LEAPFROG_MIRRORS";
/// The environment variable that, set to `1`, answers yes without asking.
pub const ENV_ASSUME_YES: &str = "LEAPFROG_ASSUME_YES";

/// The environment variable with the time after which a new version counts
/// as healthy on its trial launch (e.g. `30s`).
pub const ENV_CONFIRM_AFTER: &str = "LEAPFROG_CONFIRM_AFTER";
/// The environment variable with the time within which a new version must
/// confirm it works on its trial launch (e.g. `60s`).
pub const ENV_CONFIRM_WITHIN: &str = "LEAPFROG_CONFIRM_WITHIN";
/// The environment variable with the number of trial launches that may fail.
pub const ENV_TRIAL_ATTEMPTS: &str = "LEAPFROG_TRIAL_ATTEMPTS";
/// How long to wait before trying again a release that failed here through
/// no fault of its own (e.g. `1h`).
pub const ENV_RETRY_AFTER: &str = "LEAPFROG_RETRY_AFTER";

/// A duration from the environment variable `name` (humantime: `30s`, `1h`).
pub(crate) fn duration_from_env(name: &str) -> Result<Option<std::time::Duration>> {
    let Ok(v) = std::env::var(name) else {
        return Ok(None);
    };
    humantime::parse_duration(v.trim())
        .map(Some)
        .map_err(|e| Error::Settings(format!("{name}={v:?}: {e} (e.g. 30s, 10m, 1h)")))
}

/// A duration in whole milliseconds, as the journal keeps trial times.
pub(crate) fn millis(time: std::time::Duration) -> u64 {
    u64::try_from(time.as_millis()).unwrap_or(u64::MAX)
}

/// `trial` with the `LEAPFROG_CONFIRM_*` and `LEAPFROG_TRIAL_ATTEMPTS`
/// environment variables applied.
pub(crate) fn trial_from_env(mut trial: crate::journal::Trial) -> Result<crate::journal::Trial> {
    use crate::journal::Confirm;
    let millis = |name: &str| -> Result<Option<u64>> {
        let Ok(v) = std::env::var(name) else {
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
    if let Ok(v) = std::env::var(ENV_TRIAL_ATTEMPTS) {
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

/// The `Update_app` block of a `data/config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// Base URL (or folder) of the release host.
    pub server: String,
    /// The manifest's name or path below `server`.
    pub api_get_version: String,
    /// The program's name and its executable, relative to the install dir.
    pub main_app_name: String,
    /// Archive name template, `{version}` replaced.
    pub update_zip_name: Option<String>,
    /// The installed version.
    pub current_version: String,
    /// The publisher's minisign public key (base64), if updates are signed.
    pub public_key: Option<String>,
    /// Other manifest URLs to try in order (`mirrors`, a list).
    pub mirrors: Vec<String>,
    /// Credentials for a private host (`auth_user`, `auth_password`,
    /// `auth_token`, `headers` as an object).
    pub credentials: crate::fetch::Credentials,
}

impl AppConfig {
    /// Reads the `Update_app` block of `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<AppConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(io_err("reading", path))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| {
            Error::Settings(format!(
                "{}:{}: not valid JSON: {e}",
                path.display(),
                e.line()
            ))
        })?;
        let block = doc.get("Update_app").ok_or_else(|| {
            Error::Settings(format!("{}: has no \"Update_app\" block", path.display()))
        })?;
        let field = |name: &str| -> Result<String> {
            match block.get(name) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(_) => Err(Error::Settings(format!(
                    "{}: Update_app.{name} must be a non-empty string",
                    path.display()
                ))),
                None => Err(Error::Settings(format!(
                    "{}: Update_app.{name} is missing",
                    path.display()
                ))),
            }
        };
        Ok(AppConfig {
            path: path.to_owned(),
            server: field("server")?,
            api_get_version: field("api_get_version")?,
            main_app_name: field("main_app_name")?,
            update_zip_name: field("update_zip_name").ok(),
            current_version: field("current_version")?,
            public_key: field("public_key").ok(),
            mirrors: match block.get("mirrors") {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        Error::Settings(format!(
                            "{}: Update_app.mirrors must be a list of URLs",
                            path.display()
                        ))
                    })?,
                Some(_) => {
                    return Err(Error::Settings(format!(
                        "{}: Update_app.mirrors must be a list of URLs",
                        path.display()
                    )))
                }
            },
            credentials: crate::fetch::Credentials {
                basic: field("auth_user")
                    .ok()
                    .map(|user| (user, field("auth_password").unwrap_or_default())),
                bearer: field("auth_token").ok(),
                headers: match block.get("headers") {
                    None => Vec::new(),
                    Some(Value::Object(map)) => map
                        .iter()
                        .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| {
                            Error::Settings(format!(
                                "{}: Update_app.headers values must be strings",
                                path.display()
                            ))
                        })?,
                    Some(_) => {
                        return Err(Error::Settings(format!(
                            "{}: Update_app.headers must be an object",
                            path.display()
                        )))
                    }
                },
            },
        })
    }

    /// `server` joined with `api_get_version`.
    pub fn manifest_url(&self) -> String {
        if self.api_get_version.contains("://") {
            return self.api_get_version.clone();
        }
        format!(
            "{}/{}",
            self.server.trim_end_matches('/'),
            self.api_get_version.trim_start_matches('/')
        )
    }
}

/// Rewrites `Update_app.current_version` in the config file at `path`,
/// keeping every other field and their order, atomically. Does nothing when
/// the value is already `version`.
pub fn write_current_version(path: &Path, version: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(io_err("reading", path))?;
    let mut doc: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Settings(format!("{}: not valid JSON: {e}", path.display())))?;
    let slot = doc
        .get_mut("Update_app")
        .and_then(|b| b.as_object_mut())
        .ok_or_else(|| {
            Error::Settings(format!("{}: has no \"Update_app\" block", path.display()))
        })?;
    if slot.get("current_version").and_then(Value::as_str) == Some(version) {
        return Ok(());
    }
    slot.insert("current_version".into(), Value::String(version.to_owned()));
    let mut out = serde_json::to_string_pretty(&doc).expect("a JSON value renders");
    out.push('\n');
    crate::os::write_atomic(path, out.as_bytes())
}

/// Whether `LEAPFROG_ASSUME_YES` is set to a true value.
pub fn assume_yes_from_env() -> bool {
    std::env::var(ENV_ASSUME_YES).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_rewrites_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"theme":"dark","Update_app":{"server":"http://h/rel/","api_get_version":"versions.txt","main_app_name":"demo","update_zip_name":"demo-{version}.tar.gz","current_version":"1.0.0"},"z":1}"#,
        )
        .unwrap();
        let config = AppConfig::read(&path).unwrap();
        assert_eq!(config.manifest_url(), "http://h/rel/versions.txt");
        assert_eq!(config.main_app_name, "demo");
        write_current_version(&path, "1.1.0").unwrap();
        let again = AppConfig::read(&path).unwrap();
        assert_eq!(again.current_version, "1.1.0");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.find("theme").unwrap() < text.find("Update_app").unwrap(),
            "{text}"
        );
        assert!(text.contains("\"z\": 1"), "{text}");
    }

    #[test]
    fn reads_mirrors_and_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"Update_app":{"server":"https://h","api_get_version":"v.txt","main_app_name":"demo","current_version":"1.0.0",
                "mirrors":["https://m1/v.txt","ftp://m2/v.txt"],"auth_user":"bob","auth_password":"pw","auth_token":"tok",
                "headers":{"X-Key":"k"},"public_key":"RWQ"}}"#,
        )
        .unwrap();
        let config = AppConfig::read(&path).unwrap();
        assert_eq!(config.mirrors, ["https://m1/v.txt", "ftp://m2/v.txt"]);
        assert_eq!(config.credentials.basic, Some(("bob".into(), "pw".into())));
        assert_eq!(config.credentials.bearer.as_deref(), Some("tok"));
        assert_eq!(
            config.credentials.headers,
            [("X-Key".to_owned(), "k".to_owned())]
        );
        assert!(!format!("{config:?}").contains("\"pw\""));
        std::fs::write(&path, r#"{"Update_app":{"server":"h","api_get_version":"v","main_app_name":"d","current_version":"1.0.0","mirrors":"x"}}"#).unwrap();
        assert!(AppConfig::read(&path)
            .unwrap_err()
            .to_string()
            .contains("mirrors must be a list"));
    }

    #[test]
    fn missing_fields_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"Update_app":{"server":"x"}}"#).unwrap();
        let err = AppConfig::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("Update_app.api_get_version is missing"),
            "{err}"
        );
    }
}
