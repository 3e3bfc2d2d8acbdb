//! The first launch of a new version is a trial, watched by the old
//! binary's copy: a version that crashes, exits with failure, hangs or
//! cannot start is rolled back without the user doing anything, the user is
//! told, the version is not offered again, and a newer good one still
//! installs.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use leapfrog::internal::{Journal, Step};
use leapfrog::publish::{publish, PublishOptions};
use leapfrog::serve::Server;

use crate::util::*;

fn publish_to(world: &World, tree: &Path, version: &str) {
    publish(&PublishOptions::new(tree, "demo", version, &world.releases)).unwrap();
}

/// A world (1.0.0 installed) whose host offers 1.0.0 and a 1.1.0 made
/// from the good 1.1.0 tree by `break_it`.
fn broken_world(break_it: impl FnOnce(&Path)) -> World {
    let world = World::new();
    for entry in fs::read_dir(&world.releases).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
    publish_to(&world, &world.fixture.tree_1_0, "1.0.0");
    let tree = world.dir.path().join("tree-1.1.0-broken");
    app_tree(&tree, "1.1.0", None, FILES_1_1);
    break_it(&tree);
    publish_to(&world, &tree, "1.1.0");
    world
}

fn misbehaving(how: &'static str) -> impl FnOnce(&Path) {
    move |tree: &Path| write_tree(tree, &[("data/misbehave", how)])
}

fn installed(world: &World) -> std::collections::BTreeMap<String, String> {
    let mut tree = tree_hashes(&world.install);
    tree.remove(leapfrog::internal::STATE_NAME);
    tree
}

fn url(server: &Server) -> String {
    format!("{}versions.txt", server.url())
}

/// Launches the broken update, and checks that it was rolled back for
/// `why` after `attempts` trial launches: the old version running and
/// telling its user, the install dir as before, the version not offered
/// again, and a newer good version still installing.
fn assert_rolled_back(world: &World, env: &[(&str, &str)], why: &str, attempts: u32) {
    let before = installed(world);
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let run = world
        .launch_env(&url(&server), env)
        .expect_code(0)
        .expect_output("applied demo 1.1.0")
        .expect_output(&format!("trial launch {attempts} of demo 1.1.0"))
        .expect_output(&format!("1.1.0 {why}"))
        .expect_output("on its trial launch")
        .expect_output("rolled back to 1.0.0")
        .expect_output("the update to 1.1.0 failed and was undone")
        .expect_output("1.1.0 was rolled back here before; waiting for a newer release")
        .expect_no_output(&format!("trial launch {} of", attempts + 1));
    let out = run.stdout();
    assert!(
        out.trim_end()
            .lines()
            .any(|l| l.contains("demo 1.0.0 running from")),
        "{out}"
    );
    // The last word is the old version's, in the process the user started.
    let last = out.trim_end().lines().last().unwrap();
    assert!(last.contains(&format!("pid {}]", first_pid(&out))), "{out}");
    assert_eq!(installed(world), before, "{out}");
    assert_eq!(
        fs::read_to_string(world.install.join(USER_FILE)).unwrap(),
        "the user's own notes\n"
    );
    let journal = Journal::read(&world.backup).unwrap().unwrap();
    assert_eq!(journal.step, Step::RolledBack);
    assert_eq!(journal.trial_failures, attempts);
    assert!(
        journal.error.as_deref().unwrap().contains(why),
        "{journal:?}"
    );

    // The update log tells the story (the first check made no backup dir,
    // so the log begins with the stage).
    let attempt_lines: Vec<String> = (1..=attempts)
        .map(|n| format!("trial launch {n} of 1.1.0: "))
        .collect();
    let mut story = vec![
        "demo 1.0.0 -> 1.1.0: staged: downloaded, verified",
        "demo 1.0.0 -> 1.1.0: restarting from the backup copy to apply",
        "demo 1.0.0 -> 1.1.0: applying: the backup copy",
        "demo 1.0.0 -> 1.1.0: applied: the install dir holds the new release",
    ];
    story.extend(attempt_lines.iter().map(String::as_str));
    story.extend([
        "trial failed: 1.1.0",
        "demo 1.0.0 -> 1.1.0: rolling back",
        "demo 1.0.0 -> 1.1.0: rolled back: the old version is installed again",
    ]);
    assert_lines_in_order(&update_log(&world.backup), &story);

    // Launched again: told once already; 1.1.0 is not offered again.
    world
        .launch_env(&url(&server), env)
        .expect_code(0)
        .expect_output("demo 1.0.0 running")
        .expect_output("1.1.0 was rolled back here before; waiting for a newer release")
        .expect_output("1.1.0 was rolled back here before; not installing it again now")
        .expect_no_output("up to date")
        .expect_no_output("failed and was undone")
        .expect_no_output("trial launch");
    assert_eq!(installed(world), before);

    // A newer good release installs as usual.
    let good = world.dir.path().join("tree-1.2.0");
    app_tree(&good, "1.2.0", None, FILES_1_1);
    publish_to(world, &good, "1.2.0");
    world
        .launch_env(&url(&server), env)
        .expect_code(0)
        .expect_output("trial launch 1 of demo 1.2.0")
        .expect_output("demo 1.2.0 running")
        .expect_output("updated from 1.0.0 to 1.2.0")
        .expect_output("demo 1.2.0 is healthy");
    let journal = Journal::read(&world.backup).unwrap().unwrap();
    assert_eq!(journal.step, Step::Confirmed);
    // The log is kept across updates: the rollback, then the next checks
    // and the good update, in one file.
    assert_lines_in_order(
        &update_log(&world.backup),
        &[
            "demo 1.0.0 -> 1.1.0: rolled back",
            "/versions.txt: 1.1.0 was rolled back here before; not offered",
            "/versions.txt: 1.2.0 is available",
            "demo 1.0.0 -> 1.2.0: staged",
            "demo 1.0.0 -> 1.2.0: trial launch 1 of 1.2.0",
            "demo 1.0.0 -> 1.2.0: confirmed: the new version is healthy",
        ],
    );
    let mut expected = tree_hashes(&good);
    expected.insert(USER_FILE.into(), before[USER_FILE].clone());
    expected.insert(
        leapfrog::publish::FILE_LIST.into(),
        installed(world)[leapfrog::publish::FILE_LIST].clone(),
    );
    assert_eq!(installed(world), expected);
}

