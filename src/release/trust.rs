//! What a release must pass to be trusted beyond its signature: a signed
//! manifest must be fresh (unexpired, not older than one accepted before),
//! and its archive and notes must lie beside it ([`resolve`]).
//!
//! What an install remembers between checks, the [`State`]: the newest
//! signed manifest it accepted (its serial and hash, against replays of
//! older ones) and the keys a signed manifest announced for rotation. It is
//! kept in `<install>/.leapfrog-state.json`, a file no release may ship, so
//! it survives updates and rollbacks as the user's files do.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::manifest::Manifest;
use crate::error::{io_err, Error, Result};

/// The state file's name in the install dir.
pub const STATE_NAME: &str = crate::layout::STATE;
const STATE_FORMAT: u32 = 1;

/// The remembered state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Always 1.
    pub format: u32,
    /// The highest manifest serial accepted.
    pub serial: Option<u64>,
    /// The sha256 of the manifest accepted with that serial.
    pub manifest_sha256: Option<String>,
    /// Public keys (base64) announced by trusted manifests through `next_key`.
    #[serde(default)]
    pub next_keys: Vec<String>,
    /// This install's random id (128 bits, hex), which places it in staged
    /// rollouts; made once, when a rollout first needs it. Nothing else
    /// about the install or its user is in it.
    #[serde(default)]
    pub install_id: Option<String>,
    /// A version the user chose to skip ("Skip this version"): not offered
    /// again unless required, or until a newer one appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// A version the user put off ("Remind me later"), and until when
    /// (seconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind: Option<Reminder>,
    /// When this install last checked for updates (seconds since the Unix
    /// epoch), and how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<LastCheck>,
    /// When this install first ran its first-run hooks (seconds since the
    /// Unix epoch), and at which version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_run: Option<FirstRun>,
    /// The day (days since the Unix epoch) of this install's last adoption
    /// ping, when the app turned pings on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ping: Option<u64>,
    /// The highest freshness file serial accepted (`versions.txt.fresh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh_serial: Option<u64>,
    /// The sha256 of the freshness file accepted with that serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh_sha256: Option<String>,
    /// When the next automatic check may run at the earliest (seconds
    /// since the Unix epoch), after failures or a host's `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check: Option<u64>,
    /// Automatic checks that failed in a row (the backoff grows with it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_checks: u32,
    /// The last verified copy of each document a check fetched (the
    /// manifest, its freshness file or signature), with the validators
    /// to ask the host whether it changed.
    #[serde(default, skip_serializing_if = "Cache::is_empty")]
    pub cache: Cache,
    /// Fields a later leapfrog wrote, kept as they were.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Verified copies of small documents, by URL.
pub type Cache = std::collections::BTreeMap<String, CachedDoc>;

/// A verified copy of a small document and its validators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedDoc {
    /// What to send to ask whether it changed.
    #[serde(flatten)]
    pub validators: crate::fetch::Validators,
    /// The text.
    pub text: String,
}

/// The first run of an install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstRun {
    /// The version that ran first.
    pub version: String,
    /// When, in seconds since the Unix epoch.
    pub at: u64,
}

/// "Remind me later": `version` is not offered again before `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    /// The version put off.
    pub version: String,
    /// Until when, in seconds since the Unix epoch.
    pub until: u64,
}

/// The last update check of an install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCheck {
    /// When, in seconds since the Unix epoch.
    pub at: u64,
    /// What it found, in a few words.
    pub result: String,
}

impl State {
    /// The state file of an install dir.
    pub fn path_in(install_dir: &Path) -> PathBuf {
        install_dir.join(STATE_NAME)
    }

