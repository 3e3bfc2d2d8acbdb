//! The publisher's side: pack a release, hash it, add it to `versions.txt`.
//!
//! The repository folder can then be uploaded anywhere that serves files.
//!
//! Everything a publisher's tool needs is here: [`publish`], [`yank`],
//! [`refresh`] and [`verify_repo`] over a repository folder; [`keygen`] and
//! [`sign`] for minisign keys; [`pack`] and [`unpack`] for release
//! archives; [`sha256_file`].
//!
//! ```no_run
//! # fn main() -> leapfrog::Result<()> {
//! use leapfrog::publish::{publish, PublishOptions, Signing};
//! let published = publish(&PublishOptions {
//!     signing: Signing {
//!         secret_key: Some("keys/leapfrog.key".into()),
//!         ..Signing::default()
//!     },
//!     ..PublishOptions::new("build/demo", "demo", "1.1.0", "releases")
//! })?;
//! println!("{} published", published.archive.display());
//! # Ok(())
//! # }
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Error, Result};
use crate::release::archive;
use crate::release::freshness::Freshness;
use crate::release::hash;
use crate::release::manifest::{self, Manifest, Release};

pub use crate::release::archive::pack;
pub use crate::release::file_list::{FileList, Item, FILE_LIST};
pub use crate::release::hash::sha256_file;
#[cfg(feature = "sign")]
pub use crate::release::signature::{keygen, sign};
pub use crate::release::signature::{read_public_key, PublicKey};
pub use crate::release::unpack::unpack;

#[cfg(feature = "upload")]
pub mod upload;

/// The manifest's file name in a repository.
pub const MANIFEST_NAME: &str = "versions.txt";

/// What to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// The release tree.
    pub app_dir: PathBuf,
    /// The program's name.
    pub program: String,
    /// The version, semver.
    pub version: String,
    /// The repository folder (created when missing).
    pub repo: PathBuf,
    /// A release notes file, copied next to the archive.
    pub notes: Option<PathBuf>,
    /// How the manifest is signed and how long it stays valid.
    pub signing: Signing,
    /// The channel (`None`: `stable`).
    pub channel: Option<String>,
    /// The share of installs it is offered to at first, 0 to 100 (`None`:
    /// everyone); changed later with [`rollout`].
    pub rollout: Option<u8>,
    /// A rollout schedule instead, `10%@T1,50%@T2,100%@T3`: RFC 3339
    /// times, or durations from now (`10%@+0s,50%@+2d,100%@+7d`). A step
    /// reaches the apps when the manifest is signed after its time: run
    /// [`refresh`] (a scheduled job) at least as often as the steps come.
    pub rollout_schedule: Option<String>,
    /// Installs below this version must update (`--min-version`); it may
    /// not be lower than a floor an earlier release set.
    pub min_version: Option<String>,
    /// A critical release: offered to every install whatever the rollout,
    /// and required (`--critical`).
    pub critical: bool,
    /// The platform the tree is built for (`linux-x86_64`, a generic
    /// `linux`, …); `None` is every platform. A version may be published
    /// once per target.
    pub target: Option<String>,
}

impl PublishOptions {
    /// `version` of `program` from the tree `app_dir` into `repo`: no
    /// notes, unsigned, on `stable` for every platform and every install;
    /// set the other fields as needed.
    ///
    /// ```
    /// let opts = leapfrog::publish::PublishOptions {
    ///     rollout: Some(10),
    ///     ..leapfrog::publish::PublishOptions::new("build/demo", "demo", "1.1.0", "releases")
    /// };
    /// assert_eq!(opts.channel, None);
    /// ```
    pub fn new(
        app_dir: impl Into<PathBuf>,
        program: impl Into<String>,
        version: impl Into<String>,
        repo: impl Into<PathBuf>,
    ) -> PublishOptions {
        PublishOptions {
            app_dir: app_dir.into(),
            program: program.into(),
            version: version.into(),
            repo: repo.into(),
            notes: None,
            signing: Signing::default(),
            channel: None,
            rollout: None,
            rollout_schedule: None,
            min_version: None,
            critical: false,
            target: None,
        }
    }
}

