//! The native Update / Later dialog, shown by rfd (through zenity on Linux)
//! on a real X display (Xvfb), answered with a real mouse click (xdotool).
//! Where they are not installed the tests say what to install and stop,
//! except in CI, where `.ci/run` installs them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leapfrog::serve::Server;

use crate::util::*;

fn installed() -> bool {
    let missing: Vec<_> = ["/usr/bin/Xvfb", "/usr/bin/zenity", "/usr/bin/xdotool"]
        .into_iter()
        .filter(|p| !std::path::Path::new(p).is_file())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let advice = format!("{missing:?} not installed: apt-get install xvfb zenity xdotool");
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
    fn start() -> Display {
        for n in 90..140 {
            if std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                || std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists()
            {
                continue;
            }
            let name = format!(":{n}");
            let child = Command::new("/usr/bin/Xvfb")
                .args([
                    name.as_str(),
                    "-screen",
                    "0",
                    "1024x768x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                assert!(Instant::now() < deadline, "Xvfb did not start on {name}");
                std::thread::sleep(Duration::from_millis(50));
            }
            return Display { child, name };
        }
        panic!("no free X display number");
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
        let deadline = Instant::now() + Duration::from_secs(120);
        let window = loop {
            let found = self.xdotool(&["search", "--name", "Update demo"]);
            if let Some(id) = found.lines().next() {
                break id.to_owned();
            }
            if app_ended() || Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        std::thread::sleep(Duration::from_millis(500));
        let geometry = self.xdotool(&["getwindowgeometry", "--shell", &window]);
        let value = |key: &str| -> i64 {
            geometry
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {geometry}"))
        };
        let x = value("X") + value("WIDTH") - from_right;
        let y = value("Y") + value("HEIGHT") - 25;
        self.xdotool(&["mousemove", &x.to_string(), &y.to_string(), "click", "1"]);
        true
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.child.kill();
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
    let app = |answer_from_right: i64| {
        std::thread::scope(|scope| {
            let run = scope.spawn(|| {
                let mut cmd = command(&world.install.join("demo"));
                cmd.env("DISPLAY", &display.name)
                    .env("LEAPFROG_MANIFEST_URL", &url);
                run(&mut cmd, Duration::from_secs(60))
            });
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
    // "Later": nothing changes.
    app(145)
        .expect_code(0)
        .expect_output("1.1.0 is available; not updating now");
    assert_eq!(tree_hashes(&world.install), before);
    // "Update": the app updates itself and relaunches.
    app(52).expect_code(0).expect_output("demo 1.1.0 running");
    assert_ne!(tree_hashes(&world.install), before);
}
