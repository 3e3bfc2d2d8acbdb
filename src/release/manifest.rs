//! `versions.txt`, the manifest: parse, render, pick a release.
//!
//! ```text
//! # leapfrog versions v1
//! serial 12
//! expires 2027-01-31T00:00:00Z
//! #+ signed 2026-12-06T00:00:00Z
//! #+ demo 1.2.0 file=demo-1.2.0.tar.gz sha256=<64 hex> size=<bytes> schedule=10@2026-12-07T00:00:00Z,100@2026-12-14T00:00:00Z
//! demo 1.1.0 file=demo-1.1.0.tar.gz sha256=<64 hex> size=<bytes> notes=demo-1.1.0.txt notes_sha256=<64 hex>
//! demo 1.0.0
//! ```
//!
//! One release a line, `program version` and optional `key=value` fields. The
//! bare two-word lines of the original design still parse. Unknown keys are kept
//! (and rendered back) so that later fields do not break older clients. The
//! first line may carry the format marker; a marker of another format version is
//! a hard error, never a guess.
//!
//! A line that begins with `#+` is read as if the `#+` were not there. The
//! leapfrog versions before release policy skip it as a comment, so a
//! release an older client would misread (one for a single target, on
//! another channel than `stable`, or in a staged rollout) and the signing
//! time are written that way ([`Manifest::render`]): an older client sees
//! only the releases meant for everyone.
//!
//! A JSON document `{latest_version, download_url, release_notes, checksum}` is
//! accepted too (see [`Manifest::parse_json`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use semver::Version;

use super::policy::{target_of, valid_target};
use crate::error::{Error, Result};

/// The largest serial a manifest may carry (2^53 - 1: exact in every JSON
/// reader too). Publishing never raises a serial past it, so it never wraps.
pub const MAX_SERIAL: u64 = (1 << 53) - 1;

/// The format version this library reads and writes.
pub const FORMAT_VERSION: u32 = 1;
const MARKER: &str = "# leapfrog versions v";
/// The start of a line that older clients skip as a comment.
const EXTENDED: &str = "#+";

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
    /// When the publisher signed it (RFC 3339): rollout schedules are read
    /// at this time at the latest, whatever the client's clock says.
    pub signed: Option<String>,
    /// Every release line, in file order.
    pub releases: Vec<Release>,
    /// Release lines for a named target that could not be read. They break
    /// only the installs of that target (see [`Manifest::broken_for`]);
    /// any other broken line fails the whole parse.
    pub broken: Vec<BrokenLine>,
}

/// One step of a rollout schedule: from `at` on, `percent` of installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutStep {
    /// The share, 0 to 100.
    pub percent: u8,
    /// From when, in seconds since the Unix epoch.
    pub at: u64,
}

impl RolloutStep {
    /// Parses `10%@2026-12-07T00:00:00Z` (the `%` optional). Given `now`
    /// (a publisher's command line), a time may also be `+3d` (any
    /// duration `humantime` reads) from then.
    pub fn parse(
        text: &str,
        now: Option<std::time::SystemTime>,
    ) -> std::result::Result<Self, String> {
        let (percent, at) = text
            .split_once('@')
            .ok_or_else(|| format!("{text:?} is not PERCENT@TIME (10%@2026-12-07T00:00:00Z)"))?;
        let percent = percent
            .trim_end_matches('%')
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| format!("{text:?}: the share is a whole percentage from 0 to 100"))?;
        let time = match at.strip_prefix('+').zip(now) {
            Some((after, now)) => humantime::parse_duration(after)
                .map_err(|e| format!("{text:?}: {after:?} is not a duration like 3d ({e})"))
                .and_then(|d| {
                    now.checked_add(d)
                        .ok_or_else(|| format!("{text:?}: {after:?} is too far ahead"))
                })?,
            None => humantime::parse_rfc3339(at).map_err(|e| {
                format!(
                    "{text:?}: {at:?} is not an RFC 3339 UTC time like 2026-12-07T00:00:00Z ({e})"
                )
            })?,
        };
        let at = time
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| format!("{text:?}: a time before 1970"))?
            .as_secs();
        Ok(RolloutStep { percent, at })
    }

    /// Parses a whole schedule, `10%@T1,50%@T2,100%@T3`: times rising,
    /// shares never falling (raising a share keeps everyone in).
    pub fn parse_schedule(
        text: &str,
        now: Option<std::time::SystemTime>,
    ) -> std::result::Result<Vec<Self>, String> {
        let steps = text
            .split(',')
            .map(|step| RolloutStep::parse(step.trim(), now))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for pair in steps.windows(2) {
            if pair[1].at <= pair[0].at || pair[1].percent < pair[0].percent {
                return Err(format!(
                    "schedule {text:?}: each step comes later than the one before and never lowers the share"
                ));
            }
        }
        Ok(steps)
    }

    fn render(&self) -> String {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.at);
        format!("{}@{}", self.percent, humantime::format_rfc3339_seconds(at))
    }
}