/// How a publish (or yank) signs `versions.txt`.
#[derive(Debug, Clone)]
pub struct Signing {
    /// The minisign secret key; `None` leaves the repository unsigned.
    pub secret_key: Option<PathBuf>,
    /// The secret key's password, for an encrypted key.
    pub password: Option<String>,
    /// How long the manifest is valid (`expires`).
    pub expires_in: std::time::Duration,
    /// A next public key to announce (key rotation), as the `.pub` file's
    /// text or its base64 line.
    pub next_public_key: Option<String>,
}

impl Default for Signing {
    fn default() -> Self {
        Signing {
            secret_key: None,
            password: None,
            expires_in: std::time::Duration::from_secs(30 * 24 * 3600),
            next_public_key: None,
        }
    }
}

/// The signature's path for a repository.
pub fn signature_path(repo: &Path) -> PathBuf {
    repo.join(format!(
        "{MANIFEST_NAME}{}",
        crate::release::signature::SIGNATURE_SUFFIX
    ))
}

/// Raises the serial, sets `expires`, announces a next key, and writes
/// `versions.txt` (and, with a key, `versions.txt.minisig`) atomically.
/// A signed repository is never rewritten without its key.
/// Every line of `program` `version` (one per target), or an error naming
/// the manifest when there is none.
fn lines_of<'a>(
    repo: &Path,
    manifest: &'a mut Manifest,
    program: &str,
    version: &semver::Version,
) -> Result<Vec<&'a mut Release>> {
    let lines: Vec<&mut Release> = manifest
        .releases
        .iter_mut()
        .filter(|r| r.program == program && &r.version == version)
        .collect();
    if lines.is_empty() {
        return Err(Error::Publish(format!(
            "{} lists no {program} {version}",
            repo.join(MANIFEST_NAME).display()
        )));
    }
    Ok(lines)
}

/// Rewriting a manifest would drop the release lines that cannot be read
/// (for another target): they must be fixed first.
fn refuse_broken(repo: &Path, manifest: &Manifest) -> Result<()> {
    if manifest.broken.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = manifest.broken.iter().map(|b| b.line.to_string()).collect();
    Err(Error::Publish(format!(
        "{}: line(s) {} cannot be read; fix them first",
        repo.join(MANIFEST_NAME).display(),
        lines.join(", ")
    )))
}

fn write_manifest(repo: &Path, manifest: &mut Manifest, signing: &Signing) -> Result<u64> {
    refuse_broken(repo, manifest)?;
    let sig_path = signature_path(repo);
    if signing.secret_key.is_none() && sig_path.exists() {
        return Err(Error::Publish(format!(
            "{} is signed ({} exists); pass --secret-key to keep it signed",
            repo.display(),
            sig_path.display()
        )));
    }
    let serial = next_serial(repo, manifest)?;
    manifest.serial = Some(serial);
    let now = std::time::SystemTime::now();
    // A rollout that reached everyone is a release for everyone again,
    // which older clients see too.
    let now_secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for release in &mut manifest.releases {
        if release.rollout == Some(100) {
            release.rollout = None;
        }
        if (release.schedule.last()).is_some_and(|step| step.percent == 100 && step.at <= now_secs)
        {
            release.schedule.clear();
        }
    }
    // The signing time bounds the clients' clocks for rollout schedules.
    manifest.signed = signing
        .secret_key
        .is_some()
        .then(|| humantime::format_rfc3339_seconds(now).to_string());
    let expires = now + signing.expires_in;
    manifest.expires = Some(humantime::format_rfc3339_seconds(expires).to_string());
    if let Some(next) = &signing.next_public_key {
        crate::release::signature::parse_public_key(next)
            .map_err(|e| Error::Publish(format!("next public key: {e}")))?;
        let base64 = next
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        manifest.next_key = Some(base64);
    }
    let text = manifest.render();
    let manifest_path = repo.join(MANIFEST_NAME);
    match &signing.secret_key {
        #[cfg(feature = "sign")]
        Some(key) => {
            let comment = format!("leapfrog versions.txt serial {serial}");
            let signature = crate::release::signature::sign(
                key,
                signing.password.clone(),
                text.as_bytes(),
                &comment,
            )?;
            let fresh = Freshness {
                serial,
                signed: manifest.signed.clone().expect("set above when signing"),
                expires: manifest.expires.clone().expect("set above"),
                manifest: MANIFEST_NAME.into(),
                sha256: hash::sha256_bytes(text.as_bytes()),
                size: text.len() as u64,
            };
            let fresh_text =
                crate::release::freshness::sign(&fresh, key, signing.password.clone())?;
            // Everything is signed before anything is written. Then the
            // manifest and its signature, and the freshness file that
            // points at them last: a client reading in between sees the
            // old freshness file, and the new manifest is "no update this
            // time". A cut in between is mended by `refresh`.
            write_pointer(&manifest_path, text.as_bytes())?;
            write_pointer(&sig_path, signature.as_bytes())?;
            write_pointer(&fresh_path(repo), fresh_text.as_bytes())?;
        }
        #[cfg(not(feature = "sign"))]
        Some(_) => {
            return Err(Error::Publish(
                "built without the `sign` feature: cannot sign".into(),
            ));
        }
        None => write_pointer(&manifest_path, text.as_bytes())?,
    }
    Ok(serial)
}

