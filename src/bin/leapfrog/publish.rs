//! `leapfrog publish`, `yank`, `keygen` and `verify`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use leapfrog::publish::Signing;

use crate::Exit;

/// The secret key's password, for encrypted keys.
pub const PASSWORD_ENV: &str = "LEAPFROG_SECRET_KEY_PASSWORD";

/// The signing options shared by publish, yank and refresh.
#[derive(clap::Args)]
pub struct SignArgs {
    /// Sign versions.txt into versions.txt.minisig with this minisign secret key
    /// (an encrypted key takes its password from LEAPFROG_SECRET_KEY_PASSWORD).
    #[arg(long)]
    secret_key: Option<PathBuf>,
    /// How long the manifest stays valid (its `expires`), e.g. 30days, 12h.
    #[arg(long, default_value = "30days", value_parser = humantime::parse_duration)]
    expires_in: std::time::Duration,
    /// Announce this public key as the next one (key rotation).
    #[arg(long)]
    next_public_key: Option<PathBuf>,
}

impl SignArgs {
    fn signing(&self) -> anyhow::Result<Signing> {
        let next_public_key = match &self.next_public_key {
            Some(p) => Some(
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            ),
            None => None,
        };
        Ok(Signing {
            secret_key: self.secret_key.clone(),
            password: std::env::var(PASSWORD_ENV).ok(),
            expires_in: self.expires_in,
            next_public_key,
        })
    }
}

/// `leapfrog publish`: what `opts` asks for, signed as `sign` says.
pub fn run(mut opts: leapfrog::publish::PublishOptions, sign: &SignArgs) -> anyhow::Result<Exit> {
    opts.signing = sign.signing()?;
    let published = leapfrog::publish::publish(&opts)
        .with_context(|| format!("publishing {} {}", opts.program, opts.version))?;
    let r = &published.release;
    println!(
        "published {} {}: {} ({} bytes, sha256 {})",
        r.program,
        r.version,
        published.archive.display(),
        r.size.unwrap_or(0),
        r.sha256.as_deref().unwrap_or("")
    );
    let signed = if opts.signing.secret_key.is_some() {
        "signed, "
    } else {
        "UNSIGNED, "
    };
    println!(
        "{} is now at serial {} ({signed}valid for {}); upload the folder as it is",
        opts.repo.join(leapfrog::publish::MANIFEST_NAME).display(),
        published.serial,
        humantime::format_duration(opts.signing.expires_in)
    );
    Ok(Exit::Ok)
}

pub fn rollout(
    repo: &Path,
    program: &str,
    version: &str,
    share: (Option<u8>, Option<String>),
    sign: &SignArgs,
) -> anyhow::Result<Exit> {
    let signing = sign.signing()?;
    let (serial, offered) = match share {
        (Some(percent), None) => (
            leapfrog::publish::rollout(repo, program, version, percent, &signing),
            format!("{percent}% of installs"),
        ),
        (None, Some(schedule)) => (
            leapfrog::publish::schedule(repo, program, version, &schedule, &signing),
            format!("installs on the schedule {schedule}"),
        ),
        _ => anyhow::bail!("give --percent or --schedule"),
    };
    let serial = serial.with_context(|| format!("rolling out {program} {version}"))?;
    println!("{program} {version} is offered to {offered}; versions.txt is now at serial {serial}");
    Ok(Exit::Ok)
}

pub fn yank(repo: &Path, program: &str, version: &str, sign: &SignArgs) -> anyhow::Result<Exit> {
    let serial = leapfrog::publish::yank(repo, program, version, &sign.signing()?)
        .with_context(|| format!("withdrawing {program} {version}"))?;
    println!("withdrew {program} {version}; versions.txt is now at serial {serial}");
    Ok(Exit::Ok)
}

pub fn refresh(repo: &Path, sign: &SignArgs) -> anyhow::Result<Exit> {
    let signing = sign.signing()?;
    let serial = leapfrog::publish::refresh(repo, &signing)
        .with_context(|| format!("refreshing {}", repo.display()))?;
    println!(
        "re-signed {} at serial {serial}, valid for {}; versions.txt and the releases are untouched; upload versions.txt.fresh",
        leapfrog::publish::fresh_path(repo).display(),
        humantime::format_duration(signing.expires_in)
    );
    Ok(Exit::Ok)
}

pub fn upload(repo: &Path, dest: &str, public_key: Option<&Path>) -> anyhow::Result<Exit> {
    if let Some(key) = public_key {
        verify(repo, key)?;
    }
    let limits = leapfrog::internal::Limits::default();
    let done = leapfrog::publish::upload::upload(repo, dest, &limits)
        .with_context(|| format!("uploading {}", repo.display()))?;
    let shown = leapfrog::internal::redact(dest);
    println!(
        "uploaded {} to {shown}: {} artifact(s) written, {} already there, then {}",
        repo.display(),
        done.written.len(),
        done.already_there.len(),
        done.pointers.join(", ")
    );
    Ok(Exit::Ok)
}

pub fn keygen(secret_key: &Path, public_key: &Path) -> anyhow::Result<Exit> {
    let password = std::env::var(PASSWORD_ENV).ok();
    let encrypted = password.is_some();
    leapfrog::publish::keygen(secret_key, public_key, password)?;
    println!(
        "wrote {} (mode 0600) and {}",
        secret_key.display(),
        public_key.display()
    );
    if !encrypted {
        eprintln!(
            "leapfrog: the secret key is not encrypted; set {PASSWORD_ENV} when generating to encrypt it, and keep it offline"
        );
    }
    Ok(Exit::Ok)
}

pub fn verify(repo: &Path, public_key: &Path) -> anyhow::Result<Exit> {
    let key = leapfrog::publish::read_public_key(public_key)?;
    let report = leapfrog::publish::verify_repo(repo, &key)
        .with_context(|| format!("verifying {}", repo.display()))?;
    println!(
        "{}: signature good, serial {}, expires {}",
        repo.display(),
        report.serial.unwrap_or(0),
        report.expires.as_deref().unwrap_or("")
    );
    for (program, version, size) in &report.releases {
        println!("  {program} {version}: archive and file list verified ({size} bytes)");
    }
    Ok(Exit::Ok)
}
