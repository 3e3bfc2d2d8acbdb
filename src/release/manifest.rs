//! `versions.txt`, the manifest: parse, render, pick a release.
//!
//! ```text
//! # leapfrog versions v1
//! serial 12
//! expires 2027-01-31T00:00:00Z
//! demo 1.1.0 file=demo-1.1.0.tar.gz sha256=<64 hex> size=<bytes> notes=demo-1.1.0.txt
//! demo 1.0.0
//! ```
//!
//! One release a line, `program version` and optional `key=value` fields. The
//! bare two-word lines of the original design still parse. Unknown keys are kept
//! (and rendered back) so that later fields do not break older clients. The
//! first line may carry the format marker; a marker of another format version is
//! a hard error, never a guess.
//!
//! A JSON document `{latest_version, download_url, release_notes, checksum}` is
//! accepted too (see [`Manifest::parse_json`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use semver::Version;

use crate::error::{Error, Result};

/// The largest serial a manifest may carry (2^53 - 1: exact in every JSON
/// reader too). Publishing never raises a serial past it, so it never wraps.
pub const MAX_SERIAL: u64 = (1 << 53) - 1;

/// The format version this library reads and writes.
pub const FORMAT_VERSION: u32 = 1;
const MARKER: &str = "# leapfrog versions v";

/// A parsed manifest.
///
/// ```
/// let text = "# leapfrog versions v1\ndemo 1.1.0 size=1024\n";
/// let manifest = leapfrog::Manifest::parse(text, "versions.txt")?;
/// assert_eq!(manifest.newest("demo").unwrap().version.to_string(), "1.1.0");
/// # Ok::<(), leapfrog::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Raised by every publish.
    pub serial: Option<u64>,
    /// The instant after which the manifest should no longer be trusted (RFC 3339).
    pub expires: Option<String>,
    /// The publisher's next public key (base64), announced under the current
    /// key's signature, for key rotation.
    pub next_key: Option<String>,
    /// Every release line, in file order.
    pub releases: Vec<Release>,
}

/// One release line.
///
/// ```
/// # let manifest = leapfrog::Manifest::parse("# leapfrog versions v1\ndemo 1.1.0\n", "t")?;
/// let release: &leapfrog::Release = manifest.newest("demo").unwrap();
/// assert_eq!(release.file_name(), "demo-1.1.0.tar.gz");
/// # Ok::<(), leapfrog::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The program's name.
    pub program: String,
    /// Its version.
    pub version: Version,
    /// The archive, relative to the manifest's URL or absolute. `None` means
    /// the default name `<program>-<version>.tar.gz`.
    pub file: Option<String>,
    /// The archive's sha256, lowercase hex.
    pub sha256: Option<String>,
    /// The archive's size in bytes.
    pub size: Option<u64>,
    /// A release notes file next to the archive.
    pub notes: Option<String>,
    /// Release notes given inline (JSON manifests).
    pub notes_text: Option<String>,
    /// Withdrawn by the publisher (`yanked=true`): never installed, and
    /// programs running it may go back to the newest release not withdrawn.
    pub yanked: bool,
    /// The channel the release is published on (`channel=NAME`); `None` is
    /// [`DEFAULT_CHANNEL`].
    pub channel: Option<String>,
    /// The share of installs it is offered to, 0 to 100 (`rollout=N`);
    /// `None` is everyone. See [`Release::offered_to`].
    pub rollout: Option<u8>,
    /// Installs below this version must update (`min_version=X`): the
    /// update is required. A later release never lowers the floor an
    /// earlier one set (see [`Manifest::floor`]).
    pub min_version: Option<Version>,
    /// A critical release (`critical=true`) is offered to every install of
    /// its channel, whatever its rollout, and is required.
    pub critical: bool,
    /// Fields this version of the library does not know, kept as they were.
    pub extra: BTreeMap<String, String>,
}

impl Release {
    /// A bare release: no archive details yet.
    pub fn new(program: impl Into<String>, version: Version) -> Self {
        Release {
            program: program.into(),
            version,
            file: None,
            sha256: None,
            size: None,
            notes: None,
            notes_text: None,
            yanked: false,
            channel: None,
            rollout: None,
            min_version: None,
            critical: false,
            extra: BTreeMap::new(),
        }
    }

