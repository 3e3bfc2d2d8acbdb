//! Airtight: no release, planted file, crash or stray folder can make
//! leapfrog write outside the install and backup dirs, run a program from
//! elsewhere, trust a key, or leave a broken install. Every test keeps a
//! victim folder beside the install and checks that it, the install dir and
//! the user's file are byte for byte as before.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use leapfrog::internal::{Journal, Step};
use leapfrog::serve::Server;

use crate::util::*;

// Classes 4, 5, 9 and 10: what a hostile or stale host can try.
mod host;

/// A world with a victim folder beside the install: `apps/victim/`, holding
/// a file and an executable that leaves a mark when it runs.
struct Scene {
    world: World,
    victim: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        Scene::from(World::new())
    }

    fn signed() -> Scene {
        Scene::from(World::signed())
    }

    fn from(world: World) -> Scene {
        let victim = world.dir.path().join("apps/victim");
        write_tree(&victim, &[("precious.txt", "the victim's data\n")]);
        let evil = victim.join("demo");
        fs::write(
            &evil,
            format!(
                "#!/bin/sh\necho ran > '{}'\n",
                victim.join("pwned").display()
            ),
        )
        .unwrap();
        set_mode(&evil, 0o755);
        Scene { world, victim }
    }

    /// Every file of the test but the backup dir and leapfrog's state.
    fn outside(&self) -> BTreeMap<String, String> {
        tree_hashes(self.world.dir.path())
            .into_iter()
            .filter(|(k, _)| {
                // leapfrog's lock beside the backup dir (empty, never
                // written) is its own too.
                !k.starts_with("apps/demo.backup")
                    && !k.starts_with("releases")
                    && !k.ends_with(".lock")
                    && !k.ends_with(leapfrog::internal::STATE_NAME)
            })
            .collect()
    }

    fn server(&self) -> Server {
        Server::start(&self.world.releases, "127.0.0.1:0").unwrap()
    }

    /// Launches the app with `env`; asserts that 1.0.0 ran, 1.1.0 did not,
    /// `needles` were said, and nothing outside the backup dir changed
    /// (but for `allowed` paths).
    fn refused(&self, url: &str, env: &[(&str, &str)], needles: &[&str]) -> Run {
        let before = self.outside();
        let mut run = self
            .world
            .launch_env(url, env)
            .expect_code(0)
            .expect_output("demo 1.0.0 running")
            .expect_no_output("demo 1.1.0 running");
        for needle in needles {
            run = run.expect_output(needle);
        }
        assert_eq!(
            self.outside(),
            before,
            "something changed outside the backup dir:\n{}",
            run.stdout()
        );
        assert!(
            !self.victim.join("pwned").exists(),
            "the victim's program ran"
        );
        run
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn url(server: &Server) -> String {
    format!("{}versions.txt", server.url())
}

const DEAD: &str = "http://127.0.0.1:9/versions.txt";

fn journal(install: &Path, backup: &Path, exe: &str, step: Step) -> Journal {
    let mut journal = Journal::new(
        "demo",
        (install, backup),
        Path::new(exe),
        ("1.0.0".into(), "1.1.0".into()),
    );
    journal.archive = "demo-1.1.0.tar.gz".into();
    journal.sha256 = "00".repeat(32);
    journal.step = step;
    journal
}

/// Writes `journal` as JSON at `path` (wherever the test plants it).
fn plant(path: &Path, journal: &Journal) {
    fs::write(path, serde_json::to_vec_pretty(journal).unwrap()).unwrap();
}

// ---- 1. a release may not carry leapfrog's own files ----

#[test]
fn airtight_release_carrying_a_journal_or_state_file_is_refused() {
    // A signed release whose tree ships a journal (naming the victim) and a
    // state file (trusting another key), in other letter cases too.
    for (name, data) in [
        ("need_update", b"{}" as &[u8]),
        ("NEED_UPDATE", b"{}"),
        (
            ".leapfrog-state.json",
            b"{\"format\":1,\"next_keys\":[\"x\"]}",
        ),
        (".Leapfrog-State.json", b"{}"),
        ("data/.leapfrog-backup", b"{}"),
    ] {
        let scene = Scene::signed();
        let list = list_text(&[
            "dir data".into(),
            file_line(name, data),
            file_line("README.txt", b"x"),
        ]);
        let archive = raw_archive(&[
            Raw::file(".leapfrog-release", list.as_bytes()),
            Raw::dir("data"),
            Raw::file(name, data),
            Raw::file("README.txt", b"x"),
        ]);
        scene.world.republish_archive(&archive);
        let server = scene.server();
        scene.refused(
            &url(&server),
            &[],
            &["is leapfrog's own", "remove it from the release"],
        );
        assert!(!scene.world.backup.join(".leapfrog-staging").exists());
    }
}

#[test]
fn airtight_publish_refuses_leapfrogs_own_names_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "need_update",
        "Need_Update",
        ".LEAPFROG-STATE.JSON",
        "bin/.leapfrog-backup",
        "need_update.damaged",
    ] {
        let tree = dir.path().join("tree");
        let _ = fs::remove_dir_all(&tree);
        write_tree(&tree, &[("app", "#!/bin/sh\n"), (name, "{}")]);
        leapfrog()
            .args(["publish", tree.to_str().unwrap(), "--program", "app"])
            .args(["--version", "1.0.0", "--repo"])
            .arg(dir.path().join("repo"))
            .output()
            .map(|o| Run {
                output: o,
                what: format!("publish with {name}"),
            })
            .unwrap()
            .expect_code(1)
            .expect_output("is leapfrog's own")
            .expect_output(name.rsplit('/').next().unwrap());
        assert!(!dir.path().join("repo/app-1.0.0.tar.gz").exists());
    }
}

