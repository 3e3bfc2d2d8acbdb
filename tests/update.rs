//! The whole update through the real app: the happy path, and failures that
//! must leave the old version running with its files byte-identical.

use std::fs;

use leapfrog::publish::FILE_LIST;
use leapfrog::serve::Server;

use crate::util::*;

fn manifest_url(server: &Server) -> String {
    format!("{}versions.txt", server.url())
}

/// The install dir as it must be after a successful update to 1.1.0.
fn expected_after_update(world: &World) -> std::collections::BTreeMap<String, String> {
    let fx = fixture();
    let mut want = tree_hashes(&fx.tree_1_1);
    let scratch = world.dir.path().join("expected");
    leapfrog::publish::unpack(world.releases.join("demo-1.1.0.tar.gz"), &scratch).unwrap();
    want.insert(
        FILE_LIST.into(),
        leapfrog::publish::sha256_file(scratch.join(FILE_LIST))
            .unwrap()
            .0,
    );
    want.insert(
        USER_FILE.into(),
        leapfrog::publish::sha256_file(world.install.join(USER_FILE))
            .unwrap()
            .0,
    );
    fs::remove_dir_all(scratch).unwrap();
    want
}

/// Asserts that the old version is installed exactly as before and still runs.
fn assert_untouched(world: &World, before: &std::collections::BTreeMap<String, String>, run: &Run) {
    assert_eq!(
        &tree_hashes(&world.install),
        before,
        "the install dir changed:\n{}",
        run.stdout()
    );
    assert!(
        !world.backup.exists(),
        "a failed stage left {} behind: {:?}",
        world.backup.display(),
        tree_hashes(&world.backup).keys().collect::<Vec<_>>()
    );
    let again = command(&world.install.join("demo"))
        .env("LEAPFROG_MANIFEST_URL", "http://127.0.0.1:9/versions.txt")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(
        out.contains("demo 1.0.0 running"),
        "the old version no longer starts:\n{out}"
    );
}

#[test]
fn update_happy_path() {
    let world = World::new();
    let before = tree_hashes(&world.install);
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let run = world
        .launch(&manifest_url(&server))
        .expect_code(0)
        .expect_output("demo 1.0.0 running")
        .expect_output("exec ")
        .expect_output("running from the backup copy")
        .expect_output("applied demo 1.1.0: ")
        .expect_output("demo 1.1.0 running")
        .expect_output("updated from 1.0.0 to 1.1.0");
    // exec keeps the process: the pid started does every step, and stays
    // to the end; only the new version's trial launch is another process,
    // its child, watched by it.
    let out = run.stdout();
    let lines: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| Some((l.split("pid ").nth(1)?.split(']').next()?, l)))
        .collect();
    let started = lines[0].0;
    let trial: std::collections::BTreeSet<&str> = lines
        .iter()
        .map(|(pid, _)| *pid)
        .filter(|pid| *pid != started)
        .collect();
    assert_eq!(trial.len(), 1, "{out}");
    let trial = trial.into_iter().next().unwrap();
    assert_eq!(lines.last().unwrap().0, started, "{out}");
    assert!(
        out.contains(&format!(
            "trial launch 1 of demo 1.1.0: pid {trial}, watched by pid {started}"
        )),
        "{out}"
    );
    for (pid, line) in &lines {
        if line.contains("demo 1.1.0 running") {
            assert_eq!(*pid, trial, "{out}");
        }
        if line.contains("running from the backup copy") || line.contains("demo 1.0.0 running") {
            assert_eq!(*pid, started, "{out}");
        }
    }

    assert_eq!(tree_hashes(&world.install), expected_after_update(&world));
    assert!(
        !world.install.join("assets/old.txt").exists(),
        "a dropped file was kept"
    );
    assert_eq!(
        fs::read_to_string(world.install.join(USER_FILE)).unwrap(),
        "the user's own notes\n"
    );
    // The backup holds 1.0.0 exactly as installed, plus the closed journal.
    let mut backup = tree_hashes(&world.backup);
    assert!(backup.remove("need_update").is_some());
    assert!(backup.remove(".leapfrog-backup").is_some(), "the marker");
    assert!(backup.remove(".leapfrog-log").is_some(), "the update log");
    assert!(backup.remove(".leapfrog-log/update.log").is_some());
    assert_eq!(backup, before);
    let journal = leapfrog::internal::Journal::read(&world.backup)
        .unwrap()
        .unwrap();
    assert_eq!(journal.step, leapfrog::internal::Step::Confirmed);

    // Launched again: up to date, nothing changes.
    let after = tree_hashes(&world.install);
    world
        .launch(&manifest_url(&server))
        .expect_code(0)
        .expect_output("demo 1.1.0 running")
        .expect_output("up to date");
    assert_eq!(tree_hashes(&world.install), after);
}

