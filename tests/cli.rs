//! The `leapfrog` command: publish, check, serve and demo, as a user runs them.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(60);

fn publish(tree: &std::path::Path, version: &str, repo: &std::path::Path) -> Run {
    run(
        leapfrog()
            .arg("publish")
            .arg(tree)
            .args(["--program", "demo", "--version", version, "--repo"])
            .arg(repo),
        LIMIT,
    )
}

#[test]
fn publish_writes_archive_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    write_tree(
        &tree,
        &[("demo", "#!/bin/sh\n"), ("lib/data.txt", "data\n")],
    );
    let notes = dir.path().join("notes.txt");
    fs::write(&notes, "what changed\n").unwrap();
    let repo = dir.path().join("repo");
    run(
        leapfrog()
            .arg("publish")
            .arg(&tree)
            .args(["--program", "demo", "--version", "1.2.0", "--repo"])
            .arg(&repo)
            .arg("--notes")
            .arg(&notes),
        LIMIT,
    )
    .expect_code(0)
    .expect_output("published demo 1.2.0");
    let archive = repo.join("demo-1.2.0.tar.gz");
    let (sha, size) = leapfrog::publish::sha256_file(&archive).unwrap();
    let m = leapfrog::publish::read_manifest(&repo).unwrap();
    let r = m.newest("demo").unwrap();
    assert_eq!(r.sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(r.size, Some(size));
    assert_eq!(r.notes.as_deref(), Some("demo-1.2.0.txt"));
    assert_eq!(
        fs::read_to_string(repo.join("demo-1.2.0.txt")).unwrap(),
        "what changed\n"
    );
    assert_eq!(m.serial, Some(1));
    let mut names: Vec<_> = fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // The archive, the manifest, the notes and the adoption ping object;
    // no temp files left.
    assert_eq!(
        names,
        [
            "demo-1.2.0.tar.gz",
            "demo-1.2.0.txt",
            "ping.txt",
            "versions.txt"
        ]
    );
    assert_eq!(
        fs::read_to_string(repo.join("ping.txt")).unwrap(),
        leapfrog::adoption::PING_TEXT
    );
}

#[test]
fn publish_twice_gives_identical_archives() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    write_tree(&tree, &[("demo", "binary\n"), ("a/b/c.txt", "c\n")]);
    publish(&tree, "1.0.0", &dir.path().join("r1")).expect_code(0);
    std::thread::sleep(Duration::from_millis(1100));
    fs::write(tree.join("a/b/c.txt"), "c\n").unwrap(); // new mtime, same content
    publish(&tree, "1.0.0", &dir.path().join("r2")).expect_code(0);
    let one = fs::read(dir.path().join("r1/demo-1.0.0.tar.gz")).unwrap();
    let two = fs::read(dir.path().join("r2/demo-1.0.0.tar.gz")).unwrap();
    assert!(one == two, "the same tree gave different archives");
}

#[test]
fn publish_refuses_a_version_not_newer() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    write_tree(&tree, &[("demo", "x\n")]);
    let repo = dir.path().join("repo");
    publish(&tree, "1.10.0", &repo).expect_code(0);
    let manifest = fs::read(repo.join("versions.txt")).unwrap();
    for version in ["1.10.0", "1.9.0", "1.10.0-rc.1"] {
        publish(&tree, version, &repo)
            .expect_code(1)
            .expect_output("is not newer than demo 1.10.0");
        assert_eq!(fs::read(repo.join("versions.txt")).unwrap(), manifest);
    }
    publish(&tree, "1.10", &repo)
        .expect_code(1)
        .expect_output("\"1.10\" is not a valid version");
    publish(&tree, "2.0.0", &repo).expect_code(0);
}

#[test]
fn publish_refuses_missing_dir() {
    let dir = tempfile::tempdir().unwrap();
    publish(&dir.path().join("nope"), "1.0.0", &dir.path().join("repo"))
        .expect_code(1)
        .expect_output("is not a folder");
}

