//! Release policy from the one signed manifest: staged rollouts and
//! channels, published with the `leapfrog` command and decided by the app.

use std::fs;
use std::time::Duration;

use leapfrog::serve::Server;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(60);

/// `leapfrog rollout` on the world's repository, signed by the publisher.
fn rollout(world: &World, version: &str, percent: u8) -> Run {
    let key = world.fixture.secret_key.as_ref().unwrap();
    run(
        leapfrog()
            .args(["rollout", "--program", "demo", "--version", version])
            .args(["--percent", &percent.to_string(), "--repo"])
            .arg(&world.releases)
            .arg("--secret-key")
            .arg(key),
        LIMIT,
    )
}

fn set_rollout(world: &World, version: &str, percent: u8) {
    rollout(world, version, percent)
        .expect_code(0)
        .expect_output(&format!("offered to {percent}% of installs"));
}

/// The embedded server on the world's releases, and its manifest URL.
fn serve(world: &World) -> (Server, String) {
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
    (server, url)
}

/// A host serving the world's releases: the embedded server or nginx.
enum Host {
    Embedded(#[allow(dead_code)] Server),
    Nginx(#[allow(dead_code)] crate::servers::Daemon),
}

/// The world's releases on `nginx` (or the embedded server), and the
/// manifest URL; `None` where nginx is not installed (outside CI).
fn host(world: &World, nginx: bool) -> Option<(Host, String)> {
    if !nginx {
        let (server, url) = serve(world);
        return Some((Host::Embedded(server), url));
    }
    let daemon = crate::servers::nginx(&world.releases, None)?;
    let url = format!("http://127.0.0.1:{}/versions.txt", daemon.port);
    Some((Host::Nginx(daemon), url))
}

/// An install id that `version` at `percent` % leaves out.
fn id_left_out(world: &World, version: &str, percent: u8) -> String {
    let manifest = leapfrog::publish::read_manifest(&world.releases).unwrap();
    let release = manifest
        .releases
        .iter()
        .find(|r| r.version.to_string() == version)
        .unwrap();
    (0u32..)
        .map(|i| format!("{i:032x}"))
        .find(|id| release.bucket(id) >= f64::from(percent) / 100.0)
        .unwrap()
}

fn set_install_id(world: &World, id: &str) {
    let mut state = leapfrog::internal::State::read(&world.install).unwrap();
    state.install_id = Some(id.to_owned());
    state.write(&world.install).unwrap();
}

/// Edits the signed manifest's 1.1.0 line(s) and signs it again.
fn edit_1_1(world: &World, edit: impl Fn(&mut leapfrog::Release)) {
    world.resign(|m| {
        m.releases
            .iter_mut()
            .filter(|r| r.version.to_string() == "1.1.0")
            .for_each(&edit)
    });
}

fn install_id(world: &World) -> Option<String> {
    let state = leapfrog::internal::State::read(&world.install).unwrap();
    state.install_id
}

#[test]
fn rollout_halted_then_opened_to_everyone() {
    halted_then_opened(false);
}

#[test]
fn nginx_rollout_halted_then_opened_to_everyone() {
    halted_then_opened(true);
}

fn halted_then_opened(nginx: bool) {
    let world = World::signed();
    let Some((_host, url)) = host(&world, nginx) else {
        return;
    };
    let before = tree_hashes(&world.install);
    assert_eq!(install_id(&world), None, "no id before a rollout needs one");

    // 0 %: nobody gets 1.1.0; the install keeps running 1.0.0.
    set_rollout(&world, "1.1.0", 0);
    let manifest = fs::read_to_string(world.releases.join("versions.txt")).unwrap();
    assert!(manifest.contains("rollout=0"), "{manifest}");
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("demo 1.0.0 is up to date")
        .expect_no_output("downloading");
    let mut after = tree_hashes(&world.install);
    after.remove(leapfrog::internal::STATE_NAME);
    let mut want = before.clone();
    want.remove(leapfrog::internal::STATE_NAME);
    assert_eq!(after, want);
    // The install now has an id, kept from one check to the next.
    let id = install_id(&world).expect("an install id, made for the rollout");
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("demo 1.0.0 is up to date");
    assert_eq!(install_id(&world).as_deref(), Some(id.as_str()));

    // `leapfrog check` decides as the install would, given its id.
    run(
        leapfrog()
            .args(["check", &url, "--program", "demo", "--current", "1.0.0"])
            .args(["--install-id", &id]),
        LIMIT,
    )
    .expect_code(0)
    .expect_output("demo 1.0.0 is up to date on the stable channel");
    // `leapfrog status` says the same for the install, with its id and why.
    let config = world.install.join("data/config.json");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        text.replace("http://127.0.0.1:9", url.trim_end_matches("/versions.txt")),
    )
    .unwrap();
    run(
        leapfrog().args(["status", "--install"]).arg(&world.install),
        LIMIT,
    )
    .expect_code(0)
    .expect_output("demo 1.0.0")
    .expect_output("channel:    stable")
    .expect_output(&format!("install id: {id}"))
    .expect_output("the publisher's key in data/config.json")
    .expect_output("signature verified")
    .expect_output("last check: 20")
    .expect_output("(up to date)")
    .expect_output("bucket:  0.")
    .expect_output("1.1.0 is newer, but its rollout is halted (0% of installs)");

    // 100 %: everyone, this install too.
    set_rollout(&world, "1.1.0", 100);
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    assert_eq!(install_id(&world).as_deref(), Some(id.as_str()));
}

#[test]
fn rollout_on_another_channel_is_not_offered() {
    let world = World::signed();
    // Republish 1.1.0's line on the beta channel.
    edit_1_1(&world, |r| {
        r.channel = Some("beta".into());
    });
    let (_server, url) = serve(&world);
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("demo 1.0.0 is up to date");
    // The app follows the beta channel (LEAPFROG_CHANNEL): 1.1.0 installs.
    world
        .launch_env(&url, &[("LEAPFROG_CHANNEL", "beta")])
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
}

#[test]
fn required_update_overrides_the_rollout_and_is_not_declined() {
    let world = World::signed();
    // 1.1.0 sets a floor above the running 1.0.0, and is halted (0 %).
    edit_1_1(&world, |r| {
        r.min_version = Some("1.1.0".parse().unwrap());
        r.rollout = Some(0);
    });
    let (_server, url) = serve(&world);
    // `leapfrog check --json`: without the publisher's key nothing is
    // required (the rollout holds); with it, required, exit status 11.
    let check = |key: Option<&std::path::Path>| {
        let mut cmd = leapfrog();
        cmd.args(["check", &url, "--program", "demo", "--current", "1.0.0"])
            .args(["--install-id", "00112233445566778899aabbccddeeff", "--json"]);
        if let Some(key) = key {
            cmd.arg("--public-key").arg(key);
        }
        run(&mut cmd, LIMIT)
    };
    let unsigned = check(None).expect_code(0);
    assert!(
        unsigned.stdout().contains("\"status\":\"up_to_date\""),
        "{}",
        unsigned.stdout()
    );
    let public = world.public_key_file();
    let run_json = check(Some(&public)).expect_code(11);
    let decision: serde_json::Value = serde_json::from_str(run_json.stdout().trim()).unwrap();
    assert_eq!(decision["status"], "required", "{decision}");
    assert_eq!(decision["version"], "1.1.0", "{decision}");
    assert_eq!(decision["channel"], "stable", "{decision}");
    assert!(decision["bucket"].is_f64(), "{decision}");
    assert!(
        decision["reason"]
            .as_str()
            .unwrap()
            .contains("minimum version"),
        "{decision}"
    );
    // Nobody to ask (no display, no terminal, no assume-yes): a required
    // update is installed all the same, the halted rollout notwithstanding.
    let mut cmd = command(&world.install.join("demo"));
    cmd.env("LEAPFROG_MANIFEST_URL", &url)
        .env_remove("LEAPFROG_ASSUME_YES")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    run(&mut cmd, LIMIT)
        .expect_code(0)
        .expect_output("updating to 1.1.0 is required")
        .expect_output("demo 1.1.0 running");
}

#[test]
fn a_floor_is_never_lowered_by_a_later_release() {
    let world = World::signed();
    let key = world.fixture.secret_key.as_ref().unwrap();
    let publish = |version: &str, min: &str| {
        let tree = world.dir.path().join(format!("tree-{version}"));
        if !tree.exists() {
            app_tree(&tree, version, world.fixture.public_key.as_deref(), &[]);
        }
        run(
            leapfrog()
                .arg("publish")
                .arg(&tree)
                .args(["--program", "demo", "--version", version])
                .args(["--min-version", min, "--repo"])
                .arg(&world.releases)
                .arg("--secret-key")
                .arg(key),
            LIMIT,
        )
    };
    publish("1.2.0", "1.1.0").expect_code(0);
    publish("1.3.0", "1.0.0")
        .expect_code(1)
        .expect_output("would lower the floor 1.1.0");
    let manifest = fs::read_to_string(world.releases.join("versions.txt")).unwrap();
    assert!(manifest.contains("min_version=1.1.0"), "{manifest}");
    assert!(!manifest.contains("demo 1.3.0"), "{manifest}");
}

/// The world's signed manifest with `lines` added, signed again.
fn with_lines(world: &World, lines: &str) {
    let text = fs::read_to_string(world.releases.join("versions.txt")).unwrap();
    world.sign_text(&format!("{text}{lines}"), None);
}

#[test]
fn each_target_gets_its_release_and_a_broken_line_breaks_only_its_own() {
    let this = leapfrog::internal::this_target();
    let os = this.split('-').next().unwrap().to_owned();
    // A broken line and a newer release for another platform: this one
    // updates as usual.
    let world = World::signed();
    with_lines(
        &world,
        "demo 1.2.0 target=plan9-mips sha256=broken\ndemo 1.3.0 target=plan9-mips\n",
    );
    let (_server, url) = serve(&world);
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("the release line for plan9-mips cannot be read")
        .expect_output("demo 1.1.0 running")
        .expect_no_output("1.3.0");

    // A broken line for this platform's system is an error for it, naming
    // the line; nothing changes.
    let world = World::signed();
    with_lines(&world, &format!("demo 1.2.0 target={os} sha256=broken\n"));
    let before = tree_hashes(&world.install);
    let (_server, url) = serve(&world);
    world
        .launch(&url)
        .expect_code(0)
        .expect_output(&format!("the release line for {os}"))
        .expect_output("demo 1.0.0 running")
        .expect_no_output("demo 1.1.0 running");
    let mut after = tree_hashes(&world.install);
    after.remove(leapfrog::internal::STATE_NAME);
    let mut want = before;
    want.remove(leapfrog::internal::STATE_NAME);
    assert_eq!(after, want);
    // The publisher cannot rewrite it either, until the line is fixed.
    rollout(&world, "1.1.0", 50)
        .expect_code(1)
        .expect_output("cannot be read; fix them first");
}

#[test]
fn going_back_to_a_lower_channel_only_when_the_app_asks() {
    let world = World::signed();
    edit_1_1(&world, |r| {
        r.channel = Some("beta".into());
    });
    let (_server, url) = serve(&world);
    world
        .launch_env(&url, &[("LEAPFROG_CHANNEL", "beta")])
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    // Back on stable, whose newest is 1.0.0: not by itself...
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("demo 1.1.0 is up to date")
        .expect_no_output("demo 1.0.0 running");
    // ... only when the app asks for it.
    let mut cmd = command(&world.install.join("demo"));
    cmd.arg("--downgrade-to-channel")
        .env("LEAPFROG_ASSUME_YES", "1")
        .env("LEAPFROG_MANIFEST_URL", &url);
    run(&mut cmd, LIMIT)
        .expect_code(0)
        .expect_output("going down to 1.0.0, the newest release on the stable channel")
        .expect_output("demo 1.0.0 running");
}

#[test]
fn rollout_schedule_moves_with_the_signing_time() {
    schedule_moves_with_the_signing_time(false);
}

#[test]
fn nginx_rollout_schedule_moves_with_the_signing_time() {
    schedule_moves_with_the_signing_time(true);
}

fn schedule_moves_with_the_signing_time(nginx: bool) {
    let world = World::signed();
    let Some((_host, url)) = host(&world, nginx) else {
        return;
    };
    let key = world.fixture.secret_key.as_ref().unwrap();
    // Everyone, two seconds after the manifest is signed.
    run(
        leapfrog()
            .args(["rollout", "--program", "demo", "--version", "1.1.0"])
            .args(["--schedule", "100%@+2s", "--repo"])
            .arg(&world.releases)
            .arg("--secret-key")
            .arg(key),
        LIMIT,
    )
    .expect_code(0)
    .expect_output("offered to installs on the schedule 100%@+2s");
    let manifest = fs::read_to_string(world.releases.join("versions.txt")).unwrap();
    assert!(manifest.contains("#+ signed "), "{manifest}");
    assert!(
        manifest.contains("#+ demo 1.1.0 ") && manifest.contains(" schedule=100@"),
        "{manifest}"
    );
    // Past the step by this machine's clock, but not by the signing time:
    // the client's clock does not let it in early.
    std::thread::sleep(Duration::from_secs(3));
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("demo 1.0.0 is up to date");
    run(
        leapfrog()
            .args([
                "check",
                &url,
                "--program",
                "demo",
                "--current",
                "1.0.0",
                "--json",
            ])
            .args(["--install-id", "00112233445566778899aabbccddeeff"]),
        LIMIT,
    )
    .expect_code(0)
    .expect_output("its rollout schedule has not reached its first step");
    // Signed again (the publisher's scheduled `leapfrog refresh`, which
    // re-signs only the freshness file): the step is reached, and the
    // install updates.
    let before_refresh = fs::read(world.releases.join("versions.txt")).unwrap();
    run(
        leapfrog()
            .args(["refresh", "--repo"])
            .arg(&world.releases)
            .arg("--secret-key")
            .arg(key),
        LIMIT,
    )
    .expect_code(0);
    assert_eq!(
        fs::read(world.releases.join("versions.txt")).unwrap(),
        before_refresh
    );
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    // The schedule reached everyone: at the next rewrite of the manifest
    // (here a yank of 1.0.0) the line is for everyone again, older clients
    // too.
    run(
        leapfrog()
            .args(["yank", "--program", "demo", "--version", "1.0.0", "--repo"])
            .arg(&world.releases)
            .arg("--secret-key")
            .arg(key),
        LIMIT,
    )
    .expect_code(0);
    let manifest = fs::read_to_string(world.releases.join("versions.txt")).unwrap();
    assert!(
        manifest
            .lines()
            .any(|l| l.starts_with("demo 1.1.0 ") && !l.contains("schedule=")),
        "{manifest}"
    );
}

#[test]
fn a_user_who_checks_is_let_into_a_rollout_but_not_a_halted_one() {
    let world = World::signed();
    let (_server, url) = serve(&world);
    set_rollout(&world, "1.1.0", 1);
    set_install_id(&world, &id_left_out(&world, "1.1.0", 1));
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("demo 1.0.0 is up to date");
    let check_now = |expect: &str| {
        let mut cmd = command(&world.install.join("demo"));
        cmd.arg("--check-now")
            .env("LEAPFROG_ASSUME_YES", "1")
            .env("LEAPFROG_MANIFEST_URL", &url);
        run(&mut cmd, LIMIT).expect_code(0).expect_output(expect)
    };
    // Halted: not even for the user who asks.
    set_rollout(&world, "1.1.0", 0);
    check_now("demo 1.0.0 is up to date");
    // At 1 %: the user who asks gets it.
    set_rollout(&world, "1.1.0", 1);
    check_now("demo 1.1.0 running");
}

/// The last commit before release policy: its leapfrog knows none of
/// channels, rollouts, targets or the signing time.
const OLDER_CLIENT: &str = "87ac76d";

/// The `leapfrog` binary of [`OLDER_CLIENT`], built once from this
/// repository's history (offline, into `target/older-client`).
fn older_client() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = root.join("target").join("older-client");
    let bin = base.join("target/debug/leapfrog");
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut built = BUILT.lock().unwrap();
    if *built && bin.is_file() {
        return bin;
    }
    let src = base.join(OLDER_CLIENT);
    if !src.join("Cargo.toml").is_file() {
        let archive = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["archive", "--format=tar", OLDER_CLIENT])
            .output()
            .expect("git");
        assert!(
            archive.status.success(),
            "the older client is built from commit {OLDER_CLIENT} of this repository's history; \
             run the tests in a git clone with history: {}",
            String::from_utf8_lossy(&archive.stderr)
        );
        fs::create_dir_all(&src).unwrap();
        tar::Archive::new(&archive.stdout[..]).unpack(&src).unwrap();
    }
    let _turn = heavy();
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--offline", "--quiet", "--bin", "leapfrog"])
        .args(["--no-default-features", "--features", "cli"])
        .arg("--manifest-path")
        .arg(src.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", base.join("target"))
        .status()
        .unwrap();
    assert!(status.success(), "building the older client failed");
    *built = true;
    bin
}