#[test]
fn update_when_up_to_date_does_nothing() {
    let world = World::new();
    let before = tree_hashes(&world.install);
    let only_old = world.dir.path().join("old-only.txt");
    let manifest = fs::read_to_string(world.releases.join("versions.txt")).unwrap();
    let kept: String = manifest
        .lines()
        .filter(|l| !l.contains("1.1.0"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&only_old, kept).unwrap();
    world
        .launch(only_old.to_str().unwrap())
        .expect_code(0)
        .expect_output("up to date")
        .expect_no_output("downloading");
    assert_eq!(tree_hashes(&world.install), before);
    assert!(!world.backup.exists());
}

#[test]
fn update_checksum_mismatch() {
    let world = World::new();
    let before = tree_hashes(&world.install);
    let archive = world.releases.join("demo-1.1.0.tar.gz");
    let good = fs::read(&archive).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    world.replace_archive(&bad);
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let run = world
        .launch(&manifest_url(&server))
        .expect_code(0)
        .expect_output("checksum mismatch: expected sha256")
        .expect_output("demo-1.1.0.tar.gz")
        .expect_output("still running the installed version")
        .expect_no_output("demo 1.1.0 running");
    assert_untouched(&world, &before, &run);

    // Once the host serves the right file again, the update goes through.
    world.replace_archive(&good);
    world
        .launch(&manifest_url(&server))
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&world.install), expected_after_update(&world));
}

#[test]
fn update_truncated_file_on_host() {
    let world = World::new();
    let before = tree_hashes(&world.install);
    let good = fs::read(world.releases.join("demo-1.1.0.tar.gz")).unwrap();
    world.replace_archive(&good[..good.len() / 3]);
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let run = world
        .launch(&manifest_url(&server))
        .expect_code(0)
        .expect_output("size mismatch: expected")
        .expect_no_output("demo 1.1.0 running");
    assert_untouched(&world, &before, &run);
}

#[test]
fn update_download_cut_off_resumes() {
    // Every response is cut after a fifth of the archive: within a run the
    // download goes on from where it stopped (three tries), and after a
    // relaunch it goes on from the kept .partial, never starting over.
    let world = World::new();
    let before = tree_hashes(&world.install);
    let size = fs::metadata(world.releases.join("demo-1.1.0.tar.gz"))
        .unwrap()
        .len() as usize;
    let cut = size / 5 + 1;
    let (url, sent) = cutting_server(world.releases.clone(), cut);
    let run = world
        .launch(&url)
        .expect_code(0)
        .expect_output(&format!("at byte {cut}\n"))
        .expect_output(&format!("at byte {}\n", 2 * cut))
        .expect_output("still running the installed version")
        .expect_no_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&world.install), before, "{}", run.stdout());
    let kept: Vec<_> = walk_names(&world.backup)
        .into_iter()
        .filter(|n| !n.starts_with(".leapfrog-download"))
        .collect();
    assert_eq!(
        kept,
        [
            ".leapfrog-backup",
            ".leapfrog-log",
            ".leapfrog-log/update.log"
        ],
        "only the partial download, the backup dir's marker and the update log may stay"
    );
    assert_lines_in_order(
        &update_log(&world.backup),
        &["demo 1.0.0 -> 1.1.0: staging failed, nothing was changed: "],
    );
    let partial = world
        .backup
        .join(".leapfrog-download/demo-1.1.0.tar.gz.partial");
    assert_eq!(fs::metadata(&partial).unwrap().len() as usize, 3 * cut);
    world
        .launch(&url)
        .expect_code(0)
        .expect_output(&format!("at byte {}\n", 3 * cut))
        .expect_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&world.install), expected_after_update(&world));
    // Every byte was sent once.
    assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), size);
    assert!(!world.backup.join(".leapfrog-download").exists());
}

