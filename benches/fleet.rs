//! A fleet of installs checking one host, on a compressed clock.
//!
//! Run with `cargo bench --bench fleet` (needs nginx at /usr/sbin/nginx;
//! `LEAPFROG_FLEET_CLIENTS` sets the fleet's size, 10,000 by default). Each
//! simulated install runs leapfrog's own client code: the schedule
//! (`schedule::due`, `failed`, `succeeded`) decides when it checks,
//! `find_update` makes the requests (the freshness file, conditional GETs,
//! the manifest when it changed) against nginx on loopback, and `remember`
//! keeps what it learnt, as an installed app does. Virtual time advances a
//! minute per step; the installs use the shortest interval allowed (an
//! hour) so that a day of checks fits in minutes of real time. Every figure
//! is read off nginx's access log (`$status`, `$bytes_sent`).
//!
//! All installs start in the same minute (a fleet of machines booting at
//! nine). It prints, one per line:
//!
//! - `fleet: bytes_per_idle_check` — bytes nginx sent per check while
//!   nothing is published (goal ≤ 500);
//!   `bytes_per_check_without_freshness` is what one check cost before
//!   (`versions.txt` and its signature fetched whole), for contrast;
//! - `fleet: share_not_modified` — of those checks, the share answered by
//!   a 304 on the freshness file alone (goal ≥ 0.99);
//! - `fleet: peak_to_mean` — requests in the busiest minute over the mean
//!   minute, once the start's herd has spread (goal ≤ 1.5), and
//!   `peak_to_mean_without_jitter` for the same fleet with the random part
//!   of the interval taken out;
//! - `fleet: outage_requests_per_client` — requests per install that met a
//!   5-minute outage (nginx answering 503 with `Retry-After: 300`);
//! - `fleet: peak_concurrent_downloads` — installs downloading at once when
//!   1.1.0 reaches 100% at once, and with a rollout of 10% more an hour
//!   (downloads are not made: each takes 10 virtual minutes from the check
//!   that offered it).
//!
//! These are figures to read, not pass/fail tests.

#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use leapfrog::internal::schedule::{self, Schedule};
use leapfrog::internal::{find_update, remember, Audience, LastCheck, Limits, Query, State};
use leapfrog::publish::{PublicKey, PublishOptions, Signing};

/// The virtual length of a download.
const DOWNLOAD_MINUTES: u64 = 10;

struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn start(root: &Path) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  log_format fleet '$status $bytes_sent $uri';\n  access_log {d}/access.log fleet;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               types {{ text/plain txt fresh; application/octet-stream gz; }}\n\
               server {{ listen 127.0.0.1:{port}; root {root};\n\
                 location / {{ if (-f {d}/outage) {{ add_header Retry-After 300 always; return 503; }} }}\n\
               }}\n}}\n",
            root = root.display()
        );
        fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting /usr/sbin/nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx { child, dir, port }
    }

    fn outage(&self, on: bool) {
        let flag = self.dir.path().join("outage");
        if on {
            fs::write(flag, "").unwrap();
        } else {
            let _ = fs::remove_file(flag);
        }
    }
}

/// The access log, read as it grows (a line nginx has not finished
/// writing waits for the next read).
struct Log(BufReader<fs::File>, String);

/// What nginx answered in a stretch of time.
#[derive(Default, Clone, Copy)]
struct Answers {
    requests: u64,
    bytes: u64,
    not_modified_fresh: u64,
    unavailable: u64,
}

impl Log {
    fn open(nginx: &Nginx) -> Log {
        let path = nginx.dir.path().join("access.log");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !path.exists() {
            assert!(Instant::now() < deadline, "no access log");
            std::thread::sleep(Duration::from_millis(10));
        }
        Log(BufReader::new(fs::File::open(path).unwrap()), String::new())
    }

