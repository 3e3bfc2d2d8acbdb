//! Airtight against the host: manifest fields that reach too far,
//! credentials and redirects, signed repositories kept alive, and what the
//! app says when a host serves something that is no manifest.

use std::fs;

use super::*;

// ---- 4. manifest fields that reach too far ----

/// A signed scene served by a misbehaving server.
fn evil(scene: &Scene) -> crate::util::evil::EvilServer {
    crate::util::evil::EvilServer::start(scene.world.releases.clone())
}

fn edit_release(scene: &Scene, edit: impl FnOnce(&mut leapfrog::Release)) {
    scene.world.resign(|m| {
        let r = m
            .releases
            .iter_mut()
            .find(|r| r.version.to_string() == "1.1.0")
            .unwrap();
        edit(r);
    });
}

#[test]
fn airtight_signed_release_without_a_size_is_refused() {
    let scene = Scene::signed();
    edit_release(&scene, |r| r.size = None);
    let server = scene.server();
    scene.refused(
        &url(&server),
        &[],
        &["must give the archive's size (size=)"],
    );
}

#[test]
fn airtight_archive_or_notes_away_from_the_manifest_are_refused() {
    let outside = |scene: &Scene| {
        // A true copy of the archive, outside the repository.
        let copy = scene.victim.join("demo-1.1.0.tar.gz");
        fs::copy(scene.world.releases.join("demo-1.1.0.tar.gz"), &copy).unwrap();
        copy
    };
    for how in ["file", "ftp", "other host", "notes"] {
        let scene = Scene::signed();
        let copy = outside(&scene);
        let server = evil(&scene);
        edit_release(&scene, |r| match how {
            "file" => r.file = Some(format!("file://{}", copy.display())),
            "ftp" => r.file = Some("ftp://127.0.0.1:9/demo-1.1.0.tar.gz".into()),
            "other host" => r.file = Some("http://localhost:9/demo-1.1.0.tar.gz".into()),
            _ => r.notes = Some("file:///etc/hostname".into()),
        });
        let run = scene.refused(&server.manifest_url(), &[], &["away from the manifest"]);
        assert!(
            !server
                .requests
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.contains(".tar.gz")),
            "{how}: an archive was fetched:\n{}",
            run.stdout()
        );
    }
}

#[test]
fn airtight_verify_stays_inside_the_repository() {
    let scene = Scene::signed();
    let w = &scene.world;
    fs::copy(
        w.releases.join("demo-1.1.0.tar.gz"),
        w.dir.path().join("outside.tar.gz"),
    )
    .unwrap();
    edit_release(&scene, |r| r.file = Some("../outside.tar.gz".into()));
    w.verify()
        .expect_code(1)
        .expect_output("../outside.tar.gz")
        .expect_output("away from the manifest");
}

#[test]
fn airtight_serials_are_bounded_and_never_wrap() {
    let scene = Scene::signed();
    let w = &scene.world;
    let text = fs::read_to_string(w.releases.join("versions.txt")).unwrap();
    let mut m = leapfrog::Manifest::parse(&text, "t").unwrap();
    m.serial = Some(u64::MAX);
    w.sign_text(&m.render(), None);
    let server = scene.server();
    scene.refused(
        &url(&server),
        &[],
        &["serial 18446744073709551615 is larger than"],
    );
    // At the largest serial, publishing again is refused, never wrapped to 0.
    m.serial = Some(leapfrog::internal::MAX_SERIAL);
    w.sign_text(&m.render(), None);
    let out = leapfrog()
        .args(["refresh", "--repo"])
        .arg(&w.releases)
        .arg("--secret-key")
        .arg(w.fixture.secret_key.as_ref().unwrap())
        .output()
        .unwrap();
    Run {
        output: out,
        what: "leapfrog refresh".into(),
    }
    .expect_code(1)
    .expect_output("the largest allowed");
    let now = fs::read_to_string(w.releases.join("versions.txt")).unwrap();
    assert!(now.contains(&format!("serial {}", leapfrog::internal::MAX_SERIAL)));
}

// ---- 5. no credential crosses an origin ----

#[test]
fn airtight_credentials_never_follow_a_redirect_to_another_origin() {
    // The manifest's host redirects every file to another origin (another
    // port on loopback), which serves them and records what it was sent.
    let scene = Scene::signed();
    let w = &scene.world;
    let first = evil(&scene);
    let other = evil(&scene);
    for name in ["versions.txt", "versions.txt.minisig", "demo-1.1.0.tar.gz"] {
        first.set(
            name,
            crate::util::evil::Behave::Redirect(format!("{}{name}", other.base)),
        );
    }
    w.launch_env(
        &first.manifest_url(),
        &[
            ("LEAPFROG_HEADERS", "X-Api-Key: s3cret-header"),
            ("LEAPFROG_AUTH_TOKEN", "s3cret-token"),
        ],
    )
    .expect_code(0)
    .expect_output("demo 1.1.0 running");
    let sent_first = first.requests.lock().unwrap().join("\n");
    assert!(sent_first.contains("s3cret-header") && sent_first.contains("s3cret-token"));
    let sent_other = other.requests.lock().unwrap().join("\n");
    assert!(
        sent_other.contains("GET /demo-1.1.0.tar.gz"),
        "{sent_other}"
    );
    assert!(
        !sent_other.contains("s3cret"),
        "a credential reached another origin:\n{sent_other}"
    );
}

