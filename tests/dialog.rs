//! The native Update / Later dialog, shown by rfd (through zenity on Linux)
//! on a real X display (Xvfb), answered with a real mouse click (xdotool).
//! Where they are not installed the tests say what to install and stop,
//! except in CI, where `.ci/run` installs them.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leapfrog::publish::PublishOptions;
use leapfrog::serve::Server;

use crate::util::evil::{Behave, EvilServer};
use crate::util::*;

fn installed() -> bool {
    let missing: Vec<_> = [
        "/usr/bin/Xvfb",
        "/usr/bin/zenity",
        "/usr/bin/xdotool",
        "/usr/bin/xwd",
    ]
    .into_iter()
    .filter(|p| !std::path::Path::new(p).is_file())
    .collect();
    if missing.is_empty() {
        return true;
    }
    let advice = format!("{missing:?} not installed: apt-get install xvfb zenity xdotool x11-apps");
    assert!(std::env::var_os("CI").is_none(), "{advice}");
    eprintln!("SKIPPED: {advice}");
    false
}

/// An X server on a free display number; killed when dropped.
struct Display {
    child: Child,
    name: String,
}

impl Display {
    /// Xvfb picks the display number itself (`-displayfd`) and says which
    /// once it accepts connections: tests running side by side can never
    /// share one server, nor tear down each other's.
    fn start() -> Display {
        let mut child = Command::new("/usr/bin/Xvfb")
            .args([
                "-displayfd",
                "1",
                // Without it the server resets when its last client (a
                // dialog, an xdotool call) leaves, and a dialog that
                // connects during the reset finds no display.
                "-noreset",
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (said, number) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
            let _ = said.send(line);
        });
        let line = number
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_default();
        let n: u32 = match line.trim().parse() {
            Ok(n) => n,
            Err(_) => {
                let _ = child.kill();
                panic!("Xvfb did not start: it said {line:?}, {:?}", child.wait());
            }
        };
        Display {
            child,
            name: format!(":{n}"),
        }
    }

    fn xdotool(&self, args: &[&str]) -> String {
        let out = Command::new("/usr/bin/xdotool")
            .args(args)
            .env("DISPLAY", &self.name)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits for the dialog and clicks the button `from_right` pixels left
    /// of its right edge (Update is the rightmost, Later next to it).
    /// Returns false when the app ended first, or no dialog came within two
    /// minutes (a liveness bound: a loaded machine can be slow to start one).
    fn click_button(&self, from_right: i64, app_ended: impl Fn() -> bool) -> bool {
        let Some(window) = self.wait_for_dialog(app_ended) else {
            return false;
        };
        let x = window.x + window.width - from_right;
        let y = window.y + window.height - 25;
        self.xdotool(&["mousemove", &x.to_string(), &y.to_string(), "click", "1"]);
        true
    }

    /// The dialog's window once it is shown; `None` when the app ended
    /// first, or no dialog came within two minutes.
    fn wait_for_dialog(&self, app_ended: impl Fn() -> bool) -> Option<Window> {
        self.wait_for_window("Update demo", app_ended)
    }

    /// The ids of the windows whose title matches `name`.
    fn windows(&self, name: &str) -> Vec<String> {
        let found = self.xdotool(&["search", "--name", name]);
        found.lines().map(str::to_owned).collect()
    }

    /// The window titled `name` once it is shown; `None` when the app
    /// ended first, or none came within two minutes.
    fn wait_for_window(&self, name: &str, app_ended: impl Fn() -> bool) -> Option<Window> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let window = loop {
            let found = self.xdotool(&["search", "--name", name]);
            if let Some(id) = found.lines().next() {
                break id.to_owned();
            }
            if app_ended() || Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        std::thread::sleep(Duration::from_millis(500));
        Some(self.geometry(window))
    }

    /// Where the window `id` is now.
    fn geometry(&self, id: String) -> Window {
        let geometry = self.xdotool(&["getwindowgeometry", "--shell", &id]);
        let value = |key: &str| -> i64 {
            geometry
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {geometry}"))
        };
        Window {
            id,
            x: value("X"),
            y: value("Y"),
            width: value("WIDTH"),
            height: value("HEIGHT"),
        }
    }

    /// A screenshot of the whole screen (xwd).
    fn screenshot(&self) -> Screenshot {
        let out = Command::new("/usr/bin/xwd")
            .args(["-root", "-silent"])
            .env("DISPLAY", &self.name)
            .output()
            .unwrap();
        assert!(out.status.success(), "xwd failed");
        Screenshot::from_xwd(out.stdout)
    }
}

/// Where a window is on the screen.
#[derive(Debug, Clone)]
struct Window {
    id: String,
    x: i64,
    y: i64,
    width: i64,
    height: i64,
}

/// The pixels of an X window dump (XWD, as `xwd` writes it).
struct Screenshot {
    width: i64,
    height: i64,
    bytes_per_pixel: usize,
    bytes_per_line: usize,
    pixels: Vec<u8>,
}

impl Screenshot {
    fn from_xwd(data: Vec<u8>) -> Screenshot {
        let field = |i: usize| u32::from_be_bytes(data[i * 4..i * 4 + 4].try_into().unwrap());
        let (header, width, height) = (field(0) as usize, field(4), field(5));
        let (bits_per_pixel, bytes_per_line, colours) = (field(11), field(12) as usize, field(19));
        let start = header + colours as usize * 12;
        Screenshot {
            width: i64::from(width),
            height: i64::from(height),
            bytes_per_pixel: bits_per_pixel as usize / 8,
            bytes_per_line,
            pixels: data[start..].to_vec(),
        }
    }

