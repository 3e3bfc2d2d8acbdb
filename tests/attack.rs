//! The attack suite: a hostile mirror, network or host against an app that
//! trusts only the publisher's key. Every case asserts a clear error naming
//! the cause, the installed version unchanged and still running, nothing
//! written outside the backup dir, and that a later good update still works.

use std::fs;
use std::time::Duration;

use leapfrog::Manifest;
use tar::EntryType;

use crate::util::evil::{Behave, EvilServer};
use crate::util::*;

// Archives the signed manifest vouches for, hostile inside.
mod extraction;

const ARCHIVE: &str = "demo-1.1.0.tar.gz";
const SLOW: &[(&str, &str)] = &[
    ("LEAPFROG_READ_TIMEOUT", "1s"),
    ("LEAPFROG_RATE_WINDOW", "1s"),
    ("LEAPFROG_MIN_RATE", "5000"),
];

struct Attack {
    world: World,
    server: EvilServer,
}

impl Attack {
    fn new() -> Attack {
        let world = World::signed();
        let server = EvilServer::start(world.releases.clone());
        Attack { world, server }
    }

    /// Everything in the test's dir but the backup dir and leapfrog's state file.
    fn snapshot(&self) -> std::collections::BTreeMap<String, String> {
        tree_hashes(self.world.dir.path())
            .into_iter()
            .filter(|(k, _)| {
                !k.starts_with("apps/demo.backup") && !k.ends_with(leapfrog::internal::STATE_NAME)
            })
            .collect()
    }

    /// Takes the freshness file away: the manifest's own signature
    /// (`versions.txt.minisig`) is what the app checks then.
    fn no_freshness_file(&self) {
        fs::remove_file(self.world.releases.join("versions.txt.fresh")).unwrap();
    }

    /// A manifest edited after signing is refused both ways: as not the
    /// one the signed freshness file names ("no update this time"), and,
    /// where the repository has no freshness file, by its own signature
    /// (naming `needles`).
    fn edited_refused(&self, needles: &[&str]) {
        self.refused(
            &[],
            &["or it was changed after signing", "no update this time"],
        );
        self.no_freshness_file();
        self.refused(&[], needles);
    }

    fn manifest(&self) -> Manifest {
        Manifest::parse(
            &fs::read_to_string(self.world.releases.join("versions.txt")).unwrap(),
            "t",
        )
        .unwrap()
    }

    /// Launches the app and checks that the update was refused, naming `needles`.
    fn refused(&self, env: &[(&str, &str)], needles: &[&str]) -> Run {
        let before = self.snapshot();
        let mut run = self
            .world
            .launch_env(&self.server.manifest_url(), env)
            .expect_code(0)
            .expect_output("demo 1.0.0 running")
            .expect_no_output("demo 1.1.0 running")
            .expect_no_output("hopping out");
        for needle in needles {
            run = run.expect_output(needle);
        }
        assert_eq!(
            self.snapshot(),
            before,
            "something changed outside the backup dir:\n{}",
            run.stdout()
        );
        assert!(
            !self.world.backup.join("need_update").exists(),
            "a journal was left"
        );
        // The installed version still starts by itself.
        let again = command(&self.world.install.join("demo"))
            .env("LEAPFROG_MANIFEST_URL", "http://127.0.0.1:9/versions.txt")
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&again.stdout).contains("demo 1.0.0 running"));
        run
    }

    /// Puts the publisher's real releases back, signed with a serial above
    /// anything an attack used, and updates for real.
    fn good_update_works(self) {
        self.server.clear();
        let fx = signed_fixture();
        for name in ["demo-1.0.0.tar.gz", ARCHIVE] {
            fs::copy(fx.releases.join(name), self.world.releases.join(name)).unwrap();
        }
        let mut good = Manifest::parse(
            &fs::read_to_string(fx.releases.join("versions.txt")).unwrap(),
            "t",
        )
        .unwrap();
        good.serial = Some(1_000_000);
        self.world.sign_text(&good.render(), None);
        self.world
            .launch(&self.server.manifest_url())
            .expect_code(0)
            .expect_output("signature verified")
            .expect_output("demo 1.1.0 running");
        let mut installed = tree_hashes(&self.world.install);
        installed.remove(leapfrog::internal::STATE_NAME);
        let mut want = tree_hashes(&fx.tree_1_1);
        want.insert(USER_FILE.into(), installed[USER_FILE].clone());
        want.insert(
            ".leapfrog-release".into(),
            installed[".leapfrog-release"].clone(),
        );
        assert_eq!(installed, want);
    }

    /// Serves `bytes` as the 1.1.0 archive, listed with its true hash and
    /// size in a manifest the publisher signed (an archive attack that gets
    /// past the transport, as from a compromised build).
    fn signed_archive(&self, bytes: &[u8]) {
        self.world.republish_archive(bytes);
    }
}

