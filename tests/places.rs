//! Hostile places: a read-only install dir, a backup location that cannot
//! be made, a disk too full for the update, a disk that fills up while
//! staging. The update is refused (or abandoned) before the install dir
//! changes, with a message saying what to do, and the old version runs on.
//!
//! The read-only and full disks are real: small tmpfs and read-only bind
//! mounts, which need root (CI runs as root). Without root the read-only
//! dir is made with file modes, and the full-disk tests say they were skipped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use leapfrog::serve::Server;

use crate::util::*;

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A mount, undone when dropped.
pub(crate) struct Mount(PathBuf);

impl Mount {
    /// Runs `mount args...`; the last argument is the mount point.
    fn new(args: &[&str]) -> Mount {
        let status = Command::new("mount").args(args).status().unwrap();
        assert!(status.success(), "mount {args:?}");
        Mount(PathBuf::from(args.last().unwrap()))
    }

    /// A tmpfs of `bytes` at `dir`.
    pub(crate) fn tmpfs(dir: &Path, bytes: u64) -> Mount {
        fs::create_dir_all(dir).unwrap();
        Mount::new(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={bytes}"),
            "tmpfs",
            dir.to_str().unwrap(),
        ])
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

pub(crate) fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// Launches the update, and checks it was refused (or given up) with
/// `needles` in the output, the old version running, and the install dir
/// unchanged.
fn assert_refused(world: &World, env: &[(&str, &str)], needles: &[&str]) -> Run {
    let before = tree_hashes(&world.install);
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let mut run = world
        .launch_env(&format!("{}versions.txt", server.url()), env)
        .expect_code(0)
        .expect_output("demo 1.0.0 running")
        .expect_output("update failed, still running the installed version")
        .expect_no_output("hopping out")
        .expect_no_output("demo 1.1.0 running");
    for needle in needles {
        run = run.expect_output(needle);
    }
    let mut after = tree_hashes(&world.install);
    after.remove(leapfrog::internal::STATE_NAME);
    assert_eq!(after, before, "{}", run.stdout());
    run
}

#[test]
fn place_read_only_install_dir_is_refused_before_anything_changes() {
    let world = World::new();
    let install = world.install.to_str().unwrap().to_owned();
    let mount = if is_root() {
        // Root writes through file modes: a read-only bind mount it is.
        let bind = Mount::new(&["--bind", &install, &install]);
        let status = Command::new("mount")
            .args(["-o", "remount,bind,ro", &install])
            .status()
            .unwrap();
        assert!(status.success(), "remounting {install} read-only");
        Some(bind)
    } else {
        for dir in [&world.install, &world.install.join("assets")] {
            Command::new("chmod").arg("a-w").arg(dir).status().unwrap();
        }
        None
    };
    let why = if is_root() {
        "Read-only file system"
    } else {
        "Permission denied"
    };
    assert_refused(
        &world,
        &[],
        &[
            "update refused, nothing was changed",
            "new files cannot be written here",
            why,
            "Install the program in a folder this user can write to",
        ],
    );
    assert!(!world.backup.exists(), "a backup dir was made");

    // Writable again: the update goes through.
    drop(mount);
    if !is_root() {
        for dir in [&world.install, &world.install.join("assets")] {
            Command::new("chmod").arg("u+w").arg(dir).status().unwrap();
        }
    }
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    world
        .launch(&format!("{}versions.txt", server.url()))
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
}

#[test]
fn place_backup_dir_that_cannot_be_made_is_refused() {
    let world = World::new();
    let file = world.dir.path().join("a-file");
    fs::write(&file, "not a folder\n").unwrap();
    let backup = file.join("demo.backup");
    assert_refused(
        &world,
        &[("LEAPFROG_BACKUP_DIR", backup.to_str().unwrap())],
        &[
            "update refused, nothing was changed",
            "the backup dir cannot be made or written",
            "choose another place for it",
        ],
    );
}

#[test]
fn place_disk_too_full_for_the_update_is_refused() {
    if !is_root() {
        eprintln!("SKIPPED: a full disk is a small tmpfs, which needs root to mount");
        return;
    }
    let world = World::new();
    let small = world.dir.path().join("small");
    let _mount = Mount::tmpfs(&small, 4 << 20);
    let backup = small.join("demo.backup");
    assert_refused(
        &world,
        &[("LEAPFROG_BACKUP_DIR", backup.to_str().unwrap())],
        &[
            "update refused, nothing was changed",
            "not enough free space on its disk",
            "free some space and try again",
        ],
    );
    assert!(!backup.exists(), "a backup dir was made");
}

#[test]
fn place_disk_filling_up_while_staging_keeps_the_old_version() {
    if !is_root() {
        eprintln!("SKIPPED: a full disk is a small tmpfs, which needs root to mount");
        return;
    }
    // Room for the backup copy and the download (and the 16 MiB spare the
    // check asks for), but not for the unpacked release too: the first
    // check passes, and the one before unpacking (against the total the
    // release's file list vouches for) refuses before a byte is unpacked.
    let world = World::new();
    let archive = fs::metadata(world.releases.join("demo-1.1.0.tar.gz"))
        .unwrap()
        .len();
    let unpacked = dir_size(&world.fixture.tree_1_1);
    assert!(
        unpacked > 16 << 20,
        "the release fits in the spare: {unpacked}"
    );
    let room = dir_size(&world.install) + archive + (17 << 20);
    let small = world.dir.path().join("small");
    let _mount = Mount::tmpfs(&small, room);
    let backup = small.join("demo.backup");
    assert_refused(
        &world,
        &[("LEAPFROG_BACKUP_DIR", backup.to_str().unwrap())],
        &["not enough free space", ".leapfrog-staging"],
    );
    // What was staged is gone again.
    assert!(!backup.exists(), "the failed stage was left behind");
}

/// A stand-in for an AppImage: a script that does what the AppImage
/// runtime does (set APPIMAGE to the image file and APPDIR to its mount,
/// then run the program inside the mount), the mount being a folder.
#[cfg(target_os = "linux")]
fn appimage(tree: &Path, mount: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(tree).unwrap();
    let image = tree.join("Demo.AppImage");
    fs::write(
        &image,
        format!(
            "#!/bin/sh\nAPPIMAGE=\"$0\" APPDIR=\"{m}\" exec \"{m}/demo\" \"$@\"\n",
            m = mount.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&image, fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn places_an_appimage_replaces_its_image_file_and_never_writes_the_mount() {
    let dir = tempfile::tempdir().unwrap();
    let releases = dir.path().join("releases");
    // Each version's read-only image content (program and config).
    let mounts: Vec<PathBuf> = ["1.0.0", "1.1.0"]
        .iter()
        .map(|version| {
            let mount = dir.path().join(format!("mount-{version}"));
            app_tree(&mount, version, None, &[]);
            let tree = dir.path().join(format!("tree-{version}"));
            appimage(&tree, &mount);
            leapfrog::publish::publish(&leapfrog::publish::PublishOptions::new(
                &tree, "demo", *version, &releases,
            ))
            .unwrap();
            mount
        })
        .collect();
    let mounted_before: Vec<_> = mounts.iter().map(|m| tree_hashes(m)).collect();
    let install = dir.path().join("Apps/Demo");
    fs::create_dir_all(install.parent().unwrap()).unwrap();
    leapfrog::publish::unpack(releases.join("demo-1.0.0.tar.gz"), &install).unwrap();
    let server = Server::start(&releases, "127.0.0.1:0").unwrap();
    // An image that shares its folder with something else is not updated.
    fs::write(install.join("Other.AppImage"), "another program\n").unwrap();
    let mut cmd = command(&install.join("Demo.AppImage"));
    cmd.env("LEAPFROG_ASSUME_YES", "1").env(
        "LEAPFROG_MANIFEST_URL",
        format!("{}versions.txt", server.url()),
    );
    run(&mut cmd, std::time::Duration::from_secs(60))
        .expect_code(0)
        .expect_output("shares its folder with Other.AppImage")
        .expect_output("move the AppImage into a folder of its own")
        .expect_no_output("demo 1.1.0 running");
    assert!(!dir.path().join("Apps/Demo.backup").exists());
    fs::remove_file(install.join("Other.AppImage")).unwrap();
    let mut cmd = command(&install.join("Demo.AppImage"));
    cmd.env("LEAPFROG_ASSUME_YES", "1").env(
        "LEAPFROG_MANIFEST_URL",
        format!("{}versions.txt", server.url()),
    );
    let out = run(&mut cmd, std::time::Duration::from_secs(60))
        .expect_code(0)
        .expect_output(&format!(
            "exec {}",
            dir.path().join("Apps/Demo.backup/Demo.AppImage").display()
        ))
        .expect_output("demo 1.1.0 running")
        .expect_output("demo 1.1.0 is healthy")
        .stdout();
    // The image file is the new one; the old one is in the backup beside.
    assert_eq!(
        fs::read(install.join("Demo.AppImage")).unwrap(),
        fs::read(dir.path().join("tree-1.1.0/Demo.AppImage")).unwrap(),
        "{out}"
    );
    assert_eq!(
        fs::read(dir.path().join("Apps/Demo.backup/Demo.AppImage")).unwrap(),
        fs::read(dir.path().join("tree-1.0.0/Demo.AppImage")).unwrap()
    );
    // Nothing inside an image was written (its config keeps its version).
    let mounted_after: Vec<_> = mounts.iter().map(|m| tree_hashes(m)).collect();
    assert_eq!(mounted_before, mounted_after);
}
