//! Figures for a whole update, side by side with the reference tools.
//!
//! Run with `cargo bench` (a release of about 200 MB in 2,000 files; set
//! `LEAPFROG_BENCH_MB` and `LEAPFROG_BENCH_FILES` for another size). Needs
//! `curl`, `tar`, `cp` and GNU `time` (`/usr/bin/time`). It prints:
//!
//! 1. download throughput from the embedded server: leapfrog's streaming,
//!    hashing download vs `curl -o`, best of three each;
//! 2. the time from "archive verified" to "new version running" in a real
//!    update of the demo app (unpack and check into staging, journal, hop
//!    out, apply, hop home) vs `tar xzf` of the same archive plus `cp -a` of
//!    the install dir; and the backup copy's own time;
//! 3. the updating app's peak memory (max RSS over all its execs).
//!
//! These are figures to read, not pass/fail tests.

#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use leapfrog::internal::{download, Expect, Limits};
use leapfrog::publish::{publish, PublishOptions};
use leapfrog::serve::Server;

const BIN: &str = env!("CARGO_BIN_EXE_leapfrog");

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

/// Writes `files` files totalling about `total` bytes: one in a hundred is
/// large, the rest small, spread over 20 folders.
fn make_payload(dir: &Path, total: u64, files: u64, variant: u64, all_random: bool) -> u64 {
    let large_count = (files / 100).max(1);
    let large = total / 2 / large_count;
    let small = (total / 2) / (files - large_count).max(1);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut written = 0;
    for i in 0..files {
        let size = if i % 100 == 0 {
            large
        } else {
            small / 2 + rng.next() % small.max(1)
        };
        let path = dir.join(format!("payload/d{:02}/f{i:05}.dat", i % 20));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut data = Vec::with_capacity(size as usize);
        if all_random || i % 2 == 0 {
            while (data.len() as u64) < size {
                data.extend_from_slice(&rng.next().to_le_bytes());
            }
        } else {
            while (data.len() as u64) < size {
                data.extend_from_slice(format!("line {} of file {i}\n", data.len()).as_bytes());
            }
        }
        data.truncate(size as usize);
        // The new release changes one file in fifty.
        if variant > 0 && i % 50 == 0 {
            data.extend_from_slice(b"changed");
        }
        written += data.len() as u64;
        fs::write(path, data).unwrap();
    }
    written
}

fn app_tree(
    dir: &Path,
    version: &str,
    total: u64,
    files: u64,
    variant: u64,
    all_random: bool,
) -> u64 {
    fs::create_dir_all(dir.join("data")).unwrap();
    fs::copy(BIN, dir.join("demo")).unwrap();
    fs::write(
        dir.join("data/config.json"),
        format!(
            r#"{{"Update_app":{{"server":"http://127.0.0.1:9","api_get_version":"versions.txt","main_app_name":"demo","current_version":"{version}"}}}}"#
        ),
    )
    .unwrap();
    make_payload(dir, total, files, variant, all_random)
}

fn timed(what: &str, cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let status = cmd.status().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(status.success(), "{what} failed: {status}");
    start.elapsed()
}

