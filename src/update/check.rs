//! Step 1's rules: which release, if any, an install moves to. The
//! manifest (then each mirror) is fetched and its signature, freshness and
//! locations checked ([`find_update`]); a release rolled back here is not
//! offered again until a newer one appears, or, when this machine (not the
//! release) made it fail, until a wait is over.

use std::path::Path;
use std::time::{Duration, SystemTime};

use semver::Version;

use crate::config::Resolved;
use crate::error::{Error, Result};
use crate::fetch::{self, Limits};
use crate::journal::{Journal, Step};
use crate::release::freshness::{self, Freshness, FRESH_SUFFIX, MAX_FRESH_BYTES};
use crate::release::manifest::{Manifest, Release};
use crate::release::policy::Audience;
use crate::release::signature::PublicKey;
use crate::release::trust::{self, Cache, CachedDoc, LastCheck, State};

/// What [`Updater::check`](crate::Updater::check) found; see
/// [`Available`] for driving the steps by hand.
#[derive(Debug, Clone)]
#[must_use = "a check found either nothing to do or an update to offer"]
#[non_exhaustive]
pub enum Check {
    /// The running version is the newest (or the manifest expired: no
    /// update this time, and a warning is logged).
    UpToDate,
    /// A newer release to install.
    Available(Box<Available>),
    /// The newest release was installed here before and rolled back; it is
    /// not offered again until `retry_at` (a failure of this machine's) or
    /// until a newer release appears (`retry_at` is `None`: the release
    /// itself failed, or was rolled back on request).
    RolledBack {
        /// The release rolled back.
        version: Version,
        /// Why it was rolled back.
        reason: String,
        /// When it will be tried again, if ever.
        retry_at: Option<SystemTime>,
    },
    /// The user skipped this version ("Skip this version": `until` is
    /// `None`, until a newer release appears) or put it off ("Remind me
    /// later": until `until`). A required update is never put off, and
    /// an updater built [`asked_by_user`](crate::UpdaterBuilder::asked_by_user)
    /// offers it again.
    PutOff {
        /// The version put off.
        version: Version,
        /// Until when, for "Remind me later".
        until: Option<SystemTime>,
    },
}

impl Check {
    /// The update to install, if there is one now.
    pub fn available(self) -> Option<Available> {
        match self {
            Check::Available(available) => Some(*available),
            _ => None,
        }
    }
}

/// An update found by [`Updater::check`](crate::Updater::check).
///
/// ```no_run
/// # let updater = leapfrog::Updater::builder("demo", "1.0.0")
/// #     .manifest_url("https://downloads.example.com/demo/versions.txt")
/// #     .allow_unsigned()
/// #     .build()?;
/// if let Some(update) = updater.check()?.available() {
///     if updater.ask(&update) {
///         let staged = updater.stage(&update)?;
///         log::info!("{} staged", staged.version());
///     }
/// }
/// # Ok::<(), leapfrog::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Available {
    /// The release line.
    pub release: Release,
    /// The version running now.
    pub current: Version,
    /// Where the archive is downloaded from.
    pub archive_url: String,
    /// Where the release notes are, when the manifest names a file.
    pub notes_url: Option<String>,
    /// The notes of every version from the running one (not included) up
    /// to this release, newest first: what the user is shown.
    pub notes: Vec<Notes>,
    /// The manifest it came from.
    pub manifest_url: String,
    /// Whether the update is required: the running version is below the
    /// publisher's floor (`--min-version`, or a critical release).
    pub required: bool,
}

impl Available {
    /// Whether the running version may not be kept: the publisher set a
    /// minimum version above it, or this release is critical. The dialog
    /// and the terminal then offer no "Later"; an app may check this before
    /// it starts work that the update would interrupt.
    ///
    /// ```no_run
    /// # let updater = leapfrog::Updater::builder("demo", "1.0.0")
    /// #     .manifest_url("https://downloads.example.com/demo/versions.txt")
    /// #     .allow_unsigned()
    /// #     .build()?;
    /// if let Some(update) = updater.check()?.available() {
    ///     if update.is_required() {
    ///         log::warn!("{} is required; updating before anything else", update.release.version);
    ///     }
    /// }
    /// # Ok::<(), leapfrog::Error>(())
    /// ```
    pub fn is_required(&self) -> bool {
        self.required
    }
}