// ---- 2. a journal speaks only of its own two folders ----

#[test]
fn airtight_journal_planted_in_the_install_dir_is_not_followed() {
    // It claims the install dir is a backup copy of the victim.
    let scene = Scene::new();
    let w = &scene.world;
    plant(
        &w.install.join("need_update"),
        &journal(&scene.victim, &w.install, "demo", Step::Staged),
    );
    scene.refused(
        DEAD,
        &[],
        &["nothing was followed", "not leapfrog's backup dir"],
    );
}

#[test]
fn airtight_journal_naming_another_backup_dir_is_not_followed() {
    // A journal in the real backup dir that names the victim as the backup
    // dir would make the app hop out to (exec) the victim's program.
    let scene = Scene::new();
    let w = &scene.world;
    w.mark_backup();
    plant(
        &w.backup.join("need_update"),
        &journal(&w.install, &scene.victim, "demo", Step::Staged),
    );
    scene.refused(
        DEAD,
        &[],
        &["not the folder it lies in", "nothing was followed"],
    );
}

#[test]
fn airtight_journal_in_an_unmarked_backup_dir_is_not_followed() {
    // The folder beside the install is not leapfrog's (no marker): its
    // journal is not believed, and nothing in it is run.
    let scene = Scene::new();
    let w = &scene.world;
    fs::create_dir_all(&w.backup).unwrap();
    fs::copy(w.install.join("demo"), w.backup.join("demo")).unwrap();
    fs::write(w.backup.join("README.txt"), "planted\n").unwrap();
    plant(
        &w.backup.join("need_update"),
        &journal(&w.install, &w.backup, "demo", Step::Applying),
    );
    scene.refused(DEAD, &[], &["no marker", "nothing was followed"]);
    assert_eq!(
        fs::read_to_string(w.backup.join("README.txt")).unwrap(),
        "planted\n"
    );
}

#[test]
fn airtight_journal_naming_an_executable_outside_is_refused() {
    let scene = Scene::new();
    let w = &scene.world;
    w.mark_backup();
    for exe in ["../victim/demo", "/bin/sh"] {
        let mut j = journal(&w.install, &w.backup, "demo", Step::Staged);
        j.exe = exe.into();
        plant(&w.backup.join("need_update"), &j);
        scene.refused(DEAD, &[], &[]);
        let _ = fs::remove_file(w.backup.join("need_update.damaged"));
    }
}

// ---- 3. folders that are not leapfrog's are never emptied or written through ----

#[test]
fn airtight_backup_dir_that_is_a_symlink_is_not_emptied() {
    let scene = Scene::new();
    std::os::unix::fs::symlink(&scene.victim, &scene.world.backup).unwrap();
    let server = scene.server();
    scene.refused(&url(&server), &[], &["symbolic link", "update refused"]);
    assert!(scene.victim.join("precious.txt").exists());
}

#[test]
fn airtight_backup_dir_set_to_a_folder_with_files_is_not_emptied() {
    let scene = Scene::new();
    let server = scene.server();
    scene.refused(
        &url(&server),
        &[("LEAPFROG_BACKUP_DIR", scene.victim.to_str().unwrap())],
        &["holds files but no leapfrog marker", "choose another place"],
    );
}