#[test]
fn airtight_redirect_to_a_file_url_says_so() {
    let scene = Scene::signed();
    let server = evil(&scene);
    server.set(
        "versions.txt",
        crate::util::evil::Behave::Redirect("file:///etc/hostname".into()),
    );
    let run = scene.refused(
        &server.manifest_url(),
        &[],
        &["redirected to file:///etc/hostname, which is not allowed"],
    );
    assert!(!run.stdout().contains("HTTP 404"), "{}", run.stdout());
}

// ---- 9. signed repositories can be kept alive ----

#[test]
fn airtight_refresh_renews_a_signed_repository_releases_untouched() {
    let scene = Scene::signed();
    let w = &scene.world;
    let before = tree_hashes(&w.releases);
    let fresh_line = |key: &str| {
        let text = fs::read_to_string(w.releases.join("versions.txt.fresh")).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(str::to_owned))
            .unwrap()
    };
    let old_serial: u64 = fresh_line("serial ").parse().unwrap();
    let out = leapfrog()
        // versions.txt's own expiry (30 days) is more than half of this
        // away: only the freshness file is signed again.
        .args(["refresh", "--expires-in", "40days", "--repo"])
        .arg(&w.releases)
        .arg("--secret-key")
        .arg(w.fixture.secret_key.as_ref().unwrap())
        .output()
        .unwrap();
    Run {
        output: out,
        what: "leapfrog refresh".into(),
    }
    .expect_code(0)
    .expect_output("re-signed");
    // Only the freshness file is signed again: versions.txt, its
    // signature and the releases stay byte for byte.
    let after = tree_hashes(&w.releases);
    for (name, hash) in &before {
        if name != "versions.txt.fresh" {
            assert_eq!(after.get(name), Some(hash), "{name} changed");
        }
    }
    assert_ne!(
        after.get("versions.txt.fresh"),
        before.get("versions.txt.fresh")
    );
    let new_serial: u64 = fresh_line("serial ").parse().unwrap();
    assert_eq!(new_serial, old_serial + 1);
    let expires = humantime::parse_rfc3339(&fresh_line("expires ")).unwrap();
    let days = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs()
        / 86_400;
    assert!((38..=40).contains(&days), "{days} days");
    w.verify().expect_code(0);
    let server = scene.server();
    w.launch(&url(&server))
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
}

#[test]
fn airtight_expired_manifest_is_no_update_this_time_not_an_error() {
    // A repository without a freshness file: the manifest's own expiry
    // (tests/scale.rs has an expired freshness file).
    let scene = Scene::signed();
    let w = &scene.world;
    w.resign(|m| m.expires = Some("2020-01-01T00:00:00Z".into()));
    fs::remove_file(w.releases.join("versions.txt.fresh")).unwrap();
    let server = scene.server();
    scene
        .refused(
            &url(&server),
            &[],
            &["expired at 2020-01-01T00:00:00Z", "no update this time"],
        )
        .expect_no_output("update failed")
        .expect_no_output("checking for updates failed");
}

// ---- 10. messages that say what failed ----

#[test]
fn airtight_html_page_as_manifest_is_not_a_leapfrog_manifest() {
    let scene = Scene::new();
    let server = evil(&scene);
    server.set(
        "versions.txt",
        crate::util::evil::Behave::Body(b"<html>oops</html>".to_vec()),
    );
    scene
        .refused(
            &server.manifest_url(),
            &[],
            &["not a leapfrog manifest", "HTML"],
        )
        .expect_no_output("is not a program name");
}

#[test]
fn airtight_archive_failing_its_hash_is_not_called_a_failed_check() {
    let scene = Scene::signed();
    let archive = scene.world.releases.join("demo-1.1.0.tar.gz");
    let mut bytes = fs::read(&archive).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0xff;
    fs::write(&archive, bytes).unwrap();
    let server = scene.server();
    scene
        .refused(
            &url(&server),
            &[],
            &[
                "checksum mismatch",
                "was found, but downloading, verifying or staging it failed",
            ],
        )
        .expect_no_output("update check failed")
        .expect_no_output("checking for updates failed");
}