fn walk_names(dir: &std::path::Path) -> Vec<String> {
    tree_hashes(dir).into_keys().collect()
}

#[test]
fn update_download_404() {
    let world = World::new();
    let before = tree_hashes(&world.install);
    fs::remove_file(world.releases.join("demo-1.1.0.tar.gz")).unwrap();
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let run = world
        .launch(&manifest_url(&server))
        .expect_code(0)
        .expect_output("HTTP 404")
        .expect_output("check the URL");
    assert_untouched(&world, &before, &run);
}

#[test]
fn update_server_down_keeps_running() {
    let world = World::new();
    let before = tree_hashes(&world.install);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = world
        .launch(&format!("http://127.0.0.1:{port}/versions.txt"))
        .expect_code(0)
        .expect_output("demo 1.0.0 running")
        .expect_output("connection refused");
    assert_untouched(&world, &before, &run);
}

#[test]
fn update_without_sha256_is_refused() {
    let world = World::new();
    let before = tree_hashes(&world.install);
    let bare = world.dir.path().join("bare.txt");
    fs::write(&bare, "demo 1.0.0\ndemo 1.1.0\n").unwrap();
    fs::copy(
        world.releases.join("demo-1.1.0.tar.gz"),
        world.dir.path().join("demo-1.1.0.tar.gz"),
    )
    .unwrap();
    let run = world
        .launch(bare.to_str().unwrap())
        .expect_code(0)
        .expect_output("has no sha256, and unverified updates are not allowed");
    assert_untouched(&world, &before, &run);
}

#[test]
fn update_from_a_file_share() {
    // No server at all: the manifest and archive are read from a folder,
    // once as a file:// URL.
    let world = World::new();
    let url = format!("file://{}", world.releases.join("versions.txt").display());
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&world.install), expected_after_update(&world));
}

