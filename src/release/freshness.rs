//! The freshness file, `versions.txt.fresh`: the small signed document a
//! client fetches at every check, so that the manifest itself is fetched
//! only when it changed.
//!
//! ```text
//! # leapfrog freshness v1
//! serial 14
//! signed 2026-12-06T06:00:00Z
//! expires 2026-12-13T06:00:00Z
//! manifest versions.txt sha256=<64 hex> size=1234
//! untrusted comment: signature from leapfrog secret key
//! RUQ...
//! trusted comment: leapfrog versions.txt.fresh serial 14
//! ...
//! ```
//!
//! The lines above `untrusted comment:` are signed (a minisign signature
//! follows them in the same file, so one request fetches both and a cache
//! can never pair them across versions). The file binds the manifest by
//! hash: a `versions.txt` that does not hash to it is another version of
//! the manifest (a cache between holding an older or newer copy), never
//! trusted. `serial` rises with every publish and every `leapfrog
//! refresh`; `expires` bounds how long the pair is trusted, so a refresh
//! re-signs only this file and the manifest's cached copies stay valid.

use crate::error::{Error, Result};
use crate::release::signature::PublicKey;

/// The freshness file's suffix: `versions.txt.fresh`.
pub const FRESH_SUFFIX: &str = ".fresh";
/// The largest freshness file accepted.
pub const MAX_FRESH_BYTES: u64 = 4096;
const HEADER: &str = "# leapfrog freshness v1";

/// Whether `text` is a freshness file at all (its first line), as opposed
/// to an error page or a host's answer for any path.
pub fn looks_like(text: &str) -> bool {
    text.lines().next().map(str::trim) == Some(HEADER)
}

/// The signed lines and the signature of a freshness file.
pub fn split(text: &str) -> Option<(&str, &str)> {
    let at = text
        .match_indices(SIGNATURE_START)
        .map(|(i, _)| i)
        .find(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n')?;
    Some(text.split_at(at))
}
const SIGNATURE_START: &str = "untrusted comment:";

/// What a freshness file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// Rises with every publish and refresh.
    pub serial: u64,
    /// When it was signed (RFC 3339): the latest time rollout schedules
    /// are read at.
    pub signed: String,
    /// Until when the pair is trusted (RFC 3339).
    pub expires: String,
    /// The manifest's file name beside it.
    pub manifest: String,
    /// The manifest's sha256 (hex).
    pub sha256: String,
    /// The manifest's size in bytes.
    pub size: u64,
}

impl Freshness {
    /// The signed lines.
    pub fn body(&self) -> String {
        format!(
            "{HEADER}\nserial {}\nsigned {}\nexpires {}\nmanifest {} sha256={} size={}\n",
            self.serial, self.signed, self.expires, self.manifest, self.sha256, self.size
        )
    }

    /// Reads the signed lines of a freshness file (`origin` names it in
    /// errors).
    pub fn parse(body: &str, origin: &str) -> Result<Freshness> {
        let bad = |line: usize, message: String| Error::Manifest {
            origin: origin.to_owned(),
            line,
            message,
        };
        let mut lines = body.lines().enumerate();
        if lines.next().map(|(_, l)| l.trim()) != Some(HEADER) {
            return Err(bad(
                1,
                format!("not a freshness file: the first line must be {HEADER:?}"),
            ));
        }
        let (mut serial, mut signed, mut expires, mut manifest) = (None, None, None, None);
        for (i, line) in lines {
            let line = line.trim();
            let n = i + 1;
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "" => {}
                k if k.starts_with('#') => {}
                "serial" => {
                    serial = Some(
                        rest.trim()
                            .parse::<u64>()
                            .ok()
                            .filter(|s| *s <= crate::release::manifest::MAX_SERIAL)
                            .ok_or_else(|| bad(n, format!("serial {rest:?} is not a number")))?,
                    );
                }
                "signed" | "expires" => {
                    humantime::parse_rfc3339(rest.trim()).map_err(|e| {
                        bad(n, format!("{key} {rest:?} is not an RFC 3339 time ({e})"))
                    })?;
                    let slot = if key == "signed" {
                        &mut signed
                    } else {
                        &mut expires
                    };
                    *slot = Some(rest.trim().to_owned());
                }
                "manifest" => {
                    let mut fields = rest.split_whitespace();
                    let name = fields.next().unwrap_or_default().to_owned();
                    let (mut sha256, mut size) = (None, None);
                    for field in fields {
                        match field.split_once('=') {
                            Some(("sha256", v))
                                if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) =>
                            {
                                sha256 = Some(v.to_ascii_lowercase());
                            }
                            Some(("size", v)) => size = v.parse::<u64>().ok(),
                            _ => {}
                        }
                    }
                    let plain = !name.is_empty()
                        && !name.contains(['/', '\\', ':'])
                        && name != ".."
                        && name != ".";
                    match (plain, sha256, size) {
                        (true, Some(sha256), Some(size)) => manifest = Some((name, sha256, size)),
                        _ => {
                            return Err(bad(
                                n,
                                "the manifest line must be `manifest <file name> sha256=<64 hex> size=<bytes>`"
                                    .into(),
                            ))
                        }
                    }
                }
                // Later fields are ignored, as in the manifest.
                _ => {}
            }
        }
        let missing = |what: &str| bad(0, format!("no `{what}` line"));
        let (manifest, sha256, size) = manifest.ok_or_else(|| missing("manifest"))?;
        Ok(Freshness {
            serial: serial.ok_or_else(|| missing("serial"))?,
            signed: signed.ok_or_else(|| missing("signed"))?,
            expires: expires.ok_or_else(|| missing("expires"))?,
            manifest,
            sha256,
            size,
        })
    }
}

