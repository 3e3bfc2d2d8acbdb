//! Fault injection (built with `--features failpoints`): the update is
//! killed at every point that changes the disk — every rename, unlink,
//! file creation and write, chmod, link, fsync of every step — and the
//! next launch must leave the install dir exactly the old release or exactly
//! the new one, with the user's file untouched. Then disk-full (ENOSPC) and
//! permission-denied (EACCES) at each write of the apply step: a clear
//! error, the old version running, nothing lost.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Mutex;

use leapfrog::serve::Server;

use crate::util::*;

type Tree = BTreeMap<String, String>;

fn tree(world: &World) -> Tree {
    let mut t = tree_hashes(&world.install);
    t.remove(leapfrog::internal::STATE_NAME);
    t
}

/// The points one whole update reaches, in order, and the tree it ends with.
fn probe() -> (Vec<String>, Tree, Tree) {
    let world = World::new();
    let old = tree(&world);
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let log = world.dir.path().join("points.log");
    world
        .launch_env(
            &format!("{}versions.txt", server.url()),
            &[("LEAPFROG_FP_LOG", log.to_str().unwrap())],
        )
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    let names: Vec<String> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let (n, name) = l.split_once(' ').unwrap();
            assert_eq!(
                n.parse::<usize>().unwrap(),
                i + 1,
                "points are numbered in order"
            );
            name.to_owned()
        })
        .collect();
    (names, old, tree(&world))
}

