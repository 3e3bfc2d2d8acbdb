//! The publisher's side: pack a release, hash it, add it to `versions.txt`.
//!
//! The repository folder can then be uploaded anywhere that serves files.

use std::fs;
use std::path::{Path, PathBuf};

use crate::archive;
use crate::error::{io_err, Error, Result};
use crate::manifest::{self, Manifest, Release};
use crate::verify;

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
    if !opts.app_dir.is_dir() {
        return Err(Error::Publish(format!(
            "{} is not a folder",
            opts.app_dir.display()
        )));
    }
    fs::create_dir_all(&opts.repo).map_err(io_err("creating", &opts.repo))?;
    let manifest_path = opts.repo.join(MANIFEST_NAME);
    let mut manifest = match fs::read_to_string(&manifest_path) {
        Ok(text) => Manifest::parse(&text, &manifest_path.display().to_string())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
        Err(e) => return Err(io_err("reading", &manifest_path)(e)),
    };
    if let Some(newest) = manifest.newest(&opts.program) {
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
    let name = manifest::archive_name(&opts.program, &version);
    let archive_path = opts.repo.join(&name);
    let tmp = opts
        .repo
        .join(format!(".{name}.tmp-{}", std::process::id()));
    let packed = archive::pack(&opts.app_dir, &opts.program, &version, &tmp)
        .and_then(|_| verify::sha256_file(&tmp))
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
    let mut release = Release::new(&opts.program, version.clone());
    release.file = Some(name);
    release.sha256 = Some(sha256);
    release.size = Some(size);
    if let Some(notes) = &opts.notes {
        let notes_name = format!("{}-{}.txt", opts.program, version);
        let dest = opts.repo.join(&notes_name);
        fs::copy(notes, &dest)
            .map_err(io_err(&format!("copying {} to", notes.display()), &dest))?;
        release.notes = Some(notes_name);
    }
    let serial = manifest.serial.unwrap_or(0) + 1;
    manifest.serial = Some(serial);
    manifest.releases.push(release.clone());
    crate::sys::write_atomic(&manifest_path, manifest.render().as_bytes())?;
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
