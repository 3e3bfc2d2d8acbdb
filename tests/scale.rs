//! Internet scale: the freshness file and conditional requests (an idle
//! check is one 304 from nginx), stale pairs and expiry ("no update this
//! time", never an error), the polite schedule (interval, Retry-After,
//! backoff), and `leapfrog upload` to a folder, vsftpd and an S3-API
//! server (moto), each followed by a client updating from what landed.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use leapfrog::internal::State;
use leapfrog::publish::PublishOptions;
use leapfrog::serve::Server;

use crate::servers::{nginx, vsftpd_writable};
use crate::util::evil::{Behave, EvilServer};
use crate::util::*;

/// nginx's access log from line `from` on, as (request line, status).
fn requests(log: &str, from: usize) -> Vec<(String, u16)> {
    log.lines()
        .skip(from)
        .map(|line| {
            let mut quoted = line.split('"');
            let request = quoted.nth(1).unwrap_or_default().to_owned();
            let status = quoted
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (request, status)
        })
        .collect()
}

fn get(path: &str, status: u16) -> (String, u16) {
    (format!("GET /{path} HTTP/1.1"), status)
}

fn version_installed(w: &World) -> String {
    fs::read_to_string(w.install.join("README.txt")).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn refresh(w: &World, extra: &[&str]) {
    run(
        leapfrog()
            .arg("refresh")
            .arg("--repo")
            .arg(&w.releases)
            .arg("--secret-key")
            .arg(w.fixture.secret_key.as_ref().unwrap())
            .args(extra),
        Duration::from_secs(60),
    )
    .expect_code(0)
    .expect_output("upload versions.txt.fresh");
}

#[test]
fn scale_an_idle_check_is_one_304_and_a_refresh_sends_only_the_freshness_file() {
    let w = World::signed();
    let with_1_1 = fs::read_to_string(w.releases.join("versions.txt")).unwrap();
    w.resign(|m| m.releases.retain(|r| r.version.to_string() == "1.0.0"));
    let Some(web) = nginx(&w.releases, None) else {
        return;
    };
    let url = format!("http://127.0.0.1:{}/versions.txt", web.port);
    let lines = || web.access_log().lines().count();

    w.launch(&url).expect_code(0).expect_output("up to date");
    assert_eq!(
        requests(&web.access_log(), 0),
        [get("versions.txt.fresh", 200), get("versions.txt", 200)],
        "the signature is the freshness file's, in the same file"
    );

    // Nothing changed: one conditional request, answered 304.
    let seen = lines();
    w.launch(&url).expect_code(0).expect_output("up to date");
    assert_eq!(
        requests(&web.access_log(), seen),
        [get("versions.txt.fresh", 304)]
    );

    // A refresh re-signs only the small file: versions.txt is not fetched
    // again, its cached copy still has the hash the new file names.
    let manifest = fs::read(w.releases.join("versions.txt")).unwrap();
    let signature = fs::read(w.releases.join("versions.txt.minisig")).unwrap();
    let fresh = fs::read_to_string(w.releases.join("versions.txt.fresh")).unwrap();
    // nginx's ETag is the file's size and modification time in whole
    // seconds: the refresh (in the same second, at the same size) moves the
    // time on, or nginx would answer 304.
    refresh(&w, &[]);
    assert_eq!(fs::read(w.releases.join("versions.txt")).unwrap(), manifest);
    assert_eq!(
        fs::read(w.releases.join("versions.txt.minisig")).unwrap(),
        signature
    );
    let refreshed = fs::read_to_string(w.releases.join("versions.txt.fresh")).unwrap();
    assert_ne!(refreshed, fresh);
    assert!(refreshed.len() < 600, "{} bytes", refreshed.len());
    let seen = lines();
    w.launch(&url).expect_code(0).expect_output("up to date");
    assert_eq!(
        requests(&web.access_log(), seen),
        [get("versions.txt.fresh", 200)]
    );
    let state = State::read(&w.install).unwrap();
    let serial = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("serial "))
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(state.fresh_serial, Some(serial(&refreshed)));

    // A release: the new freshness file, then the new manifest, then the archive.
    w.resign(|m| *m = leapfrog::Manifest::parse(&with_1_1, "t").unwrap());
    let seen = lines();
    let updated = w.launch(&url).expect_code(0);
    assert_eq!(
        version_installed(&w),
        "demo 1.1.0\n",
        "{}",
        updated.stdout()
    );
    let got = requests(&web.access_log(), seen);
    assert_eq!(
        got[..3],
        [
            get("versions.txt.fresh", 200),
            get("versions.txt", 200),
            get("demo-1.1.0.tar.gz", 200)
        ],
        "{got:?}"
    );
}