#[test]
fn an_older_client_takes_only_the_releases_it_understands() {
    // Installed: 1.0.0 of an app built with the older leapfrog.
    let world = World::signed();
    fs::copy(older_client(), world.install.join("demo")).unwrap();
    // Published with this leapfrog: releases the older client must not
    // take (another platform's, a second line of one version, a halted
    // rollout, another channel, a schedule), signed at a signing time.
    let key = world.fixture.secret_key.as_ref().unwrap();
    let publish = |version: &str, args: &[&str]| {
        let tree = world.dir.path().join(format!("tree-{version}"));
        if !tree.exists() {
            app_tree(&tree, version, world.fixture.public_key.as_deref(), &[]);
        }
        run(
            leapfrog()
                .arg("publish")
                .arg(&tree)
                .args(["--program", "demo", "--version", version])
                .args(args)
                .arg("--repo")
                .arg(&world.releases)
                .arg("--secret-key")
                .arg(key),
            LIMIT,
        )
        .expect_code(0);
    };
    publish("1.2.0", &["--target", "plan9-mips"]);
    publish("1.2.0", &["--target", "linux"]);
    publish("1.3.0", &["--rollout", "0"]);
    publish("1.4.0", &["--channel", "beta"]);
    publish("1.5.0", &["--rollout-schedule", "10%@+1d,100%@+7d"]);
    let text = fs::read_to_string(world.releases.join("versions.txt")).unwrap();
    assert!(text.contains("\n#+ signed "), "{text}");
    let (_server, url) = serve(&world);
    // The older client checks the signature, reads the manifest and takes
    // 1.1.0, the newest release meant for everyone; the new version runs.
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("signature verified")
        .expect_output("demo 1.1.0 running")
        .expect_no_output("1.2.0")
        .expect_no_output("1.3.0")
        .expect_no_output("1.4.0")
        .expect_no_output("1.5.0");
}