    /// The pixels of rows `top..bottom` between columns `left..right`.
    fn region(&self, left: i64, right: i64, top: i64, bottom: i64) -> Vec<&[u8]> {
        (top..bottom)
            .map(|y| {
                let row = y as usize * self.bytes_per_line;
                &self.pixels[row + left as usize * self.bytes_per_pixel
                    ..row + right as usize * self.bytes_per_pixel]
            })
            .collect()
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        // Terminated, Xvfb removes its own lock and socket.
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.child.wait();
    }
}

#[test]
fn dialog_later_then_update() {
    if !installed() {
        return;
    }
    let world = World::new();
    let before = tree_hashes(&world.install);
    let display = Display::start();
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
    let launch = |args: &[&str]| {
        let mut cmd = command(&world.install.join("demo"));
        cmd.args(args)
            .env("DISPLAY", &display.name)
            .env("LEAPFROG_MANIFEST_URL", &url);
        run(&mut cmd, Duration::from_secs(60))
    };
    let app = |args: &[&str], answer_from_right: i64| {
        std::thread::scope(|scope| {
            let run = scope.spawn(|| launch(args));
            let clicked = display.click_button(answer_from_right, || run.is_finished());
            let done = run.join().unwrap();
            assert!(
                clicked,
                "the dialog never appeared; the app said:\n{}{}",
                done.stdout(),
                done.stderr()
            );
            done
        })
    };
    // The buttons, right to left: Update, Remind me later, Skip this version.
    // "Remind me later": nothing changes, and the next start asks nothing.
    app(&[], 238)
        .expect_code(0)
        .expect_output("demo 1.1.0: reminding the user after")
        .expect_output("1.1.0 is available; not updating now");
    assert_eq!(tree_hashes(&world.install), before);
    launch(&[])
        .expect_code(0)
        .expect_output("1.1.0 was put off by the user");
    // "Check for updates" asks again; "Update": the app updates itself
    // and relaunches.
    app(&["--check-now"], 83)
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    assert_ne!(tree_hashes(&world.install), before);
    // The progress window closed by itself.
    assert!(display.windows("Updating demo").is_empty());
}

/// A server of the world's releases that sends the 1.1.0 archive `chunk`
/// bytes every `every` (with an ETag, and ranges honoured).
fn dripping(world: &World, chunk: usize, every: Duration) -> EvilServer {
    let server = EvilServer::start(world.releases.clone());
    server.set(
        "demo-1.1.0.tar.gz",
        Behave::Ranged {
            drip: Some((chunk, every)),
        },
    );
    server
}

/// Bytes that do not compress.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn dialog_progress_window_advances_and_cancel_leaves_the_old_version() {
    if !installed() {
        return;
    }
    // 1.1.0 carries 6 MiB that do not compress, served slowly.
    let world = World::new();
    let tree = world.dir.path().join("tree-1.1.0-big");
    app_tree(&tree, "1.1.0", None, FILES_1_1);
    fs::write(tree.join("data/big.bin"), noise(6 << 20)).unwrap();
    for entry in fs::read_dir(&world.releases).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for (tree, version) in [(&world.fixture.tree_1_0, "1.0.0"), (&tree, "1.1.0")] {
        let options = PublishOptions::new(tree, "demo", version, &world.releases);
        leapfrog::publish::publish(&options).unwrap();
    }
    let archive_size = fs::metadata(world.releases.join("demo-1.1.0.tar.gz"))
        .unwrap()
        .len();
    let before = tree_hashes(&world.install);
    let server = dripping(&world, 32 * 1024, Duration::from_millis(25));
    let display = Display::start();
    let launch = || {
        let mut cmd = command(&world.install.join("demo"));
        cmd.env("DISPLAY", &display.name)
            .env("LEAPFROG_MANIFEST_URL", server.manifest_url());
        run(&mut cmd, Duration::from_secs(120))
    };
    let done = std::thread::scope(|scope| {
        let app = scope.spawn(launch);
        let ended = || app.is_finished();
        assert!(display.click_button(83, ended), "no question dialog");
        let Some(w) = display.wait_for_window("Updating demo", ended) else {
            let done = app.join().unwrap();
            panic!(
                "no progress window; the app said:\n{}{}",
                done.stdout(),
                done.stderr()
            );
        };
        assert_eq!(
            display.xdotool(&["getwindowname", &w.id]).trim(),
            "Updating demo"
        );
        assert!(
            w.x >= 0 && w.y >= 0 && w.x + w.width <= 1024 && w.y + w.height <= 768,
            "{w:?}"
        );
        // The bar and the line of text above it move as bytes arrive.
        let shown = |s: &Screenshot| {
            s.region(w.x + 5, w.x + w.width - 5, w.y + 5, w.y + w.height - 50)
                .concat()
        };
        let first = shown(&display.screenshot());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            std::thread::sleep(Duration::from_millis(300));
            if shown(&display.screenshot()) != first {
                break;
            }
            assert!(
                Instant::now() < deadline && !app.is_finished(),
                "the progress window never changed"
            );
        }
        // Cancel (where the window is now: its text may have widened it).
        let w = display.geometry(w.id);
        let (x, y) = (w.x + w.width - CANCEL_FROM_RIGHT, w.y + w.height - 25);
        display.xdotool(&["mousemove", &x.to_string(), &y.to_string(), "click", "1"]);
        let done = app.join().unwrap();
        // The window is gone by the time the app has ended.
        assert!(display.windows("Updating demo").is_empty());
        done
    });
    done.expect_code(0)
        .expect_output("the user cancelled the download; nothing changed, 1.0.0 keeps running")
        .expect_output("the download of 1.1.0 was cancelled; still running the installed version")
        .expect_no_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&world.install), before);
    assert!(!world.backup.join("need_update").exists());
    let partial = world
        .backup
        .join(".leapfrog-download/demo-1.1.0.tar.gz.partial");
    let kept = fs::metadata(&partial).map_or(0, |m| m.len());
    assert!(kept > 0 && kept < archive_size, "{kept} of {archive_size}");
    // Next time the download continues where it stopped.
    server.set("demo-1.1.0.tar.gz", Behave::Ranged { drip: None });
    world
        .launch(&server.manifest_url())
        .expect_code(0)
        .expect_output(&format!(
            "resuming {}demo-1.1.0.tar.gz at byte",
            server.base
        ))
        .expect_output("demo 1.1.0 running");
}

