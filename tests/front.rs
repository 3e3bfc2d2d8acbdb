//! The front door: what an app gets when it embeds leapfrog, seen from the
//! outside. Unsigned updates are an explicit choice, a second copy of the
//! app never asks while another one updates, and a stage cut short by the
//! app exiting is continued at the next start without fetching a complete
//! archive again.

use std::fs;
use std::time::Duration;

use crate::util::evil::EvilServer;
use crate::util::*;

/// How often the server was asked for the 1.1.0 archive.
fn archive_requests(server: &EvilServer) -> usize {
    server
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("GET /demo-1.1.0.tar.gz"))
        .count()
}

#[test]
fn front_app_without_a_key_must_say_allow_unsigned() {
    let world = World::new();
    let config = world.install.join("data/config.json");
    let text = fs::read_to_string(&config).unwrap();
    assert!(text.contains("\"allow_unsigned\": true"), "{text}");
    fs::write(&config, text.replace(",\n    \"allow_unsigned\": true", "")).unwrap();
    let before = tree_hashes(&world.install);
    let server = EvilServer::start(world.releases.clone());
    world
        .launch(&server.manifest_url())
        .expect_code(1)
        .expect_output("no public key")
        .expect_output("allow_unsigned")
        .expect_no_output("demo 1.1.0 running");
    assert!(
        server.requests.lock().unwrap().is_empty(),
        "nothing may be fetched"
    );
    assert_eq!(tree_hashes(&world.install), before);
    assert!(!world.backup.exists());
}

#[test]
fn front_second_copy_sees_the_lock_before_asking() {
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    let before = tree_hashes(&world.install);
    // Another copy of the program is updating: it holds the lock.
    let lock_path = leapfrog::internal::layout::lock_path(&world.backup);
    let lock = fs::File::create(&lock_path).unwrap();
    lock.lock().unwrap();
    // Not told to say yes, no display, no terminal: an app that reached
    // the question would log that it had nobody to ask.
    let mut cmd = command(&world.install.join("demo"));
    cmd.env("LEAPFROG_MANIFEST_URL", server.manifest_url())
        .env_remove("LEAPFROG_ASSUME_YES")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    run(&mut cmd, Duration::from_secs(60))
        .expect_code(0)
        .expect_output("demo 1.0.0 running")
        .expect_output("another copy of the program is updating")
        .expect_no_output("nobody to ask")
        .expect_no_output("not updating now");
    assert_eq!(archive_requests(&server), 0);
    assert_eq!(tree_hashes(&world.install), before);
    drop(lock);
    // Once the other copy is done, the update goes ahead.
    world
        .launch(&server.manifest_url())
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
}

/// The number of the first fail point that unpacking reaches, in a whole
/// update of a fresh world.
#[cfg(feature = "failpoints")]
fn first_unpack_point() -> usize {
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    let log = world.dir.path().join("points.log");
    world
        .launch_env(
            &server.manifest_url(),
            &[("LEAPFROG_FP_LOG", log.to_str().unwrap())],
        )
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    let points = fs::read_to_string(&log).unwrap();
    points
        .lines()
        .find_map(|l| {
            let (n, name) = l.split_once(' ')?;
            name.starts_with("unpack").then(|| n.parse().unwrap())
        })
        .expect("unpacking has fail points")
}