/// Withdraws `version` of `program` (`yanked=true`), then re-signs: apps
/// never install it, and apps running it go back to the newest release that
/// is not withdrawn.
pub fn yank(repo: &Path, program: &str, version: &str, signing: &Signing) -> Result<u64> {
    let version = manifest::parse_version(version)?;
    let mut manifest = read_manifest(repo)?;
    let lines = lines_of(repo, &mut manifest, program, &version)?;
    for release in lines {
        release.yanked = true;
    }
    write_manifest(repo, &mut manifest, signing)
}

/// Sets the share of installs that `program` `version` is offered to (0
/// halts it, 100 is everyone), raises the serial and signs again. Raising
/// the share keeps every install already in. Returns the new serial.
pub fn rollout(
    repo: &Path,
    program: &str,
    version: &str,
    percent: u8,
    signing: &Signing,
) -> Result<u64> {
    if percent > 100 {
        return Err(Error::Publish(format!(
            "--percent {percent}: a share from 0 to 100"
        )));
    }
    let version = manifest::parse_version(version)?;
    let mut manifest = read_manifest(repo)?;
    let lines = lines_of(repo, &mut manifest, program, &version)?;
    if lines.iter().any(|r| r.critical) && percent < 100 {
        return Err(Error::Publish(format!(
            "{program} {version} is critical: it reaches every install whatever its rollout"
        )));
    }
    for release in lines {
        release.rollout = (percent < 100).then_some(percent);
        release.schedule.clear();
    }
    write_manifest(repo, &mut manifest, signing)
}

/// Gives `program` `version` a rollout schedule (`10%@T1,50%@T2,100%@T3`,
/// as for [`PublishOptions::rollout_schedule`]) in place of its share,
/// raises the serial and signs again. Returns the new serial.
pub fn schedule(
    repo: &Path,
    program: &str,
    version: &str,
    schedule: &str,
    signing: &Signing,
) -> Result<u64> {
    let steps = parse_schedule(schedule)?;
    let version = manifest::parse_version(version)?;
    let mut manifest = read_manifest(repo)?;
    let lines = lines_of(repo, &mut manifest, program, &version)?;
    if lines.iter().any(|r| r.critical) {
        return Err(Error::Publish(format!(
            "{program} {version} is critical: it reaches every install whatever its rollout"
        )));
    }
    for release in lines {
        release.rollout = None;
        release.schedule = steps.clone();
    }
    write_manifest(repo, &mut manifest, signing)
}

fn parse_schedule(text: &str) -> Result<Vec<manifest::RolloutStep>> {
    manifest::RolloutStep::parse_schedule(text, Some(std::time::SystemTime::now()))
        .map_err(|e| Error::Publish(format!("--rollout-schedule: {e}")))
}