    /// The lines written since the last call.
    fn since(&mut self) -> Answers {
        let mut answers = Answers::default();
        let mut line = std::mem::take(&mut self.1);
        while self.0.read_line(&mut line).unwrap() > 0 {
            if !line.ends_with('\n') {
                break;
            }
            let mut parts = line.split_whitespace();
            let status: u16 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let bytes: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let uri = parts.next().unwrap_or_default();
            answers.requests += 1;
            answers.bytes += bytes;
            if status == 304 && uri.ends_with(".fresh") {
                answers.not_modified_fresh += 1;
            }
            if status == 503 {
                answers.unavailable += 1;
            }
            line.clear();
        }
        self.1 = line;
        answers
    }
}

#[derive(Clone)]
struct Client {
    state: State,
    current: semver::Version,
    /// The virtual time its download ends, while it downloads.
    downloading_until: Option<u64>,
    /// The version it downloads.
    downloading: Option<semver::Version>,
}

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

struct Fleet<'a> {
    clients: Vec<Client>,
    url: String,
    keys: &'a [PublicKey],
    schedule: Schedule,
    jitter: bool,
    /// The real time virtual minute 0 stands for.
    base: u64,
    limits: Limits,
}

/// What one minute of the fleet did.
#[derive(Default)]
struct Minute {
    checks: u64,
    failed_with_retry_after: u64,
    downloading: u64,
}