#[cfg(feature = "failpoints")]
#[test]
fn front_stage_cut_short_reuses_the_verified_archive() {
    let at = first_unpack_point();
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    let before = tree_hashes(&world.install);
    // The app dies while unpacking: the archive is complete and verified.
    let cut = world.launch_env(
        &server.manifest_url(),
        &[("LEAPFROG_FAILPOINT", &format!("{at}:crash"))],
    );
    assert_ne!(cut.code(), Some(0), "{}", cut.stdout());
    assert_eq!(archive_requests(&server), 1);
    assert_eq!(tree_hashes(&world.install), before);
    let archive = world
        .backup
        .join(leapfrog::internal::layout::DOWNLOAD)
        .join("demo-1.1.0.tar.gz");
    assert!(archive.is_file(), "the complete archive is kept");

    // The next start continues: no second download of the archive.
    world
        .launch(&server.manifest_url())
        .expect_code(0)
        .expect_output("reusing")
        .expect_output("demo 1.1.0 running");
    assert_eq!(
        archive_requests(&server),
        1,
        "the archive was fetched again"
    );

    // A kept archive that no longer verifies is fetched again, never used.
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    let _ = world.launch_env(
        &server.manifest_url(),
        &[("LEAPFROG_FAILPOINT", &format!("{at}:crash"))],
    );
    let archive = world
        .backup
        .join(leapfrog::internal::layout::DOWNLOAD)
        .join("demo-1.1.0.tar.gz");
    let mut bytes = fs::read(&archive).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&archive, bytes).unwrap();
    world
        .launch(&server.manifest_url())
        .expect_code(0)
        .expect_output("does not verify; downloading it again")
        .expect_output("demo 1.1.0 running");
    assert_eq!(archive_requests(&server), 2);
}

#[test]
fn front_a_display_without_zenity_says_so_and_the_app_is_told_nobody_was_asked() {
    // A desktop without zenity (rfd's dialogs on Linux), no terminal, not
    // told to say yes: the log says why nobody was asked, and the app gets
    // an outcome it can show in its own interface.
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    let before = tree_hashes(&world.install);
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = command(&world.install.join("demo"));
    cmd.env("LEAPFROG_MANIFEST_URL", server.manifest_url())
        .env("DISPLAY", ":0")
        .env("PATH", empty.path())
        .env_remove("LEAPFROG_ASSUME_YES")
        .env_remove("WAYLAND_DISPLAY");
    run(&mut cmd, Duration::from_secs(60))
        .expect_code(0)
        .expect_output("nobody to ask (a display, but neither zenity nor kdialog on the PATH to show the dialog with (install zenity), and no terminal)")
        .expect_output("1.1.0 is available, but nobody could be asked; not updating now");
    assert_eq!(archive_requests(&server), 0);
    assert_eq!(tree_hashes(&world.install), before);
}

#[test]
fn front_the_app_saves_its_work_or_puts_the_restart_off() {
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    let before = tree_hashes(&world.install);
    // Busy: the update is staged, the restart put off, 1.0.0 runs on.
    let mut cmd = command(&world.install.join("demo"));
    cmd.arg("--put-off-restart")
        .env("LEAPFROG_ASSUME_YES", "1")
        .env("LEAPFROG_MANIFEST_URL", server.manifest_url());
    run(&mut cmd, Duration::from_secs(60))
        .expect_code(0)
        .expect_output("busy: putting the restart into 1.1.0 off to the next launch")
        .expect_output("1.1.0 is staged; it is installed at the next launch")
        .expect_no_output("hopping out")
        .expect_no_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&world.install), before);
    // The next launch installs it; an app that may restart saves its work
    // first, and the restart follows.
    world
        .launch(&server.manifest_url())
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    let out = world
        .launch(&server.manifest_url())
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    let text = out.stdout() + &out.stderr();
    let saved = text
        .find("saving work before restarting into 1.1.0")
        .expect("saved first");
    let hop = text.find("hopping out").expect("hopped");
    assert!(saved < hop, "{text}");
}

