//! Keys, signatures and trust over time: keygen, interop with the stock
//! `minisign` tool both ways, `verify`, `yank`, key rotation.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use leapfrog::serve::Server;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(60);

/// The stock minisign tool. Where it is missing, the interop tests say what
/// to install and stop there, except in CI (`CI` set), where they fail.
fn minisign() -> Option<Command> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("minisign").is_file()));
    if !found {
        let advice = "the stock minisign tool is not installed: apt-get install minisign";
        assert!(std::env::var_os("CI").is_none(), "{advice}");
        eprintln!("SKIPPED: {advice}");
        return None;
    }
    let mut cmd = Command::new("minisign");
    cmd.stdin(std::process::Stdio::null());
    Some(cmd)
}

fn keygen(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (sk, pk) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    run(
        leapfrog()
            .arg("keygen")
            .arg("--secret-key")
            .arg(&sk)
            .arg("--public-key")
            .arg(&pk),
        LIMIT,
    )
    .expect_code(0)
    .expect_output("not encrypted");
    (sk, pk)
}

fn tree(dir: &Path) -> std::path::PathBuf {
    let t = dir.join("tree");
    write_tree(&t, &[("demo", "program\n"), ("lib/x.txt", "x\n")]);
    t
}

fn publish_cli(tree: &Path, version: &str, repo: &Path, sk: Option<&Path>) -> Run {
    let mut cmd = leapfrog();
    cmd.arg("publish")
        .arg(tree)
        .args(["--program", "demo", "--version", version, "--repo"])
        .arg(repo);
    if let Some(sk) = sk {
        cmd.arg("--secret-key").arg(sk);
    }
    run(&mut cmd, LIMIT)
}

#[test]
fn keygen_writes_a_private_secret_key_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = keygen(dir.path(), "k");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&sk).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(fs::read_to_string(&pk)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("RW"));
    let (sk_before, pk_before) = (fs::read(&sk).unwrap(), fs::read(&pk).unwrap());
    run(
        leapfrog()
            .arg("keygen")
            .arg("--secret-key")
            .arg(&sk)
            .arg("--public-key")
            .arg(dir.path().join("new.pub")),
        LIMIT,
    )
    .expect_code(1)
    .expect_output("already exists; refusing to overwrite");
    assert_eq!(fs::read(&sk).unwrap(), sk_before);
    assert_eq!(fs::read(&pk).unwrap(), pk_before);
    assert!(!dir.path().join("new.pub").exists());
}