#[test]
fn update_watching_a_share_takes_the_next_release_when_it_is_published() {
    let world = World::new();
    // The share offers only 1.0.0 when the app starts.
    let manifest = world.releases.join("versions.txt");
    let full = fs::read_to_string(&manifest).unwrap();
    let mut only_old = leapfrog::Manifest::parse(&full, "t").unwrap();
    only_old
        .releases
        .retain(|r| r.version.to_string() == "1.0.0");
    fs::write(&manifest, only_old.render()).unwrap();
    let log = world.dir.path().join("out.log");
    let mut app = spawn(
        command(&world.install.join("demo"))
            .arg("--watch")
            .env("LEAPFROG_ASSUME_YES", "1")
            .env(
                "LEAPFROG_MANIFEST_URL",
                format!("file://{}", manifest.display()),
            )
            .stdout(fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    let said = |needle: &str| {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(needle)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !said("for a new release") {
        assert!(
            std::time::Instant::now() < deadline,
            "the app never watched"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The publisher puts 1.1.0 out (a new manifest renamed into place).
    let next = world.releases.join("versions.txt.new");
    fs::write(&next, &full).unwrap();
    fs::rename(&next, &manifest).unwrap();
    // The app took it without being started again (a liveness bound).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(55);
    let status = loop {
        if let Some(status) = app.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = app.kill();
            panic!(
                "the app did not update:\n{}",
                fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let out = fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{out}");
    for needle in [
        "the manifest changed: checking for an update",
        "demo 1.1.0 running",
        "updated from 1.0.0 to 1.1.0",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    assert!(!out.contains("no new release came"), "{out}");
    assert_eq!(tree_hashes(&world.install), expected_after_update(&world));
}

#[test]
fn update_watching_is_refused_for_a_web_host() {
    let world = World::new();
    let mut cmd = command(&world.install.join("demo"));
    cmd.arg("--watch")
        .env("LEAPFROG_MANIFEST_URL", "http://127.0.0.1:9/versions.txt");
    run(&mut cmd, std::time::Duration::from_secs(30))
        .expect_code(1)
        .expect_output(
            "only a manifest in a folder or on a file share (file:// or a path) can be watched",
        );
}

#[test]
fn update_rejects_a_relabelled_archive() {
    // A validly hashed archive of another version, listed as 1.1.0.
    let world = World::new();
    let before = tree_hashes(&world.install);
    let old = fs::read(world.releases.join("demo-1.0.0.tar.gz")).unwrap();
    world.republish_archive(&old);
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let run = world
        .launch(&manifest_url(&server))
        .expect_code(0)
        .expect_output("it holds demo 1.0.0, but the manifest offered demo 1.1.0");
    assert_untouched(&world, &before, &run);
}

/// Launches the demo app with `arg`, saying yes, against a server of the
/// world's releases; returns the server (kept up) and the run.
fn launch_with(world: &World, arg: &str) -> (Server, Run) {
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let mut cmd = command(&world.install.join("demo"));
    cmd.arg(arg)
        .env("LEAPFROG_ASSUME_YES", "1")
        .env("LEAPFROG_MANIFEST_URL", manifest_url(&server));
    let run = run(&mut cmd, std::time::Duration::from_secs(60)).expect_code(0);
    (server, run)
}

#[test]
fn update_staged_for_next_launch() {
    let world = World::new();
    let before = tree_hashes(&world.install);
    let (server, run) = launch_with(&world, "--next-launch");
    run.expect_output("1.1.0 is staged")
        .expect_no_output("demo 1.1.0 running");
    assert_eq!(
        tree_hashes(&world.install),
        before,
        "staging touched the install dir"
    );
    let journal = leapfrog::internal::Journal::read(&world.backup)
        .unwrap()
        .unwrap();
    assert_eq!(journal.step, leapfrog::internal::Step::Staged);
    // The next launch finishes it before the app does anything else, even
    // with the server gone.
    drop(server);
    world
        .launch("http://127.0.0.1:9/versions.txt")
        .expect_code(0)
        .expect_output("running from the backup copy")
        .expect_output("demo 1.1.0 running")
        .expect_output("updated from 1.0.0 to 1.1.0");
    assert_eq!(tree_hashes(&world.install), expected_after_update(&world));
}

#[test]
fn update_a_stage_damaged_before_the_next_launch_is_dropped_untouched() {
    let world = World::new();
    let before = tree_hashes(&world.install);
    let (_server, run) = launch_with(&world, "--next-launch");
    run.expect_output("1.1.0 is staged");
    // Something changes a staged file before the next launch.
    let staged = world.backup.join(".leapfrog-staging/assets/new.txt");
    fs::write(&staged, "changed behind leapfrog's back\n").unwrap();
    world
        .launch("http://127.0.0.1:9/versions.txt")
        .expect_code(0)
        .expect_output("the staged update to 1.1.0 does not verify any more")
        .expect_output("assets/new.txt")
        .expect_output("demo 1.0.0 running")
        .expect_output("the update to 1.1.0 failed and was undone")
        .expect_no_output("demo 1.1.0 running");
    assert_eq!(
        tree_hashes(&world.install),
        before,
        "the install dir changed"
    );
    assert!(!world.backup.join(".leapfrog-staging").exists());
    let journal = leapfrog::internal::Journal::read(&world.backup)
        .unwrap()
        .unwrap();
    assert_eq!(journal.step, leapfrog::internal::Step::RolledBack);
    assert!(!journal.bad_release, "the release is not to blame");
    assert_lines_in_order(
        &update_log(&world.backup),
        &[
            "demo 1.0.0 -> 1.1.0: staged",
            "demo 1.0.0 -> 1.1.0: rolled back",
        ],
    );
}

#[test]
fn update_on_exit_is_applied_when_the_app_quits_and_its_next_launch_is_the_trial() {
    let world = World::new();
    let before = tree_hashes(&world.install);
    // The helper writes to the same output: `run` reads it to its end.
    let (server, run) = launch_with(&world, "--on-exit");
    let out = run
        .expect_output("1.1.0 is staged; it is installed when the app quits")
        .expect_output("has ended: applying the update it staged")
        .expect_output("demo 1.1.0 is installed (")
        .expect_output("its next launch is its trial")
        .expect_no_output("demo 1.1.0 running")
        .stdout();
    // The app went first, the helper applied after it had quit.
    let quit = out.find("] quitting").unwrap();
    let applied = out.find("has ended: applying").unwrap();
    assert!(quit < applied, "{out}");
    let app_pid = out
        .split("[demo pid ")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap();
    assert!(
        out.contains(&format!("pid {app_pid} has ended")),
        "the helper waited for another pid:\n{out}"
    );
    assert_ne!(tree_hashes(&world.install), before);
    let journal = leapfrog::internal::Journal::read(&world.backup)
        .unwrap()
        .unwrap();
    assert_eq!(journal.step, leapfrog::internal::Step::Applied);
    // The next start is the new version's watched trial.
    drop(server);
    world
        .launch("http://127.0.0.1:9/versions.txt")
        .expect_code(0)
        .expect_output("trial launch 1 of demo 1.1.0")
        .expect_output("demo 1.1.0 running")
        .expect_output("demo 1.1.0 is healthy");
    assert_eq!(tree_hashes(&world.install), expected_after_update(&world));
}

#[test]
fn update_a_stray_apply_on_exit_variable_is_ignored() {
    // Only the helper the app starts, for the stage it made, waits for the
    // app to end; a launch that merely has the variable goes on as usual.
    let world = World::new();
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    world
        .launch_env(
            &manifest_url(&server),
            &[("LEAPFROG_APPLY_ON_EXIT", "1:not-a-stage")],
        )
        .expect_code(0)
        .expect_output("LEAPFROG_APPLY_ON_EXIT is set, but names no update staged here; ignored")
        .expect_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&world.install), expected_after_update(&world));
}

#[test]
fn update_apply_failure_rolls_back() {
    // A folder of the user's sits where 1.1.0 wants to put a file: the
    // rename fails half way through applying, so everything goes back.
    let world = World::new();
    write_tree(
        &world.install,
        &[("assets/new.txt/mine.txt", "in the way\n")],
    );
    let before = tree_hashes(&world.install);
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let run = world
        .launch(&manifest_url(&server))
        .expect_code(0)
        .expect_output("applying the update failed")
        .expect_output("assets/new.txt")
        .expect_output("rolled back to 1.0.0")
        .expect_output("the update to 1.1.0 failed and was undone")
        .expect_output("a problem of this machine, not of the release")
        .expect_output("demo 1.1.0 could not be installed here")
        .expect_output("trying again after")
        .expect_no_output("demo 1.1.0 running");
    assert_eq!(
        run.stdout().matches("hopping out").count(),
        1,
        "{}",
        run.stdout()
    );
    let mut after = tree_hashes(&world.install);
    assert_eq!(
        after.remove("assets/new.txt/mine.txt").as_deref(),
        before.get("assets/new.txt/mine.txt").map(String::as_str)
    );
    let mut want = before.clone();
    want.remove("assets/new.txt/mine.txt");
    assert_eq!(after, want);
    let journal = leapfrog::internal::Journal::read(&world.backup)
        .unwrap()
        .unwrap();
    assert_eq!(journal.step, leapfrog::internal::Step::RolledBack);
    assert!(!journal.bad_release, "the release did nothing wrong");
    assert_eq!(journal.retries, 1);
    // Launched again within the wait: no retry yet, no new message.
    world
        .launch(&manifest_url(&server))
        .expect_code(0)
        .expect_output("demo 1.0.0 running")
        .expect_output("trying again after")
        .expect_no_output("hopping out")
        .expect_no_output("failed and was undone");
    assert_eq!(tree_hashes(&world.install), before);
    // The user moves the folder away; once the wait is over the same
    // release is tried again, and installs.
    fs::remove_dir_all(world.install.join("assets/new.txt")).unwrap();
    world
        .launch_env(&manifest_url(&server), &[("LEAPFROG_RETRY_AFTER", "0s")])
        .expect_code(0)
        .expect_output("trying demo 1.1.0 again: it failed here before through no fault of its own")
        .expect_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&world.install), expected_after_update(&world));
}

#[test]
fn update_asks_on_the_terminal() {
    // `script` gives the app a terminal; the answer comes from our pipe.
    let world = World::new();
    let before = tree_hashes(&world.install);
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let url = manifest_url(&server);
    let ask = |args: &[&str], answer: &str| world.on_terminal(&url, args, answer);
    // "n" (or Enter): remind me later.
    let out = ask(&[], "n\n");
    assert!(
        out.contains("demo 1.1.0 is available (you have 1.0.0"),
        "{out}"
    );
    assert!(
        out.contains("demo restarts to finish updating, once it is downloaded."),
        "{out}"
    );
    assert!(
        out.contains("Update now? [y]es, [l]ater (remind me), [s]kip this version"),
        "{out}"
    );
    assert!(
        out.contains("1.1.0 is available; not updating now"),
        "{out}"
    );
    let state = leapfrog::internal::State::read(&world.install).unwrap();
    assert_eq!(
        state.remind.map(|r| r.version).as_deref(),
        Some("1.1.0"),
        "the answer is kept"
    );
    assert_eq!(tree_hashes(&world.install), before);
    // Put off: not asked again at the next start...
    let out = ask(&[], "y\n");
    assert!(
        out.contains("1.1.0 was put off by the user; asking again after"),
        "{out}"
    );
    assert!(!out.contains("Update now?"), "{out}");
    // ... unless the user asks ("Check for updates").
    let out = ask(&["--check-now"], "y\n");
    assert!(out.contains("Update now?"), "{out}");
    assert!(out.contains("demo 1.1.0 running"), "{out}");
    assert_eq!(tree_hashes(&world.install), expected_after_update(&world));
}

#[test]
fn download_reports_progress() {
    let fx = fixture();
    let server = Server::start(&fx.releases, "127.0.0.1:0").unwrap();
    let manifest = leapfrog::publish::read_manifest(&fx.releases).unwrap();
    let release = manifest.newest("demo").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let progress: leapfrog::internal::ProgressFn =
        std::sync::Arc::new(move |done, total| sink.lock().unwrap().push((done, total)));
    let (sha, size) = leapfrog::internal::download(
        &format!("{}demo-1.1.0.tar.gz", server.url()),
        &dir.path().join("a.tar.gz"),
        &leapfrog::internal::Expect {
            sha256: release.sha256.as_deref(),
            size: release.size,
        },
        &leapfrog::internal::Limits::default(),
        Some(&progress),
    )
    .unwrap();
    assert_eq!(Some(sha.as_str()), release.sha256.as_deref());
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "not monotonic: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&(size, Some(size))));
    assert!(seen.iter().all(|&(_, total)| total == Some(size)));
}

#[test]
fn update_backup_is_hard_links_on_the_same_file_system() {
    use std::os::unix::fs::MetadataExt;
    let world = World::new();
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    world
        .launch(&manifest_url(&server))
        .expect_code(0)
        .expect_output("files as hard links")
        .expect_output("demo 1.1.0 running");
    // The user's file is the same inode in both, and so is the file 1.1.0
    // did not change (linked into staging, not unpacked, and left in
    // place); the replaced release files are not (apply renamed new files
    // in, never wrote into old ones).
    let ino = |p: &std::path::Path| fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(&world.install.join(USER_FILE)),
        ino(&world.backup.join(USER_FILE))
    );
    assert_eq!(
        ino(&world.install.join("assets/kept.txt")),
        ino(&world.backup.join("assets/kept.txt"))
    );
    assert_ne!(
        ino(&world.install.join("demo")),
        ino(&world.backup.join("demo"))
    );
    assert_eq!(
        fs::read_to_string(world.backup.join("README.txt")).unwrap(),
        "demo 1.0.0\n"
    );
}

#[test]
fn update_with_backup_on_another_file_system_copies() {
    // /dev/shm is a tmpfs: no hard links from the install dir, and the
    // staged files cross file systems when applied.
    let shm = std::path::Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("SKIPPED: no /dev/shm on this machine");
        return;
    }
    let world = World::new();
    let backup = tempfile::tempdir_in(shm).unwrap();
    let backup_dir = backup.path().join("demo.backup");
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    world
        .launch_env(
            &manifest_url(&server),
            &[("LEAPFROG_BACKUP_DIR", backup_dir.to_str().unwrap())],
        )
        .expect_code(0)
        .expect_output("hard links are not possible here")
        .expect_output("copying instead")
        .expect_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&world.install), expected_after_update(&world));
    assert_eq!(
        fs::read_to_string(backup_dir.join("README.txt")).unwrap(),
        "demo 1.0.0\n"
    );
}

