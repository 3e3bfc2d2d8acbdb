//! Opt-in adoption figures a publisher reads from the host's access log.
//!
//! An app that turns it on ([`UpdaterBuilder::adoption_ping`], or
//! `"adoption_ping": true` in `data/config.json`) asks for a tiny object
//! beside the manifest, `ping.txt`, at most once a day, after a check:
//!
//! ```text
//! GET /releases/ping.txt?p=demo&v=1.1.0&c=stable&d=3
//! ```
//!
//! `p`, `v` and `c` are the program, its version and channel; `d` the days
//! since this install's previous ping (`new` for its first; at most `31`),
//! as Omaha's "days since last roll call": a day's requests count the
//! installs active that day, and `d=new` the new ones. Nothing else is
//! sent: no install id, no address beyond the connection's own, and the
//! manifest's URL stays the same for every install, so a CDN keeps caching
//! it. `leapfrog adoption ACCESS_LOG` sums a log up.
//!
//! [`UpdaterBuilder::adoption_ping`]: crate::UpdaterBuilder::adoption_ping

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::config::Resolved;
use crate::release::trust::State;

/// The ping object's name, beside the manifest.
pub const PING_NAME: &str = "ping.txt";

/// What `leapfrog publish` puts in the ping object.
pub const PING_TEXT: &str = "leapfrog adoption ping: count the requests for this file in the access log (leapfrog adoption LOG)\n";

/// The most days a ping tells.
const MAX_DAYS: u64 = 31;

/// The ping URL beside `manifest_url` (http and https only: other hosts
/// keep no access log to read).
pub(crate) fn ping_url(
    manifest_url: &str,
    (program, version, channel): (&str, &str, &str),
    days: Option<u64>,
) -> Option<String> {
    let mut url = url::Url::parse(manifest_url).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.path_segments_mut().ok()?.pop().push(PING_NAME);
    let days = days.map_or("new".to_owned(), |d| d.min(MAX_DAYS).to_string());
    url.set_query(None);
    url.query_pairs_mut()
        .append_pair("p", program)
        .append_pair("v", version)
        .append_pair("c", channel)
        .append_pair("d", &days);
    Some(url.into())
}

/// After a check: pings once a day when the app turned it on, and
/// remembers the day in the state file. Best effort: a failure is logged
/// and changes nothing else.
pub(crate) fn maybe_ping(updater: &Resolved) {
    if !updater.settings().adoption_ping {
        return;
    }
    let install = updater.install_dir();
    let Ok(state) = State::read(install) else {
        return;
    };
    let today = crate::update::unix_seconds(SystemTime::now()) / 86_400;
    if state.last_ping.is_some_and(|day| day >= today) {
        return;
    }
    let channel = crate::release::policy::Audience {
        channel: updater.settings().channel.clone(),
        ..Default::default()
    };
    let Some(url) = ping_url(
        updater.manifest_urls().next().unwrap_or_default(),
        (
            updater.program(),
            &updater.current_version().to_string(),
            channel.channel(),
        ),
        state.last_ping.map(|day| today.saturating_sub(day)),
    ) else {
        return;
    };
    // The day is noted first: an install that cannot note it (read-only)
    // sends none, rather than one at every check.
    let noted = State::read(install).and_then(|mut fresh| {
        fresh.last_ping = Some(today);
        fresh.write(install)
    });
    if noted.is_err() {
        return;
    }
    // In the background, with short timeouts: the check never waits for
    // it. The object's text is not needed, only the request.
    let mut limits = updater.settings().limits.clone();
    limits.connect_timeout = limits
        .connect_timeout
        .min(std::time::Duration::from_secs(5));
    limits.read_timeout = limits.read_timeout.min(std::time::Duration::from_secs(5));
    limits.retries = 0;
    let (done, finished) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("leapfrog-ping".into())
        .spawn(move || {
            match crate::fetch::fetch_text(&url, &limits) {
                Ok(_) => log::debug!("adoption ping: {}", crate::fetch::redact(&url)),
                Err(e) => log::debug!(
                    "adoption ping {} failed: {}",
                    crate::fetch::redact(&url),
                    e.chain()
                ),
            }
            let _ = done.send(());
        });
    if let (Ok(_), Ok(mut slot)) = (spawned, PING.lock()) {
        *slot = Some(finished);
    }
}

/// The end of the ping under way, if any.
static PING: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>> = std::sync::Mutex::new(None);

/// Waits for the ping under way, five seconds at most (then lets it go):
/// at the end of an update, and before the process is replaced.
pub(crate) fn finish() {
    let finished = PING.lock().ok().and_then(|mut slot| slot.take());
    if let Some(finished) = finished {
        let _ = finished.recv_timeout(std::time::Duration::from_secs(5));
    }
}