#[test]
fn airtight_download_folder_that_is_a_symlink_is_not_cleaned_through() {
    // The download folder links to the victim, and the download fails: the
    // clean-up of a failed stage must not empty the victim.
    let scene = Scene::new();
    let w = &scene.world;
    w.mark_backup();
    std::os::unix::fs::symlink(&scene.victim, w.backup.join(".leapfrog-download")).unwrap();
    fs::remove_file(w.releases.join("demo-1.1.0.tar.gz")).unwrap();
    let server = scene.server();
    scene.refused(&url(&server), &[], &["HTTP 404"]);
}

#[test]
fn airtight_partial_download_that_is_a_symlink_is_not_written_through() {
    // A `.partial` (with what a broken-off download remembers beside it)
    // links to the victim's file: the download must not append to it.
    let scene = Scene::new();
    let w = &scene.world;
    w.mark_backup();
    let downloads = w.backup.join(".leapfrog-download");
    fs::create_dir_all(&downloads).unwrap();
    let archive = w.releases.join("demo-1.1.0.tar.gz");
    let size = fs::metadata(&archive).unwrap().len();
    let server = scene.server();
    let meta = serde_json::json!({
        "url": format!("{}demo-1.1.0.tar.gz", server.url()),
        "validator": "\"x\"",
        "size": size,
    });
    fs::write(
        downloads.join("demo-1.1.0.tar.gz.partial.meta"),
        meta.to_string(),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        scene.victim.join("precious.txt"),
        downloads.join("demo-1.1.0.tar.gz.partial"),
    )
    .unwrap();
    let victim = tree_hashes(&scene.victim);
    w.launch(&url(&server))
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&scene.victim), victim);
    assert_eq!(
        fs::read_to_string(w.install.join(USER_FILE)).unwrap(),
        "the user's own notes\n"
    );
}

// ---- 6. a crash while rolling back never confirms a mix ----

#[test]
fn airtight_rollback_cut_off_is_finished_not_taken_for_an_update() {
    // Applying fails (a folder of the user's is in the way), the rollback
    // starts; here it is cut off after the file list was restored: the
    // journal says `rolling_back`, the install dir is a mix. The next launch
    // must finish the rollback, never "re-apply" and confirm the mix.
    let scene = Scene::new();
    let w = &scene.world;
    write_tree(&w.install, &[("assets/new.txt/mine.txt", "in the way\n")]);
    let old = tree_hashes(&w.install);
    let server = scene.server();
    w.launch(&url(&server))
        .expect_code(0)
        .expect_output("rolled back to 1.0.0");
    assert_eq!(tree_hashes(&w.install), old);
    // Make it a rollback cut off half way: the journal back to
    // `rolling_back` and a 1.1.0 file in the install dir.
    let mut j = Journal::read(&w.backup).unwrap().unwrap();
    j.step = Step::RollingBack;
    j.write().unwrap();
    // Replaced by rename, as applying does (never written in place: the
    // backup shares the file by a hard link).
    fs::remove_file(w.install.join("README.txt")).unwrap();
    fs::write(w.install.join("README.txt"), "demo 1.1.0\n").unwrap();
    w.launch(DEAD)
        .expect_code(0)
        .expect_output("finishing the rollback")
        .expect_output("demo 1.0.0 running")
        .expect_no_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&w.install), old);
    assert_eq!(
        Journal::read(&w.backup).unwrap().unwrap().step,
        Step::RolledBack
    );
}

#[test]
fn airtight_reapply_checks_moved_files_against_the_file_list() {
    // An `applying` journal whose staged files are gone while the install
    // dir holds old files at their paths (as a cut-off rollback of the old
    // design left it): re-applying must not count them as moved.
    let scene = Scene::new();
    let w = &scene.world;
    let server = scene.server();
    let old = tree_hashes(&w.install);
    // Stage only (the update is left for the next launch), then take the
    // staged README away, as if it had been moved, and keep the old one.
    let mut cmd = command(&w.install.join("demo"));
    cmd.arg("--next-launch")
        .env("LEAPFROG_ASSUME_YES", "1")
        .env("LEAPFROG_MANIFEST_URL", url(&server));
    run(&mut cmd, Duration::from_secs(60))
        .expect_code(0)
        .expect_output("journal written");
    let mut j = Journal::read(&w.backup).unwrap().unwrap();
    assert_eq!(j.step, Step::Staged, "staged for the next launch");
    fs::remove_file(w.backup.join(".leapfrog-staging/README.txt")).unwrap();
    j.step = Step::Applying;
    j.write().unwrap();
    w.launch(DEAD)
        .expect_code(0)
        .expect_output("does not hold the release's file")
        .expect_output("rolled back to 1.0.0")
        .expect_output("demo 1.0.0 running");
    assert_eq!(tree_hashes(&w.install), old);
}