    /// Reads the state; an absent file is the empty state. A damaged one is
    /// an error, never silently forgotten (that would allow a replay).
    pub fn read(install_dir: &Path) -> Result<State> {
        let path = State::path_in(install_dir);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    format: STATE_FORMAT,
                    ..State::default()
                })
            }
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        let state: State = serde_json::from_slice(&text).map_err(|e| {
            Error::Settings(format!(
                "{} is damaged ({e}); delete it to trust the next signed manifest afresh",
                path.display()
            ))
        })?;
        if state.format != STATE_FORMAT {
            return Err(Error::Settings(format!(
                "{} has format {}, not {STATE_FORMAT}",
                path.display(),
                state.format
            )));
        }
        Ok(state)
    }

    /// Writes the state atomically.
    pub fn write(&self, install_dir: &Path) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(self).expect("state serialises");
        text.push(b'\n');
        crate::os::write_atomic(&State::path_in(install_dir), &text)
    }
}

/// A signed manifest must carry a serial and an expiry, be unexpired at
/// `now` (`None`: a freshness file vouches for it instead), and not be
/// older than (or, at the same serial, differ from) one accepted before.
pub(crate) fn check_fresh(
    manifest: &Manifest,
    url: &str,
    sha256: &str,
    seen: Option<&State>,
    now: Option<std::time::SystemTime>,
) -> Result<()> {
    let (Some(serial), Some(expires)) = (manifest.serial, &manifest.expires) else {
        return Err(Error::Signature {
            url: url.to_owned(),
            reason: "a signed manifest must carry `serial` and `expires`; publish it with leapfrog"
                .into(),
            source: None,
        });
    };
    if let Some(now) = now {
        unexpired(expires, now, url)?;
    }
    let seen = seen.map(|s| (s.serial, s.manifest_sha256.as_deref()));
    not_older(serial, sha256, seen, url)
}

/// A freshness file must be unexpired at `now`, and not be older than (or,
/// at the same serial, differ from) one accepted before.
pub(crate) fn check_fresh_file(
    fresh: &super::freshness::Freshness,
    url: &str,
    sha256: &str,
    seen: Option<&State>,
    now: std::time::SystemTime,
) -> Result<()> {
    unexpired(&fresh.expires, now, url)?;
    let seen = seen.map(|s| (s.fresh_serial, s.fresh_sha256.as_deref()));
    not_older(fresh.serial, sha256, seen, url)
}

fn unexpired(expires: &str, now: std::time::SystemTime, url: &str) -> Result<()> {
    let deadline = humantime::parse_rfc3339(expires).map_err(|e| Error::Signature {
        url: url.to_owned(),
        reason: format!("its expiry {expires:?} is not a time ({e})"),
        source: None,
    })?;
    if now > deadline {
        return Err(Error::Expired {
            url: url.to_owned(),
            expires: expires.to_owned(),
        });
    }
    Ok(())
}

fn not_older(
    serial: u64,
    sha256: &str,
    seen: Option<(Option<u64>, Option<&str>)>,
    url: &str,
) -> Result<()> {
    if let Some((Some(highest), seen_sha256)) = seen {
        if serial < highest {
            return Err(Error::Rollback {
                url: url.to_owned(),
                reason: format!("its serial {serial} is lower than {highest}, accepted before"),
            });
        }
        if serial == highest && seen_sha256.is_some_and(|h| h != sha256) {
            return Err(Error::Rollback {
                url: url.to_owned(),
                reason: format!("serial {serial} was accepted before with other content"),
            });
        }
    }
    Ok(())
}

/// A new random install id: 128 bits from the operating system, in hex.
pub(crate) fn new_install_id() -> String {
    let mut bytes = [0u8; 16];
    if let Err(e) = getrandom::getrandom(&mut bytes) {
        // Without the system's randomness, time and pid still spread
        // installs over the buckets.
        log::warn!("no system randomness for the install id ({e}); using the clock");
        use sha2::Digest;
        let seed = format!("{:?} {}", std::time::SystemTime::now(), std::process::id());
        bytes.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes())[..16]);
    }
    hex::encode(bytes)
}