#[test]
fn update_two_instances_never_interleave() {
    use crate::util::evil::{Behave, EvilServer};
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    // A slow archive keeps the first instance staging for a few seconds.
    server.set(
        "demo-1.1.0.tar.gz",
        Behave::Drip {
            chunk: 256 * 1024,
            every: std::time::Duration::from_millis(100),
        },
    );
    let url = server.manifest_url();
    let partial = world
        .backup
        .join(".leapfrog-download/demo-1.1.0.tar.gz.partial");
    std::thread::scope(|scope| {
        let first = scope.spawn(|| world.launch(&url));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !partial.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the first instance never started downloading"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        world
            .launch(&url)
            .expect_code(0)
            .expect_output("another copy of the program is updating")
            .expect_output("this one carries on unchanged")
            .expect_output("demo 1.0.0 running")
            .expect_no_output("hopping out");
        first
            .join()
            .unwrap()
            .expect_code(0)
            .expect_output("demo 1.1.0 running");
    });
    assert_eq!(tree_hashes(&world.install), expected_after_update(&world));
}

#[test]
fn rollback_on_request_restores_the_previous_version() {
    let world = World::new();
    let before = tree_hashes(&world.install);
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    // Nothing to roll back yet.
    run(
        leapfrog()
            .arg("rollback")
            .arg("--install")
            .arg(&world.install),
        std::time::Duration::from_secs(20),
    )
    .expect_code(1)
    .expect_output("holds no update to roll back");
    world
        .launch(&manifest_url(&server))
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    run(
        leapfrog()
            .arg("rollback")
            .arg("--install")
            .arg(&world.install),
        std::time::Duration::from_secs(20),
    )
    .expect_code(0)
    .expect_output("back from 1.1.0 to 1.0.0");
    assert_eq!(tree_hashes(&world.install), before);
    // The old version runs, and 1.1.0 is not offered again.
    world
        .launch(&manifest_url(&server))
        .expect_code(0)
        .expect_output("demo 1.0.0 running")
        .expect_output("1.1.0 was rolled back here before")
        .expect_no_output("hopping out")
        .expect_no_output("failed and was undone");
    assert_eq!(tree_hashes(&world.install), before);
}