/// Re-signs the repository's freshness file (`versions.txt.fresh`) with a
/// higher serial and a new expiry (`signing.expires_in` from now);
/// `versions.txt` and the releases stay as they are, byte for byte, so
/// every cached copy of the manifest stays valid. A signed repository
/// stays trusted between releases when this runs more often than it
/// expires (a scheduled job, say). Returns the new serial.
///
/// Clients of leapfrog before freshness files read `versions.txt`'s own
/// `expires`: when it is less than half of `signing.expires_in` away,
/// `versions.txt` is signed again too (a higher serial and expiry, the
/// releases as they were), so that they never go dark either. A
/// `versions.txt.minisig` that does not match `versions.txt` (a publish cut
/// off between the two) is signed again.
pub fn refresh(repo: &Path, signing: &Signing) -> Result<u64> {
    let Some(key) = &signing.secret_key else {
        return Err(Error::Publish(
            "refresh re-signs versions.txt.fresh: give the secret key (--secret-key)".into(),
        ));
    };
    let manifest_path = repo.join(MANIFEST_NAME);
    let text = fs::read_to_string(&manifest_path).map_err(io_err("reading", &manifest_path))?;
    let manifest = Manifest::parse(&text, &manifest_path.display().to_string())?;
    if !signature_path(repo).exists() {
        return Err(Error::Publish(format!(
            "{} is not signed ({} is missing): publish with --secret-key first",
            repo.display(),
            signature_path(repo).display()
        )));
    }
    let now = std::time::SystemTime::now();
    let own_expiry = manifest
        .expires
        .as_deref()
        .and_then(|e| humantime::parse_rfc3339(e).ok());
    if own_expiry.is_none_or(|at| at < now + signing.expires_in / 2) {
        log::warn!(
            "{}'s own expiry ({}) is near: signing versions.txt again too, for leapfrog before freshness files",
            manifest_path.display(),
            manifest.expires.as_deref().unwrap_or("none")
        );
        let mut manifest = manifest;
        return write_manifest(repo, &mut manifest, signing);
    }
    let serial = next_serial(repo, &manifest)?;
    // A publish cut off between versions.txt and its signature.
    let sig_path = signature_path(repo);
    #[cfg(feature = "sign")]
    let matches = {
        let own_key = crate::release::signature::public_key_of(key, signing.password.clone())?;
        fs::read_to_string(&sig_path).is_ok_and(|sig| {
            crate::release::signature::verify(text.as_bytes(), &sig, &[own_key], "").is_ok()
        })
    };
    // Without signing, the freshness file cannot be signed either (below).
    #[cfg(not(feature = "sign"))]
    let matches = true;
    let signature = if matches {
        None
    } else {
        log::warn!(
            "{} does not match {}: signing it again",
            sig_path.display(),
            manifest_path.display()
        );
        let comment = format!(
            "leapfrog versions.txt serial {}",
            manifest.serial.unwrap_or(0)
        );
        Some(sign_text(key, signing.password.clone(), &text, &comment)?)
    };
    let fresh = Freshness {
        serial,
        signed: humantime::format_rfc3339_seconds(now).to_string(),
        expires: humantime::format_rfc3339_seconds(now + signing.expires_in).to_string(),
        manifest: MANIFEST_NAME.into(),
        sha256: hash::sha256_bytes(text.as_bytes()),
        size: text.len() as u64,
    };
    let signed = crate::release::freshness::sign(&fresh, key, signing.password.clone())?;
    if let Some(signature) = signature {
        write_pointer(&sig_path, signature.as_bytes())?;
    }
    write_pointer(&fresh_path(repo), signed.as_bytes())?;
    Ok(serial)
}

#[cfg(feature = "sign")]
fn sign_text(key: &Path, password: Option<String>, text: &str, comment: &str) -> Result<String> {
    crate::release::signature::sign(key, password, text.as_bytes(), comment)
}

#[cfg(not(feature = "sign"))]
fn sign_text(_: &Path, _: Option<String>, _: &str, _: &str) -> Result<String> {
    Err(Error::Publish(
        "built without the `sign` feature: cannot sign".into(),
    ))
}

/// The serial of the next signing: above every one the repository gave
/// out, its freshness file's too; never past [`manifest::MAX_SERIAL`].
fn next_serial(repo: &Path, manifest: &Manifest) -> Result<u64> {
    manifest
        .serial
        .unwrap_or(0)
        .max(fresh_serial(repo).unwrap_or(0))
        .checked_add(1)
        .filter(|s| *s <= manifest::MAX_SERIAL)
        .ok_or_else(|| {
            Error::Publish(format!(
                "{} is at serial {}, the largest allowed; the repository cannot be signed again \
                 (start a new one with a new key and manifest URL)",
                repo.join(MANIFEST_NAME).display(),
                manifest
                    .serial
                    .unwrap_or(0)
                    .max(fresh_serial(repo).unwrap_or(0))
            ))
        })
}