#[test]
fn signed_by_leapfrog_verifies_with_stock_minisign() {
    let Some(_) = minisign() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = keygen(dir.path(), "k");
    let repo = dir.path().join("repo");
    publish_cli(&tree(dir.path()), "1.0.0", &repo, Some(&sk))
        .expect_code(0)
        .expect_output("signed");
    let out = minisign()
        .unwrap()
        .arg("-V")
        .arg("-p")
        .arg(&pk)
        .arg("-m")
        .arg(repo.join("versions.txt"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Signature and comment signature verified"),
        "{text}"
    );
    // And the stock tool notices an edit.
    let mut body = fs::read_to_string(repo.join("versions.txt")).unwrap();
    body.push_str("demo 9.0.0\n");
    fs::write(repo.join("versions.txt"), body).unwrap();
    let out = minisign()
        .unwrap()
        .arg("-V")
        .arg("-p")
        .arg(&pk)
        .arg("-m")
        .arg(repo.join("versions.txt"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn signed_by_stock_minisign_verifies_with_leapfrog() {
    let Some(_) = minisign() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = (dir.path().join("stock.key"), dir.path().join("stock.pub"));
    let status = minisign()
        .unwrap()
        .arg("-G")
        .arg("-W")
        .arg("-p")
        .arg(&pk)
        .arg("-s")
        .arg(&sk)
        .status()
        .unwrap();
    assert!(status.success());
    let repo = dir.path().join("repo");
    publish_cli(&tree(dir.path()), "1.0.0", &repo, None).expect_code(0);
    let status = minisign()
        .unwrap()
        .arg("-S")
        .arg("-s")
        .arg(&sk)
        .arg("-m")
        .arg(repo.join("versions.txt"))
        .status()
        .unwrap();
    assert!(status.success());
    let url = repo.join("versions.txt");
    run(
        leapfrog()
            .args([
                "check",
                url.to_str().unwrap(),
                "--program",
                "demo",
                "--current",
                "0.9.0",
                "--public-key",
            ])
            .arg(&pk),
        LIMIT,
    )
    .expect_code(10)
    .expect_output("signature verified");
    run(
        leapfrog()
            .arg("verify")
            .arg(&repo)
            .arg("--public-key")
            .arg(&pk),
        LIMIT,
    )
    .expect_code(0)
    .expect_output("signature good")
    .expect_output("demo 1.0.0: archive and file list verified");
    // The same repository against another key: refused.
    let (_, other) = keygen(dir.path(), "other");
    run(
        leapfrog()
            .args([
                "check",
                url.to_str().unwrap(),
                "--program",
                "demo",
                "--current",
                "0.9.0",
                "--public-key",
            ])
            .arg(&other),
        LIMIT,
    )
    .expect_code(1)
    .expect_output("signed by a key this program does not trust");
}

#[test]
fn verify_command_finds_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = keygen(dir.path(), "k");
    let repo = dir.path().join("repo");
    let t = tree(dir.path());
    publish_cli(&t, "1.0.0", &repo, Some(&sk)).expect_code(0);
    publish_cli(&t, "1.1.0", &repo, Some(&sk)).expect_code(0);
    run(
        leapfrog()
            .arg("verify")
            .arg(&repo)
            .arg("--public-key")
            .arg(&pk),
        LIMIT,
    )
    .expect_code(0)
    .expect_output("serial 2")
    .expect_output("demo 1.1.0: archive and file list verified");
    // An unsigned publish into a signed repository is refused.
    publish_cli(&t, "1.2.0", &repo, None)
        .expect_code(1)
        .expect_output("is signed; pass --secret-key");
    // A damaged archive is named.
    let archive = repo.join("demo-1.0.0.tar.gz");
    let mut bytes = fs::read(&archive).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    fs::write(&archive, bytes).unwrap();
    run(
        leapfrog()
            .arg("verify")
            .arg(&repo)
            .arg("--public-key")
            .arg(&pk),
        LIMIT,
    )
    .expect_code(1)
    .expect_output("demo 1.0.0: ")
    .expect_output("demo-1.0.0.tar.gz has sha256");
    // An expired manifest is refused.
    let repo2 = dir.path().join("repo2");
    run(
        leapfrog()
            .arg("publish")
            .arg(&t)
            .args(["--program", "demo", "--version", "1.0.0", "--repo"])
            .arg(&repo2)
            .arg("--secret-key")
            .arg(&sk)
            .args(["--expires-in", "1s"]),
        LIMIT,
    )
    .expect_code(0);
    std::thread::sleep(Duration::from_millis(2100));
    run(
        leapfrog()
            .arg("verify")
            .arg(&repo2)
            .arg("--public-key")
            .arg(&pk),
        LIMIT,
    )
    .expect_code(1)
    .expect_output("expired at");
}

#[test]
fn yanked_version_is_left_for_the_newest_not_withdrawn() {
    let world = World::signed();
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    let sk = world.fixture.secret_key.as_ref().unwrap();
    run(
        leapfrog()
            .args(["yank", "--program", "demo", "--version", "1.1.0", "--repo"])
            .arg(&world.releases)
            .arg("--secret-key")
            .arg(sk),
        LIMIT,
    )
    .expect_code(0)
    .expect_output("withdrew demo 1.1.0");
    assert!(fs::read_to_string(world.releases.join("versions.txt"))
        .unwrap()
        .contains("yanked=true"));
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("demo 1.1.0 is withdrawn by the publisher: going back to 1.0.0")
        .expect_output("demo 1.0.0 running");
    let mut installed = tree_hashes(&world.install);
    installed.remove(leapfrog::internal::STATE_NAME);
    let mut want = tree_hashes(&world.fixture.tree_1_0);
    want.insert(USER_FILE.into(), installed[USER_FILE].clone());
    want.insert(
        ".leapfrog-release".into(),
        installed[".leapfrog-release"].clone(),
    );
    assert_eq!(installed, want);
    // Running 1.0.0 now, the withdrawn 1.1.0 is not offered.
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("up to date");
}

#[test]
fn key_rotation_through_a_signed_manifest() {
    let world = World::signed();
    let dir = tempfile::tempdir().unwrap();
    let (new_sk, new_pk) = keygen(dir.path(), "next");
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
    let genuine = fs::read_to_string(world.releases.join("versions.txt")).unwrap();

    // A manifest signed by the new key alone is not trusted yet.
    let mut by_new = leapfrog::Manifest::parse(&genuine, "t").unwrap();
    by_new.serial = Some(10);
    world.sign_text(&by_new.render(), Some(&new_sk));
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("signed by a key this program does not trust");

    // The current key announces the next one (nothing new to install yet)...
    let mut announce = leapfrog::Manifest::parse(&genuine, "t").unwrap();
    announce.serial = Some(5);
    announce
        .releases
        .retain(|r| r.version.to_string() == "1.0.0");
    announce.next_key = Some(
        fs::read_to_string(&new_pk)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .to_owned(),
    );
    world.sign_text(&announce.render(), None);
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("trusting the publisher's next key")
        .expect_output("up to date");

    // ... and from then on the new key's manifests are trusted.
    world.sign_text(&by_new.render(), Some(&new_sk));
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("signature verified (key 2)")
        .expect_output("demo 1.1.0 running");
}

#[test]
fn unsigned_updates_are_reported_loudly() {
    let world = World::new();
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    world
        .launch(&format!("{}versions.txt", server.url()))
        .expect_code(0)
        .expect_output("no public key configured: this update is NOT verified");
}
