//! `leapfrog demo`: the whole story on loopback. Publishes 1.0.0 and 1.1.0 of
//! a small app, installs 1.0.0 with a user file, launches it, and checks that
//! it updated itself to 1.1.0 and relaunched.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use leapfrog::publish::{publish, PublishOptions};
use leapfrog::publish::{unpack, FILE_LIST};
use leapfrog::serve::Server;

use crate::Exit;

const USER_FILE: &str = "data/user-notes.txt";

pub fn run(keep: Option<PathBuf>) -> anyhow::Result<Exit> {
    let _temp;
    let root = match keep {
        Some(dir) => {
            if dir.exists() && fs::read_dir(&dir)?.next().is_some() {
                bail!(
                    "{} is not empty; give --keep a new or empty folder",
                    dir.display()
                );
            }
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            std::path::absolute(&dir)?
        }
        None => {
            _temp = tempfile::Builder::new().prefix("leapfrog-demo").tempdir()?;
            _temp.path().to_owned()
        }
    };
    let releases = root.join("releases");
    let build = root.join("build");
    let install = root.join("install").join("demo");
    let backup = root.join("install").join("demo.backup");
    fs::create_dir_all(&releases)?;

    step(1, "start the embedded server on loopback");
    let server = Server::start(&releases, "127.0.0.1:0")?;
    let url = server.url();
    println!("  serving {} at {url}", releases.display());

    step(
        2,
        "make a signing key; publish 1.0.0 and 1.1.0 of the demo app, signed",
    );
    let keys = root.join("keys");
    fs::create_dir_all(&keys)?;
    let (secret, public) = (keys.join("leapfrog.key"), keys.join("leapfrog.pub"));
    leapfrog::publish::keygen(&secret, &public, None)?;
    let public_b64 = fs::read_to_string(&public)?
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    println!(
        "  key pair: {} (the app trusts {public_b64})",
        secret.display()
    );
    let signing = leapfrog::publish::Signing {
        secret_key: Some(secret),
        ..Default::default()
    };
    let app = std::env::current_exe()?;
    for (version, files) in release_files() {
        let tree = build.join(version);
        make_tree(&tree, &app, version, &url, &public_b64, &files)?;
        let notes = build.join(format!("notes-{version}.txt"));
        fs::write(
            &notes,
            format!("demo {version}\n- {}\n", files_summary(version)),
        )?;
        let published = publish(&PublishOptions {
            notes: Some(notes),
            signing: signing.clone(),
            ..PublishOptions::new(tree, "demo", version, &releases)
        })?;
        println!(
            "  {} ({} bytes, sha256 {}...)",
            published.archive.display(),
            published.release.size.unwrap_or(0),
            &published.release.sha256.as_deref().unwrap_or("")[..16]
        );
    }
    print!(
        "{}",
        indent(&fs::read_to_string(releases.join("versions.txt"))?)
    );

    step(
        3,
        "install 1.0.0, and add a file of the user's that no release contains",
    );
    fs::create_dir_all(install.parent().expect("install has a parent"))?;
    unpack(releases.join("demo-1.0.0.tar.gz"), &install)?;
    fs::write(
        install.join(USER_FILE),
        "my own notes: leapfrog must never touch this\n",
    )?;
    println!("  installed into {}", install.display());
    let before = tree_hashes(&install)?;

    step(4, "launch the installed 1.0.0; it checks, asks (LEAPFROG_ASSUME_YES=1), stages, hops out and back");
    let lines = launch(&install.join("demo"))?;

    step(5, "check the result");
    let mut ok = true;
    let mut check = |what: &str, good: bool| {
        println!("  [{}] {what}", if good { "ok" } else { "FAILED" });
        ok &= good;
    };
    let pid_lines: Vec<(&str, &str)> = lines
        .iter()
        .filter_map(|l| Some((l.split("pid ").nth(1)?.split(']').next()?, l.as_str())))
        .collect();
    let started = pid_lines.first().map_or("", |(pid, _)| *pid);
    let others: std::collections::BTreeSet<&str> = pid_lines
        .iter()
        .map(|(pid, _)| *pid)
        .filter(|pid| *pid != started)
        .collect();
    check(
        "the relaunched app reports 1.1.0",
        lines.iter().any(|l| l.contains("demo 1.1.0 running")),
    );
    check(
        "the question (said yes to, and logged) carried 1.1.0's release notes",
        lines
            .iter()
            .any(|l| l.contains("| - adds assets/new.txt, changes assets/logo.txt")),
    );
    check(
        "1.1.0's after-update hook ran on its trial launch",
        lines
            .iter()
            .any(|l| l.contains("after-update hook: moving the demo's data from 1.0.0 to 1.1.0")),
    );
    check(
        &format!(
            "the process started (pid {started}) did every step and stayed to the end; \
             only 1.1.0's watched trial launch ran apart (pids {others:?})"
        ),
        cfg!(windows)
            || (others.len() == 1
                && pid_lines.last().is_some_and(|(pid, _)| *pid == started)
                && pid_lines
                    .iter()
                    .all(|(pid, l)| *pid == started || !l.contains("demo 1.0.0 running"))),
    );
    // leapfrog's own state file (the newest signed manifest accepted) is
    // checked on its own.
    let state_name = leapfrog::internal::STATE_NAME;
    let mut installed = tree_hashes(&install)?;
    installed.remove(state_name);
    let mut expected = tree_hashes(&build.join("1.1.0"))?;
    expected.insert(
        FILE_LIST.into(),
        installed_list_hash(&releases, "1.1.0", &root)?,
    );
    expected.insert(USER_FILE.into(), before[USER_FILE].clone());
    check(
        "the install dir is exactly the 1.1.0 release plus the user's file (and leapfrog's state)",
        installed == expected,
    );
    report_difference(&installed, &expected);
    let mut backed_up = tree_hashes(&backup)?;
    backed_up.remove(state_name);
    let journal = backed_up.remove(leapfrog::internal::JOURNAL_NAME);
    let marker = backed_up.remove(leapfrog::internal::layout::MARKER);
    let log_name = format!(
        "{}/{}",
        leapfrog::internal::layout::LOG_DIR,
        leapfrog::internal::layout::LOG
    );
    backed_up.remove(&log_name);
    backed_up.remove(leapfrog::internal::layout::LOG_DIR);
    check(
        "the backup holds 1.0.0 as it was installed (and leapfrog's marker)",
        backed_up == before && marker.is_some(),
    );
    report_difference(&backed_up, &before);
    check(
        "the update's journal is closed",
        journal.is_some() && journal_step(&backup) == "confirmed",
    );
    let state = leapfrog::internal::State::read(&install)?;
    check(
        "the app remembers the signed manifest it accepted (serial 2)",
        state.serial == Some(2),
    );
    let config = fs::read_to_string(install.join("data/config.json"))?;
    check(
        "data/config.json says current_version 1.1.0",
        config.contains("\"current_version\": \"1.1.0\""),
    );

    step(
        6,
        "publish 1.2.0 to 0% of installs (a staged rollout, halted); launch 1.1.0",
    );
    let tree = build.join("1.2.0");
    let files_1_2 = release_files()
        .pop()
        .map(|(_, files)| files)
        .unwrap_or_default();
    make_tree(&tree, &app, "1.2.0", &url, &public_b64, &files_1_2)?;
    publish(&PublishOptions {
        signing: signing.clone(),
        rollout: Some(0),
        ..PublishOptions::new(tree, "demo", "1.2.0", &releases)
    })?;
    let lines = launch(&install.join("demo"))?;
    check(
        "at 0% the app is not offered 1.2.0 and keeps running 1.1.0",
        lines.iter().any(|l| l.contains("demo 1.1.0 is up to date"))
            && !lines.iter().any(|l| l.contains("demo 1.2.0 running")),
    );

    step(
        7,
        "open 1.2.0 to 100% (leapfrog rollout re-signs versions.txt); launch 1.1.0 again",
    );
    let serial = leapfrog::publish::rollout(&releases, "demo", "1.2.0", 100, &signing)?;
    println!("  versions.txt is now at serial {serial}");
    let lines = launch(&install.join("demo"))?;
    check(
        "at 100% the app updates itself to 1.2.0",
        lines.iter().any(|l| l.contains("demo 1.2.0 running")),
    );

    step(
        8,
        "the update log: what a support person asks the user to send",
    );
    let log = backup.join(&log_name);
    let text = fs::read_to_string(&log).unwrap_or_default();
    println!("  {}:", log.display());
    for line in text.lines().filter(|l| l.contains("1.1.0 -> 1.2.0")) {
        println!("    {line}");
    }
    let told = |needle: &str| text.lines().any(|l| l.contains(needle));
    check(
        "the update log kept both updates, each staged, applied and confirmed",
        ["1.0.0 -> 1.1.0", "1.1.0 -> 1.2.0"].iter().all(|update| {
            ["staged", "applied", "confirmed"]
                .iter()
                .all(|step| told(&format!("{update}: {step}")))
        }) && told("demo 1.1.0: check of"),
    );

    if ok {
        println!("\nThe demo app updated itself from 1.0.0 to 1.1.0 through its backup copy,");
        println!("and to 1.2.0 once its staged rollout was opened.");
        println!("Releases: {}", releases.display());
        println!(
            "Install:  {}   Backup: {}",
            install.display(),
            backup.display()
        );
        Ok(Exit::Ok)
    } else {
        bail!("the demo did not end as expected (see FAILED above)")
    }
}