    /// The channel the release is on.
    pub fn channel(&self) -> &str {
        self.channel.as_deref().unwrap_or(DEFAULT_CHANNEL)
    }

    /// The install's bucket for this release, in [0, 1): the first 32 bits
    /// of sha256(install id ‖ the release's salt) over 2^32. The salt is
    /// `program/version`, so each release draws new buckets, and raising a
    /// release's share keeps every install that was in.
    pub fn bucket(&self, install_id: &str) -> f64 {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(install_id.as_bytes());
        hash.update(format!("{}/{}", self.program, self.version).as_bytes());
        let digest = hash.finalize();
        let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        f64::from(first) / 4_294_967_296.0
    }

    /// Whether the staged rollout offers this release to the install with
    /// `install_id`: its bucket is below the release's share (0 % halts, no
    /// `rollout` is everyone).
    pub fn offered_to(&self, install_id: &str) -> bool {
        if self.critical {
            return true;
        }
        match self.rollout {
            None => true,
            Some(percent) => self.bucket(install_id) < f64::from(percent) / 100.0,
        }
    }

    /// The archive's file name or URL as written, or the default name.
    pub fn file_name(&self) -> String {
        self.file
            .clone()
            .unwrap_or_else(|| archive_name(&self.program, &self.version))
    }
}

/// The channel of a release that names none, and of an app that follows none.
pub const DEFAULT_CHANNEL: &str = "stable";

/// Who asks for an update: the channel an install follows and its install
/// id (for staged rollouts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    /// The channel followed; `None` is [`DEFAULT_CHANNEL`].
    pub channel: Option<String>,
    /// The install's id (hex); `None` takes every release whatever its
    /// rollout (a publisher's own tools).
    pub install_id: Option<String>,
}

impl Audience {
    /// The channel followed.
    pub fn channel(&self) -> &str {
        self.channel.as_deref().unwrap_or(DEFAULT_CHANNEL)
    }
}

/// The conventional archive name `<program>-<version>.tar.gz`.
pub fn archive_name(program: &str, version: &Version) -> String {
    format!("{program}-{version}.tar.gz")
}

/// Parses a version strictly as semver; `v1.2` or `1.2` are errors.
pub fn parse_version(text: &str) -> Result<Version> {
    Version::parse(text).map_err(|source| Error::Version {
        version: text.to_owned(),
        source,
    })
}

fn valid_program(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != ".."
}

impl Manifest {
    /// Parses a manifest of either form: JSON when it starts with `{`, the text
    /// format otherwise. `origin` (a URL or path) is used in error messages.
    pub fn parse_any(text: &str, origin: &str, program: &str) -> Result<Manifest> {
        if text.trim_start().starts_with('{') {
            Manifest::parse_json(text, origin, program)
        } else {
            Manifest::parse(text, origin)
        }
    }