#[test]
fn front_first_run_hook_runs_once_and_a_failing_before_update_hook_changes_nothing() {
    let world = World::new();
    // The installed version's before-update hook refuses.
    fs::write(
        world.install.join("data/misbehave"),
        "before-update-fails\n",
    )
    .unwrap();
    let before = tree_hashes(&world.install);
    let server = EvilServer::start(world.releases.clone());
    world
        .launch(&server.manifest_url())
        .expect_code(0)
        .expect_output("first-run hook: welcome to demo 1.0.0")
        .expect_output("before-update hook: 1.0.0 is about to be replaced by 1.1.0")
        .expect_output("the before_update (the app's, #1) hook failed: it refuses on purpose")
        .expect_output("no update this time, nothing was changed")
        .expect_no_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&world.install), before);
    assert!(!world.backup.exists());
    assert_eq!(archive_requests(&server), 0, "nothing was downloaded");
    let state = leapfrog::internal::State::read(&world.install).unwrap();
    assert_eq!(state.first_run.unwrap().version, "1.0.0");
    // The first run is over; the hook lets the update through now.
    fs::remove_file(world.install.join("data/misbehave")).unwrap();
    world
        .launch(&server.manifest_url())
        .expect_code(0)
        .expect_no_output("first-run hook")
        .expect_output("before_update hook (the app's, #1) 1.0.0 -> 1.1.0: done")
        .expect_output("after-update hook: moving the demo's data from 1.0.0 to 1.1.0")
        .expect_output("demo 1.1.0 running");
}

/// A folder for PATH with a stand-in `kdialog` (it records its arguments
/// in `args` and exits with `FAKE_KDIALOG_EXIT`), and what the dialog
/// guard needs (`head`, `cat`); no zenity.
#[cfg(unix)]
fn kde_path(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let kdialog = bin.join("kdialog");
    fs::write(
        &kdialog,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\nexit \"$FAKE_KDIALOG_EXIT\"\n",
            dir.join("args").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&kdialog, fs::Permissions::from_mode(0o755)).unwrap();
    for tool in ["head", "cat"] {
        std::os::unix::fs::symlink(format!("/usr/bin/{tool}"), bin.join(tool)).unwrap();
    }
    bin
}

#[cfg(unix)]
#[test]
fn front_without_zenity_kdialog_asks() {
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    let before = tree_hashes(&world.install);
    let kde = tempfile::tempdir().unwrap();
    let path = kde_path(kde.path());
    let launch = |args: &[&str], exit: &str| {
        let mut cmd = command(&world.install.join("demo"));
        cmd.args(args)
            .env("LEAPFROG_MANIFEST_URL", server.manifest_url())
            .env("DISPLAY", ":0")
            .env("PATH", &path)
            .env("FAKE_KDIALOG_EXIT", exit)
            .env_remove("LEAPFROG_ASSUME_YES")
            .env_remove("WAYLAND_DISPLAY");
        run(&mut cmd, Duration::from_secs(60))
    };
    // Cancel (or closing the window): "Remind me later".
    launch(&[], "2")
        .expect_code(0)
        .expect_output("demo 1.1.0: reminding the user after");
    let args = fs::read_to_string(kde.path().join("args")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    for (flag, value) in [
        ("--title", "Update demo"),
        ("--yes-label", "Update"),
        ("--no-label", "Skip this version"),
        ("--cancel-label", "Remind me later"),
    ] {
        let at = args
            .iter()
            .position(|a| *a == flag)
            .unwrap_or_else(|| panic!("{flag}: {args:?}"));
        assert_eq!(args[at + 1], value, "{args:?}");
    }
    let question = args.iter().position(|a| *a == "--yesnocancel").unwrap();
    assert!(
        args[question + 1].starts_with("demo 1.1.0 is available (you have 1.0.0"),
        "{args:?}"
    );
    assert!(
        args.iter()
            .any(|a| a.contains("demo restarts to finish updating")),
        "{args:?}"
    );
    assert_eq!(tree_hashes(&world.install), before);
    // Asked again ("Check for updates"): "Skip this version" (No).
    launch(&["--check-now"], "1")
        .expect_code(0)
        .expect_output("demo 1.1.0: skipped by the user");
    let state = leapfrog::internal::State::read(&world.install).unwrap();
    assert_eq!(state.skipped.as_deref(), Some("1.1.0"));
    // And again: "Update" (Yes): the app updates itself.
    launch(&["--check-now"], "0")
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
}