/// The release notes of one version, as the manifest gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Notes {
    /// The version.
    pub version: Version,
    /// Notes given in the manifest itself (JSON endpoints).
    pub text: Option<String>,
    /// Where the notes file is.
    pub url: Option<String>,
    /// The notes file's sha256, when the manifest gives it.
    pub sha256: Option<String>,
}

/// What [`find_update`] looks for.
#[derive(Clone)]
pub struct Query<'a> {
    /// The manifest's URL or path.
    pub manifest_url: &'a str,
    /// The channel followed and the install id (staged rollouts).
    pub audience: Audience,
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
    /// The last verified copies of the documents, for conditional
    /// requests: one the host says is unchanged is not fetched again.
    pub cache: Option<&'a Cache>,
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
    /// Whether a release of the program is in a staged rollout (so the
    /// install's id matters, and must be kept).
    pub rollout_seen: bool,
    /// The newest release of the program on the channel (withdrawn ones
    /// left out), offered or not: what `leapfrog check` explains.
    pub newest: Option<Release>,
    /// The time rollout schedules were read at (seconds since the Unix
    /// epoch; see [`Manifest::schedule_time`]).
    pub schedule_at: u64,
    /// The serial and the sha256 of the signed lines of the freshness file
    /// that vouched for the manifest, when one did.
    pub fresh: Option<(u64, String)>,
    /// The verified copies of what this check fetched (or found unchanged),
    /// with their validators: the cache for the next check.
    pub cache: Cache,
}

/// How a manifest's text came to be trusted.
enum Vouched {
    /// Not at all: no public key is configured.
    Unsigned,
    /// Its own signature, `versions.txt.minisig`.
    Signature,
    /// The freshness file that names its hash.
    Fresh(Freshness, String),
}