/// A release line for one target that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLine {
    /// The 1-based line number.
    pub line: usize,
    /// The program the line is for.
    pub program: String,
    /// The target the line names.
    pub target: String,
    /// What is wrong with it.
    pub message: String,
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
    /// The notes file's sha256 (`notes_sha256=`): a signed manifest vouches
    /// for the notes shown as for the archive.
    pub notes_sha256: Option<String>,
    /// Release notes given inline (JSON manifests).
    pub notes_text: Option<String>,
    /// Withdrawn by the publisher (`yanked=true`): never installed, and
    /// programs running it may go back to the newest release not withdrawn.
    pub yanked: bool,
    /// The channel the release is published on (`channel=NAME`); `None` is
    /// `stable`.
    pub channel: Option<String>,
    /// The share of installs it is offered to, 0 to 100 (`rollout=N`);
    /// `None` is everyone. See [`Release::offered_to`].
    pub rollout: Option<u8>,
    /// A rollout schedule (`schedule=10@T1,50@T2,100@T3`): from each time
    /// (seconds since the Unix epoch) on, the share it names; before the
    /// first, none. It takes the place of `rollout`.
    pub schedule: Vec<RolloutStep>,
    /// Installs below this version must update (`min_version=X`): the
    /// update is required. A later release never lowers the floor an
    /// earlier one set (see [`Manifest::floor`]).
    pub min_version: Option<Version>,
    /// A critical release (`critical=true`) is offered to every install of
    /// its channel, whatever its rollout, and is required.
    pub critical: bool,
    /// The platform the archive is for (`target=linux-x86_64`, or a
    /// generic `linux`); `None` is every platform. An app picks its own platform (`os-arch`, as Rust names them).
    pub target: Option<String>,
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
            notes_sha256: None,
            notes_text: None,
            yanked: false,
            channel: None,
            rollout: None,
            schedule: Vec::new(),
            min_version: None,
            critical: false,
            target: None,
            extra: BTreeMap::new(),
        }
    }

    /// The archive's file name or URL as written, or the default name
    /// (`<program>-<version>[-<target>].tar.gz`).
    pub fn file_name(&self) -> String {
        self.file.clone().unwrap_or_else(|| match &self.target {
            Some(target) => format!("{}-{}-{target}.tar.gz", self.program, self.version),
            None => archive_name(&self.program, &self.version),
        })
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
            // `#+`: a line for this leapfrog, a comment to older ones.
            let line = line
                .strip_prefix(EXTENDED)
                .filter(|rest| rest.starts_with(char::is_whitespace))
                .map_or(line, str::trim_start);
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
                "signed" => {
                    let value = single_value(&mut words).map_err(&fail)?;
                    if manifest.signed.is_some() {
                        return Err(fail("signed given twice".into()));
                    }
                    humantime::parse_rfc3339(value).map_err(|e| {
                        fail(format!(
                            "signed {value:?} is not an RFC 3339 UTC time like 2026-12-06T00:00:00Z ({e})"
                        ))
                    })?;
                    manifest.signed = Some(value.to_owned());
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
                    let release = match parse_release(program, words) {
                        Ok(release) => release,
                        // A broken line for one target breaks only that
                        // target's installs.
                        Err(message) if known => match target_of(line) {
                            Some(target) => {
                                manifest.broken.push(BrokenLine {
                                    line: line_no,
                                    program: program.to_owned(),
                                    target,
                                    message,
                                });
                                continue;
                            }
                            None => return Err(fail(message)),
                        },
                        Err(message) => return Err(fail(message)),
                    };
                    let key = (
                        release.program.clone(),
                        release.version.clone(),
                        release.target.clone(),
                    );
                    if !seen.insert(key) {
                        let target = release
                            .target
                            .as_deref()
                            .map_or(String::new(), |t| format!(" for {t}"));
                        return Err(fail(format!(
                            "{} {}{target} is listed twice",
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
    /// newest first. `parse(render(m)) == m` up to that ordering. The
    /// signing time and the release lines older clients would misread
    /// (see [`Release::misread_by_older_clients`]) begin with `#+`.
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
        if let Some(signed) = &self.signed {
            let _ = writeln!(out, "{EXTENDED} signed {signed}");
        }
        let mut releases: Vec<&Release> = self.releases.iter().collect();
        releases.sort_by(|a, b| {
            a.program
                .cmp(&b.program)
                .then_with(|| b.version.cmp(&a.version))
        });
        for r in releases {
            if r.misread_by_older_clients() {
                let _ = write!(out, "{EXTENDED} ");
            }
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
            field("notes_sha256", &r.notes_sha256);
            field("yanked", &r.yanked.then(|| "true".to_owned()));
            field("channel", &r.channel);
            field("rollout", &r.rollout.map(|p| p.to_string()));
            field(
                "schedule",
                &(!r.schedule.is_empty()).then(|| {
                    r.schedule
                        .iter()
                        .map(RolloutStep::render)
                        .collect::<Vec<_>>()
                        .join(",")
                }),
            );
            field(
                "min_version",
                &r.min_version.as_ref().map(Version::to_string),
            );
            field("critical", &r.critical.then(|| "true".to_owned()));
            field("target", &r.target);
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
            "notes_sha256" => {
                check_sha256(value).map_err(|e| format!("notes_{e}"))?;
                release.notes_sha256 = Some(value.to_owned());
            }
            "schedule" => {
                release.schedule = RolloutStep::parse_schedule(value, None)?;
            }
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
            "target" => {
                if !valid_target(value) {
                    return Err(format!(
                        "target {value:?}: lowercase letters, digits, '_' and '-' only (e.g. linux-x86_64)"
                    ));
                }
                release.target = Some(value.to_owned());
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
            "# leapfrog versions v1\nserial 3\nexpires 2027-01-31T00:00:00Z\n#+ signed 2026-12-06T00:00:00Z\n#+ demo 1.1.0 file=demo-1.1.0.tar.gz sha256={} size=42 notes=n.txt notes_sha256={} channel=beta future=1\n",
            "ab".repeat(32),
            "cd".repeat(32)
        );
        let m = Manifest::parse(&text, "t").unwrap();
        assert_eq!(m.serial, Some(3));
        assert_eq!(m.signed.as_deref(), Some("2026-12-06T00:00:00Z"));
        assert_eq!(m.releases[0].notes_sha256, Some("cd".repeat(32)));
        let r = &m.releases[0];
        assert_eq!(r.size, Some(42));
        assert_eq!(r.channel.as_deref(), Some("beta"));
        assert_eq!(r.extra.get("future").map(String::as_str), Some("1"));
        assert_eq!(m.render(), text);
    }

    #[test]
    fn only_a_hash_plus_and_a_space_marks_a_line_for_this_leapfrog() {
        let m = Manifest::parse(
            "# leapfrog versions v1\n#+------+\n#++ banner\n#+ demo 1.1.0 channel=beta\n#+\tdemo 1.0.0\n",
            "t",
        )
        .unwrap();
        let versions: Vec<String> = m.releases.iter().map(|r| r.version.to_string()).collect();
        assert_eq!(versions, ["1.1.0", "1.0.0"]);
        // A marker behind `#+` is a comment, as it is to older clients.
        assert!(Manifest::parse("demo 1.0.0\n#+ # leapfrog versions v2\n", "t").is_ok());
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
}
