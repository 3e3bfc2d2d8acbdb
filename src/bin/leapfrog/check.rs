//! `leapfrog check`.

use std::path::Path;

use crate::Exit;

pub fn run(
    manifest_url: &str,
    program: &str,
    current: &str,
    public_key: Option<&Path>,
    audience: leapfrog::internal::Audience,
) -> anyhow::Result<Exit> {
    let current = leapfrog::internal::parse_version(current)?;
    let keys: Vec<_> = public_key
        .map(leapfrog::publish::read_public_key)
        .transpose()?
        .into_iter()
        .collect();
    let channel = audience.channel().to_owned();
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
    };
    let limits = leapfrog::internal::Limits::default();
    let checked = leapfrog::internal::find_update(&query, &limits)?;
    if checked.signed {
        println!("signature verified; serial {}", checked.serial.unwrap_or(0));
    }
    match checked.update {
        None => {
            println!("{program} {current} is up to date on the {channel} channel");
            Ok(Exit::Ok)
        }
        Some(available) => {
            let r = &available.release;
            let size = r
                .size
                .map_or("unknown size".to_owned(), |s| format!("{s} bytes"));
            println!(
                "update available on the {channel} channel: {program} {current} -> {}",
                r.version
            );
            if let Some(percent) = r.rollout {
                println!("  rollout: offered to {percent}% of installs");
            }
            println!("  archive: {} ({size})", available.archive_url);
            match &r.sha256 {
                Some(sum) => println!("  sha256:  {sum}"),
                None => println!("  sha256:  none: apps refuse this release unless they allow unverified updates"),
            }
            if let Some(notes) = &available.notes_url {
                println!("  notes:   {notes}");
            }
            Ok(Exit::UpdateAvailable)
        }
    }
}