/// Where zenity's progress window has its Cancel button: this many pixels
/// left of the window's right edge, 25 above its bottom.
const CANCEL_FROM_RIGHT: i64 = 142;

#[test]
fn dialog_long_notes_scroll_under_buttons_that_stay_and_skip_is_remembered() {
    if !installed() {
        return;
    }
    let world = World::new();
    // 1.1.0 comes with 300 lines of notes.
    let notes: String = (1..=300)
        .map(|i| format!("- change number {i} of this release\n"))
        .collect();
    fs::write(world.releases.join("demo-1.1.0.md"), &notes).unwrap();
    let path = world.releases.join("versions.txt");
    let mut manifest = leapfrog::Manifest::parse(&fs::read_to_string(&path).unwrap(), "t").unwrap();
    for r in &mut manifest.releases {
        if r.version.to_string() == "1.1.0" {
            r.notes = Some("demo-1.1.0.md".into());
        }
    }
    fs::write(&path, manifest.render()).unwrap();
    let display = Display::start();
    let server = Server::start(&world.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}versions.txt", server.url());
    let launch = || {
        let mut cmd = command(&world.install.join("demo"));
        cmd.env("DISPLAY", &display.name)
            .env("LEAPFROG_MANIFEST_URL", &url);
        run(&mut cmd, Duration::from_secs(60))
    };
    let done = std::thread::scope(|scope| {
        let app = scope.spawn(launch);
        let window = display.wait_for_dialog(|| app.is_finished());
        let Some(w) = window else {
            let done = app.join().unwrap();
            panic!(
                "the dialog never appeared; the app said:\n{}{}",
                done.stdout(),
                done.stderr()
            );
        };
        // The whole window, buttons too, is on the 1024x768 screen.
        let before = display.screenshot();
        assert_eq!((before.width, before.height), (1024, 768));
        assert!(
            w.x >= 0 && w.y >= 0 && w.x + w.width <= 1024 && w.y + w.height <= 768,
            "{w:?}"
        );
        // Scroll the notes with the mouse wheel.
        let (cx, cy) = (w.x + w.width / 2, w.y + w.height / 2);
        display.xdotool(&["mousemove", &cx.to_string(), &cy.to_string()]);
        display.xdotool(&["click", "--repeat", "15", "--delay", "50", "5"]);
        std::thread::sleep(Duration::from_millis(700));
        let after = display.screenshot();
        let notes_area = |s: &Screenshot| {
            s.region(w.x + 10, w.x + w.width - 10, w.y + 10, w.y + w.height - 60)
                .concat()
        };
        let buttons = |s: &Screenshot| {
            s.region(w.x, w.x + w.width, w.y + w.height - 45, w.y + w.height - 5)
                .concat()
        };
        assert_ne!(
            notes_area(&before),
            notes_area(&after),
            "the notes did not scroll"
        );
        assert_eq!(buttons(&before), buttons(&after), "the buttons moved");
        let row = buttons(&after);
        let distinct: std::collections::BTreeSet<&[u8]> =
            row.chunks(after.bytes_per_pixel).collect();
        assert!(distinct.len() > 2, "no buttons drawn");
        // "Skip this version" is the rightmost button.
        let (x, y) = (w.x + w.width - 83, w.y + w.height - 25);
        display.xdotool(&["mousemove", &x.to_string(), &y.to_string(), "click", "1"]);
        app.join().unwrap()
    });
    done.expect_code(0)
        .expect_output("demo 1.1.0: skipped by the user")
        .expect_output("1.1.0 is available; not updating now");
    let state = leapfrog::internal::State::read(&world.install).unwrap();
    assert_eq!(state.skipped.as_deref(), Some("1.1.0"));
    // The next start asks nothing.
    launch()
        .expect_code(0)
        .expect_output("1.1.0 was skipped by the user");
}

