//! Figures for a whole update, side by side with the reference tools.
//!
//! Run with `cargo bench --bench update` (a release of about 300 MB in
//! 3,000 files, of which the new version changes one in ten; set
//! `LEAPFROG_BENCH_MB`, `LEAPFROG_BENCH_FILES`, `LEAPFROG_BENCH_ROUNDS` for
//! another size or more rounds). Needs `curl`, `tar`, `cp` and GNU `time`
//! (`/usr/bin/time`). Each leapfrog figure is the median of at least five
//! rounds, each run back to back with its reference (in turn first), and
//! each ratio the median of the ratios pair by pair; the load average is
//! printed at the start and the end. It prints:
//!
//! 1. download throughput from the embedded server vs `curl -o`;
//! 2. the downtime of a real update of the demo app (from the old app's
//!    hop-out to the new version's first line) vs the naive flow: `tar xzf`
//!    of the same archive over the install, then starting the new version;
//! 3. staging (from "archive verified" to the `staged` journal: unpack,
//!    check, flush) vs `tar xzf` of the same archive;
//! 4. publishing the release (pack, hash, manifest) vs `tar czf` of its tree;
//! 5. the backup copy vs `cp -al`, and the updating app's peak memory.
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
        // The new release changes one file in ten, and about as large a
        // share of the bytes (three of the large files among them).
        if variant > 0 && (i % 10 == 3 || i % 1000 == 0) {
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
            r#"{{"Update_app":{{"server":"http://127.0.0.1:9","api_get_version":"versions.txt","main_app_name":"demo","current_version":"{version}","allow_unsigned":true}}}}"#
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

/// The 1, 5 and 15 minute load averages, as the kernel gives them.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Pairs of (leapfrog, reference) timings, one pair per round.
#[derive(Default)]
struct Pairs(Vec<(Duration, Duration)>);

impl Pairs {
    fn push(&mut self, ours: Duration, reference: Duration) {
        self.0.push((ours, reference));
    }

    fn ours(&self) -> Duration {
        median(self.0.iter().map(|p| p.0.as_secs_f64()).collect())
    }

    fn reference(&self) -> Duration {
        median(self.0.iter().map(|p| p.1.as_secs_f64()).collect())
    }

    /// The median of the ratios taken pair by pair (ours / reference).
    fn ratio(&self) -> f64 {
        median(
            self.0
                .iter()
                .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
                .collect(),
        )
        .as_secs_f64()
    }
}

fn median(mut values: Vec<f64>) -> Duration {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let m = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    Duration::from_secs_f64(m)
}

fn main() {
    let total = env_num("LEAPFROG_BENCH_MB", 300) * 1_000_000;
    let files = env_num("LEAPFROG_BENCH_FILES", 3000);
    let rounds = env_num("LEAPFROG_BENCH_ROUNDS", 5).max(5) as usize;
    let work = tempfile::Builder::new()
        .prefix("leapfrog-bench")
        .tempdir_in(bench_dir())
        .unwrap();
    let w = work.path();
    println!("leapfrog benchmark in {}", w.display());
    println!("load average at the start: {}", load_average());

    let releases = w.join("releases");
    let mut sizes = Vec::new();
    for (version, variant) in [("1.0.0", 0), ("1.1.0", 1)] {
        let tree = w.join(format!("tree-{version}"));
        let bytes = app_tree(&tree, version, total, files, variant, false);
        let published = publish(&PublishOptions::new(tree, "demo", version, &releases)).unwrap();
        sizes.push(published.release.size.unwrap());
        println!(
            "published {version}: {} files, {:.0} MB unpacked, archive {:.0} MB",
            files + 2,
            bytes as f64 / 1e6,
            published.release.size.unwrap() as f64 / 1e6,
        );
    }
    let archive_size = sizes[1];
    let archive = releases.join("demo-1.1.0.tar.gz");
    let server = Server::start(&releases, "127.0.0.1:0").unwrap();
    let url = format!("{}demo-1.1.0.tar.gz", server.url());
    let manifest_url = format!("{}versions.txt", server.url());
    let manifest = leapfrog::publish::read_manifest(&releases).unwrap();
    let release = manifest.newest("demo").unwrap().clone();

    let mut fetched = Pairs::default();
    let mut downtime = Pairs::default();
    let mut staging = Pairs::default();
    let mut packing = Pairs::default();
    let mut backup = Pairs::default();
    let mut maxrss_kb = 0;
    // Each round runs leapfrog and its reference back to back, in turn
    // first; figures are medians over the rounds, ratios taken pair by pair.
    for round in 0..rounds {
        let ours_first = round % 2 == 0;
        let round_dir = w.join(format!("round-{round}"));
        fs::create_dir_all(&round_dir).unwrap();

        // 1. Download throughput, against curl.
        let ours = || {
            settle();
            let dest = round_dir.join("dl.tar.gz");
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
            let took = start.elapsed();
            fs::remove_file(&dest).unwrap();
            took
        };
        let curl = || {
            settle();
            let dest = round_dir.join("curl.tar.gz");
            let took = timed(
                "curl",
                Command::new("curl")
                    .args(["-s", "-f", "-o"])
                    .arg(&dest)
                    .arg(&url),
            );
            assert_eq!(fs::metadata(&dest).unwrap().len(), archive_size);
            fs::remove_file(&dest).unwrap();
            took
        };
        let (a, b) = in_turn(ours_first, ours, curl);
        fetched.push(a, b);

        // 2. A real update of the installed app: downtime and staging.
        let update = || {
            let install = round_dir.join("apps/demo");
            fs::create_dir_all(round_dir.join("apps")).unwrap();
            leapfrog::publish::unpack(releases.join("demo-1.0.0.tar.gz"), &install).unwrap();
            settle();
            run_update(&install, &manifest_url)
        };
        // The naive flow: the same archive unpacked over the install while
        // the app is down, then the new version started.
        let naive = || {
            let install = round_dir.join("naive/demo");
            fs::create_dir_all(round_dir.join("naive")).unwrap();
            leapfrog::publish::unpack(releases.join("demo-1.0.0.tar.gz"), &install).unwrap();
            settle();
            let start = Instant::now();
            timed(
                "tar xzf over the install",
                Command::new("tar")
                    .arg("xzf")
                    .arg(&archive)
                    .arg("-C")
                    .arg(&install),
            );
            first_line(&install.join("demo"), &manifest_url, "demo 1.1.0 running") - start
        };
        let (run, naive_took) = in_turn(ours_first, update, naive);
        let micros = |a: u64, b: u64| Duration::from_micros(b - a);
        downtime.push(
            micros(
                run.at("hopping out to the backup copy"),
                run.at("demo 1.1.0 running"),
            ),
            naive_took,
        );
        if round == 0 && std::env::var_os("LEAPFROG_BENCH_VERBOSE").is_some() {
            println!("{}", run.stdout);
        }
        let staged = micros(run.at(VERIFIED), run.at("journal written"));
        let backed_up = micros(run.at("update available"), run.at("backed up "));
        maxrss_kb = maxrss_kb.max(run.maxrss_kb);
        settle();
        let scratch = round_dir.join("tar-x");
        fs::create_dir_all(&scratch).unwrap();
        let tar = timed(
            "tar xzf",
            Command::new("tar")
                .arg("xzf")
                .arg(&archive)
                .arg("-C")
                .arg(&scratch),
        );
        staging.push(staged, tar);
        settle();
        let cp_al = timed(
            "cp -al",
            Command::new("cp")
                .arg("-al")
                .arg(round_dir.join("naive/demo"))
                .arg(round_dir.join("cp-al-copy")),
        );
        backup.push(backed_up, cp_al);

        // 3. Publishing the release, against tar czf of its tree.
        let tree = w.join("tree-1.1.0");
        let ours = || {
            settle();
            let repo = round_dir.join("repo");
            let start = Instant::now();
            publish(&PublishOptions::new(&tree, "demo", "1.1.0", &repo)).unwrap();
            start.elapsed()
        };
        let tar_czf = || {
            settle();
            timed(
                "tar czf",
                Command::new("tar")
                    .arg("czf")
                    .arg(round_dir.join("tree.tar.gz"))
                    .arg("-C")
                    .arg(&tree)
                    .arg("."),
            )
        };
        let (a, b) = in_turn(ours_first, ours, tar_czf);
        packing.push(a, b);
        fs::remove_dir_all(&round_dir).unwrap();
        println!("round {} of {rounds} done", round + 1);
    }

    println!();
    println!(
        "medians of {rounds} interleaved rounds; load average at the end: {}",
        load_average()
    );
    println!("| measure | leapfrog | reference | ratio (median of pairs) | target |");
    println!("|---|---|---|---|---|");
    let ratio = 1.0 / fetched.ratio();
    println!(
        "| download {:.0} MB from the embedded server | {:.0} MB/s | curl -o: {:.0} MB/s | {ratio:.2}x | >= 0.90x: {} |",
        archive_size as f64 / 1e6,
        mbps(archive_size, fetched.ours()),
        mbps(archive_size, fetched.reference()),
        verdict(ratio >= 0.9)
    );
    println!(
        "| downtime: hop-out -> new version's first line | {:.1} ms | tar xzf over the install + start: {:.0} ms | {:.3}x | <= 0.02x: {} |",
        downtime.ours().as_secs_f64() * 1e3,
        downtime.reference().as_secs_f64() * 1e3,
        downtime.ratio(),
        verdict(downtime.ratio() <= 0.02)
    );
    println!(
        "| staging: archive verified -> journal written | {:.2} s | tar xzf: {:.2} s | {:.2}x | <= 0.60x: {} |",
        staging.ours().as_secs_f64(),
        staging.reference().as_secs_f64(),
        staging.ratio(),
        verdict(staging.ratio() <= 0.6)
    );
    println!(
        "| publish (pack, hash, manifest) | {:.2} s | tar czf: {:.2} s | {:.2}x | <= 1.00x: {} |",
        packing.ours().as_secs_f64(),
        packing.reference().as_secs_f64(),
        packing.ratio(),
        verdict(packing.ratio() <= 1.0)
    );
    println!(
        "| backup of the install dir (hard links) | {:.3} s | cp -al: {:.3} s | {:.2}x | |",
        backup.ours().as_secs_f64(),
        backup.reference().as_secs_f64(),
        backup.ratio()
    );
    println!(
        "| peak memory of the updating app (all execs, largest round) | {:.1} MiB | | | < 64 MiB: {} |",
        maxrss_kb as f64 / 1024.0,
        verdict(maxrss_kb < 64 * 1024)
    );
    drop(server);
    nginx_scenario(w, rounds);
}

/// Runs `a` and `b` back to back, `a` first when `a_first`; returns their
/// results in the order (a, b).
fn in_turn<A, B>(a_first: bool, a: impl FnOnce() -> A, b: impl FnOnce() -> B) -> (A, B) {
    if a_first {
        let x = a();
        (x, b())
    } else {
        let y = b();
        (a(), y)
    }
}

/// Starts `exe` (an installed app, up to date) and returns the moment it
/// printed the line containing `needle` (after letting it finish).
fn first_line(exe: &Path, manifest_url: &str, needle: &str) -> Instant {
    use std::io::BufRead;
    let mut child = Command::new(exe)
        .env("LEAPFROG_CHECK_EVERY_START", "1")
        .env("LEAPFROG_MANIFEST_URL", manifest_url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    let mut at = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if at.is_none() && line.contains(needle) {
            at = Some(Instant::now());
        }
        seen.push(line);
    }
    let _ = child.wait();
    at.unwrap_or_else(|| {
        panic!(
            "{} never printed {needle:?}:\n{}",
            exe.display(),
            seen.join("\n")
        )
    })
}

/// Issue "any static host": a 500 MB archive (incompressible) from nginx on
/// loopback, the app's own download against `curl -o`, and its peak memory.
fn nginx_scenario(w: &Path, rounds: usize) {
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
    let mut pairs = Pairs::default();
    for round in 0..rounds {
        let ours = || {
            settle();
            let dest = root.join(format!("dl-{round}"));
            let start = Instant::now();
            let expect = Expect {
                sha256: release.sha256.as_deref(),
                size: release.size,
            };
            download(&url, &dest, &expect, &Limits::default(), None).unwrap();
            let took = start.elapsed();
            fs::remove_file(dest).unwrap();
            took
        };
        let curl = || {
            settle();
            let dest = root.join(format!("curl-{round}"));
            let took = timed(
                "curl",
                Command::new("curl")
                    .args(["-s", "-f", "-o"])
                    .arg(&dest)
                    .arg(&url),
            );
            fs::remove_file(dest).unwrap();
            took
        };
        let (a, b) = in_turn(round % 2 == 0, ours, curl);
        pairs.push(a, b);
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
    let ours = Duration::from_micros(at(VERIFIED) - at("downloading "));
    let maxrss_kb = update.maxrss_kb;
    let ratio = 1.0 / pairs.ratio();
    println!();
    println!("| measure (nginx on loopback) | leapfrog | reference | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| download of a {:.0} MB archive (streamed, hashed, size-capped), median of {rounds} | {:.0} MB/s | curl -o: {:.0} MB/s | {ratio:.2}x | >= 0.90x: {} |",
        archive_size as f64 / 1e6,
        mbps(archive_size, pairs.ours()),
        mbps(archive_size, pairs.reference()),
        verdict(ratio >= 0.9)
    );
    println!(
        "| the same download inside one real update of the app | {:.0} MB/s | | {:.2}x | |",
        mbps(archive_size, ours),
        pairs.reference().as_secs_f64() / ours.as_secs_f64()
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

/// The line that ends the download: "verified <archive> (<size>, sha256 ...".
const VERIFIED: &str = ".tar.gz (";

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