/// The manifest's text, fetched (or its cached copy, when the host says it
/// is unchanged) and vouched for: with keys, by the freshness file that
/// binds its hash when the host has one, else by its own signature.
fn manifest_text(
    query: &Query<'_>,
    limits: &Limits,
    shown: &str,
    cache: &mut Cache,
) -> Result<(String, Vouched)> {
    let url = query.manifest_url;
    if query.keys.is_empty() {
        let text = fetch_cached(url, limits, query.cache, cache)?;
        log::warn!(
            "{shown}: no public key configured: this update is NOT verified against a signature"
        );
        return Ok((text, Vouched::Unsigned));
    }
    let fresh_url = format!("{url}{FRESH_SUFFIX}");
    let fresh_shown = fetch::redact(&fresh_url);
    let small = Limits {
        max_manifest_bytes: MAX_FRESH_BYTES,
        ..limits.clone()
    };
    let mut fresh_cache = Cache::new();
    // A repository published before freshness files has none: its
    // manifest's own signature decides. An install that accepted a
    // freshness file before never falls back (a host that drops the file
    // would otherwise hold it on an old manifest as long as that one's
    // own expiry).
    let seen_fresh = query.seen.is_some_and(|s| s.fresh_serial.is_some());
    let absent = |why: String| {
        if seen_fresh {
            return Err(Error::Stale {
                url: fresh_shown.clone(),
                reason: format!(
                    "{why}, but this install accepted the repository's freshness files before, \
                     and does not go back to the manifest's own signature"
                ),
            });
        }
        log::debug!("{fresh_shown}: {why}; checking {shown}'s own signature");
        Ok(None)
    };
    let fresh_text = match fetch_cached(&fresh_url, &small, query.cache, &mut fresh_cache) {
        Ok(text) if freshness::looks_like(&text) => Some(text),
        Ok(_) => absent("it is not a freshness file".into())?,
        // Hosts answer a missing object 404, 410 or 403 (object stores).
        Err(e)
            if e.is_not_found()
                || e.http_status()
                    .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429) =>
        {
            absent(format!("it cannot be fetched ({})", e.chain()))?
        }
        Err(e) => return Err(e),
    };
    match fresh_text {
        Some(fresh_text) => {
            let (fresh, fresh_sha256, which) =
                freshness::verify(&fresh_text, query.keys, &fresh_shown)?;
            let name = url
                .split(['?', '#'])
                .next()
                .unwrap_or(url)
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or(url);
            if fresh.manifest != name {
                return Err(Error::Signature {
                    url: fresh_shown.clone(),
                    reason: format!(
                        "it vouches for {:?}, not {name:?}: the freshness file of another repository",
                        fresh.manifest
                    ),
                    source: None,
                });
            }
            let now = query.audience.now.unwrap_or_else(SystemTime::now);
            trust::check_fresh_file(&fresh, &fresh_shown, &fresh_sha256, query.seen, now)?;
            let expected = |text: &str| {
                text.len() as u64 == fresh.size
                    && crate::release::hash::sha256_bytes(text.as_bytes()) == fresh.sha256
            };
            let at_hand = query
                .cache
                .and_then(|c| c.get(&fetch::redact(url)))
                .filter(|doc| expected(&doc.text));
            let text = match at_hand {
                // The manifest did not change: no request for it at all.
                Some(doc) => {
                    cache.insert(fetch::redact(url), doc.clone());
                    doc.text.clone()
                }
                None => {
                    let mut fetched = Cache::new();
                    let text = fetch_cached(url, limits, None, &mut fetched)?;
                    if !expected(&text) {
                        // What is no manifest at all (an error page) is
                        // said as such.
                        Manifest::parse_any(&text, shown, query.program)?;
                        return Err(Error::Stale {
                            url: shown.to_owned(),
                            reason: format!(
                                "it is not the manifest {fresh_shown} (serial {}) names (sha256 {}, {} bytes, not {}, {} bytes): \
                                 a cache between holds another version of one of them, or it was changed after signing",
                                fresh.serial,
                                fresh.sha256,
                                fresh.size,
                                crate::release::hash::sha256_bytes(text.as_bytes()),
                                text.len()
                            ),
                        });
                    }
                    cache.append(&mut fetched);
                    text
                }
            };
            cache.append(&mut fresh_cache);
            log::info!(
                "{fresh_shown}: signature verified (key {}), serial {}, expires {}",
                which + 1,
                fresh.serial,
                fresh.expires
            );
            Ok((text, Vouched::Fresh(fresh, fresh_sha256)))
        }
        None => {
            let text = fetch_cached(url, limits, query.cache, cache)?;
            let sig_url = format!("{url}{}", crate::release::signature::SIGNATURE_SUFFIX);
            let sig_limits = Limits {
                max_manifest_bytes: crate::release::signature::MAX_SIGNATURE_BYTES,
                ..limits.clone()
            };
            let mut sig_cache = Cache::new();
            let signature = fetch_cached(&sig_url, &sig_limits, query.cache, &mut sig_cache)
                .map_err(|e| Error::Signature {
                    url: shown.to_owned(),
                    reason: "unsigned: its signature cannot be fetched".into(),
                    source: Some(Box::new(e)),
                })?;
            let which =
                crate::release::signature::verify(text.as_bytes(), &signature, query.keys, shown)
                    .inspect_err(|_| {
                    cache.remove(&fetch::redact(url));
                })?;
            cache.append(&mut sig_cache);
            log::info!("{shown}: signature verified (key {})", which + 1);
            Ok((text, Vouched::Signature))
        }
    }
}