#[test]
fn check_exit_codes() {
    let fx = fixture();
    let url = fx.releases.join("versions.txt");
    let url = url.to_str().unwrap();
    let check = |current: &str| {
        run(
            leapfrog().args(["check", url, "--program", "demo", "--current", current]),
            LIMIT,
        )
    };
    check("1.1.0")
        .expect_code(0)
        .expect_output("demo 1.1.0 is up to date");
    check("1.0.0")
        .expect_code(10)
        .expect_output("update available: demo 1.0.0 -> 1.1.0")
        .expect_output("demo-1.1.0.tar.gz");
    check("x")
        .expect_code(1)
        .expect_output("not a valid version");
    run(
        leapfrog().args(["check", url, "--program", "other", "--current", "1.0.0"]),
        LIMIT,
    )
    .expect_code(1)
    .expect_output("lists no release of \"other\"");
    run(
        leapfrog().args([
            "check",
            "http://127.0.0.1:9/versions.txt",
            "--program",
            "demo",
            "--current",
            "1.0.0",
        ]),
        LIMIT,
    )
    .expect_code(1)
    .expect_output("http://127.0.0.1:9/versions.txt");
}

#[test]
fn serve_get_head_range_and_containment() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    write_tree(&served, &[("a.bin", "0123456789"), ("sub/b.txt", "bee\n")]);
    fs::write(dir.path().join("secret.txt"), "outside\n").unwrap();
    std::os::unix::fs::symlink("../secret.txt", served.join("leak.txt")).unwrap();
    let mut child = leapfrog()
        .arg("serve")
        .arg(&served)
        .args(["--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split(" at ")
        .nth(1)
        .expect("the URL is printed")
        .trim()
        .to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = |path: &str, range: Option<&str>| {
        let mut req = agent.get(&format!("{base}{path}"));
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        let mut resp = req.call().unwrap();
        let status = resp.status().as_u16();
        let len = resp
            .headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap().to_owned());
        let cr = resp
            .headers()
            .get("content-range")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        (status, len, cr, body)
    };
    assert_eq!(
        get("a.bin", None),
        (200, Some("10".into()), None, "0123456789".into())
    );
    assert_eq!(get("sub/b.txt", None).3, "bee\n");
    assert_eq!(
        get("a.bin", Some("bytes=2-4")),
        (
            206,
            Some("3".into()),
            Some("bytes 2-4/10".into()),
            "234".into()
        )
    );
    assert_eq!(get("a.bin", Some("bytes=-3")).3, "789");
    assert_eq!(get("a.bin", Some("bytes=20-")).0, 416);
    assert_eq!(get("missing", None).0, 404);
    assert_eq!(get("../secret.txt", None).0, 404);
    assert_eq!(get("%2e%2e/secret.txt", None).0, 404);
    assert_eq!(get("leak.txt", None).0, 404);
    // If-Range: the range only for the same version of the file.
    let etag = agent
        .get(&format!("{base}a.bin"))
        .call()
        .unwrap()
        .headers()
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let ranged = |validator: &str| {
        agent
            .get(&format!("{base}a.bin"))
            .header("Range", "bytes=5-")
            .header("If-Range", validator)
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ranged(&etag), 206);
    assert_eq!(ranged("\"another\""), 200);
    let head = agent.head(&format!("{base}a.bin")).call().unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(head.headers().get("content-length").unwrap(), "10");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn demo_runs_end_to_end_and_keeps_its_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("kept");
    let demo = run(
        leapfrog().args(["demo", "--keep"]).arg(&keep),
        Duration::from_secs(300),
    )
    .expect_code(0)
    .expect_output("demo 1.1.0 running")
    .expect_output("[ok] the install dir is exactly the 1.1.0 release plus the user's file")
    .expect_output("[ok] the app remembers the signed manifest")
    .expect_output("[ok] 1.1.0's after-update hook ran on its trial launch")
    .expect_output("[ok] the question (said yes to, and logged) carried 1.1.0's release notes")
    .expect_output("[ok] the process started (pid ")
    .expect_output("[ok] at 0% the app is not offered 1.2.0 and keeps running 1.1.0")
    .expect_output("[ok] at 100% the app updates itself to 1.2.0")
    .expect_output("[ok] the update log kept both updates, each staged, applied and confirmed")
    .expect_output("1.1.0 -> 1.2.0: confirmed: the new version is healthy")
    .expect_no_output("FAILED");
    assert!(
        demo.stdout()
            .contains("did every step and stayed to the end"),
        "{}",
        demo.stdout()
    );
    for sub in [
        "releases/versions.txt",
        "install/demo/demo",
        "install/demo.backup/demo",
    ] {
        assert!(keep.join(sub).exists(), "{sub} missing");
    }
    assert!(keep.join("install/demo/assets/new.txt").exists());
    assert!(!keep.join("install/demo/assets/old.txt").exists());
    // The last update (to 1.2.0) backed up 1.1.0.
    let backed_up =
        std::fs::read_to_string(keep.join("install/demo.backup/data/config.json")).unwrap();
    assert!(
        backed_up.contains("\"current_version\": \"1.1.0\""),
        "{backed_up}"
    );
    let installed = std::fs::read_to_string(keep.join("install/demo/data/config.json")).unwrap();
    assert!(
        installed.contains("\"current_version\": \"1.2.0\""),
        "{installed}"
    );
    // A non-empty --keep dir is refused rather than mixed into.
    run(leapfrog().args(["demo", "--keep"]).arg(&keep), LIMIT)
        .expect_code(1)
        .expect_output("is not empty");
}

