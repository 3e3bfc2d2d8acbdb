//! The attack suite, extraction: archives that the signed manifest vouches
//! for (their hash and size match) but that are hostile inside.

use super::*;

// ---- extraction (archives the manifest vouches for) ----

const BODY: &[u8] = b"hello\n";

fn hostile(lines: &[String], entries: Vec<Raw<'_>>) -> Vec<u8> {
    let list = list_text(lines);
    let mut all = vec![Raw::file(".leapfrog-release", list.as_bytes())];
    all.extend(entries);
    raw_archive(&all)
}

fn extraction(bytes: Vec<u8>, needles: &[&str]) {
    let a = Attack::new();
    a.signed_archive(&bytes);
    a.refused(&[], needles);
    for outside in ["apps/pwned.txt", "pwned.txt", "apps/demo/pwned.txt"] {
        assert!(
            !a.world.dir.path().join(outside).exists(),
            "{outside} was written"
        );
    }
    a.good_update_works();
}

#[test]
fn attack_extract_parent_dir() {
    extraction(
        hostile(
            &[file_line("../pwned.txt", BODY)],
            vec![Raw::file("../pwned.txt", BODY)],
        ),
        &["release archive", "'..' component"],
    );
}

#[test]
fn attack_extract_absolute_path() {
    extraction(
        hostile(&[], vec![Raw::file("/tmp/leapfrog-attack-pwned.txt", BODY)]),
        &["absolute or non-portable path"],
    );
    assert!(!std::path::Path::new("/tmp/leapfrog-attack-pwned.txt").exists());
}

#[test]
fn attack_extract_symlink_then_write_through_it() {
    extraction(
        hostile(
            &["link .. up".to_owned(), file_line("up/pwned.txt", BODY)],
            vec![Raw::symlink("up", ".."), Raw::file("up/pwned.txt", BODY)],
        ),
        &["bad release archive"],
    );
}

#[test]
fn attack_extract_write_beneath_inner_symlink() {
    extraction(
        hostile(
            &[
                "dir d".to_owned(),
                "link d l".to_owned(),
                file_line("l/x", BODY),
            ],
            vec![
                Raw::dir("d"),
                Raw::symlink("l", "d"),
                Raw::file("l/x", BODY),
            ],
        ),
        &["lies beneath the symlink"],
    );
}

#[test]
fn attack_extract_symlink_out_of_tree() {
    extraction(
        hostile(
            &["link ../../../etc evil".to_owned()],
            vec![Raw::symlink("evil", "../../../etc")],
        ),
        &["points outside the release"],
    );
}

#[test]
fn attack_extract_absolute_symlink() {
    extraction(
        hostile(
            &["link /etc/passwd evil".to_owned()],
            vec![Raw::symlink("evil", "/etc/passwd")],
        ),
        &["must be a relative path"],
    );
}

#[test]
fn attack_extract_hard_link_out_of_tree() {
    extraction(
        hostile(
            &[file_line("h", b"")],
            vec![Raw::special("h", EntryType::Link, "../../../../etc/passwd")],
        ),
        &["hard links are not allowed"],
    );
}

#[test]
fn attack_extract_symlink_and_dir_same_name() {
    extraction(
        hostile(
            &["link . x".to_owned()],
            vec![Raw::symlink("x", "."), Raw::dir("x")],
        ),
        &["appears twice in the archive"],
    );
}

#[test]
fn attack_extract_device_entry() {
    extraction(
        hostile(
            &[file_line("dev", b"")],
            vec![Raw::special("dev", EntryType::Block, "")],
        ),
        &["device entries are not allowed"],
    );
}

#[test]
fn attack_extract_fifo_entry() {
    extraction(
        hostile(
            &[file_line("fifo", b"")],
            vec![Raw::special("fifo", EntryType::Fifo, "")],
        ),
        &["FIFO entries are not allowed"],
    );
}

#[test]
fn attack_extract_setuid_mode() {
    let mut raw = Raw::file("x", BODY);
    raw.mode = 0o4755;
    extraction(
        hostile(&[file_line("x", BODY).replace(" 644 ", " 755 ")], vec![raw]),
        &["mode 4755"],
    );
}

#[test]
fn attack_extract_world_writable_mode() {
    let mut raw = Raw::file("x", BODY);
    raw.mode = 0o666;
    extraction(hostile(&[file_line("x", BODY)], vec![raw]), &["mode 666"]);
}

#[test]
fn attack_extract_duplicate_entries() {
    extraction(
        hostile(
            &[file_line("x", BODY)],
            vec![Raw::file("x", BODY), Raw::file("x", BODY)],
        ),
        &["appears twice in the archive"],
    );
}

#[test]
fn attack_extract_gzip_bomb() {
    // 64 MiB of zeros compress to a few dozen KiB; the list says 6 bytes,
    // so nothing of it is written.
    let zeros = vec![0u8; 64 << 20];
    let bytes = hostile(&[file_line("x", BODY)], vec![Raw::file("x", &zeros)]);
    assert!(bytes.len() < 1 << 20);
    extraction(bytes, &["its size 67108864 differs from the file list's 6"]);
}

#[test]
fn attack_extract_too_many_entries() {
    let lines: Vec<String> = (0..200_001).map(|i| format!("dir d{i}")).collect();
    extraction(hostile(&lines, vec![]), &["too many entries"]);
}

#[test]
fn attack_extract_trailing_garbage() {
    let archive = fs::read(signed_fixture().releases.join(ARCHIVE)).unwrap();
    let mut bytes = archive;
    bytes.extend_from_slice(b"\x1f\x8b appended by an attacker");
    extraction(bytes, &["data follows the end of the gzip stream"]);
}

#[test]
fn attack_extract_unlisted_file() {
    let archive = hostile(
        &[file_line("x", BODY)],
        vec![Raw::file("x", BODY), Raw::file("extra", BODY)],
    );
    extraction(archive, &["\"extra\"", "not in the release's file list"]);
}

#[test]
fn attack_extract_missing_file() {
    extraction(
        hostile(
            &[file_line("x", BODY), file_line("y", BODY)],
            vec![Raw::file("x", BODY)],
        ),
        &["\"y\" is in the file list but not in the archive"],
    );
}

#[test]
fn attack_extract_file_content_differs_from_list() {
    extraction(
        hostile(&[file_line("x", BODY)], vec![Raw::file("x", b"HELLO\n")]),
        &["differs from the file list's"],
    );
}

#[test]
fn attack_count() {
    // The issue asks for at least 40 named cases.
    let source = [include_str!("../attack.rs"), include_str!("extraction.rs")].concat();
    let cases = source.matches("\n#[test]\nfn attack_").count() - 1;
    assert!(cases >= 40, "only {cases} attack cases");
}