/// Fetches a small text, conditionally when `cached` has a copy of it;
/// puts what it got (or the copy, still current) into `fresh`.
fn fetch_cached(
    url: &str,
    limits: &Limits,
    cached: Option<&Cache>,
    fresh: &mut Cache,
) -> Result<String> {
    // Kept by the URL as it may be shown: never a password in the file.
    let key = fetch::redact(url);
    let at_hand = cached.and_then(|c| c.get(&key));
    match fetch::fetch_text_if(url, limits, at_hand.map(|doc| &doc.validators))? {
        fetch::Fetched::NotModified => {
            let doc = at_hand.expect("only a conditional request gets a 304");
            log::debug!("{key}: not modified");
            fresh.insert(key, doc.clone());
            Ok(doc.text.clone())
        }
        fetch::Fetched::Text(text, validators) => {
            fresh.insert(
                key,
                CachedDoc {
                    validators,
                    text: text.clone(),
                },
            );
            Ok(text)
        }
    }
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
    let mut cache = Cache::new();
    let (text, vouched) = manifest_text(query, limits, &shown, &mut cache)?;
    let signed = !matches!(vouched, Vouched::Unsigned);
    let mut manifest = Manifest::parse_any(&text, &shown, query.program)?;
    if let Some(target) = &query.audience.target {
        if let Some(broken) = manifest.broken_for(query.program, target).next() {
            return Err(Error::Manifest {
                origin: shown.clone(),
                line: broken.line,
                message: format!("the release line for {}: {}", broken.target, broken.message),
            });
        }
    }
    for broken in &manifest.broken {
        log::warn!(
            "{shown}:{}: the release line for {} cannot be read ({}); it concerns other platforms",
            broken.line,
            broken.target,
            broken.message
        );
    }
    let manifest_sha256 = crate::release::hash::sha256_bytes(text.as_bytes());
    let now = query.audience.now.unwrap_or_else(SystemTime::now);
    let fresh = match vouched {
        Vouched::Unsigned => None,
        Vouched::Signature => {
            trust::check_fresh(&manifest, &shown, &manifest_sha256, query.seen, Some(now))?;
            None
        }
        // The freshness file's expiry and signing time stand for the
        // manifest's own.
        Vouched::Fresh(fresh, fresh_sha256) => {
            trust::check_fresh(&manifest, &shown, &manifest_sha256, query.seen, None)?;
            manifest.signed = Some(fresh.signed.clone());
            Some((fresh.serial, fresh_sha256))
        }
    };
    let checked = |update| Checked {
        update,
        signed,
        serial: manifest.serial,
        manifest_sha256: manifest_sha256.clone(),
        next_key: manifest.next_key.clone(),
        rollout_seen: manifest.releases_of(query.program).any(Release::staged),
        schedule_at: manifest.schedule_time(now),
        fresh: fresh.clone(),
        cache: cache.clone(),
        newest: manifest
            .releases_of(query.program)
            .filter(|r| !r.yanked && query.audience.follows(r))
            .max_by(|a, b| a.version.cmp(&b.version))
            .cloned(),
    };
    if manifest.newest(query.program).is_none() {
        return Err(Error::UnknownProgram {
            origin: shown.clone(),
            program: query.program.to_owned(),
        });
    }
    // Going back to an older version is only allowed when a signed manifest
    // withdraws the running one.
    let Some(release) = manifest.update_for_install(
        query.program,
        query.current,
        &query.audience,
        query.prereleases,
        signed,
    ) else {
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
        // The app's template names one archive a version; a line for one
        // target names its own.
        (None, Some(template)) if release.target.is_none() => {
            template.replace("{version}", &release.version.to_string())
        }
        (None, _) => release.file_name(),
    };
    if release.version < *query.current && query.audience.downgrade {
        log::warn!(
            "{} {}: going down to {}, the newest release on the {} channel, as the app asked",
            query.program,
            query.current,
            release.version,
            query.audience.channel()
        );
    } else if release.version < *query.current {
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
    let archive_url = trust::resolve(url, &file).map_err(&refuse)?;
    let notes_url = match &release.notes {
        Some(notes) => Some(trust::resolve(url, notes).map_err(&refuse)?),
        None => None,
    };
    let wants_pre = query.prereleases || !query.current.pre.is_empty();
    let notes = if release.version > *query.current {
        manifest.notes_between(
            query.program,
            &query.audience,
            wants_pre,
            query.current,
            &release.version,
        )
    } else {
        vec![release]
    }
    .into_iter()
    .filter(|r| r.notes.is_some() || r.notes_text.is_some())
    .filter_map(|r| {
        let url = match &r.notes {
            Some(notes) => match trust::resolve(url, notes) {
                Ok(resolved) => Some(resolved),
                Err(e) => {
                    log::warn!("{shown}: the notes of {} are not shown: {e}", r.version);
                    return None;
                }
            },
            None => None,
        };
        Some(Notes {
            version: r.version.clone(),
            text: r.notes_text.clone(),
            url,
            sha256: r.notes_sha256.clone(),
        })
    })
    .collect();
    // Only a signed manifest may take the user's "Later" away; a release
    // lower than the running one (a withdrawal, a change of channel) is
    // never forced.
    let required = signed
        && release.version > *query.current
        && (release.critical
            || manifest
                .floor_for(query.program, &query.audience, wants_pre)
                .is_some_and(|floor| query.current < floor));
    if required {
        log::warn!(
            "{} {} is below the publisher's minimum: updating to {} is required",
            query.program,
            query.current,
            release.version
        );
    }
    Ok(checked(Some(Available {
        required,
        archive_url,
        notes_url,
        notes,
        release: release.clone(),
        current: query.current.clone(),
        manifest_url: url.to_owned(),
    })))
}

/// Step 1 for `updater`: the manifest URL, then the mirrors, in order; see
/// [`Updater::check`](crate::Updater::check).
pub(crate) fn newest(updater: &Resolved) -> Result<Check> {
    let mut failures = Vec::new();
    let mut expired = 0;
    for url in updater.manifest_urls() {
        match check_at(updater, url) {
            Ok(found) => return Ok(found),
            Err(e) => {
                if matches!(e, Error::Expired { .. } | Error::Stale { .. }) {
                    expired += 1;
                }
                let mirrors = updater.manifest_urls().count() > 1;
                if !mirrors && expired == 0 {
                    return Err(e);
                }
                if mirrors {
                    log::warn!("mirror {} skipped: {}", fetch::redact(url), e.chain());
                }
                failures.push(e);
            }
        }
    }
    // A signed manifest past its expiry is the publisher's to renew
    // (`leapfrog refresh`), and a cache serving a stale copy is the
    // host's to catch up: not the user's problem, no update this time.
    if expired == failures.len() {
        for e in &failures {
            log::warn!(
                "{}; no update this time, the next check tries again",
                e.chain()
            );
        }
        back_off(updater, None);
        return Ok(Check::UpToDate);
    }
    let last = Box::new(failures.pop().expect("at least one URL was tried"));
    Err(Error::Mirrors { failures, last })
}

/// Step 1 against one manifest URL. A signed manifest that is accepted is
/// remembered (serial, hash, a next key) in the install dir's state file.
pub(crate) fn check_at(updater: &Resolved, manifest_url: &str) -> Result<Check> {
    let install_dir = updater.install_dir();
    let state = State::read(install_dir)?;
    let mut keys = updater.keys().to_vec();
    for next in &state.next_keys {
        if let Ok(key) = crate::release::signature::parse_public_key(next) {
            keys.push(key);
        }
    }
    let settings = updater.settings();
    // The install's id, for staged rollouts: made once, kept in the state
    // file as soon as a manifest has a rollout that it decides.
    let install_id = (state.install_id.clone()).unwrap_or_else(trust::new_install_id);
    let query = Query {
        manifest_url,
        audience: Audience {
            channel: settings.channel.clone(),
            install_id: Some(install_id.clone()),
            target: Some(crate::release::policy::this_target()),
            downgrade: settings.channel_downgrade,
            by_user: settings.by_user,
            now: None,
        },
        program: updater.program(),
        current: updater.current_version(),
        prereleases: settings.prereleases,
        allow_unverified: settings.allow_unverified,
        archive_template: settings.archive_template.as_deref(),
        keys: if updater.keys().is_empty() {
            &[]
        } else {
            &keys
        },
        seen: Some(&state),
        cache: Some(&state.cache),
    };
    let checked = find_update(&query, &settings.limits)?;
    let now = SystemTime::now();
    // Another copy of the app may have written the state since it was
    // read: what this check learnt is merged into the file as it is now,
    // never written over it.
    let mut fresh = State::read(install_dir)?;
    let changed = match remember(&mut fresh, &checked, |url| {
        updater
            .manifest_urls()
            .any(|m| url.starts_with(&fetch::redact(m)))
    }) {
        Ok(changed) => changed,
        Err(why) => {
            log::warn!(
                "{}: {why}; no update this time",
                fetch::redact(manifest_url)
            );
            back_off(updater, None);
            return Ok(Check::UpToDate);
        }
    };
    let new_id = checked.rollout_seen && fresh.install_id.is_none();
    if new_id {
        fresh.install_id = Some(install_id);
    }
    let found = match checked.update {
        None => Check::UpToDate,
        Some(available) => decide(updater, &fresh, available, now),
    };
    super::schedule::succeeded(
        &mut fresh,
        &settings.schedule,
        unix_seconds(now),
        super::schedule::random(),
    );
    fresh.last_check = Some(LastCheck {
        at: unix_seconds(now),
        result: match &found {
            Check::Available(a) if a.required => format!("{} required", a.release.version),
            Check::Available(a) => format!("{} available", a.release.version),
            Check::RolledBack { version, .. } => format!("{version} rolled back here before"),
            Check::PutOff {
                version,
                until: None,
            } => format!("{version} skipped by the user"),
            Check::PutOff { version, .. } => format!("{version} put off by the user"),
            Check::UpToDate => "up to date".into(),
        },
    });
    if changed {
        fresh.write(install_dir)?;
    } else if let Err(e) = fresh.write(install_dir) {
        // Only the id or the time of the check is new: a folder that
        // cannot keep them (read-only) still gets its update decided,
        // with an id drawn again next time.
        if new_id {
            log::warn!("the install id cannot be kept: {}", e.chain());
        } else {
            log::debug!("the time of this check cannot be kept: {}", e.chain());
        }
    }
    Ok(found)
}

/// A check that did not succeed (it failed, or found the repository
/// expired or a stale copy): the next automatic one backs off, or waits as
/// long as the host asked.
pub(crate) fn back_off(updater: &Resolved, retry_after: Option<Duration>) {
    let install = updater.install_dir();
    let Ok(mut state) = State::read(install) else {
        return;
    };
    let now = unix_seconds(SystemTime::now());
    let schedule = &updater.settings().schedule;
    let at = super::schedule::failed(
        &mut state,
        schedule,
        now,
        retry_after,
        super::schedule::random(),
    );
    match state.write(install) {
        Ok(()) => log::info!(
            "the next automatic check waits {} s ({} in a row did not succeed{})",
            at.saturating_sub(now),
            state.failed_checks,
            if retry_after.is_some() {
                ", as the host asked"
            } else {
                ""
            }
        ),
        Err(e) => log::debug!("the check's outcome cannot be noted: {}", e.chain()),
    }
}

/// Merges what a check learnt into an install's state: the serials and
/// hashes accepted (the manifest's, the freshness file's), a next key the
/// signed manifest announced, and the verified copies of the documents
/// whose URL `keep` accepts. Returns whether anything that guards against
/// replays changed; an error (nothing merged) when another copy of the
/// program accepted a newer manifest meanwhile.
pub fn remember(
    state: &mut State,
    checked: &Checked,
    keep: impl Fn(&str) -> bool,
) -> std::result::Result<bool, String> {
    if checked.signed && checked.serial < state.serial {
        return Err(format!(
            "serial {} is older than the {} another copy of the program accepted meanwhile",
            checked.serial.unwrap_or(0),
            state.serial.unwrap_or(0)
        ));
    }
    if let (Some((serial, _)), Some(highest)) = (&checked.fresh, state.fresh_serial) {
        if *serial < highest {
            return Err(format!(
                "{FRESH_SUFFIX} serial {serial} is older than the {highest} another copy of the program accepted meanwhile"
            ));
        }
    }
    let mut changed = false;
    if let Some((serial, sha256)) = &checked.fresh {
        if Some(*serial) > state.fresh_serial || state.fresh_sha256.is_none() {
            state.fresh_serial = Some(*serial);
            state.fresh_sha256 = Some(sha256.clone());
            changed = true;
        }
    }
    if checked.signed {
        if checked.serial > state.serial || state.manifest_sha256.is_none() {
            state.serial = checked.serial;
            state.manifest_sha256 = Some(checked.manifest_sha256.clone());
            changed = true;
        }
        if let Some(next) = &checked.next_key {
            if !state.next_keys.contains(next) {
                log::info!(
                    "trusting the publisher's next key {next}, announced by the signed manifest"
                );
                state.next_keys.push(next.clone());
                changed = true;
            }
        }
    }
    state.cache.extend(checked.cache.clone());
    state.cache.retain(|url, _| keep(url));
    Ok(changed)
}

/// Whether an update found is offered now: not when it was rolled back
/// here (until its retry is due), nor when the user skipped or put it off
/// (unless it is required, or the user asked for this check).
fn decide(updater: &Resolved, state: &State, available: Available, now: SystemTime) -> Check {
    let version = available.release.version.clone();
    if let Ok(Some(journal)) = Journal::read(updater.backup_dir()) {
        if journal.step == Step::RolledBack && journal.to_version == version.to_string() {
            let retry_at = retry_time(updater, &journal);
            if retry_at.is_none_or(|due| now < due) {
                return Check::RolledBack {
                    version,
                    reason: journal.error.unwrap_or_else(|| "no reason recorded".into()),
                    retry_at,
                };
            }
        }
    }
    let program = updater.program();
    if available.required || updater.settings().by_user {
        return Check::Available(Box::new(available));
    }
    if state.skipped.as_deref() == Some(&version.to_string()) {
        log::info!("{program} {version} was skipped by the user; waiting for a newer release");
        return Check::PutOff {
            version,
            until: None,
        };
    }
    if let Some(remind) = &state.remind {
        let until = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(remind.until))
            .unwrap_or(now);
        if remind.version == version.to_string() && now < until {
            log::info!(
                "{program} {version} was put off by the user until {}",
                humantime::format_rfc3339_seconds(until)
            );
            return Check::PutOff {
                version,
                until: Some(until),
            };
        }
    }
    Check::Available(Box::new(available))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// When a version rolled back here may be tried again: `None` never (the
/// release itself failed, or was rolled back on request: not until a newer
/// one appears); from the time returned on, when this machine made
/// it fail (an I/O error, no permission, a full disk, a kill): after
/// [`retry_after`](crate::UpdaterBuilder::retry_after), doubled after each
/// failure, a day at most.
fn retry_time(updater: &Resolved, journal: &Journal) -> Option<SystemTime> {
    let why = journal.error.as_deref().unwrap_or("no reason recorded");
    let program = updater.program();
    let (Some(failed_at), false) = (journal.failed_at, journal.bad_release) else {
        log::debug!("{program} {}: {why}", journal.to_version);
        log::warn!(
            "{program} {} was rolled back here before; waiting for a newer release",
            journal.to_version
        );
        return None;
    };
    let doubled = 1u32 << journal.retries.saturating_sub(1).min(16);
    let wait = updater
        .settings()
        .retry_after
        .saturating_mul(doubled)
        .min(Duration::from_secs(24 * 3600));
    let due = SystemTime::UNIX_EPOCH + Duration::from_secs(failed_at) + wait;
    if SystemTime::now() < due {
        log::info!(
            "{program} {} could not be installed here ({why}); trying again after {}",
            journal.to_version,
            humantime::format_rfc3339_seconds(due)
        );
    } else {
        log::info!(
            "trying {program} {} again: it failed here before through no fault of its own ({why})",
            journal.to_version
        );
    }
    Some(due)
}

/// How often `version` failed here before through no fault of its own
/// (an earlier journal in the backup dir says so).
pub(crate) fn earlier_retries(backup: &Path, version: &str) -> u32 {
    match Journal::read(backup) {
        Ok(Some(j)) if j.step == Step::RolledBack && j.to_version == version && !j.bad_release => {
            j.retries
        }
        _ => 0,
    }
}

/// Refuses to stage while an earlier update of this install is not over:
/// staged or being applied (restart to finish it), or installed and on its
/// trial (the backup holds the only good copy of the old version until the
/// new one has proven itself).
pub(crate) fn nothing_in_progress(backup_dir: &Path) -> Result<()> {
    let Some(journal) = Journal::read(backup_dir)? else {
        return Ok(());
    };
    let on_trial = match journal.step {
        Step::Confirmed | Step::RolledBack => return Ok(()),
        Step::Applied => true,
        Step::Staged | Step::Applying | Step::RollingBack => false,
    };
    Err(Error::InProgress {
        backup_dir: backup_dir.to_owned(),
        version: journal.to_version,
        on_trial,
    })
}
