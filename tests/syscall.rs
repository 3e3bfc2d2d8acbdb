//! Faults at the system-call level, beside the fail points (which cover
//! only the places we thought of): the real binary runs a whole update under
//! `strace -f`, which makes the N-th call of one system call fail (in every
//! process and thread of the update) — every fsync, fdatasync, syncfs,
//! rename, link, unlink, mkdir, chmod and copy, and a sample of the writes.
//! The next launch must leave exactly the old or the new release, run that
//! version, keep the user's file, leave none of leapfrog's temp files, and
//! nothing may change beside the install.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use leapfrog::serve::Server;

use crate::util::*;

type Tree = BTreeMap<String, String>;

/// The system calls faulted, each with the error it gets, and how many of
/// each call's invocations are tried at most (a sample beyond that).
const FAULTS: &[(&str, &str)] = &[
    ("fsync", "EIO"),
    ("fdatasync", "EIO"),
    ("syncfs", "EIO"),
    ("rename", "EACCES"),
    ("renameat", "EACCES"),
    ("renameat2", "EXDEV"),
    ("link", "EACCES"),
    ("linkat", "EXDEV"),
    ("unlink", "EACCES"),
    ("unlinkat", "EIO"),
    ("mkdir", "EACCES"),
    ("mkdirat", "ENOSPC"),
    ("fchmod", "EPERM"),
    ("chmod", "EPERM"),
    ("fchmodat", "EPERM"),
    ("copy_file_range", "ENOSPC"),
    ("write", "ENOSPC"),
];
/// Writes are many (every 128 KiB of every file): this many, spread evenly.
const WRITE_SAMPLES: usize = 24;

fn strace() -> Option<&'static str> {
    let found = Command::new("strace").arg("-V").output().is_ok();
    if !found && std::env::var_os("CI").is_some() {
        panic!("strace is missing in CI: .ci/run installs it");
    }
    found.then_some("strace")
}

fn tree(world: &World) -> Tree {
    let mut t = tree_hashes(&world.install);
    t.remove(leapfrog::internal::STATE_NAME);
    t
}

/// Everything beside the install: a victim folder.
fn victim(world: &World) -> std::path::PathBuf {
    let victim = world.dir.path().join("apps/victim");
    write_tree(&victim, &[("precious.txt", "not leapfrog's\n")]);
    victim
}

/// The update of `world` under strace with `args`.
fn traced_update(world: &World, url: &str, args: &[String]) -> Run {
    let mut cmd = command(Path::new("strace"));
    cmd.args(["-f", "-qq"])
        .args(args)
        .arg("--")
        .arg(world.install.join("demo"))
        .env("LEAPFROG_ASSUME_YES", "1")
        .env("LEAPFROG_MANIFEST_URL", url);
    run(&mut cmd, Duration::from_secs(120))
}

/// How often one process or thread of a whole update calls each faulted
/// system call, at most.
fn probe() -> (BTreeMap<String, usize>, Tree, Tree) {
    let world = World::new();
    let old = tree(&world);
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let log = world.dir.path().join("strace.log");
    let set = FAULTS.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(",");
    traced_update(
        &world,
        &format!("{}versions.txt", server.url()),
        &[
            "-o".into(),
            log.display().to_string(),
            "-e".into(),
            format!("trace={set}"),
        ],
    )
    .expect_code(0)
    .expect_output("demo 1.1.0 running");
    let mut per_tracee: BTreeMap<(String, String), usize> = BTreeMap::new();
    for line in fs::read_to_string(&log).unwrap().lines() {
        let mut words = line.splitn(2, ' ');
        let (Some(tid), Some(rest)) = (words.next(), words.next()) else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("<...") {
            continue;
        }
        let Some(name) = rest.split('(').next() else {
            continue;
        };
        if FAULTS.iter().any(|(s, _)| *s == name) {
            *per_tracee
                .entry((tid.to_owned(), name.to_owned()))
                .or_default() += 1;
        }
    }
    let mut most = BTreeMap::new();
    for ((_, name), n) in per_tracee {
        let m = most.entry(name).or_insert(0);
        *m = n.max(*m);
    }
    (most, old, tree(&world))
}