    /// Parses the text format. Errors name `origin`, the line and the problem.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest> {
        let not_a_manifest = |line: usize, why: &str| {
            Error::Manifest {
            origin: origin.to_owned(),
            line,
            message: format!(
                "this is not a leapfrog manifest ({why}); check the manifest URL, and that the host serves versions.txt as published"
            ),
        }
        };
        if text.trim_start().starts_with('<') {
            return Err(not_a_manifest(1, "it looks like an HTML or XML page"));
        }
        let mut manifest = Manifest::default();
        let mut seen = BTreeSet::new();
        // Until a line was understood (or the format marker seen), a line
        // that is not understood means this is no manifest at all.
        let mut recognised = false;
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let known = recognised;
            let fail = |message: String| {
                if known {
                    Error::Manifest {
                        origin: origin.to_owned(),
                        line: line_no,
                        message,
                    }
                } else {
                    not_a_manifest(line_no, &message)
                }
            };
            let line = raw.trim();
            if let Some(rest) = line.strip_prefix(MARKER) {
                if line_no != 1 {
                    return Err(fail("the format marker may only be the first line".into()));
                }
                recognised = true;
                match rest.trim().parse::<u32>() {
                    Ok(FORMAT_VERSION) => continue,
                    _ => {
                        return Err(Error::Manifest {
                            origin: origin.to_owned(),
                            line: line_no,
                            message: format!(
                                "unsupported manifest format {line:?}; this leapfrog reads v{FORMAT_VERSION}, update the program to read newer manifests"
                            ),
                        })
                    }
                }
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or_default();
            match first {
                "serial" => {
                    let value = single_value(&mut words).map_err(&fail)?;
                    if manifest.serial.is_some() {
                        return Err(fail("serial given twice".into()));
                    }
                    let serial = value
                        .parse::<u64>()
                        .map_err(|_| fail(format!("serial {value:?} is not a whole number")))?;
                    if serial > MAX_SERIAL {
                        return Err(fail(format!(
                            "serial {serial} is larger than {MAX_SERIAL}, the largest leapfrog accepts"
                        )));
                    }
                    manifest.serial = Some(serial);
                }
                "expires" => {
                    let value = single_value(&mut words).map_err(&fail)?;
                    if manifest.expires.is_some() {
                        return Err(fail("expires given twice".into()));
                    }
                    humantime::parse_rfc3339(value).map_err(|e| {
                        fail(format!(
                            "expires {value:?} is not an RFC 3339 UTC time like 2027-01-31T00:00:00Z ({e})"
                        ))
                    })?;
                    manifest.expires = Some(value.to_owned());
                }
                "next_key" => {
                    let value = single_value(&mut words).map_err(&fail)?;
                    if manifest.next_key.is_some() {
                        return Err(fail("next_key given twice".into()));
                    }
                    crate::release::signature::parse_public_key(value)
                        .map_err(|e| fail(format!("next_key: {e}")))?;
                    manifest.next_key = Some(value.to_owned());
                }
                program => {
                    let release = parse_release(program, words).map_err(&fail)?;
                    if !seen.insert((release.program.clone(), release.version.clone())) {
                        return Err(fail(format!(
                            "{} {} is listed twice",
                            release.program, release.version
                        )));
                    }
                    manifest.releases.push(release);
                }
            }
            recognised = true;
        }
        Ok(manifest)
    }

    /// Parses a JSON version endpoint of the shape
    /// `{"latest_version", "download_url", "release_notes", "checksum"}` as a
    /// manifest holding one release of `program`.
    pub fn parse_json(text: &str, origin: &str, program: &str) -> Result<Manifest> {
        #[derive(serde::Deserialize)]
        struct Endpoint {
            latest_version: String,
            download_url: String,
            #[serde(default)]
            release_notes: Option<String>,
            #[serde(default)]
            checksum: Option<String>,
        }
        let endpoint: Endpoint = serde_json::from_str(text).map_err(|e| Error::Manifest {
            origin: origin.to_owned(),
            line: e.line(),
            message: format!("not a JSON version document: {e}"),
        })?;
        let fail = |message: String| Error::Manifest {
            origin: origin.to_owned(),
            line: 1,
            message,
        };
        let version = Version::parse(&endpoint.latest_version).map_err(|e| {
            fail(format!(
                "latest_version {:?} is not a semver version: {e}",
                endpoint.latest_version
            ))
        })?;
        let mut release = Release::new(program, version);
        release.file = Some(endpoint.download_url);
        release.notes_text = endpoint.release_notes;
        if let Some(sum) = endpoint.checksum {
            let sum = sum
                .trim()
                .trim_start_matches("sha256:")
                .to_ascii_lowercase();
            check_sha256(&sum).map_err(fail)?;
            release.sha256 = Some(sum);
        }
        Ok(Manifest {
            releases: vec![release],
            ..Manifest::default()
        })
    }

    /// Renders the text format, marker first, releases grouped by program and
    /// newest first. `parse(render(m)) == m` up to that ordering.
    pub fn render(&self) -> String {
        let mut out = format!("{MARKER}{FORMAT_VERSION}\n");
        if let Some(serial) = self.serial {
            let _ = writeln!(out, "serial {serial}");
        }
        if let Some(expires) = &self.expires {
            let _ = writeln!(out, "expires {expires}");
        }
        if let Some(key) = &self.next_key {
            let _ = writeln!(out, "next_key {key}");
        }
        let mut releases: Vec<&Release> = self.releases.iter().collect();
        releases.sort_by(|a, b| {
            a.program
                .cmp(&b.program)
                .then_with(|| b.version.cmp(&a.version))
        });
        for r in releases {
            let _ = write!(out, "{} {}", r.program, r.version);
            let mut field = |key: &str, value: &Option<String>| {
                if let Some(v) = value {
                    let _ = write!(out, " {key}={v}");
                }
            };
            field("file", &r.file);
            field("sha256", &r.sha256);
            field("size", &r.size.map(|s| s.to_string()));
            field("notes", &r.notes);
            field("yanked", &r.yanked.then(|| "true".to_owned()));
            field("channel", &r.channel);
            field("rollout", &r.rollout.map(|p| p.to_string()));
            field(
                "min_version",
                &r.min_version.as_ref().map(Version::to_string),
            );
            field("critical", &r.critical.then(|| "true".to_owned()));
            for (k, v) in &r.extra {
                let _ = write!(out, " {k}={v}");
            }
            out.push('\n');
        }
        out
    }

    /// The newest release of `program`, if any.
    pub fn newest(&self, program: &str) -> Option<&Release> {
        self.releases_of(program)
            .max_by(|a, b| a.version.cmp(&b.version))
    }

    /// The release of `program` to move to from `current`: the newest one
    /// newer than `current` that is not withdrawn. A pre-release is only
    /// offered to a program that runs a pre-release itself or when
    /// `prereleases` is set. When `downgrade_if_yanked` is set and `current`
    /// itself is withdrawn, the newest release not withdrawn is offered even
    /// when it is older.
    pub fn update_for(
        &self,
        program: &str,
        current: &Version,
        prereleases: bool,
        downgrade_if_yanked: bool,
    ) -> Option<&Release> {
        self.update_for_install(
            program,
            current,
            &Audience::default(),
            prereleases,
            downgrade_if_yanked,
        )
    }

    /// [`update_for`](Self::update_for) for one install: only releases on
    /// its channel, and, of those in a staged rollout, only ones offered to
    /// its install id. An install left out of the newest release's rollout
    /// is offered the newest release it is in.
    pub fn update_for_install(
        &self,
        program: &str,
        current: &Version,
        audience: &Audience,
        prereleases: bool,
        downgrade_if_yanked: bool,
    ) -> Option<&Release> {
        let wants_pre = prereleases || !current.pre.is_empty();
        // Below the publisher's floor the rollout holds nobody back.
        let required = self
            .floor(program, audience.channel())
            .is_some_and(|floor| current < floor);
        let candidates = || {
            self.releases_of(program)
                .filter(|r| !r.yanked)
                .filter(move |r| wants_pre || r.version.pre.is_empty())
                .filter(|r| r.channel() == audience.channel())
                .filter(move |r| {
                    required
                        || audience
                            .install_id
                            .as_deref()
                            .is_none_or(|id| r.offered_to(id))
                })
        };
        let newer = candidates()
            .filter(|r| &r.version > current)
            .max_by(|a, b| a.version.cmp(&b.version));
        if newer.is_some() {
            return newer;
        }
        let running_yanked = self
            .releases_of(program)
            .any(|r| &r.version == current && r.yanked);
        if downgrade_if_yanked && running_yanked {
            return candidates().max_by(|a, b| a.version.cmp(&b.version));
        }
        None
    }

    /// The lowest version of `program` that installs on `channel` may keep
    /// running: the highest `min_version` any of its releases there sets
    /// (so a later release can never lower it), and the version of the
    /// newest critical release.
    pub fn floor(&self, program: &str, channel: &str) -> Option<&Version> {
        self.releases_of(program)
            .filter(|r| !r.yanked && r.channel() == channel)
            .flat_map(|r| r.min_version.iter().chain(r.critical.then_some(&r.version)))
            .max()
    }

    /// Every release of `program`.
    pub fn releases_of<'a>(&'a self, program: &str) -> impl Iterator<Item = &'a Release> + 'a {
        let program = program.to_owned();
        self.releases.iter().filter(move |r| r.program == program)
    }
}