#[test]
fn update_damaged_journal_is_set_aside_and_a_mix_restored() {
    let world = World::new();
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    world
        .launch(&manifest_url(&server))
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    let updated = tree_hashes(&world.install);
    let journal = world.backup.join("need_update");
    let dead = "http://127.0.0.1:9/versions.txt";

    // A torn journal over a complete release: set aside, nothing changed.
    fs::write(&journal, "{\"format\": 1, \"prog").unwrap();
    world
        .launch(dead)
        .expect_code(0)
        .expect_output("is damaged; set aside")
        .expect_output("holds a complete demo 1.1.0, so nothing was changed")
        .expect_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&world.install), updated);
    assert!(world.backup.join("need_update.damaged").exists());

    // An empty journal over a mix of releases: the backup's release is restored.
    fs::write(&journal, "").unwrap();
    fs::write(world.install.join("README.txt"), "demo 1.0.0\n").unwrap();
    fs::remove_file(world.install.join("assets/new.txt")).unwrap();
    world
        .launch(dead)
        .expect_code(0)
        .expect_output("was not a complete release; demo 1.0.0 was restored")
        .expect_output("demo 1.0.0 running");
    let mut restored = tree_hashes(&world.install);
    let mut before = tree_hashes(&world.backup);
    for t in [&mut restored, &mut before] {
        t.retain(|k, _| {
            !k.starts_with("need_update")
                && k != ".leapfrog-backup"
                && !k.starts_with(".leapfrog-log")
        });
    }
    assert_eq!(
        restored, before,
        "the install dir is the backup's release again"
    );
}