/// One line of the summary: the pings of a program's version.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Adoption {
    /// Every ping (installs active on one of the days in the log).
    pub pings: u64,
    /// First pings (`d=new`).
    pub new: u64,
    /// Pings a day after the previous one (used daily).
    pub daily: u64,
    /// Pings 2 to 7 days after the previous one.
    pub weekly: u64,
    /// Pings more than 7 days after the previous one.
    pub returning: u64,
}

/// Sums up the adoption pings in an access log (one request per line, the
/// request line in it, as nginx, Apache and most CDNs write): by program,
/// version and channel.
pub fn summarize(log: &str) -> BTreeMap<(String, String, String), Adoption> {
    let mut out: BTreeMap<(String, String, String), Adoption> = BTreeMap::new();
    for line in log.lines() {
        let Some(query) = line
            .split_whitespace()
            .find_map(|word| word.split_once(&format!("/{PING_NAME}?")).map(|(_, q)| q))
        else {
            continue;
        };
        let pairs: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let (Some(p), Some(v), Some(d)) = (pairs.get("p"), pairs.get("v"), pairs.get("d")) else {
            continue;
        };
        let c = pairs.get("c").cloned().unwrap_or_default();
        let entry = out.entry((p.clone(), v.clone(), c)).or_default();
        entry.pings += 1;
        match d.parse::<u64>() {
            Ok(1) => entry.daily += 1,
            Ok(2..=7) => entry.weekly += 1,
            Ok(_) => entry.returning += 1,
            Err(_) => entry.new += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ping_names_version_and_days_but_never_the_install() {
        let url = ping_url(
            "https://cdn.example.com/app/versions.txt?x=1",
            ("demo", "1.1.0", "stable"),
            Some(3),
        )
        .unwrap();
        assert_eq!(
            url,
            "https://cdn.example.com/app/ping.txt?p=demo&v=1.1.0&c=stable&d=3"
        );
        let first = ping_url("http://h/versions.txt", ("a b", "2.0.0-rc.1", "beta"), None).unwrap();
        assert_eq!(first, "http://h/ping.txt?p=a+b&v=2.0.0-rc.1&c=beta&d=new");
        let long = ping_url(
            "http://h/versions.txt",
            ("demo", "1.0.0", "stable"),
            Some(400),
        )
        .unwrap();
        assert!(long.ends_with("&d=31"), "{long}");
        assert_eq!(
            ping_url(
                "file:///srv/versions.txt",
                ("demo", "1.0.0", "stable"),
                None
            ),
            None
        );
        assert_eq!(
            ping_url("ftp://h/versions.txt", ("demo", "1.0.0", "stable"), None),
            None
        );
    }

    #[test]
    fn an_access_log_is_summed_up_by_version() {
        let log = "\
127.0.0.1 - - [06/Dec/2026:10:00:00 +0000] \"GET /r/ping.txt?p=demo&v=1.1.0&c=stable&d=new HTTP/1.1\" 200 10 \"-\" \"leapfrog/0.1.0\"
127.0.0.1 - - [06/Dec/2026:10:00:01 +0000] \"GET /r/ping.txt?p=demo&v=1.1.0&c=stable&d=1 HTTP/1.1\" 200 10 \"-\" \"x\"
127.0.0.1 - - [06/Dec/2026:10:00:02 +0000] \"GET /r/ping.txt?p=demo&v=1.1.0&c=stable&d=5 HTTP/1.1\" 200 10 \"-\" \"x\"
127.0.0.1 - - [06/Dec/2026:10:00:03 +0000] \"GET /r/ping.txt?p=demo&v=1.0.0&c=beta&d=30 HTTP/1.1\" 200 10 \"-\" \"x\"
127.0.0.1 - - [06/Dec/2026:10:00:04 +0000] \"GET /r/versions.txt HTTP/1.1\" 200 10 \"-\" \"x\"
127.0.0.1 - - [06/Dec/2026:10:00:05 +0000] \"GET /r/ping.txt?garbage HTTP/1.1\" 200 10 \"-\" \"x\"
";
        let sum = summarize(log);
        assert_eq!(sum.len(), 2);
        let new = &sum[&("demo".into(), "1.1.0".into(), "stable".into())];
        assert_eq!(
            *new,
            Adoption {
                pings: 3,
                new: 1,
                daily: 1,
                weekly: 1,
                returning: 0
            }
        );
        let old = &sum[&("demo".into(), "1.0.0".into(), "beta".into())];
        assert_eq!((old.pings, old.returning), (1, 1));
    }
}