// ---- 7. debris ----

#[test]
fn airtight_debris_of_a_killed_update_is_removed_and_only_leapfrogs() {
    let scene = Scene::new();
    let w = &scene.world;
    let server = scene.server();
    w.launch(&url(&server))
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    let clean = tree_hashes(&w.install);
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let alive = std::process::id();
    let debris = [
        format!("apps/demo/.leapfrog-tmp.{dead}.0.README.txt"),
        format!("apps/demo/assets/.leapfrog-tmp.{dead}.1.logo.txt"),
        format!("apps/demo/.leapfrog-probe.{dead}"),
        format!("apps/demo.backup/.leapfrog-tmp.{dead}.2.need_update"),
        "apps/demo.backup/.leapfrog-staging/assets/new.txt".into(),
        "apps/demo.backup/.leapfrog-download/demo-1.1.0.tar.gz".into(),
        "apps/demo.backup/.leapfrog-undo-list".into(),
    ];
    let kept = [
        format!("apps/demo/.leapfrog-tmp.{alive}.3.README.txt"),
        "apps/demo/data/notes.leapfrog-tmp".into(),
        "apps/demo.backup/.leapfrog-download/demo-1.2.0.tar.gz.partial".into(),
    ];
    for path in debris.iter().chain(&kept) {
        write_tree(w.dir.path(), &[(path.as_str(), "x")]);
    }
    w.launch(&url(&server))
        .expect_code(0)
        .expect_output("demo 1.1.0 running")
        .expect_output("up to date");
    for path in &debris {
        assert!(!w.dir.path().join(path).exists(), "{path} was left");
    }
    for path in &kept {
        assert!(w.dir.path().join(path).exists(), "{path} was removed");
    }
    let mut now = tree_hashes(&w.install);
    now.remove(&format!(".leapfrog-tmp.{alive}.3.README.txt"));
    now.remove("data/notes.leapfrog-tmp");
    assert_eq!(now, clean);
    assert!(scene.victim.join("precious.txt").exists());
}

// ---- 11. names that break elsewhere ----

#[test]
fn airtight_publish_refuses_names_that_break_on_windows_or_macos() {
    let dir = tempfile::tempdir().unwrap();
    for (names, needle) in [
        (&["bell\u{7}.txt"][..], "control character"),
        (&["README.txt", "readme.TXT"][..], "letter case"),
        (
            &["caf\u{e9}.txt", "cafe\u{301}.txt"][..],
            "Unicode normalisation",
        ),
        (&["CON.txt"][..], "device name"),
        (&["what?.txt"][..], "cannot be in a file name on Windows"),
        (&["trailing. "][..], "ends with a dot or a space"),
    ] {
        let tree = dir.path().join("tree");
        let _ = fs::remove_dir_all(&tree);
        let mut files = vec![("app", "#!/bin/sh\n")];
        files.extend(names.iter().map(|n| (*n, "x")));
        write_tree(&tree, &files);
        let out = leapfrog()
            .args(["publish", tree.to_str().unwrap(), "--program", "app"])
            .args(["--version", "1.0.0", "--repo"])
            .arg(dir.path().join("repo"))
            .output()
            .unwrap();
        let run = Run {
            output: out,
            what: format!("publish with {names:?}"),
        }
        .expect_code(1)
        .expect_output(needle);
        let said = run.stdout() + &run.stderr();
        assert!(
            names.iter().all(|n| said.contains(&format!("{n:?}"))
                || said.contains(n.escape_debug().to_string().as_str())),
            "the message names every file: {said}"
        );
    }
}

#[test]
fn airtight_archive_with_case_twins_is_refused_at_unpack() {
    let scene = Scene::signed();
    let list = list_text(&[file_line("README.txt", b"a"), file_line("readme.txt", b"b")]);
    let archive = raw_archive(&[
        Raw::file(".leapfrog-release", list.as_bytes()),
        Raw::file("README.txt", b"a"),
        Raw::file("readme.txt", b"b"),
    ]);
    scene.world.republish_archive(&archive);
    let server = scene.server();
    scene.refused(&url(&server), &[], &["differ only in letter case"]);
}