fn bump(m: &mut Manifest) {
    m.serial = Some(m.serial.unwrap_or(0) + 1);
}

// ---- manifest trust ----

#[test]
fn attack_unsigned_manifest() {
    let a = Attack::new();
    a.no_freshness_file();
    fs::remove_file(a.world.releases.join("versions.txt.minisig")).unwrap();
    a.refused(&[], &["unsigned", "versions.txt.minisig", "HTTP 404"]);
    a.good_update_works();
}

#[test]
fn attack_manifest_bit_flip() {
    let a = Attack::new();
    let path = a.world.releases.join("versions.txt");
    let mut bytes = fs::read(&path).unwrap();
    let i = bytes.len() - 5;
    bytes[i] ^= 0x01;
    fs::write(&path, bytes).unwrap();
    a.edited_refused(&["the signature does not match"]);
    a.good_update_works();
}

#[test]
fn attack_manifest_signed_by_other_key() {
    let a = Attack::new();
    let mut m = a.manifest();
    bump(&mut m);
    a.world
        .sign_text(&m.render(), a.world.fixture.other_secret_key.as_deref());
    a.refused(&[], &["signed by a key this program does not trust"]);
    a.good_update_works();
}

#[test]
fn attack_manifest_edited_after_signing() {
    let a = Attack::new();
    let path = a.world.releases.join("versions.txt");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("size=", "size=1");
    fs::write(&path, text).unwrap();
    a.edited_refused(&["the manifest was changed after signing"]);
    a.good_update_works();
}

#[test]
fn attack_manifest_with_extra_release_appended() {
    let a = Attack::new();
    let path = a.world.releases.join("versions.txt");
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "demo 9.0.0 file=demo-1.0.0.tar.gz sha256={} size=1\n",
        "ab".repeat(32)
    ));
    fs::write(&path, text).unwrap();
    a.edited_refused(&["the signature does not match"]);
    a.good_update_works();
}

#[test]
fn attack_manifest_expired() {
    let a = Attack::new();
    let mut m = a.manifest();
    bump(&mut m);
    m.expires = Some("2020-01-01T00:00:00Z".into());
    a.world.sign_text(&m.render(), None);
    // The manifest's own expiry counts where there is no freshness file
    // (tests/scale.rs: an expired freshness file).
    a.no_freshness_file();
    a.refused(&[], &["expired at 2020-01-01T00:00:00Z", "stale copy"]);
    a.good_update_works();
}

#[test]
fn attack_manifest_older_serial_replayed() {
    let a = Attack::new();
    let old = a.manifest();
    // The app sees serial 50 (nothing newer in it), then an older, genuine manifest.
    let mut newer = old.clone();
    newer.serial = Some(50);
    newer.releases.retain(|r| r.version.to_string() == "1.0.0");
    a.world.sign_text(&newer.render(), None);
    a.world
        .launch(&a.server.manifest_url())
        .expect_code(0)
        .expect_output("up to date");
    a.world.sign_text(&old.render(), None);
    a.refused(
        &[],
        &["serial 2 is lower than 50", "refusing an older manifest"],
    );
    a.good_update_works();
}