#[test]
fn syscall_faults_anywhere_in_an_update_leave_old_or_new() {
    let _heavy = heavy();
    if strace().is_none() {
        eprintln!(
            "SKIPPED: install strace (apt-get install strace) to run the syscall fault sweep"
        );
        return;
    }
    let (most, old, new) = probe();
    assert_ne!(old, new);
    assert!(
        most.get("fsync").copied().unwrap_or(0) + most.get("fdatasync").copied().unwrap_or(0) >= 3,
        "the update flushes: {most:?}"
    );
    let mut cases = Vec::new();
    for (name, errno) in FAULTS {
        let n = most.get(*name).copied().unwrap_or(0);
        let picks: Vec<usize> = if *name == "write" && n > WRITE_SAMPLES {
            (0..WRITE_SAMPLES)
                .map(|i| 1 + i * (n - 1) / (WRITE_SAMPLES - 1))
                .collect()
        } else {
            (1..=n.min(65534)).collect()
        };
        cases.extend(picks.into_iter().map(|k| (*name, *errno, k)));
    }
    let failures = Mutex::new(Vec::new());
    let ended_old = std::sync::atomic::AtomicUsize::new(0);
    let next = Mutex::new(cases.clone().into_iter());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let Some((name, errno, k)) = next.lock().unwrap().next() else {
                    break;
                };
                match one_fault(name, errno, k, &old, &new) {
                    Err(f) => failures.lock().unwrap().push(f),
                    Ok("old") => {
                        ended_old.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(_) => {}
                }
            });
        }
    });
    let mut covered: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, _, _) in &cases {
        *covered.entry(name).or_default() += 1;
    }
    println!(
        "syscall faults covered: {} ({})",
        cases.len(),
        covered
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ended_old = ended_old.into_inner();
    println!(
        "faulted updates that ended with the old release: {ended_old}, with the new one: {}",
        cases.len() - ended_old
    );
    // The faults take effect: many of them stop the update.
    assert!(
        ended_old >= cases.len() / 4,
        "{ended_old} of {}",
        cases.len()
    );
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} faults broke the install:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// One update with the `k`-th call of `name` failing with `errno`, then a
/// launch with the host gone.
fn one_fault(
    name: &str,
    errno: &str,
    k: usize,
    old: &Tree,
    new: &Tree,
) -> Result<&'static str, String> {
    let what = format!("{name} #{k} -> {errno}");
    let world = World::new();
    let victim = victim(&world);
    let beside = tree_hashes(&victim);
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let faulted = traced_update(
        &world,
        &format!("{}versions.txt", server.url()),
        &[
            "-o".into(),
            "/dev/null".into(),
            "-e".into(),
            format!("trace={name}"),
            "-e".into(),
            format!("inject={name}:error={errno}:when={k}"),
        ],
    );
    drop(server);
    let next = world.launch("http://127.0.0.1:9/versions.txt");
    let after = tree(&world);
    let state = if &after == old {
        "old"
    } else if &after == new {
        "new"
    } else {
        return Err(format!(
            "{what}: a mix after the relaunch\n--- faulted run:\n{}\n--- next launch:\n{}",
            faulted.stdout(),
            next.stdout()
        ));
    };
    let running = if next.stdout().contains("demo 1.1.0 running") {
        "new"
    } else {
        "old"
    };
    if next.code() != Some(0) || running != state {
        return Err(format!(
            "{what}: {state} files, but the {running} version ran (exit {:?})\n--- faulted run:\n{}\n--- next launch:\n{}",
            next.code(),
            faulted.stdout(),
            next.stdout()
        ));
    }
    let debris: Vec<String> = after
        .keys()
        .filter(|k| {
            let name = k.rsplit('/').next().unwrap_or(k);
            name.starts_with(".leapfrog-tmp") || name.starts_with(".leapfrog-probe")
        })
        .cloned()
        .collect();
    if !debris.is_empty() {
        return Err(format!("{what}: debris left: {debris:?}"));
    }
    if fs::read_to_string(world.install.join(USER_FILE))
        .ok()
        .as_deref()
        != Some("the user's own notes\n")
    {
        return Err(format!("{what}: the user's file changed"));
    }
    if tree_hashes(&victim) != beside {
        return Err(format!("{what}: the folder beside the install changed"));
    }
    Ok(state)
}
