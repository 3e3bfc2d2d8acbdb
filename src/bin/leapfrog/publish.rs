//! `leapfrog publish`.

use std::path::PathBuf;

use anyhow::Context;

use crate::Exit;

pub fn run(
    app_dir: PathBuf,
    program: String,
    version: String,
    repo: PathBuf,
    notes: Option<PathBuf>,
) -> anyhow::Result<Exit> {
    let opts = leapfrog::publish::PublishOptions {
        app_dir,
        program,
        version,
        repo,
        notes,
    };
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
    println!(
        "{} is now at serial {}; upload the folder as it is",
        opts.repo.join(leapfrog::publish::MANIFEST_NAME).display(),
        published.serial
    );
    Ok(Exit::Ok)
}
