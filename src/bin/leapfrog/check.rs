//! `leapfrog check`: what an install would be offered, and why.

use std::path::Path;

use leapfrog::internal::{Audience, State};

use crate::Exit;

pub fn run(
    manifest_url: &str,
    program: &str,
    current: &str,
    public_key: Option<&Path>,
    cache: Option<&Path>,
    audience: Audience,
    json: bool,
) -> anyhow::Result<Exit> {
    let current = leapfrog::internal::parse_version(current)?;
    let keys: Vec<_> = public_key
        .map(leapfrog::publish::read_public_key)
        .transpose()?
        .into_iter()
        .collect();
    let channel = audience.channel().to_owned();
    let query_by_user = audience.by_user;
    let target = audience.target.clone();
    let install_id = audience.install_id.clone();
    let query = leapfrog::internal::Query {
        manifest_url,
        audience,
        program,
        current: &current,
        prereleases: false,
        allow_unverified: true,
        archive_template: None,
        keys: &keys,
        seen: None,
        cache: None,
    };
    let limits = leapfrog::internal::Limits::default();
    let checked = match cache {
        None => leapfrog::internal::find_update(&query, &limits)?,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("creating the cache folder {}: {e}", dir.display()))?;
            let mut state = State::read(dir)?;
            let checked = leapfrog::internal::find_update(
                &leapfrog::internal::Query {
                    seen: Some(&state),
                    cache: Some(&state.cache),
                    ..query.clone()
                },
                &limits,
            )?;
            let shown = leapfrog::internal::redact(manifest_url);
            leapfrog::internal::remember(&mut state, &checked, |url| url.starts_with(&shown))
                .map_err(|why| anyhow::anyhow!("{manifest_url}: {why}"))?;
            state.write(dir)?;
            checked
        }
    };
    let (status, exit) = match &checked.update {
        None => ("up_to_date", Exit::Ok),
        Some(a) if a.is_required() => ("required", Exit::UpdateRequired),
        Some(_) => ("available", Exit::UpdateAvailable),
    };
    // The release the decision is about: the one offered, else the newest
    // on the channel (left out of its rollout, or not newer).
    let about = checked
        .update
        .as_ref()
        .map(|a| &a.release)
        .or(checked.newest.as_ref());
    let at = checked.schedule_at;
    let bucket = about
        .zip(install_id.as_deref())
        .filter(|(r, _)| r.staged())
        .map(|(r, id)| r.bucket(id));
    let by_user = query_by_user;
    let reason = match (&checked.update, &checked.newest) {
        (Some(a), _) if a.is_required() => format!(
            "{program} {current} is below the publisher's minimum version; {} is required",
            a.release.version
        ),
        (Some(a), _) if a.release.version < current => format!(
            "{program} {current} is withdrawn, or the app asked to change channel: going back to {}",
            a.release.version
        ),
        (Some(a), _) => match (a.release.percent_at(at), &install_id) {
            (Some(percent), _) if by_user => format!(
                "{} is newer; it is offered to {percent}% of installs, and to any whose user asks",
                a.release.version
            ),
            (Some(percent), Some(_)) => format!(
                "{} is newer, and this install is in its rollout to {percent}% of installs",
                a.release.version
            ),
            (Some(percent), None) => format!(
                "{} is newer; it is offered to {percent}% of installs (give --install-id to decide for one)",
                a.release.version
            ),
            (None, _) => format!("{} is newer", a.release.version),
        },
        (None, Some(newest)) if newest.version > current => match newest.percent_at(at) {
            Some(0) if newest.schedule.first().is_some_and(|step| at < step.at) => format!(
                "{} is newer, but its rollout schedule has not reached its first step",
                newest.version
            ),
            Some(0) => format!(
                "{} is newer, but its rollout is halted (0% of installs)",
                newest.version
            ),
            Some(percent) if install_id.is_some() => format!(
                "{} is newer, but is offered to {percent}% of installs and this install is not among them",
                newest.version
            ),
            _ => format!(
                "{} is newer, but not for this install (a pre-release, or withdrawn)",
                newest.version
            ),
        },
        (None, _) => format!("no release on the {channel} channel is newer than {current}"),
    };
    if json {
        let decision = serde_json::json!({
            "status": status,
            "version": about.map(|r| r.version.to_string()),
            "channel": channel,
            "target": target,
            "bucket": bucket,
            "reason": reason,
            "signed": checked.signed,
        });
        println!("{decision}");
        return Ok(exit);
    }
    if checked.signed {
        println!("signature verified; serial {}", checked.serial.unwrap_or(0));
    }
    let bucket_line = about.zip(bucket).map(|(r, b)| {
        format!(
            "  bucket:  {b:.4} in {}'s rollout (in when below its share)",
            r.version
        )
    });
    match checked.update {
        None => {
            println!("{program} {current} is up to date on the {channel} channel");
            println!("  {reason}");
            if let Some(line) = &bucket_line {
                println!("{line}");
            }
        }
        Some(available) => {
            let r = &available.release;
            let size = r
                .size
                .map_or("unknown size".to_owned(), |s| format!("{s} bytes"));
            let what = if available.is_required() {
                "update required"
            } else {
                "update available"
            };
            println!(
                "{what}: {program} {current} -> {} ({channel} channel)",
                r.version
            );
            println!("  {reason}");
            if let Some(line) = &bucket_line {
                println!("{line}");
            }
            println!("  archive: {} ({size})", available.archive_url);
            match &r.sha256 {
                Some(sum) => println!("  sha256:  {sum}"),
                None => println!("  sha256:  none: apps refuse this release unless they allow unverified updates"),
            }
            if let Some(notes) = &available.notes_url {
                println!("  notes:   {notes}");
            }
        }
    }
    Ok(exit)
}
