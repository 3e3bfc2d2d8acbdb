//! Release archives: deterministic packing, and hostile archives refused
//! before anything is written to the install dir.

use std::fs;
use std::path::Path;

use leapfrog::publish::{pack, unpack};
use leapfrog::serve::Server;
use semver::Version;
use tar::EntryType;

use crate::util::*;

const BODY: &[u8] = b"hello\n";

/// Unpacks `bytes` into a fresh dest and returns the error text.
fn refused(bytes: &[u8]) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.tar.gz");
    fs::write(&archive, bytes).unwrap();
    let dest = dir.path().join("sub").join("dest");
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let err = unpack(&archive, &dest).expect_err("a hostile archive was unpacked");
    (err.to_string(), dir)
}

fn with_list(lines: &[String], entries: Vec<Raw<'_>>) -> Vec<u8> {
    let list = list_text(lines);
    let mut all = vec![Raw::file(".leapfrog-release", list.as_bytes())];
    all.extend(entries);
    // `list` must outlive the entries that borrow it: build the bytes here.
    raw_archive(&all)
}

#[test]
fn archive_parent_dir_entry_is_refused() {
    let bytes = with_list(
        &[file_line("../escaped.txt", BODY)],
        vec![Raw::file("../escaped.txt", BODY)],
    );
    let (err, dir) = refused(&bytes);
    assert!(err.contains("'..'"), "{err}");
    assert!(!dir.path().join("sub/escaped.txt").exists());
}

#[test]
fn archive_absolute_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("absolute-escape.txt");
    let name = target.to_str().unwrap();
    let bytes = with_list(&[], vec![Raw::file(name, BODY)]);
    let (err, _d) = refused(&bytes);
    assert!(err.contains("absolute"), "{err}");
    assert!(!target.exists());
}

#[test]
fn archive_symlink_outside_is_refused() {
    for target in ["/etc", "../../outside", "d/../.."] {
        let bytes = with_list(
            &["dir d".to_owned(), format!("link {target} evil")],
            vec![Raw::dir("d"), Raw::symlink("evil", target)],
        );
        let (err, dir) = refused(&bytes);
        assert!(
            err.contains("symlink \"evil\"")
                && (err.contains("outside") || err.contains("relative")),
            "{target}: {err}"
        );
        assert!(!dir.path().join("sub/dest/evil").exists());
    }
}

#[test]
fn archive_symlink_not_in_list_is_refused() {
    let bytes = with_list(&[], vec![Raw::symlink("evil", "/etc")]);
    let (err, _d) = refused(&bytes);
    assert!(err.contains("not in the release's file list"), "{err}");
}

#[test]
fn archive_write_through_symlink_is_refused() {
    let bytes = with_list(
        &["link . d".to_owned(), file_line("d/x", BODY)],
        vec![Raw::symlink("d", "."), Raw::file("d/x", BODY)],
    );
    let (err, _d) = refused(&bytes);
    assert!(err.contains("beneath the symlink"), "{err}");
}

#[test]
fn archive_device_fifo_and_hard_link_are_refused() {
    for (kind, needle) in [
        (EntryType::Char, "device"),
        (EntryType::Block, "device"),
        (EntryType::Fifo, "FIFO"),
        (EntryType::Link, "hard links"),
    ] {
        let bytes = with_list(
            &[file_line("x", b"")],
            vec![Raw::special("x", kind, "/etc/passwd")],
        );
        let (err, dir) = refused(&bytes);
        assert!(err.contains(needle), "{kind:?}: {err}");
        assert!(!dir.path().join("sub/dest/x").exists());
    }
}