/// Resolves `reference` (an archive's or notes file's location in the
/// manifest at `manifest_url`) against the manifest's location, and refuses
/// one that leaves it: beside a URL manifest, the result must keep the
/// manifest's scheme, host and port (so https is never downgraded, and an
/// http manifest cannot point at `file://` or `ftp://`); beside a file
/// manifest (`file://` or a path), it must lie in the manifest's folder or
/// below. The error says why, naming both locations.
pub fn resolve(manifest_url: &str, reference: &str) -> std::result::Result<String, String> {
    let outside = |to: &str| {
        format!(
            "{reference:?} leads to {to}, away from the manifest at {}: an archive or notes file \
             must be served beside its manifest (same scheme and host, or the same folder)",
            crate::fetch::redact(manifest_url)
        )
    };
    if manifest_url.contains("://") {
        let base = url::Url::parse(manifest_url)
            .map_err(|e| format!("the manifest URL cannot be read ({e})"))?;
        let joined = base
            .join(reference)
            .map_err(|e| format!("{reference:?} is not a valid location ({e})"))?;
        let shown = crate::fetch::redact(joined.as_str());
        let same_origin = joined.scheme() == base.scheme()
            && joined.host_str() == base.host_str()
            && joined.port_or_known_default() == base.port_or_known_default();
        if !same_origin {
            return Err(outside(&shown));
        }
        if base.scheme() == "file" {
            let folder = base.join(".").map_err(|e| e.to_string())?;
            if !joined.path().starts_with(folder.path()) {
                return Err(outside(&shown));
            }
        }
        return Ok(joined.into());
    }
    let parts: Vec<&str> = reference.split(['/', '\\']).collect();
    if reference.contains("://")
        || reference.starts_with(['/', '\\'])
        || reference.contains(':')
        || parts.contains(&"..")
    {
        return Err(outside(reference));
    }
    let base = match manifest_url.rfind(['/', '\\']) {
        Some(i) => &manifest_url[..=i],
        None => "",
    };
    Ok(format!("{base}{reference}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_references() {
        let ok = |m: &str, r: &str| resolve(m, r).unwrap();
        assert_eq!(
            ok("http://h/a/versions.txt", "d.tar.gz"),
            "http://h/a/d.tar.gz"
        );
        assert_eq!(
            ok("http://h/a/versions.txt", "/b/d.tar.gz"),
            "http://h/b/d.tar.gz"
        );
        assert_eq!(ok("http://h/a/versions.txt", "http://h:80/x"), "http://h/x");
        // A `/` in the manifest's query does not move the folder.
        assert_eq!(
            ok("https://h/a/versions.txt?sig=x/y", "d.tar.gz"),
            "https://h/a/d.tar.gz"
        );
        assert_eq!(ok("/srv/rel/versions.txt", "d.tar.gz"), "/srv/rel/d.tar.gz");
        assert_eq!(
            ok("/srv/rel/versions.txt", "sub/d.tar.gz"),
            "/srv/rel/sub/d.tar.gz"
        );
        assert_eq!(ok("versions.txt", "d.tar.gz"), "d.tar.gz");
        assert_eq!(
            ok("file:///srv/rel/versions.txt", "d.tar.gz"),
            "file:///srv/rel/d.tar.gz"
        );
    }

    #[test]
    fn references_that_leave_the_manifest_are_refused() {
        for (m, r) in [
            ("http://h/a/versions.txt", "https://o/d.tar.gz"),
            ("https://h/a/versions.txt", "http://h/a/d.tar.gz"),
            ("http://h/a/versions.txt", "file:///etc/hostname"),
            ("http://h/a/versions.txt", "ftp://h/d.tar.gz"),
            ("http://h/a/versions.txt", "//o/d.tar.gz"),
            ("http://h/a/versions.txt", "http://h:8080/d.tar.gz"),
            ("/srv/rel/versions.txt", "../outside.tar.gz"),
            ("/srv/rel/versions.txt", "/etc/hostname"),
            ("/srv/rel/versions.txt", "file:///etc/hostname"),
            ("/srv/rel/versions.txt", "C:\\x"),
            ("file:///srv/rel/versions.txt", "../outside.tar.gz"),
            ("file:///srv/rel/versions.txt", "/etc/hostname"),
        ] {
            let err = resolve(m, r).unwrap_err();
            assert!(err.contains("away from the manifest"), "{m} {r}: {err}");
        }
    }
}
