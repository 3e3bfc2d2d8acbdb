//! `data/config.json`: the `Update_app` block an app may keep its update
//! settings in (read through serde_json, every other field and their order
//! kept when `current_version` is rewritten).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{io_err, Error, Result};

/// The `Update_app` block of a `data/config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppConfig {
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
    /// The release channel followed (`channel`).
    pub channel: Option<String>,
    /// The installed version.
    pub current_version: String,
    /// The publisher's minisign public key (base64), if updates are signed.
    pub public_key: Option<String>,
    /// Whether updates without a signature are meant (`allow_unsigned`).
    pub allow_unsigned: bool,
    /// Other manifest URLs to try in order (`mirrors`, a list).
    pub mirrors: Vec<String>,
    /// Commands the release names for its lifecycle hooks
    /// (`first_run_command`, `before_update_command`,
    /// `after_update_command`: a program the release ships, relative to the
    /// install dir, and its arguments, separated by spaces).
    pub hook_commands: Vec<(crate::hooks::Lifecycle, Vec<String>)>,
    /// Whether the app sends adoption pings (`adoption_ping`).
    pub adoption_ping: bool,
    /// The time each hook may take (`hook_time_limit`, e.g. `"30s"`).
    pub hook_time_limit: Option<std::time::Duration>,
    /// Credentials for a private host (`auth_user`, `auth_password`,
    /// `auth_token`, `headers` as an object).
    pub credentials: crate::fetch::Credentials,
}

impl AppConfig {
    /// Reads the `Update_app` block of `path`.
    pub(crate) fn read(path: impl AsRef<Path>) -> Result<AppConfig> {
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
            channel: field("channel").ok(),
            current_version: field("current_version")?,
            public_key: field("public_key").ok(),
            allow_unsigned: block.get("allow_unsigned").and_then(Value::as_bool) == Some(true),
            adoption_ping: block.get("adoption_ping").and_then(Value::as_bool) == Some(true),
            hook_commands: {
                use crate::hooks::Lifecycle;
                let mut commands = Vec::new();
                for when in [Lifecycle::FirstRun, Lifecycle::BeforeUpdate, Lifecycle::AfterUpdate] {
                    if let Ok(line) = field(&format!("{}_command", when.name())) {
                        commands.push((when, line.split_whitespace().map(str::to_owned).collect()));
                    }
                }
                commands
            },
            hook_time_limit: match field("hook_time_limit") {
                Ok(text) => Some(humantime::parse_duration(&text).map_err(|e| {
                    Error::Settings(format!(
                        "{}: Update_app.hook_time_limit {text:?}: {e} (write e.g. \"30s\" or \"2m\")",
                        path.display()
                    ))
                })?),
                Err(_) => None,
            },
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
    pub(crate) fn manifest_url(&self) -> String {
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
pub(crate) fn write_current_version(path: &Path, version: &str) -> Result<()> {
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