#[test]
fn archive_contents_must_match_the_list() {
    let cases: Vec<(Vec<String>, Vec<Raw<'_>>, &str)> = vec![
        (
            vec![],
            vec![Raw::file("extra", BODY)],
            "not in the release's file list",
        ),
        (
            vec![file_line("missing", BODY)],
            vec![],
            "in the file list but not in the archive",
        ),
        (
            vec![file_line("x", b"other\n")],
            vec![Raw::file("x", b"HELLO\n")],
            "sha256",
        ),
        (
            vec![file_line("x", BODY)],
            vec![Raw::file("x", b"longer body\n")],
            "size",
        ),
        (
            vec![file_line("x", BODY)],
            vec![Raw::file("x", BODY), Raw::file("x", BODY)],
            "twice",
        ),
    ];
    for (lines, entries, needle) in cases {
        let bytes = with_list(&lines, entries);
        let (err, _d) = refused(&bytes);
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn archive_without_a_list_first_is_refused() {
    let bytes = raw_archive(&[Raw::file("x", BODY)]);
    let (err, _d) = refused(&bytes);
    assert!(err.contains("first entry"), "{err}");
}

#[test]
fn archive_with_trailing_garbage_is_refused() {
    let mut bytes = with_list(&[file_line("x", BODY)], vec![Raw::file("x", BODY)]);
    bytes.extend_from_slice(b"appended by someone");
    let (err, _d) = refused(&bytes);
    assert!(err.contains("follows the end"), "{err}");
}

#[test]
fn archive_setuid_and_world_writable_modes_are_refused() {
    for mode in [0o4755, 0o2755, 0o666, 0o1755] {
        let mut raw = Raw::file("x", BODY);
        raw.mode = mode;
        let bytes = with_list(&[file_line("x", BODY).replace(" 644 ", " 755 ")], vec![raw]);
        let (err, dir) = refused(&bytes);
        assert!(err.contains("group/world-writable"), "{mode:o}: {err}");
        assert!(!dir.path().join("sub/dest/x").exists());
    }
}

#[test]
fn archive_pack_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    write_tree(
        &tree,
        &[("b.txt", "b\n"), ("a/z.txt", "z\n"), ("a/y.bin", "yyyy")],
    );
    std::os::unix::fs::symlink("a/z.txt", tree.join("link")).unwrap();
    let v = Version::new(1, 2, 3);
    pack(&tree, "p", &v, dir.path().join("one.tar.gz")).unwrap();
    // Other mtimes, other creation order: the same bytes.
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    fs::File::options()
        .write(true)
        .open(tree.join("b.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let copy = dir.path().join("copy");
    write_tree(
        &copy,
        &[("a/y.bin", "yyyy"), ("b.txt", "b\n"), ("a/z.txt", "z\n")],
    );
    std::os::unix::fs::symlink("a/z.txt", copy.join("link")).unwrap();
    pack(&tree, "p", &v, dir.path().join("two.tar.gz")).unwrap();
    pack(&copy, "p", &v, dir.path().join("three.tar.gz")).unwrap();
    let one = fs::read(dir.path().join("one.tar.gz")).unwrap();
    assert_eq!(one, fs::read(dir.path().join("two.tar.gz")).unwrap());
    assert_eq!(one, fs::read(dir.path().join("three.tar.gz")).unwrap());
    // And it unpacks to the same tree plus its file list.
    let out = dir.path().join("out");
    let list = unpack(dir.path().join("one.tar.gz"), &out).unwrap();
    assert_eq!(list.items.len(), 5);
    let mut got = tree_hashes(&out);
    got.remove(".leapfrog-release");
    assert_eq!(got, tree_hashes(&tree));
}

/// Through the real app: a hostile archive whose sha256 the manifest vouches
/// for is still refused, and the install dir is not written.
#[test]
fn update_with_hostile_archive_leaves_install_untouched() {
    let world = World::new();
    let before = tree_hashes(&world.install);
    let outside = world.dir.path().join("apps").join("pwned.txt");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            with_list(
                &[file_line("../pwned.txt", BODY)],
                vec![Raw::file("../pwned.txt", BODY)],
            ),
            "'..'",
        ),
        (
            with_list(
                &["link ../../.. up".to_owned()],
                vec![Raw::symlink("up", "../../..")],
            ),
            "points outside",
        ),
        (
            with_list(
                &[file_line("dev", b"")],
                vec![Raw::special("dev", EntryType::Char, "")],
            ),
            "device entries",
        ),
    ];
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    for (bytes, needle) in cases {
        world.republish_archive(&bytes);
        let run = world
            .launch(&format!("{}versions.txt", server.url()))
            .expect_code(0)
            .expect_output(needle)
            .expect_output("still running the installed version");
        assert_eq!(tree_hashes(&world.install), before, "{}", run.stdout());
        assert!(!world.backup.exists());
        assert!(!outside.exists());
        assert!(!Path::new("/pwned.txt").exists());
    }
}
