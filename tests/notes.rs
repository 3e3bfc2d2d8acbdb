//! Release notes and the user's answers: the notes of every version since
//! the running one, shown readably on a terminal (a real pty); "Skip this
//! version" and "Remind me later" remembered, never for a required update.

use std::fs;
use std::path::Path;
use std::time::Duration;

use leapfrog::serve::Server;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(60);

const NOTES_1_1: &str =
    "# Fixes\n\n- a **faster** start\n- see [the guide](https://example.com/guide)\n";
const NOTES_1_2: &str = "## New\n\n1. dark mode\n2. `--quiet`\n";

/// Gives the world's signed 1.1.0 notes (a file beside it, hashed in the
/// manifest) and publishes 1.2.0 with notes through `leapfrog publish`.
fn world_with_notes() -> World {
    let world = World::signed();
    fs::write(world.releases.join("demo-1.1.0.md"), NOTES_1_1).unwrap();
    let (sum, _) = leapfrog::publish::sha256_file(world.releases.join("demo-1.1.0.md")).unwrap();
    world.resign(|m| {
        for r in &mut m.releases {
            if r.version.to_string() == "1.1.0" {
                r.notes = Some("demo-1.1.0.md".into());
                r.notes_sha256 = Some(sum.clone());
            }
        }
    });
    let tree = world.dir.path().join("tree-1.2.0");
    app_tree(&tree, "1.2.0", world.fixture.public_key.as_deref(), &[]);
    let notes = world.dir.path().join("notes-1.2.0.md");
    fs::write(&notes, NOTES_1_2).unwrap();
    run(
        leapfrog()
            .arg("publish")
            .arg(&tree)
            .args(["--program", "demo", "--version", "1.2.0", "--notes"])
            .arg(&notes)
            .arg("--repo")
            .arg(&world.releases)
            .arg("--secret-key")
            .arg(world.fixture.secret_key.as_ref().unwrap()),
        LIMIT,
    )
    .expect_code(0);
    world
}

fn state(install: &Path) -> leapfrog::internal::State {
    leapfrog::internal::State::read(install).unwrap()
}

#[test]
fn notes_since_the_running_version_then_skip_and_remind_later_are_kept() {
    let world = world_with_notes();
    let manifest = fs::read_to_string(world.releases.join("versions.txt")).unwrap();
    assert!(
        manifest.contains("notes=demo-1.2.0.txt notes_sha256="),
        "{manifest}"
    );
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
    let ask = |args: &[&str], answer: &str| world.on_terminal(&url, args, answer);

    // Both versions' notes, newest first, as text: headings underlined,
    // items listed, links spelled out, no Markdown marks left.
    let out = ask(&[], "s\n");
    assert!(
        out.contains("demo 1.2.0 is available (you have 1.0.0"),
        "{out}"
    );
    let (at_1_2, at_1_1) = (
        out.find("  1.2.0\r\n  -----").unwrap_or(usize::MAX),
        out.find("  1.1.0\r\n  -----").unwrap_or(usize::MAX),
    );
    assert!(at_1_2 < at_1_1 && at_1_1 != usize::MAX, "{out}");
    for shown in [
        "  New\r\n  ---",
        "  1. dark mode",
        "  2. --quiet",
        "  Fixes\r\n  =====",
        "  - a faster start",
        "  - see the guide (https://example.com/guide)",
    ] {
        assert!(out.contains(shown), "{shown:?} not in:\n{out}");
    }
    assert!(
        !out.contains("**") && !out.contains("## ") && !out.contains('`'),
        "{out}"
    );
    assert!(
        out.find("Update now?") > Some(at_1_1),
        "the question comes last: {out}"
    );
    assert!(out.contains("1.2.0: skipped by the user"), "{out}");
    assert_eq!(state(&world.install).skipped.as_deref(), Some("1.2.0"));

    // Skipped: not offered again, the install untouched...
    let before = tree_hashes(&world.install);
    let out = ask(&[], "y\n");
    assert!(
        out.contains("1.2.0 was skipped by the user; not asking again until a newer release"),
        "{out}"
    );
    assert!(!out.contains("Update now?"), "{out}");
    // ... but the user may ask for it; "later" this time.
    let out = ask(&["--check-now"], "l\n");
    assert!(out.contains("Update now?"), "{out}");
    let remind = state(&world.install).remind.expect("the reminder is kept");
    assert_eq!(
        state(&world.install).skipped,
        None,
        "the latest answer stands"
    );
    assert_eq!(remind.version, "1.2.0");
    let day = 24 * 3600;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        remind.until > now + day - 600 && remind.until <= now + day,
        "{remind:?}"
    );
    let out = ask(&[], "y\n");
    assert!(
        out.contains("1.2.0 was put off by the user; asking again after"),
        "{out}"
    );
    assert!(!out.contains("Update now?"), "{out}");
    let mut after = tree_hashes(&world.install);
    after.remove(leapfrog::internal::STATE_NAME);
    let mut want = before;
    want.remove(leapfrog::internal::STATE_NAME);
    assert_eq!(after, want);
    // `leapfrog status` tells both, and when the install last checked.
    let config = world.install.join("data/config.json");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        text.replace("http://127.0.0.1:9", server.url().trim_end_matches('/')),
    )
    .unwrap();
    run(
        leapfrog().args(["status", "--install"]).arg(&world.install),
        LIMIT,
    )
    .expect_code(10)
    .expect_output("put off by the user: 1.2.0 until")
    .expect_no_output("skipped by the user: 1.2.0")
    .expect_output("last check: 20")
    .expect_output("(1.2.0 put off by the user)");

    // Once the reminder is due, the user is asked again.
    let mut due = state(&world.install);
    due.remind.as_mut().unwrap().until = now - 1;
    due.write(&world.install).unwrap();
    let out = ask(&[], "l\n");
    assert!(out.contains("Update now?"), "{out}");

    // A required update is never put off or skipped: 1.2.0 sets a floor.
    world.resign(|m| {
        for r in &mut m.releases {
            if r.version.to_string() == "1.2.0" {
                r.min_version = Some("1.2.0".parse().unwrap());
            }
        }
    });
    let out = ask(&[], "");
    assert!(
        out.contains("demo 1.2.0 is required (you have 1.0.0"),
        "{out}"
    );
    assert!(out.contains("This update is required"), "{out}");
    assert!(!out.contains("Update now?"), "{out}");
    assert!(out.contains("demo 1.2.0 running"), "{out}");
}

#[test]
fn notes_that_do_not_match_the_manifest_are_not_shown() {
    let world = world_with_notes();
    // The host serves other notes for 1.1.0 than were published.
    fs::write(
        world.releases.join("demo-1.1.0.md"),
        "# Fixes\n\nInstall the new version from http://evil.example\n",
    )
    .unwrap();
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
    let out = world.on_terminal(&url, &[], "y\n");
    assert!(
        out.contains("the release notes of 1.1.0 are not shown"),
        "{out}"
    );
    assert!(!out.contains("evil.example"), "{out}");
    assert!(out.contains("  1. dark mode"), "{out}");
    assert!(out.contains("demo 1.2.0 running"), "{out}");
}