/// Flushes dirty pages, so that each figure starts from the same state (the
/// writes of the previous step would otherwise slow the next one down).
fn settle() {
    let _ = Command::new("sync").status();
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn main() {
    let total = env_num("LEAPFROG_BENCH_MB", 200) * 1_000_000;
    let files = env_num("LEAPFROG_BENCH_FILES", 2000);
    let work = tempfile::Builder::new()
        .prefix("leapfrog-bench")
        .tempdir_in(bench_dir())
        .unwrap();
    let w = work.path();
    println!("leapfrog benchmark in {}", w.display());

    let releases = w.join("releases");
    let mut sizes = Vec::new();
    for (version, variant) in [("1.0.0", 0), ("1.1.0", 1)] {
        let tree = w.join(format!("tree-{version}"));
        let bytes = app_tree(&tree, version, total, files, variant, false);
        let start = Instant::now();
        let published = publish(&PublishOptions::new(tree, "demo", version, &releases)).unwrap();
        sizes.push(published.release.size.unwrap());
        println!(
            "published {version}: {} files, {:.0} MB unpacked, archive {:.0} MB, in {:.1} s",
            files + 2,
            bytes as f64 / 1e6,
            published.release.size.unwrap() as f64 / 1e6,
            start.elapsed().as_secs_f64()
        );
    }
    let archive_size = sizes[1];
    let server = Server::start(&releases, "127.0.0.1:0").unwrap();
    let url = format!("{}demo-1.1.0.tar.gz", server.url());
    let manifest = leapfrog::publish::read_manifest(&releases).unwrap();
    let release = manifest.newest("demo").unwrap().clone();

    // 1. Download throughput.
    let (mut ours, mut curl) = (Duration::MAX, Duration::MAX);
    for round in 0..3 {
        settle();
        let dest = w.join(format!("dl-{round}.tar.gz"));
        let start = Instant::now();
        download(
            &url,
            &dest,
            &Expect {
                sha256: release.sha256.as_deref(),
                size: release.size,
            },
            &Limits::default(),
            None,
        )
        .unwrap();
        ours = ours.min(start.elapsed());
        fs::remove_file(&dest).unwrap();
        settle();
        let dest = w.join(format!("curl-{round}.tar.gz"));
        curl = curl.min(timed(
            "curl",
            Command::new("curl")
                .args(["-s", "-f", "-o"])
                .arg(&dest)
                .arg(&url),
        ));
        assert_eq!(fs::metadata(&dest).unwrap().len(), archive_size);
        fs::remove_file(&dest).unwrap();
    }

    // 2. A real update of the installed app.
    let install = w.join("apps/demo");
    fs::create_dir_all(w.join("apps")).unwrap();
    leapfrog::publish::unpack(releases.join("demo-1.0.0.tar.gz"), &install).unwrap();
    settle();
    let update = run_update(&install, &format!("{}versions.txt", server.url()));
    let at = |needle: &str| update.at(needle);
    let micros = |a: u64, b: u64| Duration::from_micros(b - a);
    let copy = micros(at("update available"), at("downloading "));
    let app_download = micros(at("downloading "), at(" bytes, sha256 "));
    let verified_to_running = micros(at(" bytes, sha256 "), at("demo 1.1.0 running"));
    let maxrss_kb = update.maxrss_kb;

    settle();
    let scratch = w.join("tar-x");
    fs::create_dir_all(&scratch).unwrap();
    let tar = timed(
        "tar xzf",
        Command::new("tar")
            .arg("xzf")
            .arg(releases.join("demo-1.1.0.tar.gz"))
            .arg("-C")
            .arg(&scratch),
    );
    settle();
    let cp_al = timed(
        "cp -al",
        Command::new("cp")
            .arg("-al")
            .arg(&install)
            .arg(w.join("cp-al-copy")),
    );
    settle();
    let cp = timed(
        "cp -a",
        Command::new("cp")
            .arg("-a")
            .arg(&install)
            .arg(w.join("cp-copy")),
    );

    println!();
    println!("| measure | leapfrog | reference | ratio | target |");
    println!("|---|---|---|---|---|");
    let ratio = curl.as_secs_f64() / ours.as_secs_f64();
    println!(
        "| download {:.0} MB from the embedded server | {:.0} MB/s | curl -o: {:.0} MB/s | {ratio:.2}x | >= 0.90x: {} |",
        archive_size as f64 / 1e6,
        mbps(archive_size, ours),
        mbps(archive_size, curl),
        verdict(ratio >= 0.9)
    );
    let reference = tar + cp;
    let ratio = verified_to_running.as_secs_f64() / reference.as_secs_f64();
    println!(
        "| archive verified -> new version running | {:.2} s | tar xzf {:.2} s + cp -a {:.2} s = {:.2} s | {ratio:.2}x | <= 1.50x: {} |",
        verified_to_running.as_secs_f64(),
        tar.as_secs_f64(),
        cp.as_secs_f64(),
        reference.as_secs_f64(),
        verdict(ratio <= 1.5)
    );
    println!(
        "| peak memory of the updating app (all execs) | {:.1} MiB | | | < 64 MiB: {} |",
        maxrss_kb as f64 / 1024.0,
        verdict(maxrss_kb < 64 * 1024)
    );
    println!(
        "| backup of the install dir, hard links (before the download) | {:.3} s | cp -al {:.3} s, cp -a {:.3} s | {:.2}x of cp -al | |",
        copy.as_secs_f64(),
        cp_al.as_secs_f64(),
        cp.as_secs_f64(),
        copy.as_secs_f64() / cp_al.as_secs_f64()
    );
    println!(
        "| the app's own download (staging) | {:.0} MB/s | | | |",
        mbps(archive_size, app_download)
    );
    drop(server);
    nginx_scenario(w);
}

/// Issue "any static host": a 500 MB archive (incompressible) from nginx on
/// loopback, the app's own download against `curl -o`, and its peak memory.
fn nginx_scenario(w: &Path) {
    let nginx = Path::new("/usr/sbin/nginx");
    if !nginx.is_file() {
        println!("\n(nginx is not installed: apt-get install nginx-light for the nginx figures)");
        return;
    }
    let total = env_num("LEAPFROG_BENCH_NGINX_MB", 500) * 1_000_000;
    let root = w.join("nginx");
    let releases = root.join("releases");
    for (version, variant) in [("1.0.0", 0), ("1.1.0", 1)] {
        let tree = root.join(format!("tree-{version}"));
        app_tree(&tree, version, total, 200, variant, true);
        publish(&PublishOptions::new(&tree, "demo", version, &releases)).unwrap();
        fs::remove_dir_all(&tree).unwrap();
    }
    let archive_size = fs::metadata(releases.join("demo-1.1.0.tar.gz"))
        .unwrap()
        .len();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = root.join("nginx-run");
    fs::create_dir_all(&d).unwrap();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\nhttp {{ access_log off; sendfile on;\n\
         client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n\
         server {{ listen 127.0.0.1:{port}; root {r}; }} }}\n",
        d = d.display(),
        r = releases.display()
    );
    fs::write(d.join("nginx.conf"), conf).unwrap();
    let mut child = Command::new(nginx)
        .arg("-p")
        .arg(&d)
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .arg("-e")
        .arg(d.join("error.log"))
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let base = format!("http://127.0.0.1:{port}/");
    let url = format!("{base}demo-1.1.0.tar.gz");
    let release = leapfrog::publish::read_manifest(&releases)
        .unwrap()
        .newest("demo")
        .unwrap()
        .clone();
    let (mut curl, mut lib) = (Duration::MAX, Duration::MAX);
    for round in 0..3 {
        settle();
        let dest = root.join(format!("dl-{round}"));
        let start = Instant::now();
        let expect = Expect {
            sha256: release.sha256.as_deref(),
            size: release.size,
        };
        download(&url, &dest, &expect, &Limits::default(), None).unwrap();
        lib = lib.min(start.elapsed());
        fs::remove_file(dest).unwrap();
        settle();
        let dest = root.join(format!("curl-{round}"));
        curl = curl.min(timed(
            "curl",
            Command::new("curl")
                .args(["-s", "-f", "-o"])
                .arg(&dest)
                .arg(&url),
        ));
        fs::remove_file(dest).unwrap();
    }
    let install = root.join("apps/demo");
    fs::create_dir_all(root.join("apps")).unwrap();
    leapfrog::publish::unpack(releases.join("demo-1.0.0.tar.gz"), &install).unwrap();
    settle();
    let update = run_update(&install, &format!("{base}versions.txt"));
    let _ = child.kill();
    let _ = child.wait();
    if std::env::var_os("LEAPFROG_BENCH_VERBOSE").is_some() {
        println!("{}", update.stdout);
    }
    let at = |needle: &str| update.at(needle);
    let ours = Duration::from_micros(at(" bytes, sha256 ") - at("downloading "));
    let maxrss_kb = update.maxrss_kb;
    let ratio = curl.as_secs_f64() / lib.as_secs_f64();
    println!();
    println!("| measure (nginx on loopback) | leapfrog | reference | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| download of a {:.0} MB archive (streamed, hashed, size-capped), best of 3 | {:.0} MB/s | curl -o: {:.0} MB/s | {ratio:.2}x | >= 0.90x: {} |",
        archive_size as f64 / 1e6,
        mbps(archive_size, lib),
        mbps(archive_size, curl),
        verdict(ratio >= 0.9)
    );
    println!(
        "| the same download inside one real update of the app | {:.0} MB/s | | {:.2}x | |",
        mbps(archive_size, ours),
        curl.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "| peak memory of the updating app (all execs) | {:.1} MiB | | | < 64 MiB: {} |",
        maxrss_kb as f64 / 1024.0,
        verdict(maxrss_kb < 64 * 1024)
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// Where to put ~1 GB of scratch: `LEAPFROG_BENCH_DIR`, else the target dir
/// (on disk, unlike a tmpfs /tmp, like a real install).
fn bench_dir() -> PathBuf {
    let dir = std::env::var_os("LEAPFROG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target")
                .join("bench-scratch")
        });
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// One real update of the installed app, with timestamps and peak memory.
struct UpdateRun {
    stdout: String,
    maxrss_kb: u64,
}

impl UpdateRun {
    /// The timestamp (µs) of the first line containing `needle`.
    fn at(&self, needle: &str) -> u64 {
        self.stdout
            .lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.strip_prefix("t=")?.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {needle:?} line in\n{}", self.stdout))
    }
}

/// Runs the app in `install` under GNU time against `manifest_url`, saying
/// yes, and checks that it ended as the new version.
fn run_update(install: &Path, manifest_url: &str) -> UpdateRun {
    let output = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M"])
        .arg(install.join("demo"))
        .env("LEAPFROG_ASSUME_YES", "1")
        .env("LEAPFROG_CHECK_EVERY_START", "1")
        .env("LEAPFROG_LOG_TIMESTAMPS", "1")
        .env("LEAPFROG_MANIFEST_URL", manifest_url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("demo 1.1.0 running"),
        "{stdout}\n{stderr}"
    );
    let maxrss_kb = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .expect("GNU time's maxrss line");
    UpdateRun { stdout, maxrss_kb }
}