#[test]
fn attack_manifest_same_serial_other_content() {
    let a = Attack::new();
    let genuine = a.manifest();
    let mut first = genuine.clone();
    first.releases.retain(|r| r.version.to_string() == "1.0.0");
    a.world.sign_text(&first.render(), None);
    a.world
        .launch(&a.server.manifest_url())
        .expect_code(0)
        .expect_output("up to date");
    a.world.sign_text(&genuine.render(), None);
    a.refused(&[], &["serial 2 was accepted before with other content"]);
    a.good_update_works();
}

#[test]
fn attack_manifest_without_serial_or_expiry() {
    let a = Attack::new();
    let mut m = a.manifest();
    m.serial = None;
    m.expires = None;
    a.world.sign_text(&m.render(), None);
    a.refused(&[], &["must carry `serial` and `expires`"]);
    a.good_update_works();
}

#[test]
fn attack_relabelled_old_archive() {
    let a = Attack::new();
    let old = fs::read(a.world.releases.join("demo-1.0.0.tar.gz")).unwrap();
    a.signed_archive(&old);
    a.refused(
        &[],
        &["it holds demo 1.0.0, but the manifest offered demo 1.1.0"],
    );
    a.good_update_works();
}

#[test]
fn attack_oversize_manifest() {
    let a = Attack::new();
    a.server
        .set("versions.txt", Behave::Body(vec![b'#'; 2 * 1024 * 1024]));
    a.refused(&[], &["larger than the 1048576-byte limit for a manifest"]);
    a.good_update_works();
}

#[test]
fn attack_freshness_file_signed_by_another_key() {
    let a = Attack::new();
    let other = a.world.fixture.other_secret_key.clone().unwrap();
    leapfrog::publish::refresh(
        &a.world.releases,
        &leapfrog::publish::Signing {
            secret_key: Some(other),
            ..Default::default()
        },
    )
    .unwrap();
    a.refused(
        &[],
        &[
            "versions.txt.fresh",
            "signed by a key this program does not trust",
        ],
    );
    a.good_update_works();
}