/// Runs `case(k)` for every k in `points`, on two threads, and returns the failures.
fn each(points: Vec<usize>, case: impl Fn(usize) -> Option<String> + Sync) -> Vec<String> {
    let failures = Mutex::new(Vec::new());
    let next = Mutex::new(points.into_iter());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let Some(k) = next.lock().unwrap().next() else {
                    break;
                };
                if let Some(failure) = case(k) {
                    failures.lock().unwrap().push(failure);
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

#[test]
fn crash_at_every_disk_change_recovers_old_or_new() {
    let _heavy = heavy();
    let (names, old, new) = probe();
    assert_ne!(old, new);
    let total = names.len();
    assert!(total >= 150, "only {total} points: {names:?}");
    // Both ways a file is staged (written from the archive, or an unchanged
    // one linked from the backup) and every flush of the stage are swept.
    for point in [
        "unpack write",
        "unpack link",
        "unpack sync",
        "unpack sync dir",
    ] {
        assert!(
            names.iter().any(|n| n == point),
            "no {point:?} in {names:?}"
        );
    }
    let failures = each((1..=total).collect(), |k| {
        let world = World::new();
        let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
        let url = format!("{}versions.txt", server.url());
        let crashed = world.launch_env(&url, &[("LEAPFROG_FAILPOINT", &format!("{k}:crash"))]);
        if crashed.output.status.success() {
            return Some(format!(
                "point {k} ({}): the update was not killed",
                names[k - 1]
            ));
        }
        // The next launch, with the host gone: it may only finish or undo.
        let next = world.launch("http://127.0.0.1:9/versions.txt");
        let after = tree(&world);
        let state = if after == old {
            "old"
        } else if after == new {
            "new"
        } else {
            return Some(format!(
                "point {k} ({}): a mix after the relaunch:\n{}",
                names[k - 1],
                next.stdout()
            ));
        };
        let running = if next.stdout().contains("demo 1.1.0 running") {
            "new"
        } else {
            "old"
        };
        (next.code() != Some(0) || running != state).then(|| {
            format!(
                "point {k} ({}): {state} files but the {running} version ran:\n{}",
                names[k - 1],
                next.stdout()
            )
        })
    });
    println!("crash points covered: {total}");
    assert!(
        failures.is_empty(),
        "{} of {total} crash points failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn disk_full_and_permission_denied_while_applying_keep_the_old_version() {
    let _heavy = heavy();
    let (names, old, _) = probe();
    // Every point from the first write of the apply step to its last.
    let first = names.iter().position(|n| n.starts_with("apply")).unwrap();
    let last = names.iter().rposition(|n| n.starts_with("apply")).unwrap();
    let applying: Vec<usize> = (first.saturating_sub(4) + 1..=last + 5).collect();
    assert!(applying.len() >= 15, "{applying:?}");
    let mut cases = 0;
    for (mode, message) in [
        ("enospc", "No space left on device"),
        ("eacces", "Permission denied"),
    ] {
        let failures = each(applying.clone(), |k| {
            let world = World::new();
            let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
            let run = world.launch_env(
                &format!("{}versions.txt", server.url()),
                &[("LEAPFROG_FAILPOINT", &format!("{k}:{mode}"))],
            );
            let out = run.stdout();
            let ok = run.code() == Some(0)
                && out.contains(message)
                && out.contains("rolled back to 1.0.0")
                && out
                    .trim_end()
                    .lines()
                    .any(|l| l.contains("demo 1.0.0 running from"))
                && !out.contains("demo 1.1.0 running")
                && tree(&world) == old;
            (!ok).then(|| format!("{mode} at point {k} ({}):\n{out}", names[k - 1]))
        });
        cases += applying.len();
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    println!("disk-full and permission-denied points covered: {cases}");
}

#[test]
fn crash_during_recovery_recovers_too() {
    let _heavy = heavy();
    // Killed half way through applying, then killed again at every point of
    // the recovery that the next launch runs: the launch after that still
    // ends with the old or the new release.
    let (names, old, new) = probe();
    let first_apply = names
        .iter()
        .position(|n| n.starts_with("apply rename"))
        .unwrap();
    let k = first_apply + 3; // 1-based: the third rename of the apply step
    let setup = |world: &World, url: &str| {
        let crashed = world.launch_env(url, &[("LEAPFROG_FAILPOINT", &format!("{k}:crash"))]);
        assert!(
            !crashed.output.status.success(),
            "point {k} did not kill the update"
        );
        let journal = leapfrog::internal::Journal::read(&world.backup)
            .unwrap()
            .unwrap();
        assert_eq!(journal.step, leapfrog::internal::Step::Applying);
    };
    // How many points the recovery reaches.
    let world = World::new();
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
    setup(&world, &url);
    let log = world.dir.path().join("recovery.log");
    world
        .launch_env(
            "http://127.0.0.1:9/versions.txt",
            &[("LEAPFROG_FP_LOG", log.to_str().unwrap())],
        )
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    let recovery = fs::read_to_string(&log).unwrap().lines().count();
    assert!(recovery >= 10, "{recovery}");
    let failures = each((1..=recovery).collect(), |j| {
        let world = World::new();
        let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
        setup(&world, &format!("{}versions.txt", server.url()));
        let dead = "http://127.0.0.1:9/versions.txt";
        let second = world.launch_env(dead, &[("LEAPFROG_FAILPOINT", &format!("{j}:crash"))]);
        if second.output.status.success() {
            return Some(format!("recovery point {j}: not killed"));
        }
        let last = world.launch(dead);
        let after = tree(&world);
        (last.code() != Some(0) || (after != old && after != new))
            .then(|| format!("recovery point {j}: a mix, or no start:\n{}", last.stdout()))
    });
    println!("recovery crash points covered: {recovery}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Names of leapfrog's temp and probe files left in the install dir.
fn debris(world: &World) -> Vec<String> {
    tree_hashes(&world.install)
        .into_keys()
        .filter(|k| {
            let name = k.rsplit('/').next().unwrap_or(k);
            name.starts_with(".leapfrog-tmp") || name.starts_with(".leapfrog-probe")
        })
        .collect()
}

/// After `world` was left by a killed run: the next launch (host gone)
/// leaves exactly `old` or `new`, runs that version, keeps the user's
/// file, and leaves none of leapfrog's debris in the install dir.
fn recovers(world: &World, old: &Tree, new: &Tree, what: &str) -> Option<String> {
    let next = world.launch("http://127.0.0.1:9/versions.txt");
    let after = tree(world);
    let state = if &after == old {
        "old"
    } else if &after == new {
        "new"
    } else {
        return Some(format!(
            "{what}: a mix after the relaunch:\n{}",
            next.stdout()
        ));
    };
    let running = if next.stdout().contains("demo 1.1.0 running") {
        "new"
    } else {
        "old"
    };
    if next.code() != Some(0) || running != state {
        return Some(format!(
            "{what}: {state} files but the {running} version ran:\n{}",
            next.stdout()
        ));
    }
    let left = debris(world);
    if !left.is_empty() {
        return Some(format!("{what}: debris left: {left:?}"));
    }
    None
}

#[test]
fn crash_during_the_rollback_of_a_late_apply_failure_ends_old() {
    let _heavy = heavy();
    // Applying fails late — an I/O error flushing the install dir, an I/O
    // error writing the `applied` journal, permission denied at the last
    // rename — and the backup copy rolls back; the rollback is then killed
    // at each of its disk changes. The next launch must finish the rollback
    // (or the update): never confirm a mix.
    let (names, old, new) = probe();
    let at = |name: &str, after: usize| {
        after
            + 1
            + names[after..]
                .iter()
                .position(|n| n == name)
                .unwrap_or_else(|| panic!("no {name} after {after}: {names:?}"))
    };
    let sync = at("apply sync dir", 0);
    let journal_write = at("write_atomic write", sync);
    let last_rename = names.iter().rposition(|n| n == "apply rename").unwrap() + 1;
    let mut covered = 0;
    for (k, mode) in [
        (sync, "eio"),
        (journal_write, "eio"),
        (last_rename, "eacces"),
    ] {
        let failure = format!("{k}:{mode}");
        // The points the failed run reaches after the failure: its rollback.
        let world = World::new();
        let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
        let log = world.dir.path().join("points.log");
        world
            .launch_env(
                &format!("{}versions.txt", server.url()),
                &[
                    ("LEAPFROG_FAILPOINT", failure.as_str()),
                    ("LEAPFROG_FP_LOG", log.to_str().unwrap()),
                ],
            )
            .expect_code(0)
            .expect_output("rolled back to 1.0.0")
            .expect_output("demo 1.0.0 running");
        assert_eq!(tree(&world), old, "{failure} ({})", names[k - 1]);
        let reached = fs::read_to_string(&log).unwrap().lines().count();
        let rollback: Vec<usize> = (k + 1..=reached).collect();
        assert!(rollback.len() >= 10, "{failure}: {rollback:?}");
        let failures = each(rollback.clone(), |j| {
            let world = World::new();
            let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
            let both = format!("{failure},{j}:crash");
            let killed = world.launch_env(
                &format!("{}versions.txt", server.url()),
                &[("LEAPFROG_FAILPOINT", both.as_str())],
            );
            if killed.output.status.success() {
                return Some(format!("{both}: not killed"));
            }
            recovers(&world, &old, &new, &format!("{both} ({})", names[k - 1]))
        });
        covered += rollback.len();
        assert!(
            failures.is_empty(),
            "{} of {} failed:\n{}",
            failures.len(),
            rollback.len(),
            failures.join("\n")
        );
    }
    println!("rollback crash points covered: {covered}");
}

#[test]
fn crash_during_the_repair_of_a_torn_journal_ends_old_or_new() {
    let _heavy = heavy();
    // An update done, then a torn journal over a mix of releases: the next
    // launch sets it aside and restores the backup's release. Killed at each
    // of that repair's disk changes, the launch after must still end with a
    // whole release, never a mix with no journal.
    let setup = |world: &World| {
        let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
        world
            .launch(&format!("{}versions.txt", server.url()))
            .expect_code(0)
            .expect_output("demo 1.1.0 running");
        fs::write(world.backup.join("need_update"), "{\"format\": 1, \"prog").unwrap();
        fs::write(world.install.join("README.txt"), "demo 1.0.0\n").unwrap();
        fs::remove_file(world.install.join("assets/new.txt")).unwrap();
    };
    let (_, old, new) = probe();
    let world = World::new();
    setup(&world);
    let log = world.dir.path().join("repair.log");
    world
        .launch_env(
            "http://127.0.0.1:9/versions.txt",
            &[("LEAPFROG_FP_LOG", log.to_str().unwrap())],
        )
        .expect_code(0)
        .expect_output("demo 1.0.0 was restored")
        .expect_output("demo 1.0.0 running");
    let repair = fs::read_to_string(&log).unwrap().lines().count();
    assert!(repair >= 10, "{repair}");
    let failures = each((1..=repair).collect(), |j| {
        let world = World::new();
        setup(&world);
        let killed = world.launch_env(
            "http://127.0.0.1:9/versions.txt",
            &[("LEAPFROG_FAILPOINT", &format!("{j}:crash"))],
        );
        if killed.output.status.success() {
            return Some(format!("repair point {j}: not killed"));
        }
        recovers(&world, &old, &new, &format!("repair point {j}"))
    });
    println!("torn-journal repair crash points covered: {repair}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
