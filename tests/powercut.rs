//! Power cuts, not kills. A kill leaves everything the process wrote in the
//! kernel's cache, which reaches the disk anyway; a power cut loses all that
//! was not flushed. Here the update runs on a small FUSE file system of the
//! test's own that keeps two states: what processes see, and what would
//! survive a cut. A file's data (and mode) become durable when it is
//! fsynced, a directory's entries when the directory is fsynced, and
//! everything at syncfs (which FUSE is not told of: the `failpoints` build
//! looks up `.leapfrog-syncfs` just before, and that look-up stands for
//! it). A new file whose name became durable before its data is an empty
//! file after the cut — the classic loss. The update is cut at each of its
//! flushes in turn, the durable state is written out at the same place,
//! and the next launch must leave exactly the old or the new release.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use leapfrog::serve::Server;

use crate::util::*;

mod fs_model;
use fs_model::PowerFs;

type Tree = BTreeMap<String, String>;
/// One run of the app on the power-cut file system, cut at flush `cut_at`
/// (none: never), then the durable state written out where it was mounted.
/// Returns how many flushes the run made, and what it printed.
fn run_cut(
    seed: &Path,
    mnt: &Path,
    url: &str,
    env: &[(&str, &str)],
    cut_at: Option<usize>,
) -> (usize, String) {
    let fs_ = PowerFs::new(seed);
    fs_.state().cut_at = cut_at;
    fs::create_dir_all(mnt).unwrap();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("leapfrog-powercut".into()),
        fuser::MountOption::Exec,
        fuser::MountOption::Suid,
    ];
    config.n_threads = Some(2);
    let session =
        fuser::spawn_mount(fs_.clone(), mnt, &config).expect("mounting the FUSE file system");
    let mut cmd = command(&mnt.join("apps/demo/demo"));
    cmd.env("LEAPFROG_ASSUME_YES", "1")
        .env("LEAPFROG_MANIFEST_URL", url)
        .env("LEAPFROG_FP_SYNCFS_PROBE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = spawn(&mut cmd).unwrap();
    let pgid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if fs_.state().cut.is_some() || Instant::now() > deadline {
            // The power goes: every process of the update at once.
            kill_group(pgid);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // The trial child may outlive the process that started it.
    kill_group(pgid);
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    std::thread::sleep(Duration::from_millis(50));
    session.umount_and_join().unwrap();
    let flushes = fs_.state().flushes;
    fs_.write_durable(mnt);
    (flushes, said)
}

fn kill_group(pgid: i32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(std::process::Stdio::null())
        .status();
}

/// A test dir: the releases (served from the real disk), and a seed tree
/// `apps/` with 1.0.0 installed and a user file, to load into the file system.
struct Bench {
    dir: tempfile::TempDir,
    world: World,
}

impl Bench {
    fn new() -> Bench {
        let world = World::new();
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed/apps");
        fs::create_dir_all(&seed).unwrap();
        copy_tree(&world.install, &seed.join("demo"));
        Bench { dir, world }
    }

    fn seed(&self) -> PathBuf {
        self.dir.path().join("seed")
    }

    fn mnt(&self, k: usize) -> PathBuf {
        self.dir.path().join(format!("mnt{k}"))
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn install_tree(mnt: &Path) -> Tree {
    let mut t = tree_hashes(&mnt.join("apps/demo"));
    t.remove(leapfrog::internal::STATE_NAME);
    t
}

/// Sweeps a cut over every flush of the run that `env` sets up; returns
/// how many cuts were made.
fn sweep(env: &[(&str, &str)], what: &str) -> usize {
    let bench = Bench::new();
    let server = Server::start(&bench.world.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
    let old = install_tree(&bench.seed());
    // The whole run, never cut: how many flushes, and where it ends.
    let (flushes, said) = run_cut(&bench.seed(), &bench.mnt(0), &url, env, None);
    let end = install_tree(&bench.mnt(0));
    assert!(flushes >= 5, "{what}: only {flushes} flushes:\n{said}");
    // The new release as a plain update (on the real disk) installs it.
    let new = {
        let world = World::new();
        world
            .launch(&format!("{}versions.txt", server.url()))
            .expect_code(0)
            .expect_output("demo 1.1.0 running");
        let mut t = tree_hashes(&world.install);
        t.remove(leapfrog::internal::STATE_NAME);
        t
    };
    assert!(
        end == old || end == new,
        "{what}: the uncut run ended with a mix:\n{said}"
    );
    let failures = Mutex::new(Vec::new());
    let next = Mutex::new(1..=flushes);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let Some(k) = next.lock().unwrap().next() else {
                    break;
                };
                let mnt = bench.mnt(k);
                let (_, said) = run_cut(&bench.seed(), &mnt, &url, env, Some(k));
                // Power back: the program is started again, host gone.
                let exe = mnt.join("apps/demo/demo");
                if fs::metadata(&exe).map_or(true, |m| m.len() == 0) {
                    failures.lock().unwrap().push(format!(
                        "{what}, cut at flush {k}: the program's executable is gone or empty (its data was never flushed)\n--- cut run:\n{said}"
                    ));
                    continue;
                }
                let mut cmd = command(&exe);
                cmd.env("LEAPFROG_MANIFEST_URL", "http://127.0.0.1:9/versions.txt");
                let next = run(&mut cmd, Duration::from_secs(60));
                let after = install_tree(&mnt);
                let state = if after == old {
                    "old"
                } else if after == new {
                    "new"
                } else {
                    failures.lock().unwrap().push(format!(
                        "{what}, cut at flush {k}: a mix (or lost data) after the restart: {:?}\n--- cut run:\n{said}\n--- restart:\n{}",
                        differing(&after, &old, &new),
                        next.stdout()
                    ));
                    continue;
                };
                let running = if next.stdout().contains("demo 1.1.0 running") { "new" } else { "old" };
                if next.code() != Some(0) || running != state {
                    failures.lock().unwrap().push(format!(
                        "{what}, cut at flush {k}: {state} files but the {running} version ran (exit {:?}):\n{}",
                        next.code(),
                        next.stdout()
                    ));
                }
                let _ = fs::remove_dir_all(&mnt);
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {flushes} power cuts broke the install:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    flushes
}

/// The paths where `after` differs from both `old` and `new`.
fn differing(after: &Tree, old: &Tree, new: &Tree) -> Vec<String> {
    let mut keys: Vec<&String> = after.keys().chain(old.keys()).chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| after.get(*k) != old.get(*k) && after.get(*k) != new.get(*k))
        .map(|k| {
            format!(
                "{k}: {}",
                if after.get(k).is_some_and(|h| h == EMPTY_SHA256) {
                    "empty"
                } else {
                    "other"
                }
            )
        })
        .collect()
}

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn powercut_at_every_flush_of_an_update_and_of_a_rollback() {
    let _heavy = heavy();
    if !crate::places::is_root() || !Path::new("/dev/fuse").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root with /dev/fuse: the power-cut test must run there"
        );
        eprintln!("SKIPPED: the power-cut file system is FUSE, mounted as root (/dev/fuse)");
        return;
    }
    let update = sweep(&[], "update");
    // A rollback: applying fails late (permission denied at its last
    // rename), and the backup copy puts 1.0.0 back.
    let names = {
        let world = World::new();
        let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
        let log = world.dir.path().join("points.log");
        world
            .launch_env(
                &format!("{}versions.txt", server.url()),
                &[("LEAPFROG_FP_LOG", log.to_str().unwrap())],
            )
            .expect_code(0);
        fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(|l| l.split_once(' ').unwrap().1.to_owned())
            .collect::<Vec<_>>()
    };
    let last_rename = names.iter().rposition(|n| n == "apply rename").unwrap() + 1;
    let failure = format!("{last_rename}:eacces");
    let rollback = sweep(&[("LEAPFROG_FAILPOINT", &failure)], "rollback");
    println!("power cuts covered: update {update}, rollback {rollback}");
}