impl Fleet<'_> {
    fn new(n: usize, url: String, keys: &[PublicKey], jitter: bool, base: u64) -> Fleet<'_> {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let clients = (0..n)
            .map(|_| Client {
                state: State {
                    format: 1,
                    install_id: Some(format!("{:016x}{:016x}", rng.next(), rng.next())),
                    ..State::default()
                },
                current: semver::Version::new(1, 0, 0),
                downloading_until: None,
                downloading: None,
            })
            .collect();
        Fleet {
            clients,
            url,
            keys,
            schedule: Schedule {
                interval: schedule::MIN_INTERVAL,
                ..Schedule::default()
            },
            jitter,
            base,
            limits: Limits {
                retries: 0,
                ..Limits::default()
            },
        }
    }

    /// One virtual minute: every install whose check is due checks.
    fn minute(&mut self, minute: u64) -> Minute {
        let now = self.base + minute * 60;
        let threads = 2;
        let chunk = self.clients.len().div_ceil(threads);
        let (url, keys, sched, jitter, limits) = (
            &self.url,
            self.keys,
            self.schedule,
            self.jitter,
            &self.limits,
        );
        let results: Vec<Minute> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .clients
                .chunks_mut(chunk)
                .enumerate()
                .map(|(t, part)| {
                    scope.spawn(move || {
                        let mut rng = Rng(now ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                        let mut out = Minute::default();
                        for client in part {
                            step(
                                client, now, url, keys, sched, jitter, limits, &mut rng, &mut out,
                            );
                        }
                        out
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        results.into_iter().fold(Minute::default(), |a, b| Minute {
            checks: a.checks + b.checks,
            failed_with_retry_after: a.failed_with_retry_after + b.failed_with_retry_after,
            downloading: a.downloading + b.downloading,
        })
    }
}

/// One install at virtual time `now`: a download running ends or goes on;
/// otherwise it checks when its schedule says so.
#[allow(clippy::too_many_arguments)]
fn step(
    client: &mut Client,
    now: u64,
    url: &str,
    keys: &[PublicKey],
    sched: Schedule,
    jitter: bool,
    limits: &Limits,
    rng: &mut Rng,
    out: &mut Minute,
) {
    if let Some(until) = client.downloading_until {
        if now < until {
            out.downloading += 1;
            return;
        }
        client.current = client.downloading.take().expect("a version");
        client.downloading_until = None;
    }
    if !sched.due(&client.state, now) {
        return;
    }
    out.checks += 1;
    let query = Query {
        manifest_url: url,
        audience: Audience {
            channel: None,
            install_id: client.state.install_id.clone(),
            target: Some(leapfrog::internal::this_target()),
            downgrade: false,
            by_user: false,
            now: Some(UNIX_EPOCH + Duration::from_secs(now)),
        },
        program: "demo",
        current: &client.current,
        prereleases: false,
        allow_unverified: false,
        archive_template: None,
        keys,
        seen: Some(&client.state),
        cache: Some(&client.state.cache),
    };
    match find_update(&query, limits) {
        Ok(checked) => {
            let mut state = client.state.clone();
            if remember(&mut state, &checked, |_| true).is_ok() {
                let random = if jitter { rng.unit() } else { 0.0 };
                schedule::succeeded(&mut state, &sched, now, random);
                state.last_check = Some(LastCheck {
                    at: now,
                    result: String::new(),
                });
                if let Some(update) = checked.update {
                    client.downloading = Some(update.release.version);
                    client.downloading_until = Some(now + DOWNLOAD_MINUTES * 60);
                    out.downloading += 1;
                }
            }
            client.state = state;
        }
        Err(e) => {
            if e.retry_after().is_some() {
                out.failed_with_retry_after += 1;
            }
            schedule::failed(
                &mut client.state,
                &sched,
                now,
                e.retry_after(),
                if jitter { rng.unit() } else { 0.0 },
            );
        }
    }
}

fn publish(tree: &Path, version: &str, repo: &Path, key: &Path, rollout: Option<u8>) {
    leapfrog::publish::publish(&PublishOptions {
        signing: Signing {
            secret_key: Some(key.to_owned()),
            ..Default::default()
        },
        rollout,
        ..PublishOptions::new(tree, "demo", version, repo)
    })
    .unwrap();
}

fn app_tree(dir: &Path, version: &str) -> PathBuf {
    let tree = dir.join(format!("tree-{version}"));
    fs::create_dir_all(tree.join("data")).unwrap();
    fs::write(tree.join("demo"), format!("demo {version}\n")).unwrap();
    fs::write(tree.join("README.txt"), format!("demo {version}\n")).unwrap();
    tree
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

fn peak_to_mean(per_minute: &[u64]) -> f64 {
    let mean = per_minute.iter().sum::<u64>() as f64 / per_minute.len() as f64;
    *per_minute.iter().max().unwrap() as f64 / mean
}

fn main() {
    if !Path::new("/usr/sbin/nginx").is_file() {
        eprintln!("fleet: nginx is not installed (apt-get install nginx-light); nothing measured");
        return;
    }
    let n: usize = std::env::var("LEAPFROG_FLEET_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let work = tempfile::tempdir().unwrap();
    let (sk, pk) = (work.path().join("k.key"), work.path().join("k.pub"));
    leapfrog::publish::keygen(&sk, &pk, None).unwrap();
    let keys = [leapfrog::publish::read_public_key(&pk).unwrap()];
    let repo = work.path().join("repo");
    publish(&app_tree(work.path(), "1.0.0"), "1.0.0", &repo, &sk, None);
    let pristine = work.path().join("repo-1.0.0");
    copy_dir(&repo, &pristine);
    let nginx = Nginx::start(&repo);
    let url = format!("http://127.0.0.1:{}/versions.txt", nginx.port);
    let mut log = Log::open(&nginx);
    let base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let started = Instant::now();
    println!("fleet: {n} installs, each checking at most once an hour (the floor), all started in the same minute");

    // 1. The herd spreads; then a steady stretch with nothing published.
    let mut fleet = Fleet::new(n, url.clone(), &keys, true, base);
    let warm_up = 16 * 60;
    let steady = 4 * 60;
    let mut minute = 0;
    while minute < warm_up {
        fleet.minute(minute);
        minute += 1;
    }
    log.since();
    let (mut checks, mut answers, mut per_minute) = (0, Answers::default(), Vec::new());
    while minute < warm_up + steady {
        checks += fleet.minute(minute).checks;
        let a = log.since();
        per_minute.push(a.requests);
        answers.requests += a.requests;
        answers.bytes += a.bytes;
        answers.not_modified_fresh += a.not_modified_fresh;
        minute += 1;
    }
    println!(
        "fleet: bytes_per_idle_check {:.0}  (goal <= 500; {checks} checks, {} requests, {} bytes)",
        answers.bytes as f64 / checks as f64,
        answers.requests,
        answers.bytes
    );
    println!(
        "fleet: share_not_modified {:.4}  (goal >= 0.99)",
        answers.not_modified_fresh as f64 / checks as f64
    );
    let with_jitter = peak_to_mean(&per_minute);
    // For contrast, what a check cost before: versions.txt and its
    // signature, fetched whole.
    for name in ["versions.txt", "versions.txt.minisig"] {
        let url = format!("http://127.0.0.1:{}/{name}", nginx.port);
        ureq::get(&url)
            .call()
            .unwrap()
            .into_body()
            .read_to_vec()
            .unwrap();
    }
    let mut whole = Answers::default();
    let deadline = Instant::now() + Duration::from_secs(5);
    while whole.requests < 2 && Instant::now() < deadline {
        let a = log.since();
        whole.requests += a.requests;
        whole.bytes += a.bytes;
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "fleet: bytes_per_check_without_freshness {}  (versions.txt and its .minisig, fetched whole)",
        whole.bytes
    );

    // 2. A 5-minute outage: 503 with Retry-After.
    nginx.outage(true);
    let (mut met, mut unavailable) = (0, 0);
    for _ in 0..5 {
        met += fleet.minute(minute).failed_with_retry_after;
        unavailable += log.since().unavailable;
        minute += 1;
    }
    nginx.outage(false);
    for _ in 0..30 {
        fleet.minute(minute);
        unavailable += log.since().unavailable;
        minute += 1;
    }
    println!(
        "fleet: outage_requests_per_client {:.2}  ({unavailable} answers 503 to {met} installs; Retry-After: 300 honoured)",
        unavailable as f64 / met.max(1) as f64
    );
    let steady_fleet = fleet.clients.clone();
    let steady_minute = minute;

    // 3. The same fleet without the interval's random part.
    let mut plain = Fleet::new(n, url.clone(), &keys, false, base);
    let mut per_minute_plain = Vec::new();
    for m in 0..(3 * 60 + 2 * 60) {
        plain.minute(m);
        let a = log.since();
        if m >= 3 * 60 {
            per_minute_plain.push(a.requests);
        }
    }
    println!(
        "fleet: peak_to_mean {with_jitter:.2}  (goal <= 1.5; requests a minute over {steady} steady minutes)"
    );
    println!(
        "fleet: peak_to_mean_without_jitter {:.2}  (for contrast: installs started together stay together)",
        peak_to_mean(&per_minute_plain)
    );

    // 4. 1.1.0 for everyone at once, then as a rollout of 10% more an hour.
    let tree = app_tree(work.path(), "1.1.0");
    let mut peaks = Vec::new();
    for rollout in [None, Some(10u8)] {
        copy_dir(&pristine, &repo);
        fleet.clients = steady_fleet.clone();
        publish(&tree, "1.1.0", &repo, &sk, rollout);
        let mut peak = 0;
        let mut percent = rollout.unwrap_or(100);
        let mut minute = steady_minute;
        let mut quiet = 0;
        loop {
            let m = fleet.minute(minute);
            log.since();
            peak = peak.max(m.downloading);
            minute += 1;
            if (minute - steady_minute) % 60 == 0 && percent < 100 {
                percent += 10;
                leapfrog::publish::rollout(
                    &repo,
                    "demo",
                    "1.1.0",
                    percent,
                    &Signing {
                        secret_key: Some(sk.clone()),
                        ..Default::default()
                    },
                )
                .unwrap();
            }
            let done = fleet.clients.iter().all(|c| c.current.minor == 1);
            quiet = if done { quiet + 1 } else { 0 };
            if quiet > 0 || minute - steady_minute > 20 * 60 {
                break;
            }
        }
        peaks.push((peak, minute - steady_minute));
    }
    println!(
        "fleet: peak_concurrent_downloads {}  (1.1.0 to 100% at once; all updated in {} virtual minutes)",
        peaks[0].0, peaks[0].1
    );
    println!(
        "fleet: peak_concurrent_downloads_rollout {}  (10% more an hour; all updated in {} virtual minutes)",
        peaks[1].0, peaks[1].1
    );
    println!(
        "fleet: done in {:.0} s of real time",
        started.elapsed().as_secs_f64()
    );
}