/// Replaces one of the repository's manifest files atomically, with a
/// modification time at least a second past the one it replaces: web
/// servers make their `ETag` and `Last-Modified` of the size and the time
/// in whole seconds (nginx does), so a file rewritten within the same
/// second at the same size would otherwise be answered "304 Not Modified"
/// to a client holding the copy before.
fn write_pointer(path: &Path, bytes: &[u8]) -> Result<()> {
    let before = fs::metadata(path).and_then(|m| m.modified()).ok();
    crate::os::write_atomic(path, bytes)?;
    let Some(before) = before else {
        return Ok(());
    };
    let seconds = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let file = fs::File::options()
        .write(true)
        .open(path)
        .map_err(io_err("opening", path))?;
    let now = file
        .metadata()
        .and_then(|m| m.modified())
        .map_err(io_err("reading", path))?;
    if seconds(now) <= seconds(before) {
        let later = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds(before) + 1);
        file.set_modified(later)
            .map_err(io_err("setting the modification time of", path))?;
    }
    Ok(())
}

/// The freshness file's path for a repository.
pub fn fresh_path(repo: &Path) -> PathBuf {
    repo.join(format!(
        "{MANIFEST_NAME}{}",
        crate::release::freshness::FRESH_SUFFIX
    ))
}

/// The serial of the repository's freshness file, if it has a readable one
/// (the publisher's own file: not verified here).
fn fresh_serial(repo: &Path) -> Option<u64> {
    let text = fs::read_to_string(fresh_path(repo)).ok()?;
    let (body, _) = crate::release::freshness::split(&text)?;
    Freshness::parse(body, "").ok().map(|f| f.serial)
}

/// What a publish wrote.
#[derive(Debug, Clone)]
pub struct Published {
    /// The archive written.
    pub archive: PathBuf,
    /// The manifest line added.
    pub release: Release,
    /// The manifest's new serial.
    pub serial: u64,
}