/// Checks a freshness file's signature by one of `keys` and reads it;
/// returns what it says, the sha256 of its signed lines and which key
/// signed it. `url` names it
/// in errors.
pub fn verify(text: &str, keys: &[PublicKey], url: &str) -> Result<(Freshness, String, usize)> {
    let (body, signature) = split(text).ok_or_else(|| Error::Signature {
        url: url.to_owned(),
        reason: "the freshness file carries no signature".into(),
        source: None,
    })?;
    let which = crate::release::signature::verify(body.as_bytes(), signature, keys, url)?;
    let fresh = Freshness::parse(body, url)?;
    let sha256 = crate::release::hash::sha256_bytes(body.as_bytes());
    Ok((fresh, sha256, which))
}

/// The freshness file `fresh` says, signed with the secret key in
/// `secret_key` (publishers: the `sign` feature).
pub fn sign(
    fresh: &Freshness,
    secret_key: &std::path::Path,
    password: Option<String>,
) -> Result<String> {
    #[cfg(not(feature = "sign"))]
    {
        let _ = (fresh.body(), secret_key, password);
        Err(Error::Publish(
            "built without the `sign` feature: cannot sign".into(),
        ))
    }
    #[cfg(feature = "sign")]
    sign_with(fresh, secret_key, password)
}

#[cfg(feature = "sign")]
fn sign_with(
    fresh: &Freshness,
    secret_key: &std::path::Path,
    password: Option<String>,
) -> Result<String> {
    let body = fresh.body();
    let comment = format!(
        "leapfrog {}{FRESH_SUFFIX} serial {}",
        fresh.manifest, fresh.serial
    );
    let signature =
        crate::release::signature::sign(secret_key, password, body.as_bytes(), &comment)?;
    Ok(body + &signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Freshness {
        Freshness {
            serial: 7,
            signed: "2026-12-06T06:00:00Z".into(),
            expires: "2026-12-13T06:00:00Z".into(),
            manifest: "versions.txt".into(),
            sha256: "ab".repeat(32),
            size: 321,
        }
    }

    #[test]
    fn body_reads_back() {
        let fresh = sample();
        assert_eq!(Freshness::parse(&fresh.body(), "f").unwrap(), fresh);
        assert!(fresh.body().len() < 250, "{}", fresh.body().len());
    }

    #[test]
    fn a_manifest_name_with_a_path_is_refused() {
        for name in ["../versions.txt", "a/versions.txt", "c:versions.txt", ".."] {
            let body = Freshness {
                manifest: name.into(),
                ..sample()
            }
            .body();
            let e = Freshness::parse(&body, "f").unwrap_err().to_string();
            assert!(e.contains("the manifest line must be"), "{name}: {e}");
        }
    }

    #[test]
    fn missing_lines_are_named() {
        let body = sample().body().replace("serial 7\n", "");
        let e = Freshness::parse(&body, "f").unwrap_err().to_string();
        assert!(e.contains("no `serial` line"), "{e}");
        let e = Freshness::parse("serial 1\n", "f").unwrap_err().to_string();
        assert!(e.contains("not a freshness file"), "{e}");
    }

    #[cfg(feature = "sign")]
    #[test]
    fn signed_file_verifies_and_any_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = (dir.path().join("k.key"), dir.path().join("k.pub"));
        crate::release::signature::keygen(&sk, &pk, None).unwrap();
        let key = crate::release::signature::read_public_key(&pk).unwrap();
        let text = sign(&sample(), &sk, None).unwrap();
        assert!(text.len() < 600, "{}", text.len());
        let (fresh, _, which) = verify(&text, std::slice::from_ref(&key), "f").unwrap();
        assert_eq!(which, 0);
        assert_eq!(fresh, sample());
        let changed = text.replace("serial 7", "serial 8");
        let e = verify(&changed, std::slice::from_ref(&key), "f").unwrap_err();
        assert!(matches!(e, Error::Signature { .. }), "{e}");
        let unsigned = sample().body();
        let e = verify(&unsigned, &[key], "f").unwrap_err().to_string();
        assert!(e.contains("no signature"), "{e}");
    }
}