#[test]
fn delta_make_and_apply_rebuild_a_changed_executable_and_refuse_another_old_file() {
    let dir = tempfile::tempdir().unwrap();
    // A real executable and a new build of it: bytes changed through it,
    // a block moved, more code at the end.
    let old = fs::read(env!("CARGO_BIN_EXE_leapfrog")).unwrap();
    let mut new = old.clone();
    for i in (4096..new.len()).step_by(65_537) {
        new[i] = new[i].wrapping_add(1);
    }
    let moved = new[100_000..150_000].to_vec();
    new.drain(100_000..150_000);
    new.extend_from_slice(&moved);
    new.extend_from_slice(b"and a new function at the end");
    let (o, n) = (dir.path().join("old"), dir.path().join("new"));
    fs::write(&o, &old).unwrap();
    fs::write(&n, &new).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&o, fs::Permissions::from_mode(0o755)).unwrap();
    let patch = dir.path().join("patch");
    run(
        leapfrog().args(["delta", "make"]).args([&o, &n, &patch]),
        LIMIT,
    )
    .expect_code(0)
    .expect_output("wrote");
    let size = fs::metadata(&patch).unwrap().len();
    assert!(size < new.len() as u64 / 50, "{size}-byte patch");
    let out = dir.path().join("out");
    run(
        leapfrog().args(["delta", "apply"]).args([&o, &patch, &out]),
        LIMIT,
    )
    .expect_code(0)
    .expect_output("sha256 checked");
    assert!(fs::read(&out).unwrap() == new, "the rebuilt file differs");
    // A program stays executable.
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o755
    );
    // Applied to the new file instead of the old one: refused, named, and
    // nothing written.
    let wrong = dir.path().join("wrong-out");
    let refused = run(
        leapfrog()
            .args(["delta", "apply"])
            .args([&n, &patch, &wrong]),
        LIMIT,
    );
    assert_eq!(refused.code(), Some(1));
    assert!(
        refused.stderr().contains("made for another old file")
            && refused.stderr().contains(&patch.display().to_string()),
        "{}",
        refused.stderr()
    );
    assert!(!wrong.exists());
}