#[test]
fn scale_a_manifest_its_freshness_file_does_not_name_is_no_update_this_time() {
    let w = World::signed();
    let server = Server::start(&w.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
    let before = tree_hashes(&w.install);
    let read = |name: &str| fs::read(w.releases.join(name)).unwrap();
    let (old_manifest, old_fresh) = (read("versions.txt"), read("versions.txt.fresh"));
    w.resign(|m| m.serial = m.serial.map(|s| s + 1));
    let (new_manifest, new_fresh) = (read("versions.txt"), read("versions.txt.fresh"));
    // A cache between serves one file of each pair, either way round.
    for (manifest, fresh) in [(&old_manifest, &new_fresh), (&new_manifest, &old_fresh)] {
        fs::write(w.releases.join("versions.txt"), manifest).unwrap();
        fs::write(w.releases.join("versions.txt.fresh"), fresh).unwrap();
        w.launch(&url)
            .expect_code(0)
            .expect_output("a cache between holds another version of one of them")
            .expect_output("no update this time")
            .expect_no_output("update failed");
        assert_eq!(tree_hashes(&w.install), before);
    }
    // Once the cache catches up, the update goes through.
    fs::write(w.releases.join("versions.txt"), &new_manifest).unwrap();
    fs::write(w.releases.join("versions.txt.fresh"), &new_fresh).unwrap();
    w.launch(&url).expect_code(0);
    assert_eq!(version_installed(&w), "demo 1.1.0\n");
}

#[test]
fn scale_an_expired_freshness_file_is_no_update_until_refreshed() {
    let w = World::signed();
    let server = Server::start(&w.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
    let before = tree_hashes(&w.install);
    refresh(&w, &["--expires-in", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    w.launch(&url)
        .expect_code(0)
        .expect_output("versions.txt.fresh")
        .expect_output("expired")
        .expect_output("no update this time")
        .expect_no_output("update failed");
    assert_eq!(tree_hashes(&w.install), before);
    w.verify().expect_code(1).expect_output("expired");
    refresh(&w, &[]);
    w.verify().expect_code(0);
    w.launch(&url).expect_code(0);
    assert_eq!(version_installed(&w), "demo 1.1.0\n");
}

#[test]
fn scale_a_replayed_older_freshness_file_is_refused() {
    let w = World::signed();
    let server = Server::start(&w.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
    w.resign(|m| m.releases.retain(|r| r.version.to_string() == "1.0.0"));
    let old = fs::read(w.releases.join("versions.txt.fresh")).unwrap();
    refresh(&w, &[]);
    w.launch(&url).expect_code(0).expect_output("up to date");
    fs::write(w.releases.join("versions.txt.fresh"), old).unwrap();
    w.launch(&url)
        .expect_code(0)
        .expect_output("versions.txt.fresh: its serial")
        .expect_output("accepted before");
}

#[test]
fn scale_a_freshness_file_once_accepted_is_never_given_up_for_the_manifests_own_signature() {
    let w = World::signed();
    let host = EvilServer::start(w.releases.clone());
    w.resign(|m| m.releases.retain(|r| r.version.to_string() == "1.0.0"));
    w.launch(&host.manifest_url())
        .expect_code(0)
        .expect_output("versions.txt.fresh: signature verified")
        .expect_output("up to date");
    // 1.1.0 is published; a host then drops the freshness file (404, or
    // 403 as object stores answer): the install does not go back to the
    // manifest's own signature, whose expiry may be far off.
    let with_1_1 = signed_fixture();
    let mut m = leapfrog::Manifest::parse(
        &fs::read_to_string(with_1_1.releases.join("versions.txt")).unwrap(),
        "t",
    )
    .unwrap();
    m.serial = Some(100);
    w.sign_text(&m.render(), None);
    let before = tree_hashes(&w.install);
    for status in [404, 403] {
        host.set("versions.txt.fresh", Behave::Status(status));
        w.launch(&host.manifest_url())
            .expect_code(0)
            .expect_output("does not go back to the manifest's own signature")
            .expect_output("no update this time")
            .expect_no_output("update failed");
        assert_eq!(tree_hashes(&w.install), before);
    }
    host.clear();
    w.launch(&host.manifest_url()).expect_code(0);
    assert_eq!(version_installed(&w), "demo 1.1.0\n");
}

#[test]
fn scale_a_repository_without_a_freshness_file_is_read_by_its_manifests_signature() {
    // An install that never saw a freshness file, on a host that answers
    // 403 for a missing object (object stores do).
    let w = World::signed();
    let host = EvilServer::start(w.releases.clone());
    host.set("versions.txt.fresh", Behave::Status(403));
    w.launch(&host.manifest_url())
        .expect_code(0)
        .expect_output("versions.txt: signature verified (key 1)");
    assert_eq!(version_installed(&w), "demo 1.1.0\n");
}

#[test]
fn scale_refresh_mends_a_cut_publish_and_renews_an_expiry_older_clients_read() {
    let w = World::signed();
    let server = Server::start(&w.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
    // A publish cut off after versions.txt: its .minisig is the old one.
    let old_signature = fs::read(w.releases.join("versions.txt.minisig")).unwrap();
    w.resign(|m| m.serial = m.serial.map(|s| s + 1));
    fs::write(w.releases.join("versions.txt.minisig"), &old_signature).unwrap();
    w.verify()
        .expect_code(1)
        .expect_output("the signature does not match");
    let manifest = fs::read(w.releases.join("versions.txt")).unwrap();
    refresh(&w, &[]);
    assert_eq!(fs::read(w.releases.join("versions.txt")).unwrap(), manifest);
    assert_ne!(
        fs::read(w.releases.join("versions.txt.minisig")).unwrap(),
        old_signature
    );
    w.verify().expect_code(0);
    // versions.txt's own expiry, less than half of --expires-in away: it is
    // signed again too, releases as they were.
    let soon = SystemTime::now() + Duration::from_secs(2 * 86_400);
    w.resign(|m| m.expires = Some(humantime::format_rfc3339_seconds(soon).to_string()));
    let before = leapfrog::Manifest::parse(
        &fs::read_to_string(w.releases.join("versions.txt")).unwrap(),
        "t",
    )
    .unwrap();
    refresh(&w, &["--expires-in", "30days"]);
    let after = leapfrog::Manifest::parse(
        &fs::read_to_string(w.releases.join("versions.txt")).unwrap(),
        "t",
    )
    .unwrap();
    assert!(after.serial > before.serial);
    assert_eq!(after.releases, before.releases);
    let expires = humantime::parse_rfc3339(after.expires.as_deref().unwrap()).unwrap();
    let days = expires.duration_since(SystemTime::now()).unwrap().as_secs() / 86_400;
    assert!((28..=30).contains(&days), "{days}");
    w.verify().expect_code(0);
    w.launch(&url).expect_code(0);
    assert_eq!(version_installed(&w), "demo 1.1.0\n");
}

#[test]
fn scale_check_cache_dir_asks_only_whether_the_manifest_changed() {
    let w = World::new();
    let Some(web) = nginx(&w.releases, None) else {
        return;
    };
    let url = format!("http://127.0.0.1:{}/versions.txt", web.port);
    let cache = w.dir.path().join("cache");
    let check = || {
        run(
            leapfrog()
                .args(["check", &url, "--program", "demo", "--current", "1.0.0"])
                .arg("--cache")
                .arg(&cache),
            Duration::from_secs(60),
        )
        .expect_code(10)
        .expect_output("1.1.0")
    };
    check();
    let seen = web.access_log().lines().count();
    check();
    assert_eq!(
        requests(&web.access_log(), seen),
        [get("versions.txt", 304)]
    );
}

/// Launches the installed app as a shipped app does: the automatic check,
/// with its schedule (no random wait, for the test's sake).
fn scheduled(w: &World, url: &str) -> Run {
    let mut cmd = command(&w.install.join("demo"));
    cmd.env_remove("LEAPFROG_CHECK_EVERY_START")
        .env("LEAPFROG_START_DELAY", "0s")
        .env("LEAPFROG_RETRIES", "0")
        .env("LEAPFROG_ASSUME_YES", "1")
        .env("LEAPFROG_MANIFEST_URL", url);
    run(&mut cmd, Duration::from_secs(60))
}

#[test]
fn scale_automatic_checks_keep_their_interval_back_off_and_leave_a_busy_host_alone() {
    let w = World::new();
    let text = fs::read_to_string(w.releases.join("versions.txt")).unwrap();
    let only_1_0: String = text
        .lines()
        .filter(|l| !l.starts_with("demo 1.1.0"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(w.releases.join("versions.txt"), only_1_0).unwrap();
    let host = EvilServer::start(w.releases.clone());
    let url = host.manifest_url();
    let asked = || {
        let requests = host.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.starts_with("GET /versions.txt "))
            .count()
    };
    scheduled(&w, &url)
        .expect_code(0)
        .expect_output("up to date");
    assert_eq!(asked(), 1);
    // Within the interval: nothing is fetched.
    scheduled(&w, &url)
        .expect_code(0)
        .expect_output("no check now: the next automatic check is due at");
    assert_eq!(asked(), 1);
    // A check the user asks for is made at once.
    let mut cmd = command(&w.install.join("demo"));
    cmd.env_remove("LEAPFROG_CHECK_EVERY_START")
        .env("LEAPFROG_MANIFEST_URL", &url)
        .arg("--check-now");
    run(&mut cmd, Duration::from_secs(60))
        .expect_code(0)
        .expect_output("up to date");
    assert_eq!(asked(), 2);

    // The next check is due after the interval and a random part of half
    // of it. Past that, the check is due; the host
    // is busy and says for how long: one request, no retry in the run,
    // and none before the time it gave.
    let mut state = State::read(&w.install).unwrap();
    let next = state.next_check.unwrap();
    let last = state.last_check.as_ref().unwrap().at;
    assert!(
        (last + 24 * 3600..=last + 36 * 3600).contains(&next),
        "{next} vs {last}"
    );
    state.last_check.as_mut().unwrap().at -= 36 * 3600 + 1;
    state.next_check = Some(next - 36 * 3600 - 1);
    state.write(&w.install).unwrap();
    host.set("versions.txt", Behave::Busy(600));
    let before = now();
    scheduled(&w, &url)
        .expect_code(0)
        .expect_output("asks to come back in 600 s")
        .expect_output("the next automatic check waits");
    assert_eq!(asked(), 3, "no retry within the run");
    let state = State::read(&w.install).unwrap();
    let next = state.next_check.unwrap();
    assert!(
        (before + 600..=now() + 661).contains(&next),
        "{next} vs {before}"
    );
    assert_eq!(state.failed_checks, 1);
    scheduled(&w, &url)
        .expect_code(0)
        .expect_output("no check now");
    assert_eq!(asked(), 3);

    // A failure without Retry-After backs off: full jitter below a
    // ceiling that doubles (5 minutes, then 10).
    let mut state = State::read(&w.install).unwrap();
    state.next_check = Some(now() - 1);
    state.write(&w.install).unwrap();
    host.set("versions.txt", Behave::Status(500));
    let before = now();
    scheduled(&w, &url).expect_code(0).expect_output("HTTP 500");
    assert_eq!(asked(), 4);
    let state = State::read(&w.install).unwrap();
    assert_eq!(state.failed_checks, 2);
    let next = state.next_check.unwrap();
    assert!((before..=now() + 600).contains(&next), "{next} vs {before}");

    // Once the host answers, the schedule starts afresh.
    let mut state = State::read(&w.install).unwrap();
    state.next_check = Some(now() - 1);
    state.write(&w.install).unwrap();
    host.clear();
    scheduled(&w, &url)
        .expect_code(0)
        .expect_output("up to date");
    let state = State::read(&w.install).unwrap();
    assert_eq!(state.failed_checks, 0);
    let (next, last) = (state.next_check.unwrap(), state.last_check.unwrap().at);
    assert!(
        (last + 24 * 3600..=last + 36 * 3600).contains(&next),
        "{next} vs {last}"
    );
    assert_eq!(asked(), 5);
}

/// Publishes 1.2.0 (a new file in it) into the world's repository, signed.
fn publish_1_2(w: &World) {
    let tree = w.dir.path().join("tree-1.2.0");
    app_tree(
        &tree,
        "1.2.0",
        w.fixture.public_key.as_deref(),
        &[
            ("README.txt", "demo 1.2.0\n"),
            ("assets/third.txt", "three\n"),
        ],
    );
    leapfrog::publish::publish(&PublishOptions {
        signing: leapfrog::publish::Signing {
            secret_key: w.fixture.secret_key.clone(),
            ..Default::default()
        },
        ..PublishOptions::new(&tree, "demo", "1.2.0", &w.releases)
    })
    .unwrap();
}

fn upload(w: &World, dest: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = leapfrog();
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ] {
        cmd.env_remove(name);
    }
    cmd.arg("upload")
        .arg(&w.releases)
        .arg(dest)
        .arg("--public-key")
        .arg(w.public_key_file());
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd, Duration::from_secs(120))
}

fn same_files(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            fs::read(to.join(name)).unwrap_or_default(),
            "{}",
            name.to_string_lossy()
        );
    }
}

#[test]
fn scale_upload_to_a_folder_leaves_the_old_release_whole_when_cut_off() {
    let w = World::signed();
    let site = w.dir.path().join("site");
    let dest = format!("file://{}", site.display());
    upload(&w, &dest, &[])
        .expect_code(0)
        .expect_output("then versions.txt, versions.txt.minisig, versions.txt.fresh");
    same_files(&w.releases, &site);
    let url = format!("{dest}/versions.txt");
    w.launch(&url).expect_code(0);
    assert_eq!(version_installed(&w), "demo 1.1.0\n");

    // Run again: nothing to write but the manifest files.
    upload(&w, &dest, &[])
        .expect_code(0)
        .expect_output("0 artifact(s) written");

    // 1.2.0's upload is cut off by an artifact already there with other
    // bytes (never rewritten): the manifest files were not sent, and the
    // site still serves 1.1.0, whole.
    publish_1_2(&w);
    fs::write(site.join("demo-1.2.0.tar.gz"), b"someone else's bytes").unwrap();
    upload(&w, &dest, &[])
        .expect_code(1)
        .expect_output("demo-1.2.0.tar.gz exists with 20 bytes")
        .expect_output("never rewritten in place");
    assert_eq!(
        fs::read(site.join("demo-1.2.0.tar.gz")).unwrap(),
        b"someone else's bytes"
    );
    w.launch(&url).expect_code(0).expect_output("up to date");
    assert_eq!(version_installed(&w), "demo 1.1.0\n");
    fs::remove_file(site.join("demo-1.2.0.tar.gz")).unwrap();
    // Cut off between the manifest and its signature: the freshness file
    // still names 1.1.0's manifest, so clients see no update, not an error.
    fs::remove_file(site.join("versions.txt.minisig")).unwrap();
    fs::create_dir(site.join("versions.txt.minisig")).unwrap();
    upload(&w, &dest, &[])
        .expect_code(1)
        .expect_output("versions.txt.minisig");
    assert_eq!(
        fs::read(site.join("versions.txt")).unwrap(),
        fs::read(w.releases.join("versions.txt")).unwrap()
    );
    w.launch(&url)
        .expect_code(0)
        .expect_no_output("update failed");
    assert_eq!(version_installed(&w), "demo 1.1.0\n");
    let fresh_install = World::signed();
    fresh_install
        .launch(&url)
        .expect_code(0)
        .expect_output("no update this time")
        .expect_no_output("update failed");
    assert_eq!(version_installed(&fresh_install), "demo 1.0.0\n");
    fs::remove_dir(site.join("versions.txt.minisig")).unwrap();
    upload(&w, &dest, &[]).expect_code(0);
    same_files(&w.releases, &site);
    w.launch(&url).expect_code(0);
    assert_eq!(version_installed(&w), "demo 1.2.0\n");
}

#[test]
fn scale_upload_to_vsftpd_in_the_safe_order_then_update_from_it() {
    let w = World::signed();
    let root = w.dir.path().join("ftp-root");
    let public = root.join("pub");
    fs::create_dir_all(&public).unwrap();
    // The anonymous user writes in pub/ only.
    let mode = |p: &Path, m: u32| {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    };
    mode(w.dir.path(), 0o755);
    mode(&root, 0o755);
    mode(&public, 0o777);
    let Some(ftp) = vsftpd_writable(&root) else {
        return;
    };
    let dest = format!("ftp://127.0.0.1:{}/pub/demo", ftp.port);
    upload(&w, &dest, &[]).expect_code(0);
    same_files(&w.releases, &public.join("demo"));
    // Every artifact went up before versions.txt, then its signature, then
    // the freshness file; each under a temporary name, renamed into place.
    let log = ftp.xfer_log();
    let uploads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("OK UPLOAD"))
        .filter_map(|l| l.split('"').nth(3))
        .map(|p| p.rsplit('/').next().unwrap())
        .collect();
    let order: Vec<String> = uploads
        .iter()
        .map(|n| {
            n.trim_start_matches('.')
                .split(".leapfrog-upload-")
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    let n = order.len();
    assert!(n >= 5, "{log}");
    assert_eq!(
        order[n - 3..],
        ["versions.txt", "versions.txt.minisig", "versions.txt.fresh"],
        "{order:?}"
    );
    assert!(order.contains(&"demo-1.1.0.tar.gz".to_owned()), "{order:?}");
    assert!(
        uploads.iter().all(|n| n.contains(".leapfrog-upload-")),
        "{uploads:?}"
    );
    w.launch(&format!("{dest}/versions.txt")).expect_code(0);
    assert_eq!(version_installed(&w), "demo 1.1.0\n");
}

/// An S3-API server (moto) on loopback; killed when dropped.
struct Moto(Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> Option<Moto> {
    let found = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let advice = "moto_server is not installed: pip install 'moto[server]'";
        assert!(std::env::var_os("CI").is_none(), "{advice}");
        eprintln!("SKIPPED: {advice}");
        return None;
    }
    let port = free_port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let moto = Moto(child, port);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "moto did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(moto)
}

#[test]
fn scale_upload_to_s3_sets_cache_headers_then_update_from_it() {
    let Some(s3) = moto() else {
        return;
    };
    let endpoint = format!("http://127.0.0.1:{}", s3.1);
    // A bucket anyone may read, as behind a CDN.
    let created = ureq::put(&format!("{endpoint}/releases"))
        .header("x-amz-acl", "public-read")
        .send_empty()
        .unwrap();
    assert_eq!(created.status().as_u16(), 200);
    let w = World::signed();
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ];
    upload(&w, "s3://releases/demo", &env)
        .expect_code(0)
        .expect_output("then versions.txt, versions.txt.minisig, versions.txt.fresh");
    let base = format!("{endpoint}/releases/demo");
    let header = |name: &str| {
        let response = ureq::get(&format!("{base}/{name}")).call().unwrap();
        let value = response
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().read_to_vec().unwrap();
        assert_eq!(body, fs::read(w.releases.join(name)).unwrap(), "{name}");
        value.unwrap_or_default()
    };
    assert_eq!(
        header("demo-1.1.0.tar.gz"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header("versions.txt"), "no-cache");
    assert_eq!(header("versions.txt.fresh"), "public, max-age=60");
    // Run again: the artifacts are there already.
    upload(&w, "s3://releases/demo", &env)
        .expect_code(0)
        .expect_output("0 artifact(s) written");
    // No credentials: a clear error naming what to set.
    upload(&w, "s3://releases/demo", &[])
        .expect_code(1)
        .expect_output("AWS_ACCESS_KEY_ID is not set");
    w.launch(&format!("{base}/versions.txt")).expect_code(0);
    assert_eq!(version_installed(&w), "demo 1.1.0\n");
}