/// Packs `opts.app_dir` into `repo/<program>-<version>.tar.gz` and adds it to
/// `repo/versions.txt`, which is replaced atomically. Refuses a version that
/// is not newer than the newest already published for the program.
pub fn publish(opts: &PublishOptions) -> Result<Published> {
    let version = manifest::parse_version(&opts.version)?;
    let probe = format!("{} {}", opts.program, version);
    Manifest::parse(&probe, "--program").map_err(|_| {
        Error::Publish(format!(
            "{:?} is not a program name (letters, digits, '-', '_' and '.' only)",
            opts.program
        ))
    })?;
    if opts.signing.secret_key.is_none() && signature_path(&opts.repo).exists() {
        return Err(Error::Publish(format!(
            "{} is signed; pass --secret-key to keep it signed",
            opts.repo.display()
        )));
    }
    if !opts.app_dir.is_dir() {
        return Err(Error::Publish(format!(
            "{} is not a folder",
            opts.app_dir.display()
        )));
    }
    fs::create_dir_all(&opts.repo).map_err(io_err("creating", &opts.repo))?;
    // The object adoption pings ask for (apps that turn them on), so that
    // they are answered 200, not 404.
    let ping = opts.repo.join(crate::adoption::PING_NAME);
    if fs::symlink_metadata(&ping).is_err() {
        fs::write(&ping, crate::adoption::PING_TEXT).map_err(io_err("writing", &ping))?;
    }
    let manifest_path = opts.repo.join(MANIFEST_NAME);
    let mut manifest = match fs::read_to_string(&manifest_path) {
        Ok(text) => Manifest::parse(&text, &manifest_path.display().to_string())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
        Err(e) => return Err(io_err("reading", &manifest_path)(e)),
    };
    let same_version_other_target = opts.target.is_some()
        && manifest
            .releases_of(&opts.program)
            .any(|r| r.version == version)
        && !manifest
            .releases_of(&opts.program)
            .any(|r| r.version == version && (r.target == opts.target || r.target.is_none()));
    if let Some(newest) = manifest
        .newest(&opts.program)
        .filter(|_| !same_version_other_target)
    {
        if newest.version >= version {
            return Err(Error::Publish(format!(
                "{} {} is not newer than {} {} in {}; choose a higher version",
                opts.program,
                version,
                newest.program,
                newest.version,
                manifest_path.display()
            )));
        }
    }
    refuse_broken(&opts.repo, &manifest)?;
    // The policy fields are checked before anything is written: the line
    // must read back, for every client.
    let mut policy = Release::new(&opts.program, version.clone());
    policy.channel = opts.channel.clone();
    policy.rollout = opts.rollout;
    if let Some(schedule) = &opts.rollout_schedule {
        if opts.rollout.is_some() {
            return Err(Error::Publish(
                "give --rollout or --rollout-schedule, not both".into(),
            ));
        }
        policy.schedule = parse_schedule(schedule)?;
    }
    if opts.critical && policy.staged() {
        return Err(Error::Publish(
            "--critical reaches every install whatever the rollout: drop --rollout".into(),
        ));
    }
    policy.critical = opts.critical;
    policy.target = opts.target.clone();
    if let Some(min) = &opts.min_version {
        let min = manifest::parse_version(min)?;
        if min > version {
            return Err(Error::Publish(format!(
                "--min-version {min} is above the version published, {version}"
            )));
        }
        if !min.pre.is_empty() {
            return Err(Error::Publish(format!(
                "--min-version {min}: a floor is a release, not a pre-release"
            )));
        }
        if let Some(floor) = manifest.floor(&opts.program, policy.channel()) {
            if &min < floor {
                return Err(Error::Publish(format!(
                    "--min-version {min} would lower the floor {floor} an earlier release set; \
                     a floor is never lowered"
                )));
            }
        }
        policy.min_version = Some(min);
    }
    if opts.critical && !version.pre.is_empty() {
        return Err(Error::Publish(format!(
            "--critical: {version} is a pre-release; only a release can be required"
        )));
    }
    let line = Manifest {
        releases: vec![policy.clone()],
        ..Manifest::default()
    }
    .render();
    Manifest::parse(&line, "--channel/--target").map_err(|e| {
        Error::Publish(format!(
            "the release line would not read back ({e}); a channel is letters, digits, \
             '-', '_' and '.', a target lowercase letters, digits, '_' and '-' (linux-x86_64)"
        ))
    })?;
    let name = match &opts.target {
        Some(target) => format!("{}-{version}-{target}.tar.gz", opts.program),
        None => manifest::archive_name(&opts.program, &version),
    };
    let archive_path = opts.repo.join(&name);
    let tmp = opts
        .repo
        .join(format!(".{name}.tmp-{}", std::process::id()));
    let packed = archive::pack(&opts.app_dir, &opts.program, &version, &tmp)
        .and_then(|_| hash::sha256_file(&tmp))
        .and_then(|sum| {
            fs::rename(&tmp, &archive_path).map_err(io_err(
                &format!("renaming {} to", tmp.display()),
                &archive_path,
            ))?;
            Ok(sum)
        });
    let (sha256, size) = match packed {
        Ok(sum) => sum,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let mut release = policy;
    release.file = Some(name);
    release.sha256 = Some(sha256);
    release.size = Some(size);
    if let Some(notes) = &opts.notes {
        let notes_name = match &opts.target {
            Some(target) => format!("{}-{version}-{target}.txt", opts.program),
            None => format!("{}-{}.txt", opts.program, version),
        };
        let dest = opts.repo.join(&notes_name);
        fs::copy(notes, &dest)
            .map_err(io_err(&format!("copying {} to", notes.display()), &dest))?;
        // The signed manifest vouches for the notes shown, as for the archive.
        release.notes_sha256 = Some(hash::sha256_file(&dest)?.0);
        release.notes = Some(notes_name);
    }
    manifest.releases.push(release.clone());
    let serial = write_manifest(&opts.repo, &mut manifest, &opts.signing)?;
    log::info!(
        "published {} {} as {}",
        opts.program,
        version,
        archive_path.display()
    );
    Ok(Published {
        archive: archive_path,
        release,
        serial,
    })
}

/// Reads `repo/versions.txt`.
pub fn read_manifest(repo: &Path) -> Result<Manifest> {
    let path = repo.join(MANIFEST_NAME);
    let text = fs::read_to_string(&path).map_err(io_err("reading", &path))?;
    Manifest::parse(&text, &path.display().to_string())
}

/// What [`verify_repo`] checked.
#[derive(Debug, Clone)]
pub struct RepoReport {
    /// The manifest's serial.
    pub serial: Option<u64>,
    /// Its expiry.
    pub expires: Option<String>,
    /// Every release checked: program, version, archive size.
    pub releases: Vec<(String, String, u64)>,
}

/// Checks a repository before upload: the signature by `public_key`, that
/// `serial` and `expires` are there and unexpired, and that every archive
/// has the listed size and sha256 and unpacks to its file list with the
/// listed program and version.
pub fn verify_repo(
    repo: &Path,
    public_key: &crate::release::signature::PublicKey,
) -> Result<RepoReport> {
    let manifest_path = repo.join(MANIFEST_NAME);
    let origin = manifest_path.display().to_string();
    let text = fs::read_to_string(&manifest_path).map_err(io_err("reading", &manifest_path))?;
    let sig_path = signature_path(repo);
    let signature = fs::read_to_string(&sig_path).map_err(io_err("reading", &sig_path))?;
    crate::release::signature::verify(
        text.as_bytes(),
        &signature,
        std::slice::from_ref(public_key),
        &origin,
    )?;
    let manifest = Manifest::parse(&text, &origin)?;
    refuse_broken(repo, &manifest)?;
    let (Some(mut serial), Some(mut expires)) = (manifest.serial, manifest.expires.clone()) else {
        return Err(Error::Publish(format!(
            "{origin}: no serial or expires line"
        )));
    };
    // With a freshness file, it is what clients trust: it must be signed,
    // name this very manifest, and be unexpired (the manifest's own
    // expiry is for older clients).
    let fresh_file = fresh_path(repo);
    if fresh_file.exists() {
        let fresh_origin = fresh_file.display().to_string();
        let fresh_text = fs::read_to_string(&fresh_file).map_err(io_err("reading", &fresh_file))?;
        let (fresh, _, _) = crate::release::freshness::verify(
            &fresh_text,
            std::slice::from_ref(public_key),
            &fresh_origin,
        )?;
        if fresh.sha256 != hash::sha256_bytes(text.as_bytes())
            || fresh.size != text.len() as u64
            || fresh.manifest != MANIFEST_NAME
        {
            return Err(Error::Publish(format!(
                "{fresh_origin} names another {} (sha256 {}, {} bytes) than {origin}; \
                 run leapfrog refresh to sign the pair again",
                fresh.manifest, fresh.sha256, fresh.size
            )));
        }
        serial = fresh.serial;
        expires = fresh.expires;
    }
    if std::time::SystemTime::now()
        > humantime::parse_rfc3339(&expires).expect("checked when parsed")
    {
        return Err(Error::Expired {
            url: origin,
            expires,
        });
    }
    let scratch = repo.join(format!(".leapfrog-verify-{}", std::process::id()));
    let mut releases = Vec::new();
    let result = (|| {
        for r in &manifest.releases {
            let what = format!("{} {}", r.program, r.version);
            // Only what lies in the repository is checked, and nothing else:
            // an archive named outside it is an error, never followed.
            let inside = |reference: &str| {
                crate::release::trust::resolve(&manifest_path.to_string_lossy(), reference)
                    .map_err(|reason| Error::Publish(format!("{origin}: {what}: {reason}")))
            };
            let archive = PathBuf::from(inside(&r.file_name())?);
            if let Some(notes) = &r.notes {
                inside(notes)?;
            }
            let (sha256, size) = hash::sha256_file(&archive)?;
            if r.sha256.as_deref() != Some(sha256.as_str()) || r.size != Some(size) {
                return Err(Error::Publish(format!(
                    "{what}: {} has sha256 {sha256} and {size} bytes, but the manifest says {} and {}",
                    archive.display(),
                    r.sha256.as_deref().unwrap_or("none"),
                    r.size.map_or("none".to_owned(), |s| s.to_string())
                )));
            }
            let _ = fs::remove_dir_all(&scratch);
            let list = crate::release::unpack::unpack(&archive, &scratch)?;
            if list.program != r.program || list.version != r.version {
                return Err(Error::Publish(format!(
                    "{what}: {} holds {} {}",
                    archive.display(),
                    list.program,
                    list.version
                )));
            }
            releases.push((r.program.clone(), r.version.to_string(), size));
        }
        Ok(())
    })();
    let _ = fs::remove_dir_all(&scratch);
    result?;
    Ok(RepoReport {
        serial: Some(serial),
        expires: Some(expires),
        releases,
    })
}
