//! versions.txt: the sample in the repository, and errors that name the line.

use std::fs;

use crate::util::*;

#[test]
fn manifest_sample_in_repo_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/versions.txt");
    let text = fs::read_to_string(path).unwrap();
    let m = leapfrog::Manifest::parse(&text, path).unwrap();
    assert!(m.serial.is_some() && m.expires.is_some());
    assert!(m.signed.is_some(), "the sample shows the signing time");
    let newest = m.newest("demo").expect("the sample lists demo");
    assert_eq!(newest.version.to_string(), "1.2.0");
    assert!(newest.sha256.is_some() && newest.size.is_some() && newest.notes.is_some());
    assert!(newest.notes_sha256.is_some() && newest.schedule.len() == 2);
    assert!(
        m.render().contains("\n#+ demo 1.2.0 "),
        "a staged release is hidden from older clients"
    );
    assert!(
        m.releases.iter().any(|r| r.sha256.is_none()),
        "the sample shows a bare line too"
    );
    assert_eq!(leapfrog::Manifest::parse(&m.render(), "again").unwrap(), m);
}

#[test]
fn manifest_malformed_line_is_named_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("versions.txt");
    fs::write(&path, "# leapfrog versions v1\ndemo 1.0.0\ndemo 1.1\n").unwrap();
    let run = run(
        leapfrog().args([
            "check",
            path.to_str().unwrap(),
            "--program",
            "demo",
            "--current",
            "1.0.0",
        ]),
        std::time::Duration::from_secs(20),
    )
    .expect_code(1);
    let err = run.stderr();
    assert!(
        err.contains(&format!("{}:3:", path.display())) && err.contains("\"1.1\""),
        "{err}"
    );
}

#[test]
fn manifest_of_unknown_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("versions.txt");
    fs::write(&path, "# leapfrog versions v9\ndemo 1.0.0\n").unwrap();
    run(
        leapfrog().args([
            "check",
            path.to_str().unwrap(),
            "--program",
            "demo",
            "--current",
            "1.0.0",
        ]),
        std::time::Duration::from_secs(20),
    )
    .expect_code(1)
    .expect_output("unsupported manifest format");
}