fn single_value<'a>(words: &mut impl Iterator<Item = &'a str>) -> Result<&'a str, String> {
    let value = words.next().ok_or("a value is missing after the keyword")?;
    if let Some(extra) = words.next() {
        return Err(format!("unexpected {extra:?} after the value"));
    }
    Ok(value)
}

fn check_sha256(sum: &str) -> Result<(), String> {
    if sum.len() == 64
        && sum
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(format!("sha256 {sum:?} is not 64 lowercase hex digits"))
    }
}

fn parse_release<'a>(
    program: &str,
    mut words: impl Iterator<Item = &'a str>,
) -> Result<Release, String> {
    if !valid_program(program) {
        return Err(format!(
            "{program:?} is not a program name (letters, digits, '-', '_' and '.' only)"
        ));
    }
    let version_text = words
        .next()
        .ok_or_else(|| format!("{program:?} has no version; expected `{program} X.Y.Z`"))?;
    if version_text.contains('=') {
        return Err(format!(
            "{program:?} has no version before {version_text:?}"
        ));
    }
    let version = Version::parse(version_text)
        .map_err(|e| format!("{version_text:?} is not a semver version like 1.2.0: {e}"))?;
    let mut release = Release::new(program, version);
    let mut keys = BTreeSet::new();
    for word in words {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("{word:?} is not a key=value field"))?;
        if key.is_empty() || value.is_empty() {
            return Err(format!("{word:?} has an empty key or value"));
        }
        if !keys.insert(key.to_owned()) {
            return Err(format!("field {key:?} given twice"));
        }
        match key {
            "file" => {
                if value.contains('\\') {
                    return Err(format!("file {value:?}: use '/' in paths"));
                }
                release.file = Some(value.to_owned());
            }
            "sha256" => {
                check_sha256(value)?;
                release.sha256 = Some(value.to_owned());
            }
            "size" => {
                release.size = Some(
                    value
                        .parse()
                        .map_err(|_| format!("size {value:?} is not a whole number of bytes"))?,
                );
            }
            "notes" => release.notes = Some(value.to_owned()),
            "yanked" => {
                release.yanked = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("yanked={value:?}: expected true or false")),
                }
            }
            "channel" => {
                if !valid_program(value) {
                    return Err(format!(
                        "channel {value:?}: letters, digits, '-', '_' and '.' only"
                    ));
                }
                release.channel = Some(value.to_owned());
            }
            "min_version" => {
                release.min_version = Some(Version::parse(value).map_err(|e| {
                    format!("min_version {value:?} is not a semver version like 1.2.0: {e}")
                })?);
            }
            "critical" => {
                release.critical = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("critical={value:?}: expected true or false")),
                }
            }
            "rollout" => {
                release.rollout = Some(value.parse::<u8>().ok().filter(|p| *p <= 100).ok_or_else(
                    || format!("rollout={value:?}: expected a whole percentage from 0 to 100"),
                )?);
            }
            other => {
                release.extra.insert(other.to_owned(), value.to_owned());
            }
        }
    }
    Ok(release)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn semver_ordering_table() {
        let ordered = [
            "0.9.0",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.9.0",
            "1.10.0",
            "2.0.0-rc.1",
            "2.0.0",
            "10.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn garbage_versions_are_errors() {
        for bad in [
            "", "1", "1.2", "v1.2.3", "1.2.3.4", "one", "1.2.x", "01.2.3",
        ] {
            assert!(parse_version(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn bare_lines_parse() {
        let m = Manifest::parse("demo 1.0.0\nother 2.3.4\n\n# comment\n", "t").unwrap();
        assert_eq!(m.releases.len(), 2);
        assert_eq!(m.releases[0].program, "demo");
        assert_eq!(m.releases[0].sha256, None);
        assert_eq!(m.releases[1].version, v("2.3.4"));
    }

    #[test]
    fn fields_and_unknown_keys_round_trip() {
        let text = format!(
            "# leapfrog versions v1\nserial 3\nexpires 2027-01-31T00:00:00Z\ndemo 1.1.0 file=demo-1.1.0.tar.gz sha256={} size=42 notes=n.txt channel=beta future=1\n",
            "ab".repeat(32)
        );
        let m = Manifest::parse(&text, "t").unwrap();
        assert_eq!(m.serial, Some(3));
        let r = &m.releases[0];
        assert_eq!(r.size, Some(42));
        assert_eq!(r.channel.as_deref(), Some("beta"));
        assert_eq!(r.extra.get("future").map(String::as_str), Some("1"));
        assert_eq!(m.render(), text);
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let cases = [
            ("demo\n", 1, "has no version"),
            ("demo 1.0.0\ndemo 1.x\n", 2, "not a semver"),
            ("demo 1.0.0 sha256=abc\n", 1, "64 lowercase hex"),
            ("demo 1.0.0 size=big\n", 1, "whole number"),
            ("demo 1.0.0 junk\n", 1, "key=value"),
            ("demo 1.0.0 size=1 size=2\n", 1, "given twice"),
            ("\n\ndemo 1.0.0\ndemo 1.0.0\n", 4, "listed twice"),
            ("serial x\n", 1, "whole number"),
            ("expires tomorrow\n", 1, "RFC 3339"),
            (
                "# leapfrog versions v2\ndemo 1.0.0\n",
                1,
                "unsupported manifest format",
            ),
            ("de/mo 1.0.0\n", 1, "not a program name"),
        ];
        for (text, line, needle) in cases {
            let err = Manifest::parse(text, "http://h/versions.txt").unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("http://h/versions.txt:{line}: ")) && msg.contains(needle),
                "{text:?} gave {msg:?}"
            );
        }
    }

    #[test]
    fn picks_newest_newer_stable_release() {
        let m = Manifest::parse(
            "demo 1.9.0\ndemo 1.10.0\ndemo 2.0.0-rc.1\nother 9.0.0\n",
            "t",
        )
        .unwrap();
        let pick = |cur: &str, pre| {
            m.update_for("demo", &v(cur), pre, false)
                .map(|r| r.version.to_string())
        };
        assert_eq!(pick("1.9.0", false).as_deref(), Some("1.10.0"));
        assert_eq!(pick("1.9.0", true).as_deref(), Some("2.0.0-rc.1"));
        assert_eq!(pick("2.0.0-alpha", false).as_deref(), Some("2.0.0-rc.1"));
        assert_eq!(pick("1.10.0", false), None);
        assert_eq!(
            m.newest("other").map(|r| r.version.to_string()).as_deref(),
            Some("9.0.0")
        );
    }

    #[test]
    fn yanked_releases_are_skipped_and_allow_going_back() {
        let m = Manifest::parse(
            "demo 1.0.0\ndemo 1.1.0 yanked=true\ndemo 1.2.0 yanked=true\n",
            "t",
        )
        .unwrap();
        let pick = |cur: &str, down| {
            m.update_for("demo", &v(cur), false, down)
                .map(|r| r.version.to_string())
        };
        assert_eq!(pick("1.0.0", true), None);
        assert_eq!(pick("1.1.0", false), None);
        assert_eq!(pick("1.1.0", true).as_deref(), Some("1.0.0"));
        assert_eq!(pick("0.9.0", true).as_deref(), Some("1.0.0"));
        assert!(m.render().contains("demo 1.2.0 yanked=true\n"));
        assert!(Manifest::parse("demo 1.0.0 yanked=yes\n", "t").is_err());
    }

    #[test]
    fn json_endpoint_parses() {
        let sum = "cd".repeat(32);
        let text = format!(
            r#"{{"latest_version":"1.2.0","download_url":"https://x/demo.tar.gz","release_notes":"fixes","checksum":"{sum}"}}"#
        );
        let m = Manifest::parse_any(&text, "t", "demo").unwrap();
        let r = &m.releases[0];
        assert_eq!(r.version, v("1.2.0"));
        assert_eq!(r.sha256.as_deref(), Some(sum.as_str()));
        assert_eq!(r.notes_text.as_deref(), Some("fixes"));
        assert!(
            Manifest::parse_any(r#"{"latest_version":"x","download_url":"u"}"#, "t", "demo")
                .is_err()
        );
    }

    /// 1,000 install ids, spread as random ones are (sha256 of a counter),
    /// but the same in every run.
    fn ids() -> Vec<String> {
        use sha2::Digest;
        (0..1000u32)
            .map(|i| hex::encode(&sha2::Sha256::digest(i.to_be_bytes())[..16]))
            .collect()
    }

    fn rolled(version: &str, percent: Option<u8>) -> Release {
        let mut r = Release::new("demo", v(version));
        r.rollout = percent;
        r
    }

    /// Within three standard deviations of the binomial's mean.
    fn within_3_sigma(count: usize, n: usize, p: f64) -> bool {
        let mean = n as f64 * p;
        let sigma = (n as f64 * p * (1.0 - p)).sqrt();
        (count as f64 - mean).abs() <= 3.0 * sigma
    }

    #[test]
    fn rollout_shares_follow_the_binomial() {
        let ids = ids();
        for percent in [1u8, 10, 50] {
            let r = rolled("1.1.0", Some(percent));
            let count = ids.iter().filter(|id| r.offered_to(id)).count();
            assert!(
                within_3_sigma(count, ids.len(), f64::from(percent) / 100.0),
                "{percent}%: {count} of {}",
                ids.len()
            );
        }
        assert!(ids.iter().all(|id| rolled("1.1.0", None).offered_to(id)));
        assert!(!ids.iter().any(|id| rolled("1.1.0", Some(0)).offered_to(id)));
    }

    #[test]
    fn raising_a_rollout_keeps_everyone_in_and_releases_draw_anew() {
        let ids = ids();
        let (ten, twenty) = (rolled("1.1.0", Some(10)), rolled("1.1.0", Some(20)));
        let first: Vec<&String> = ids.iter().filter(|id| ten.offered_to(id)).collect();
        assert!(!first.is_empty());
        assert!(first.iter().all(|id| twenty.offered_to(id)));
        // Another release's 10 % is another draw: the cohorts overlap about
        // 10 % of 10 %.
        let other = rolled("1.2.0", Some(10));
        let both = first.iter().filter(|id| other.offered_to(id)).count();
        assert!(within_3_sigma(both, ids.len(), 0.01), "{both} in both");
    }

    #[test]
    fn an_install_left_out_gets_the_newest_release_it_is_in() {
        let m = Manifest {
            releases: vec![
                rolled("1.0.0", None),
                rolled("1.1.0", None),
                rolled("1.2.0", Some(10)),
                rolled("1.3.0", Some(0)),
            ],
            ..Manifest::default()
        };
        let ids = ids();
        let audience = |id: &str| Audience {
            channel: None,
            install_id: Some(id.to_owned()),
        };
        let pick = |id: &str| {
            m.update_for_install("demo", &v("1.0.0"), &audience(id), false, false)
                .map(|r| r.version.to_string())
        };
        let mut got = std::collections::BTreeMap::new();
        for id in &ids {
            *got.entry(pick(id).unwrap()).or_insert(0) += 1;
        }
        // 0 % halts 1.3.0; about a tenth get 1.2.0, the rest 1.1.0.
        assert!(!got.contains_key("1.3.0"), "{got:?}");
        assert!(within_3_sigma(got["1.2.0"], ids.len(), 0.1), "{got:?}");
        assert_eq!(got["1.1.0"] + got["1.2.0"], ids.len());
    }

    #[test]
    fn channels_are_followed_and_never_downgrade() {
        let mut beta = rolled("2.0.0-beta.1", None);
        beta.channel = Some("beta".into());
        let mut beta_stable = rolled("1.5.0", None);
        beta_stable.channel = Some("beta".into());
        let m = Manifest {
            releases: vec![
                rolled("1.0.0", None),
                rolled("1.1.0", None),
                beta,
                beta_stable,
            ],
            ..Manifest::default()
        };
        let on = |channel: Option<&str>| Audience {
            channel: channel.map(str::to_owned),
            install_id: None,
        };
        let pick = |current: &str, channel: Option<&str>| {
            m.update_for_install("demo", &v(current), &on(channel), true, false)
                .map(|r| r.version.to_string())
        };
        assert_eq!(pick("1.0.0", None).as_deref(), Some("1.1.0"));
        assert_eq!(pick("1.0.0", Some("stable")).as_deref(), Some("1.1.0"));
        assert_eq!(pick("1.0.0", Some("beta")).as_deref(), Some("2.0.0-beta.1"));
        // Back on stable from the beta: nothing lower is installed by itself.
        assert_eq!(pick("2.0.0-beta.1", Some("stable")), None);
        let text = m.render();
        assert!(text.contains("demo 1.5.0 channel=beta\n"), "{text}");
        assert_eq!(Manifest::parse(&text, "t").unwrap().releases.len(), 4);
    }

    #[test]
    fn rollout_and_channel_fields_are_checked() {
        let m = Manifest::parse("demo 1.1.0 rollout=25 channel=beta\n", "t").unwrap();
        assert_eq!(m.releases[0].rollout, Some(25));
        assert_eq!(m.releases[0].channel(), "beta");
        assert!(m.render().contains("demo 1.1.0 channel=beta rollout=25\n"));
        for bad in ["rollout=101", "rollout=-1", "rollout=ten", "channel=a/b"] {
            let err = Manifest::parse(&format!("demo 1.1.0 {bad}\n"), "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains(bad.split('=').next().unwrap()), "{bad}: {err}");
        }
        // A client that knows neither field keeps them as unknown keys.
        let old = Manifest::parse("demo 1.1.0 future=1\n", "t").unwrap();
        assert_eq!(
            old.releases[0].extra.get("future").map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn the_floor_overrides_the_rollout_and_is_never_lowered() {
        let mut floor = rolled("1.1.0", Some(0));
        floor.min_version = Some(v("1.1.0"));
        let mut lower = rolled("1.2.0", Some(0));
        lower.min_version = Some(v("1.0.0"));
        let m = Manifest {
            releases: vec![rolled("1.0.0", None), floor, lower],
            ..Manifest::default()
        };
        assert_eq!(m.floor("demo", DEFAULT_CHANNEL), Some(&v("1.1.0")));
        assert_eq!(m.floor("demo", "beta"), None);
        let audience = Audience {
            channel: None,
            install_id: Some(ids()[0].clone()),
        };
        // Below the floor: the newest release, whatever its rollout.
        let pick = |current: &str| {
            m.update_for_install("demo", &v(current), &audience, false, false)
                .map(|r| r.version.to_string())
        };
        assert_eq!(pick("1.0.0").as_deref(), Some("1.2.0"));
        // At the floor: the rollouts hold again (both at 0 %).
        assert_eq!(pick("1.1.0"), None);
        // A critical release reaches every install whatever its rollout,
        // and raises the floor to itself.
        let mut critical = rolled("1.3.0", Some(0));
        critical.critical = true;
        let mut m = m.clone();
        m.releases.push(critical);
        assert_eq!(m.floor("demo", DEFAULT_CHANNEL), Some(&v("1.3.0")));
        assert!(ids().iter().all(|id| m.releases[3].offered_to(id)));
        let text = m.render();
        assert!(
            text.contains("demo 1.3.0 rollout=0 critical=true\n"),
            "{text}"
        );
        assert!(
            text.contains("demo 1.1.0 rollout=0 min_version=1.1.0\n"),
            "{text}"
        );
        assert_eq!(Manifest::parse(&text, "t").unwrap(), {
            let mut sorted = m.clone();
            sorted.releases.sort_by(|a, b| b.version.cmp(&a.version));
            sorted
        });
    }
}
