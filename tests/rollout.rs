//! Release policy from the one signed manifest: staged rollouts and
//! channels, published with the `leapfrog` command and decided by the app.

use std::fs;
use std::time::Duration;

use leapfrog::serve::Server;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(60);

/// `leapfrog rollout` on the world's repository, signed by the publisher.
fn set_rollout(world: &World, version: &str, percent: u8) {
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
    .expect_code(0)
    .expect_output(&format!("offered to {percent}% of installs"));
}

fn install_id(world: &World) -> Option<String> {
    let state = leapfrog::internal::State::read(&world.install).unwrap();
    state.install_id
}

#[test]
fn rollout_halted_then_opened_to_everyone() {
    let world = World::signed();
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
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
    world.resign(|m| {
        for r in m
            .releases
            .iter_mut()
            .filter(|r| r.version.to_string() == "1.1.0")
        {
            r.channel = Some("beta".into());
        }
    });
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
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