// ---- 12. space ----

/// A signed release 1.1.0 with the demo app and `extra` (path, bytes) files,
/// gzipped, with `padding` zero bytes after the end of the tar stream.
fn release_with(scene: &Scene, extra: &[(&str, &[u8])], padding: usize) -> Vec<u8> {
    use std::io::Write;
    let tree = &scene.world.fixture.tree_1_1;
    let demo = fs::read(tree.join("demo")).unwrap();
    let mut lines = vec![format!(
        "file {} {} 755 demo",
        leapfrog::publish::sha256_file(tree.join("demo")).unwrap().0,
        demo.len()
    )];
    lines.extend(extra.iter().map(|(p, d)| file_line(p, d)));
    let list = list_text(&lines);
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_cksum();
        tar.append_data(&mut h, name, data).unwrap();
    };
    add(".leapfrog-release", list.as_bytes(), 0o644);
    add("demo", &demo, 0o755);
    for (p, d) in extra {
        add(p, d, 0o644);
    }
    let mut bytes = tar.into_inner().unwrap();
    bytes.extend(std::iter::repeat_n(0u8, padding));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn airtight_padding_after_the_tar_end_is_bounded() {
    let scene = Scene::signed();
    let archive = release_with(&scene, &[], 3 << 20);
    scene.world.republish_archive(&archive);
    let server = scene.server();
    scene.refused(
        &url(&server),
        &[],
        &["of padding follow the end of the tar stream"],
    );
}

#[test]
fn airtight_release_larger_than_the_free_space_is_refused_before_unpacking() {
    if !crate::places::is_root() {
        eprintln!("SKIPPED: a small disk is a tmpfs, which needs root to mount");
        return;
    }
    // A gzip bomb the file list vouches for: 96 MiB of zeros in a small
    // archive, staged on a disk with room for the archive but not for it.
    let scene = Scene::signed();
    let zeros = vec![0u8; 96 << 20];
    let archive = release_with(&scene, &[("big.bin", &zeros)], 0);
    scene.world.republish_archive(&archive);
    let small = scene.world.dir.path().join("small");
    let install = crate::places::dir_size(&scene.world.install);
    let _mount = crate::places::Mount::tmpfs(&small, install + archive.len() as u64 + (40 << 20));
    let backup = small.join("demo.backup");
    let server = scene.server();
    scene.refused(
        &url(&server),
        &[("LEAPFROG_BACKUP_DIR", backup.to_str().unwrap())],
        &["not enough free space", ".leapfrog-staging"],
    );
    assert!(!backup.exists(), "the failed stage was left behind");
}

// ---- 8. a machine's trouble never marks a good release bad ----

#[test]
fn airtight_trial_launches_killed_from_outside_do_not_mark_the_release_bad() {
    // The new version's trial launches were all cut off (killed with their
    // watcher, as a power cut or a kill at the exec would): no verdict on
    // the release. It is rolled back, tried again later, and installs.
    let scene = Scene::new();
    let w = &scene.world;
    let server = scene.server();
    let old = tree_hashes(&w.install);
    w.launch(&url(&server))
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    let new = tree_hashes(&w.install);
    let mut j = Journal::read(&w.backup).unwrap().unwrap();
    j.step = Step::Applied;
    j.trial_launches = j.trial.attempts + 2;
    j.write().unwrap();
    w.launch(DEAD)
        .expect_code(0)
        .expect_output("trial launches of 1.1.0 ended without a verdict")
        .expect_output("rolled back to 1.0.0")
        .expect_output("demo 1.0.0 running")
        .expect_output("a problem of this machine, not of the release");
    assert_eq!(tree_hashes(&w.install), old);
    let j = Journal::read(&w.backup).unwrap().unwrap();
    assert_eq!(j.step, Step::RolledBack);
    assert!(!j.bad_release && j.failed_at.is_some(), "{j:?}");
    w.launch(&url(&server))
        .expect_code(0)
        .expect_output("trying again after")
        .expect_no_output("hopping out");
    w.launch_env(&url(&server), &[("LEAPFROG_RETRY_AFTER", "0s")])
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    let mut now = tree_hashes(&w.install);
    now.remove(leapfrog::internal::STATE_NAME);
    let mut want = new.clone();
    want.remove(leapfrog::internal::STATE_NAME);
    assert_eq!(now, want);
}
