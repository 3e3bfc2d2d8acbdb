//! `leapfrog status`: what an install is, and what it would be offered.

use std::path::Path;

use anyhow::Context;
use leapfrog::internal::{layout, Audience, Journal, State};
use leapfrog::publish::FileList;

use crate::Exit;

pub fn run(install: &Path, backup: Option<&Path>) -> anyhow::Result<Exit> {
    let list = FileList::read_installed(install)
        .with_context(|| format!("reading the release file list in {}", install.display()))?;
    match &list {
        Some(list) => println!("{}: {} {}", install.display(), list.program, list.version),
        None => println!(
            "{}: no release file list (not installed from a leapfrog archive)",
            install.display()
        ),
    }
    let config = read_config(install);
    let field = |name: &str| {
        config
            .as_ref()
            .and_then(|c| c["Update_app"][name].as_str().map(str::to_owned))
    };
    let channel = field("channel");
    let audience = Audience {
        channel: channel.clone(),
        install_id: None,
        target: Some(leapfrog::internal::this_target()),
        ..Audience::default()
    };
    println!("  channel:    {}", audience.channel());
    println!("  platform:   {}", leapfrog::internal::this_target());
    let state = State::read(install)?;
    println!(
        "  install id: {}",
        state
            .install_id
            .as_deref()
            .unwrap_or("none yet (made when a staged rollout first needs one)")
    );
    match &state.last_check {
        Some(last) => println!("  last check: {} ({})", when(last.at), last.result),
        None => println!("  last check: none recorded"),
    }
    if let Some(skipped) = &state.skipped {
        println!("  skipped by the user: {skipped} (offered again when newer, or asked for)");
    }
    if let Some(remind) = &state.remind {
        println!(
            "  put off by the user: {} until {}",
            remind.version,
            when(remind.until)
        );
    }
    match state.serial {
        Some(serial) => println!("  last signed manifest accepted: serial {serial}"),
        None => println!("  no signed manifest accepted yet"),
    }
    let key = field("public_key");
    println!(
        "  trusted keys: {}",
        match (&key, state.next_keys.len()) {
            (None, _) => "none configured in data/config.json".to_owned(),
            (Some(_), 0) => "the publisher's key in data/config.json".to_owned(),
            (Some(_), n) => format!("the publisher's key and {n} next key(s) it announced"),
        }
    );
    let backup = match backup {
        Some(dir) => Some(dir.to_owned()),
        None => layout::default_backup_dir(install),
    };
    if let Some(backup) = &backup {
        match Journal::read(backup) {
            Ok(Some(j)) => println!(
                "  last update: {} -> {}, {:?}{}",
                j.from_version,
                j.to_version,
                j.step,
                j.error.map_or(String::new(), |e| format!(" ({e})"))
            ),
            Ok(None) => println!("  no update journal in {}", backup.display()),
            Err(e) => println!("  the update journal cannot be read: {e}"),
        }
        let log = backup.join(layout::LOG_DIR).join(layout::LOG);
        match std::fs::read_to_string(&log) {
            Ok(text) => println!(
                "  update log: {} ({} lines; send it when asked for support)",
                log.display(),
                text.lines().count()
            ),
            Err(_) => println!(
                "  update log: none yet ({} after the first update)",
                log.display()
            ),
        }
    }
    // What the install would be offered now, and why.
    let (Some(list), Some(server), Some(api)) = (&list, field("server"), field("api_get_version"))
    else {
        println!("  (no data/config.json with a manifest URL: nothing to check)");
        return Ok(Exit::Ok);
    };
    let manifest_url = if api.contains("://") {
        api
    } else {
        format!(
            "{}/{}",
            server.trim_end_matches('/'),
            api.trim_start_matches('/')
        )
    };
    println!("  manifest:   {manifest_url}");
    let key_file = match &key {
        Some(key) => {
            let file = tempfile::NamedTempFile::new()?;
            std::fs::write(
                file.path(),
                format!("untrusted comment: from data/config.json\n{key}\n"),
            )?;
            Some(file)
        }
        None => None,
    };
    crate::check::run(
        &manifest_url,
        &list.program,
        &list.version.to_string(),
        key_file.as_ref().map(|f| f.path()),
        None,
        Audience {
            install_id: state.install_id,
            ..audience
        },
        false,
    )
}

/// A time in the state file (seconds since the Unix epoch), as RFC 3339.
fn when(secs: u64) -> String {
    std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs(secs))
        .map_or_else(
            || format!("{secs} s after 1970 (not a time)"),
            |t| humantime::format_rfc3339_seconds(t).to_string(),
        )
}

fn read_config(install: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(install.join("data").join("config.json")).ok()?;
    serde_json::from_str(&text).ok()
}