/// Waits (a liveness bound of 30 s) until no window titled `name` is left.
fn gone(display: &Display, name: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !display.windows(name).is_empty() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

#[test]
fn dialog_windows_never_outlive_the_app_even_killed() {
    if !installed() {
        return;
    }
    let world = World::new();
    let server = dripping(&world, 4 * 1024, Duration::from_millis(50));
    let display = Display::start();
    let start = || {
        let mut cmd = command(&world.install.join("demo"));
        cmd.env("DISPLAY", &display.name)
            .env("LEAPFROG_MANIFEST_URL", server.manifest_url())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        spawn(&mut cmd).unwrap()
    };
    // Killed while it asks: the question goes with it.
    let mut app = start();
    let ended = std::cell::Cell::new(false);
    let asked = display.wait_for_dialog(|| ended.get());
    assert!(asked.is_some(), "no question dialog");
    app.kill().unwrap();
    app.wait().unwrap();
    assert!(
        gone(&display, "Update demo"),
        "the question outlived the app"
    );
    // Killed while it downloads: the progress window goes with it.
    let mut app = start();
    assert!(display.click_button(83, || false), "no question dialog");
    let progress = display.wait_for_window("Updating demo", || false);
    assert!(progress.is_some(), "no progress window");
    app.kill().unwrap();
    app.wait().unwrap();
    assert!(
        gone(&display, "Updating demo"),
        "the progress window outlived the app"
    );
    assert!(display.windows("Update demo").is_empty());
}