#[test]
fn attack_freshness_file_edited() {
    // A later expiry written into a genuine freshness file.
    let a = Attack::new();
    let path = a.world.releases.join("versions.txt.fresh");
    let text = fs::read_to_string(&path).unwrap();
    let edited: String = text
        .lines()
        .map(|l| {
            if l.starts_with("expires ") {
                "expires 2099-01-01T00:00:00Z\n".to_owned()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(edited, text);
    fs::write(&path, edited).unwrap();
    a.refused(&[], &["versions.txt.fresh", "the signature does not match"]);
    a.good_update_works();
}

#[test]
fn attack_oversize_freshness_file() {
    let a = Attack::new();
    a.server
        .set("versions.txt.fresh", Behave::Body(vec![b'#'; 100_000]));
    a.refused(&[], &["larger than the 4096-byte limit"]);
    a.good_update_works();
}

#[test]
fn attack_freshness_file_stripped_and_manifest_edited() {
    // Without the freshness file the manifest's own signature decides.
    let a = Attack::new();
    fs::remove_file(a.world.releases.join("versions.txt.fresh")).unwrap();
    let path = a.world.releases.join("versions.txt");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace("demo 1.0.0", "demo 1.0.1")).unwrap();
    a.refused(&[], &["the signature does not match"]);
    a.good_update_works();
}

#[test]
fn attack_oversize_signature() {
    let a = Attack::new();
    a.no_freshness_file();
    a.server
        .set("versions.txt.minisig", Behave::Body(vec![b'A'; 100_000]));
    a.refused(&[], &["unsigned", "larger than the 4096-byte limit"]);
    a.good_update_works();
}

#[test]
fn attack_malformed_signature() {
    let a = Attack::new();
    a.no_freshness_file();
    fs::write(
        a.world.releases.join("versions.txt.minisig"),
        "untrusted comment: x\nnot base64 at all\n",
    )
    .unwrap();
    a.refused(&[], &["the signature file is malformed"]);
    a.good_update_works();
}

#[test]
fn attack_malformed_manifest_text_signed() {
    // Even text the publisher's key signed must parse, line by line.
    let a = Attack::new();
    a.world.sign_text(
        "# leapfrog versions v1\nserial 9\nexpires 2099-01-01T00:00:00Z\ndemo one.two\n",
        None,
    );
    a.refused(
        &[],
        &["versions.txt:4:", "\"one.two\" is not a semver version"],
    );
    a.good_update_works();
}

#[test]
fn attack_downgrade_offered() {
    // A signed manifest that offers only an older version: never installed.
    let a = Attack::new();
    a.world
        .resign(|m| m.releases.retain(|r| r.version.to_string() == "1.0.0"));
    a.world
        .resign(|m| m.releases[0].version = semver::Version::new(0, 5, 0));
    a.refused(&[], &["demo 1.0.0 is up to date"]);
    a.good_update_works();
}

#[test]
fn attack_yank_in_unsigned_manifest_is_ignored() {
    // Only a signed manifest may withdraw the running version.
    let a = Attack::new();
    let mut m = a.manifest();
    bump(&mut m);
    m.releases.retain(|r| r.version.to_string() == "1.0.0");
    m.releases[0].yanked = true;
    fs::write(a.world.releases.join("versions.txt"), m.render()).unwrap();
    a.edited_refused(&["the signature does not match"]);
    a.good_update_works();
}

// ---- transport ----

#[test]
fn attack_archive_hash_mismatch() {
    let a = Attack::new();
    let mut bytes = fs::read(a.world.releases.join(ARCHIVE)).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0xff;
    a.world.replace_archive(&bytes);
    a.refused(&[], &["checksum mismatch", ARCHIVE]);
    a.good_update_works();
}

#[test]
fn attack_archive_truncated() {
    let a = Attack::new();
    let bytes = fs::read(a.world.releases.join(ARCHIVE)).unwrap();
    a.world.replace_archive(&bytes[..bytes.len() - 1000]);
    a.refused(&[], &["size mismatch", "cut short"]);
    a.good_update_works();
}

#[test]
fn attack_archive_longer_than_stated() {
    let a = Attack::new();
    a.server.set(
        ARCHIVE,
        Behave::Longer {
            extra: 10_000_000,
            announce: true,
        },
    );
    a.refused(&[], &["size mismatch"]);
    a.good_update_works();
}

#[test]
fn attack_archive_endless_without_length() {
    // No Content-Length: the download stops one byte past the stated size.
    let a = Attack::new();
    a.server.set(
        ARCHIVE,
        Behave::Longer {
            extra: 50_000_000,
            announce: false,
        },
    );
    a.refused(&[], &["size mismatch"]);
    let partials: Vec<_> = tree_hashes(a.world.dir.path())
        .into_keys()
        .filter(|k| k.ends_with(".partial"))
        .collect();
    assert!(partials.is_empty(), "{partials:?}");
    a.good_update_works();
}

#[test]
fn attack_archive_slow_drip() {
    let a = Attack::new();
    a.server.set(
        ARCHIVE,
        Behave::Drip {
            chunk: 100,
            every: Duration::from_millis(100),
        },
    );
    a.refused(SLOW, &["slower than 5000 bytes/s", ARCHIVE]);
    a.good_update_works();
}

#[test]
fn attack_manifest_slow_drip() {
    let a = Attack::new();
    a.server.set(
        "versions.txt",
        Behave::Drip {
            chunk: 5,
            every: Duration::from_millis(100),
        },
    );
    a.refused(SLOW, &["slower than 5000 bytes/s", "versions.txt"]);
    a.good_update_works();
}

#[test]
fn attack_archive_stall() {
    let a = Attack::new();
    a.server.set(ARCHIVE, Behave::Stall { after: 10_000 });
    a.refused(SLOW, &["the server stopped sending", ARCHIVE]);
    a.good_update_works();
}

#[test]
fn attack_manifest_stall() {
    let a = Attack::new();
    a.server.set("versions.txt", Behave::Stall { after: 10 });
    a.refused(SLOW, &["versions.txt", "stopped sending"]);
    a.good_update_works();
}

#[test]
fn attack_manifest_404() {
    let a = Attack::new();
    a.server.set("versions.txt", Behave::Status(404));
    a.refused(&[], &["HTTP 404", "check the URL"]);
    a.good_update_works();
}

#[test]
fn attack_archive_404() {
    let a = Attack::new();
    a.server.set(ARCHIVE, Behave::Status(404));
    a.refused(&[], &["HTTP 404", ARCHIVE]);
    a.good_update_works();
}

#[test]
fn attack_archive_500() {
    let a = Attack::new();
    a.server.set(ARCHIVE, Behave::Status(500));
    a.refused(&[], &["HTTP 500", "try again later"]);
    a.good_update_works();
}

#[test]
fn attack_manifest_500() {
    let a = Attack::new();
    a.server.set("versions.txt", Behave::Status(503));
    a.refused(&[], &["HTTP 503"]);
    a.good_update_works();
}

#[test]
fn attack_redirect_loop() {
    let a = Attack::new();
    a.server.set(ARCHIVE, Behave::RedirectLoop);
    a.refused(&[], &["too many redirects", ARCHIVE]);
    a.good_update_works();
}

#[test]
fn attack_manifest_redirect_loop() {
    let a = Attack::new();
    a.server.set("versions.txt", Behave::RedirectLoop);
    a.refused(&[], &["too many redirects"]);
    a.good_update_works();
}

#[test]
fn attack_html_error_page_instead_of_archive() {
    let a = Attack::new();
    a.server.set(
        ARCHIVE,
        Behave::Body(b"<html><body>Service unavailable</body></html>".to_vec()),
    );
    a.refused(&[], &["size mismatch", ARCHIVE]);
    a.good_update_works();
}

#[test]
fn attack_html_page_instead_of_manifest() {
    let a = Attack::new();
    a.server.set(
        "versions.txt",
        Behave::Body(b"<html><body>Welcome to nginx!</body></html>".to_vec()),
    );
    // Not the manifest the signed freshness file names, and no manifest at all.
    a.refused(&[], &["not a leapfrog manifest"]);
    a.good_update_works();
}

#[test]
fn attack_mix_and_match_archive() {
    // The genuine 1.0.0 archive served where 1.1.0's belongs, manifest untouched.
    let a = Attack::new();
    let old = fs::read(a.world.releases.join("demo-1.0.0.tar.gz")).unwrap();
    a.world.replace_archive(&old);
    a.refused(&[], &["mismatch", ARCHIVE]);
    a.good_update_works();
}

#[test]
fn attack_server_down() {
    let a = Attack::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let before = a.snapshot();
    a.world
        .launch(&format!("http://127.0.0.1:{port}/versions.txt"))
        .expect_code(0)
        .expect_output("connection refused")
        .expect_output("demo 1.0.0 running");
    assert_eq!(a.snapshot(), before);
    a.good_update_works();
}

#[test]
fn attack_tampered_partial_download_left_behind() {
    // A .partial file (and junk) planted in the backup dir (a leapfrog
    // backup dir, marked) are never trusted: staging starts from a fresh
    // copy and a fresh download.
    let a = Attack::new();
    a.world.mark_backup();
    let archive = fs::read(a.world.releases.join(ARCHIVE)).unwrap();
    let mut planted = archive.clone();
    let i = planted.len() / 3;
    planted[i] ^= 0xff;
    fs::write(
        a.world.backup.join(format!("{ARCHIVE}.partial")),
        &planted[..planted.len() / 2],
    )
    .unwrap();
    fs::write(a.world.backup.join(ARCHIVE), &planted).unwrap();
    fs::create_dir_all(a.world.backup.join(".leapfrog-staging/assets")).unwrap();
    fs::write(
        a.world.backup.join(".leapfrog-staging/assets/new.txt"),
        "planted",
    )
    .unwrap();
    a.good_update_works();
}