fn step(n: u32, what: &str) {
    println!("\n== {n}. {what}");
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  | {l}\n")).collect()
}

type Files = Vec<(&'static str, String)>;

fn release_files() -> Vec<(&'static str, Files)> {
    vec![
        (
            "1.0.0",
            vec![
                (
                    "README.txt",
                    "The leapfrog demo app, version 1.0.0.\n".into(),
                ),
                ("assets/logo.txt", "  (o o)  logo of 1.0.0\n".into()),
                (
                    "assets/old.txt",
                    "Only 1.0.0 ships this file; 1.1.0 drops it.\n".into(),
                ),
            ],
        ),
        (
            "1.1.0",
            vec![
                (
                    "README.txt",
                    "The leapfrog demo app, version 1.1.0.\n".into(),
                ),
                (
                    "assets/logo.txt",
                    "  (^ ^)  logo of 1.1.0, changed\n".into(),
                ),
                ("assets/new.txt", "New in 1.1.0.\n".into()),
            ],
        ),
    ]
}

fn files_summary(version: &str) -> &'static str {
    if version == "1.0.0" {
        "first release"
    } else {
        "adds assets/new.txt, changes assets/logo.txt, drops assets/old.txt"
    }
}

fn make_tree(
    tree: &Path,
    app: &Path,
    version: &str,
    url: &str,
    public_key: &str,
    files: &Files,
) -> anyhow::Result<()> {
    fs::create_dir_all(tree.join("data"))?;
    fs::copy(app, tree.join("demo")).with_context(|| format!("copying {}", app.display()))?;
    let config = serde_json::json!({
        "Update_app": {
            "server": url.trim_end_matches('/'),
            "api_get_version": "versions.txt",
            "main_app_name": "demo",
            "update_zip_name": "demo-{version}.tar.gz",
            "current_version": version,
            "public_key": public_key,
        }
    });
    let mut text = serde_json::to_string_pretty(&config)?;
    text.push('\n');
    fs::write(tree.join("data/config.json"), text)?;
    for (path, content) in files {
        let p = tree.join(path);
        fs::create_dir_all(p.parent().expect("has a parent"))?;
        fs::write(p, content)?;
    }
    Ok(())
}