fn first_pid(out: &str) -> &str {
    out.split("pid ")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap()
}

#[test]
fn trial_a_version_that_crashes_is_rolled_back() {
    let world = broken_world(misbehaving("crash"));
    assert_rolled_back(&world, &[], "crashed (SIGABRT, signal 6)", 1);
}

#[test]
fn trial_a_failing_after_update_hook_is_rolled_back() {
    let world = broken_world(misbehaving("after-update-fails"));
    assert_rolled_back(&world, &[], "exited with status 1", 1);
    assert_lines_in_order(
        &update_log(&world.backup),
        &[
            "demo 1.0.0 -> 1.1.0: trial launch 1 of 1.1.0",
            "after_update hook (the app's, #1) failed: this release's migration fails on purpose",
            "demo 1.0.0 -> 1.1.0: rolled back",
        ],
    );
}

#[test]
fn trial_an_after_update_hook_out_of_time_is_rolled_back() {
    // Healthy after 3 s: the hook must be done well before that.
    let world = broken_world(misbehaving("after-update-hangs"));
    let env = [("LEAPFROG_CONFIRM_AFTER", "3s")];
    assert_rolled_back(&world, &env, "exited with status 1", 1);
    // Its time was what was left of the 3 s, less a tenth, counted from
    // the watcher's start of the launch (so under 2.7 s).
    let log = update_log(&world.backup);
    let said = "after_update hook (the app's, #1) failed: it did not finish within ";
    let line = log
        .lines()
        .find(|l| l.contains(said))
        .unwrap_or_else(|| panic!("{log}"));
    let within = line.split(said).nth(1).unwrap();
    let within = humantime::parse_duration(within.trim()).unwrap();
    assert!(
        within > Duration::ZERO && within < Duration::from_millis(2700),
        "{line}"
    );
}