/// Runs the installed app, echoing its output, and returns its lines.
fn launch(exe: &Path) -> anyhow::Result<Vec<String>> {
    let mut child = Command::new(exe)
        .env("LEAPFROG_ASSUME_YES", "1")
        // Each launch of the demo checks at once; a shipped app checks at
        // most once a day, after a random wait.
        .env("LEAPFROG_CHECK_EVERY_START", "1")
        .env_remove("LEAPFROG_MANIFEST_URL")
        .env_remove("LEAPFROG_BACKUP_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    println!("  started {} as pid {}", exe.display(), child.id());
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            lines.push(line);
        }
        lines
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the demo app did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines = reader.join().expect("reader thread");
    ensure!(status.success(), "the demo app exited with {status}");
    Ok(lines)
}

/// Every file and symlink below `dir` by relative path: sha256 of the
/// content, or `link:TARGET`. Directories as `dir`.
pub fn tree_hashes(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let rel = path
            .strip_prefix(root)?
            .to_string_lossy()
            .replace('\\', "/");
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_symlink() {
            out.insert(rel, format!("link:{}", fs::read_link(&path)?.display()));
        } else if meta.is_dir() {
            out.insert(rel, "dir".into());
            walk(root, &path, out)?;
        } else {
            out.insert(rel, leapfrog::publish::sha256_file(&path)?.0);
        }
    }
    Ok(())
}

fn installed_list_hash(releases: &Path, version: &str, root: &Path) -> anyhow::Result<String> {
    let scratch = root.join("build").join(format!("unpacked-{version}"));
    let _ = fs::remove_dir_all(&scratch);
    unpack(releases.join(format!("demo-{version}.tar.gz")), &scratch)?;
    let hash = leapfrog::publish::sha256_file(scratch.join(FILE_LIST))?.0;
    fs::remove_dir_all(&scratch)?;
    Ok(hash)
}

fn journal_step(backup: &Path) -> String {
    leapfrog::internal::Journal::read(backup)
        .ok()
        .flatten()
        .map(|j| format!("{:?}", j.step).to_lowercase())
        .unwrap_or_default()
}

fn report_difference(got: &BTreeMap<String, String>, want: &BTreeMap<String, String>) {
    for (k, v) in want {
        match got.get(k) {
            None => println!("      missing: {k}"),
            Some(g) if g != v => println!("      differs: {k}"),
            _ => {}
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        println!("      unexpected: {k}");
    }
}