/// Makes the release tree's config name `command` for `key`.
fn name_hook_command(tree: &Path, key: &str, command: &str) {
    let path = tree.join("data/config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    config["Update_app"][key] = command.into();
    fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

#[cfg(unix)]
fn script(tree: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = tree.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(unix)]
#[test]
fn trial_the_release_s_after_update_command_runs_in_the_new_version() {
    let world = broken_world(|tree| {
        script(
            tree,
            "hooks/after-update.sh",
            "echo \"migrating $LEAPFROG_FROM_VERSION to $LEAPFROG_TO_VERSION ($LEAPFROG_HOOK)\"\n\
             echo \"$LEAPFROG_FROM_VERSION -> $LEAPFROG_TO_VERSION\" > data/migrated.txt",
        );
        name_hook_command(
            tree,
            "after_update_command",
            "hooks/after-update.sh --quiet",
        );
    });
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    world
        .launch(&url(&server))
        .expect_code(0)
        .expect_output("after-update hook: moving the demo's data from 1.0.0 to 1.1.0")
        .expect_output("after_update hook hooks/after-update.sh --quiet 1.0.0 -> 1.1.0: done in")
        .expect_output("it said: migrating 1.0.0 to 1.1.0 (after_update)")
        .expect_output("demo 1.1.0 is healthy");
    assert_eq!(
        fs::read_to_string(world.install.join("data/migrated.txt")).unwrap(),
        "1.0.0 -> 1.1.0\n"
    );
    assert_lines_in_order(
        &update_log(&world.backup),
        &[
            "after_update hook (the app's, #1) 1.0.0 -> 1.1.0: done",
            "after_update hook hooks/after-update.sh --quiet 1.0.0 -> 1.1.0: done in",
            "confirmed: the new version is healthy",
        ],
    );
}

#[cfg(unix)]
#[test]
fn trial_a_failing_after_update_command_is_rolled_back() {
    let world = broken_world(|tree| {
        script(
            tree,
            "hooks/after-update.sh",
            "echo 'the data cannot be moved' >&2\nexit 4",
        );
        name_hook_command(tree, "after_update_command", "hooks/after-update.sh");
    });
    assert_rolled_back(&world, &[], "exited with status 1", 1);
    assert_lines_in_order(
        &update_log(&world.backup),
        &["after_update hook hooks/after-update.sh failed: it ended with exit status: 4; it said: the data cannot be moved"],
    );
}

#[test]
fn trial_a_version_that_exits_with_failure_is_rolled_back() {
    let world = broken_world(misbehaving("fail"));
    assert_rolled_back(&world, &[], "exited with status 3", 1);
}

#[test]
fn trial_a_version_that_hangs_without_confirming_is_rolled_back() {
    let world = broken_world(misbehaving("hang"));
    let started = Instant::now();
    assert_rolled_back(
        &world,
        &[("LEAPFROG_CONFIRM_WITHIN", "2s")],
        "hung: it did not confirm it works within 2.0 s, and was stopped",
        1,
    );
    assert!(started.elapsed() < Duration::from_secs(50));
}

#[test]
fn trial_a_version_missing_a_shared_library_is_rolled_back() {
    // A real program linked against a library the release does not ship:
    // the dynamic loader refuses to start it.
    let world = broken_world(|tree| {
        let src = tree.parent().unwrap().join("c-src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("gone.c"), "int gone(void) { return 0; }\n").unwrap();
        fs::write(
            src.join("main.c"),
            "int gone(void);\nint main(void) { return gone(); }\n",
        )
        .unwrap();
        let cc = |args: &[&str]| {
            let status = std::process::Command::new("cc")
                .current_dir(&src)
                .args(args)
                .status()
                .expect("running cc (Debian package gcc)");
            assert!(status.success(), "cc {args:?}");
        };
        cc(&["-shared", "-fPIC", "-o", "libleapfroggone.so", "gone.c"]);
        cc(&["-o", "demo", "main.c", "-L.", "-lleapfroggone"]);
        fs::copy(src.join("demo"), tree.join("demo")).unwrap();
    });
    assert_rolled_back(
        &world,
        &[],
        "could not start (exit status 127: a missing shared library or interpreter)",
        1,
    );
}

#[test]
fn trial_a_version_that_cannot_be_executed_is_rolled_back() {
    let world = broken_world(|tree| {
        fs::write(
            tree.join("demo"),
            "#!/nonexistent/leapfrog-test-interpreter\n",
        )
        .unwrap();
    });
    assert_rolled_back(&world, &[], "could not be started (", 1);
}

#[test]
fn trial_attempts_are_configurable() {
    let world = broken_world(misbehaving("crash"));
    assert_rolled_back(
        &world,
        &[("LEAPFROG_TRIAL_ATTEMPTS", "3")],
        "crashed (SIGABRT, signal 6)",
        3,
    );
}

#[test]
fn trial_a_version_that_ran_long_enough_is_kept_and_its_status_passed_on() {
    // Healthy after 1 s of running; it fails after 2 s, as any program may:
    // not the update's fault. Its exit status reaches whoever started it.
    let world = broken_world(misbehaving("late-fail"));
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    world
        .launch_env(&url(&server), &[("LEAPFROG_CONFIRM_AFTER", "1s")])
        .expect_code(3)
        .expect_output("demo 1.1.0 is healthy: it ran 1.0 s without failing")
        .expect_output("failing now, with status 3")
        .expect_no_output("rolled back");
    let journal = Journal::read(&world.backup).unwrap().unwrap();
    assert_eq!(journal.step, Step::Confirmed);
    assert!(world.install.join("data/misbehave").exists());
}

#[test]
fn trial_stopped_from_outside_is_no_verdict() {
    // SIGTERM to the process the user started reaches the new version; it
    // ends without a verdict, and its next launch is a trial again.
    let world = broken_world(misbehaving("hang"));
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let log = world.dir.path().join("out.log");
    let mut child = spawn(
        command(&world.install.join("demo"))
            .env("LEAPFROG_ASSUME_YES", "1")
            .env("LEAPFROG_MANIFEST_URL", url(&server))
            .env("LEAPFROG_CONFIRM_WITHIN", "60s")
            .stdout(fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(&log)
        .unwrap()
        .contains("broken on purpose: hanging")
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let out = fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(128 + 15), "{out}");
    assert!(
        out.contains("1.1.0 was stopped by SIGTERM before it counted as healthy"),
        "{out}"
    );
    let journal = Journal::read(&world.backup).unwrap().unwrap();
    assert_eq!(journal.step, Step::Applied, "{out}");
    assert_eq!((journal.trial_launches, journal.trial_failures), (0, 0));
}
