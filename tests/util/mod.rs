//! Helpers shared by the test modules: temp dirs, the `leapfrog` binary,
//! release fixtures, tree hashes, child processes that print their output
//! when an assertion about them fails.

#![allow(dead_code)]

pub mod evil;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use leapfrog::publish::{publish, PublishOptions};

pub const BIN: &str = env!("CARGO_BIN_EXE_leapfrog");
pub const USER_FILE: &str = "data/user-notes.txt";

/// A loopback port nothing listens on (just now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `leapfrog` command.
pub fn leapfrog() -> Command {
    command(Path::new(BIN))
}

/// `program`, with none of leapfrog's environment variables inherited.
pub fn command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    // No display: a test that wants the dialog sets one itself.
    cmd.env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("LEAPFROG_ASSUME_YES")
        .env_remove("LEAPFROG_MANIFEST_URL")
        .env_remove("LEAPFROG_BACKUP_DIR")
        // Every launch checks at once (a shipped app checks at most once
        // a day, after a random wait); tests of the schedule remove it.
        .env("LEAPFROG_CHECK_EVERY_START", "1")
        .stdin(Stdio::null());
    cmd
}

/// A finished child process.
pub struct Run {
    pub output: Output,
    pub what: String,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    fn dump(&self) -> String {
        format!(
            "{}\nexit: {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.what,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }

    /// Panics with the output unless the process exited with `code`.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code(), Some(code), "{}", self.dump());
        self
    }

    /// Panics with the output unless stdout or stderr contains `needle`.
    pub fn expect_output(self, needle: &str) -> Run {
        assert!(
            self.stdout().contains(needle) || self.stderr().contains(needle),
            "expected {needle:?} in the output of\n{}",
            self.dump()
        );
        self
    }

    /// Panics with the output if stdout or stderr contains `needle`.
    pub fn expect_no_output(self, needle: &str) -> Run {
        assert!(
            !self.stdout().contains(needle) && !self.stderr().contains(needle),
            "did not expect {needle:?} in the output of\n{}",
            self.dump()
        );
        self
    }
}

/// Starts `cmd`. A program the tests just wrote can be "busy" for a moment
/// (ETXTBSY): another test thread forked while it was open for writing,
/// and that child holds the descriptor until its own exec. Tried again.
pub fn spawn(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Held by the sweeps that run many updates at once (crash, syscall,
/// power cut), so that no two of them load the machine together.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `cmd` to the end (killing it after `limit`) and captures its output.
pub fn run(cmd: &mut Command, limit: Duration) -> Run {
    let what = format!("{cmd:?}");
    let mut child = spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()))
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
            panic!("{what} did not finish within {limit:?}; stdout so far:\n{stdout}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        output: Output {
            status,
            stdout: out_reader.join().unwrap(),
            stderr: err_reader.join().unwrap(),
        },
        what,
    }
}

/// Every file, symlink and dir below `dir`: sha256, `link:TARGET` or `dir`;
/// but leapfrog's state file in `dir` itself, which every update check
/// rewrites (the time of the check): tests that care read it with
/// `State::read`.
pub fn tree_hashes(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_symlink() {
                out.insert(
                    rel,
                    format!("link:{}", fs::read_link(&path).unwrap().display()),
                );
            } else if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &path, out);
            } else {
                out.insert(rel, leapfrog::publish::sha256_file(&path).unwrap().0);
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.remove(leapfrog::internal::STATE_NAME);
    out
}

/// Writes `files` (path, content) below `dir`.
pub fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
}

/// The demo app's release tree for `version`: this very binary as `demo`,
/// a `data/config.json` (trusting `public_key` when given, else saying
/// `allow_unsigned`), and a few files that change between versions.
pub fn app_tree(dir: &Path, version: &str, public_key: Option<&str>, extra: &[(&str, &str)]) {
    fs::create_dir_all(dir.join("data")).unwrap();
    // This very binary, with the version appended (an ELF runs the same
    // with bytes after its end): each release's program differs, as real
    // ones do.
    let mut program = fs::read(BIN).unwrap();
    program.extend_from_slice(format!("\nleapfrog test build {version}\n").as_bytes());
    fs::write(dir.join("demo"), program).unwrap();
    fs::set_permissions(dir.join("demo"), fs::metadata(BIN).unwrap().permissions()).unwrap();
    let key_line = public_key.map_or(",\n    \"allow_unsigned\": true".to_owned(), |k| {
        format!(",\n    \"public_key\": \"{k}\"")
    });
    let config = format!(
        "{{\n  \"Update_app\": {{\n    \"server\": \"http://127.0.0.1:9\",\n    \"api_get_version\": \"versions.txt\",\n    \"main_app_name\": \"demo\",\n    \"current_version\": \"{version}\"{key_line}\n  }}\n}}\n"
    );
    fs::write(dir.join("data/config.json"), config).unwrap();
    write_tree(dir, extra);
}

/// Releases 1.0.0 and 1.1.0 of the demo app, published once per test run.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub releases: PathBuf,
    pub tree_1_0: PathBuf,
    pub tree_1_1: PathBuf,
    /// For signed fixtures: the publisher's secret key, and another one.
    pub secret_key: Option<PathBuf>,
    pub other_secret_key: Option<PathBuf>,
    pub public_key: Option<String>,
}

pub const FILES_1_0: &[(&str, &str)] = &[
    ("README.txt", "demo 1.0.0\n"),
    ("assets/logo.txt", "logo one\n"),
    ("assets/old.txt", "dropped by 1.1.0\n"),
    ("assets/kept.txt", "the same in every release\n"),
];
pub const FILES_1_1: &[(&str, &str)] = &[
    ("README.txt", "demo 1.1.0\n"),
    ("assets/logo.txt", "logo two\n"),
    ("assets/new.txt", "added by 1.1.0\n"),
    ("assets/kept.txt", "the same in every release\n"),
];

fn make_fixture(signed: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let releases = dir.path().join("releases");
    let (mut secret_key, mut other_secret_key, mut public_key) = (None, None, None);
    if signed {
        let keys = dir.path().join("keys");
        fs::create_dir_all(&keys).unwrap();
        for name in ["publisher", "other"] {
            leapfrog::publish::keygen(
                &keys.join(format!("{name}.key")),
                &keys.join(format!("{name}.pub")),
                None,
            )
            .unwrap();
        }
        secret_key = Some(keys.join("publisher.key"));
        other_secret_key = Some(keys.join("other.key"));
        let text = fs::read_to_string(keys.join("publisher.pub")).unwrap();
        public_key = Some(text.lines().nth(1).unwrap().to_owned());
    }
    let tree_1_0 = dir.path().join("tree-1.0.0");
    let tree_1_1 = dir.path().join("tree-1.1.0");
    app_tree(&tree_1_0, "1.0.0", public_key.as_deref(), FILES_1_0);
    app_tree(&tree_1_1, "1.1.0", public_key.as_deref(), FILES_1_1);
    for (tree, version) in [(&tree_1_0, "1.0.0"), (&tree_1_1, "1.1.0")] {
        publish(&PublishOptions {
            signing: leapfrog::publish::Signing {
                secret_key: secret_key.clone(),
                ..Default::default()
            },
            ..PublishOptions::new(tree, "demo", version, &releases)
        })
        .unwrap();
    }
    Fixture {
        _dir: dir,
        releases,
        tree_1_0,
        tree_1_1,
        secret_key,
        other_secret_key,
        public_key,
    }
}

/// The unsigned releases.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| make_fixture(false))
}

/// The releases signed by the publisher's key, which the app trusts.
pub fn signed_fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| make_fixture(true))
}

/// One test's world: its own temp dir with a copy of the fixture's releases
/// and 1.0.0 installed (plus a user file).
pub struct World {
    pub dir: tempfile::TempDir,
    pub releases: PathBuf,
    pub install: PathBuf,
    pub backup: PathBuf,
    pub fixture: &'static Fixture,
}

impl World {
    pub fn new() -> World {
        World::from(fixture())
    }

    pub fn signed() -> World {
        World::from(signed_fixture())
    }

    fn from(fx: &'static Fixture) -> World {
        let dir = tempfile::tempdir().unwrap();
        let releases = dir.path().join("releases");
        fs::create_dir_all(&releases).unwrap();
        for entry in fs::read_dir(&fx.releases).unwrap() {
            let path = entry.unwrap().path();
            fs::copy(&path, releases.join(path.file_name().unwrap())).unwrap();
        }
        let install = dir.path().join("apps").join("demo");
        fs::create_dir_all(install.parent().unwrap()).unwrap();
        leapfrog::publish::unpack(releases.join("demo-1.0.0.tar.gz"), &install).unwrap();
        fs::write(install.join(USER_FILE), "the user's own notes\n").unwrap();
        let backup = dir.path().join("apps").join("demo.backup");
        World {
            dir,
            releases,
            install,
            backup,
            fixture: fx,
        }
    }

    /// Marks the world's backup dir as leapfrog's (its marker naming the
    /// install dir), as a stage would: for tests that plant things in it.
    pub fn mark_backup(&self) {
        fs::create_dir_all(&self.backup).unwrap();
        let marker = serde_json::json!({ "format": 1, "install_dir": self.install });
        fs::write(self.backup.join(".leapfrog-backup"), marker.to_string()).unwrap();
    }

    /// Launches the installed app against `manifest_url` with extra
    /// environment, saying yes to updates.
    pub fn launch_env(&self, manifest_url: &str, env: &[(&str, &str)]) -> Run {
        let mut cmd = command(&self.install.join("demo"));
        cmd.env("LEAPFROG_ASSUME_YES", "1")
            .env("LEAPFROG_MANIFEST_URL", manifest_url);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd, Duration::from_secs(60))
    }

    /// Writes `text` as versions.txt, signed by `key` (the publisher's when `None`).
    pub fn sign_text(&self, text: &str, key: Option<&Path>) {
        let key = key
            .or(self.fixture.secret_key.as_deref())
            .expect("a signed world");
        let signature = leapfrog::publish::sign(key, None, text.as_bytes(), "test").unwrap();
        write_later(&self.releases.join("versions.txt"), text.as_bytes());
        write_later(
            &self.releases.join("versions.txt.minisig"),
            signature.as_bytes(),
        );
        // The freshness file names the new manifest, signed by the same
        // key, with a serial above both; without a readable serial (or at
        // the largest) there is none, and clients read the manifest's own
        // signature.
        use leapfrog::internal::freshness::{self, Freshness};
        let path = leapfrog::publish::fresh_path(&self.releases);
        let before = fs::read_to_string(&path).ok().and_then(|t| {
            let (body, _) = freshness::split(&t)?;
            Freshness::parse(body, "").ok().map(|f| f.serial)
        });
        let serial = text
            .lines()
            .find_map(|l| l.strip_prefix("serial ")?.trim().parse::<u64>().ok())
            .filter(|s| *s < leapfrog::internal::MAX_SERIAL);
        let Some(serial) = serial else {
            let _ = fs::remove_file(&path);
            return;
        };
        let now = std::time::SystemTime::now();
        let fresh = Freshness {
            serial: serial.max(before.unwrap_or(0)) + 1,
            signed: humantime::format_rfc3339_seconds(now).to_string(),
            expires: humantime::format_rfc3339_seconds(now + Duration::from_secs(30 * 86_400))
                .to_string(),
            manifest: "versions.txt".into(),
            sha256: leapfrog::publish::sha256_file(self.releases.join("versions.txt"))
                .unwrap()
                .0,
            size: text.len() as u64,
        };
        write_later(
            &path,
            freshness::sign(&fresh, key, None).unwrap().as_bytes(),
        );
    }

    /// Edits the manifest, raises its serial and signs it again with the
    /// publisher's key.
    pub fn resign(&self, edit: impl FnOnce(&mut leapfrog::Manifest)) {
        let path = self.releases.join("versions.txt");
        let mut manifest =
            leapfrog::Manifest::parse(&fs::read_to_string(&path).unwrap(), "t").unwrap();
        let serial = manifest.serial.unwrap_or(0) + 1;
        edit(&mut manifest);
        manifest.serial = Some(serial);
        self.sign_text(&manifest.render(), None);
    }

    /// Launches the installed app against `manifest_url` with `args` in a
    /// terminal of its own, typing `answer` (see [`on_terminal`]).
    pub fn on_terminal(&self, manifest_url: &str, args: &[&str], answer: &str) -> String {
        on_terminal(
            &self.install,
            args,
            &[("LEAPFROG_MANIFEST_URL", manifest_url)],
            answer,
        )
    }

    /// The publisher's public key file (a signed world).
    pub fn public_key_file(&self) -> PathBuf {
        let key = self.fixture.secret_key.as_ref().expect("a signed world");
        key.with_file_name("publisher.pub")
    }

    /// `leapfrog verify` on the world's repository with the publisher's key.
    pub fn verify(&self) -> Run {
        run(
            leapfrog()
                .arg("verify")
                .arg(&self.releases)
                .arg("--public-key")
                .arg(self.public_key_file()),
            Duration::from_secs(60),
        )
    }

    /// Launches the installed app against `manifest_url`, saying yes to updates.
    pub fn launch(&self, manifest_url: &str) -> Run {
        self.launch_env(manifest_url, &[])
    }

    /// Replaces the published 1.1.0 archive by `bytes`, keeping versions.txt
    /// as it is (so its sha256 and size no longer match, unless rewritten).
    pub fn replace_archive(&self, bytes: &[u8]) {
        fs::write(self.releases.join("demo-1.1.0.tar.gz"), bytes).unwrap();
    }

    /// Rewrites the 1.1.0 line of versions.txt to describe `archive` truthfully.
    pub fn republish_archive(&self, archive: &[u8]) {
        self.replace_archive(archive);
        let (sha, size) =
            leapfrog::publish::sha256_file(self.releases.join("demo-1.1.0.tar.gz")).unwrap();
        let path = self.releases.join("versions.txt");
        let mut manifest =
            leapfrog::Manifest::parse(&fs::read_to_string(&path).unwrap(), "t").unwrap();
        for r in &mut manifest.releases {
            if r.version.to_string() == "1.1.0" {
                r.sha256 = Some(sha.clone());
                r.size = Some(size);
            }
        }
        let text = manifest.render();
        if self.fixture.secret_key.is_some() {
            self.resign(|m| *m = leapfrog::Manifest::parse(&text, "t").unwrap());
        } else {
            fs::write(path, text).unwrap();
        }
    }
}

/// The update log of `backup`, as it is.
pub fn update_log(backup: &Path) -> String {
    let path = backup.join(".leapfrog-log").join("update.log");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts that `needles` are found in `text` in this order, each on a
/// later line than the one before.
pub fn assert_lines_in_order(text: &str, needles: &[&str]) {
    let mut lines = text.lines();
    for needle in needles {
        assert!(
            lines.any(|line| line.contains(needle)),
            "{needle:?} is missing, or not after what came before it:\n{text}"
        );
    }
}

/// One raw tar entry for hand-made (hostile) archives: the name and link
/// name are written byte for byte, bypassing the tar crate's own checks.
pub struct Raw<'a> {
    pub name: &'a str,
    pub kind: tar::EntryType,
    pub data: &'a [u8],
    pub link: &'a str,
    pub mode: u32,
}

impl<'a> Raw<'a> {
    pub fn file(name: &'a str, data: &'a [u8]) -> Raw<'a> {
        Raw {
            name,
            kind: tar::EntryType::Regular,
            data,
            link: "",
            mode: 0o644,
        }
    }

    pub fn dir(name: &'a str) -> Raw<'a> {
        Raw {
            name,
            kind: tar::EntryType::Directory,
            data: b"",
            link: "",
            mode: 0o755,
        }
    }

    pub fn symlink(name: &'a str, target: &'a str) -> Raw<'a> {
        Raw {
            name,
            kind: tar::EntryType::Symlink,
            data: b"",
            link: target,
            mode: 0o777,
        }
    }

    pub fn special(name: &'a str, kind: tar::EntryType, link: &'a str) -> Raw<'a> {
        Raw {
            name,
            kind,
            data: b"",
            link,
            mode: 0o644,
        }
    }
}

/// A gzipped tar of `entries`, in order.
pub fn raw_archive(entries: &[Raw<'_>]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for e in entries {
        let mut header = tar::Header::new_gnu();
        {
            let gnu = header.as_gnu_mut().unwrap();
            assert!(e.name.len() <= 100 && e.link.len() <= 100);
            gnu.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
            gnu.linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
        }
        header.set_entry_type(e.kind);
        header.set_mode(e.mode);
        header.set_size(e.data.len() as u64);
        header.set_mtime(0);
        header.set_cksum();
        builder.append(&header, e.data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// The file list text for demo 1.1.0 with `lines` after the header.
pub fn list_text(lines: &[String]) -> String {
    let mut text = "# leapfrog release v1\nprogram demo\nversion 1.1.0\n".to_owned();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    text
}

/// The `file` line of the list for `path` with `data` in it.
pub fn file_line(path: &str, data: &[u8]) -> String {
    use sha2::Digest;
    format!(
        "file {} {} 644 {path}",
        hex::encode(sha2::Sha256::digest(data)),
        data.len()
    )
}

/// A tiny HTTP server that serves `dir` with an ETag and byte ranges, but
/// cuts every `.tar.gz` response off after `cut_after` bytes while
/// announcing the full length. Returns the manifest URL and a counter of the
/// archive bytes sent.
pub fn cutting_server(
    dir: PathBuf,
    cut_after: usize,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut from = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    from = v.trim().trim_end_matches('-').parse().unwrap_or(0);
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_owned();
            let Ok(body) = fs::read(dir.join(&path)) else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let etag = format!("\"{}\"", body.len());
            let (status, range) = if from > 0 && from < body.len() {
                (
                    "206 Partial Content",
                    format!(
                        "Content-Range: bytes {from}-{}/{}\r\n",
                        body.len() - 1,
                        body.len()
                    ),
                )
            } else {
                from = 0;
                ("200 OK", String::new())
            };
            let rest = &body[from..];
            let send = if path.ends_with(".tar.gz") {
                cut_after.min(rest.len())
            } else {
                rest.len()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: {etag}\r\n{range}Connection: close\r\n\r\n",
                rest.len()
            );
            let _ = stream.write_all(&rest[..send]);
            if path.ends_with(".tar.gz") {
                counter.fetch_add(send, Ordering::SeqCst);
            }
            let _ = stream.flush();
        }
    });
    (format!("http://{addr}/versions.txt"), sent)
}

/// Runs the installed app of `install` in a terminal of its own (`script`
/// from util-linux gives it a pty), with no display, typing `answer` once
/// it has had time to ask; returns all it wrote there.
pub fn on_terminal(install: &Path, args: &[&str], env: &[(&str, &str)], answer: &str) -> String {
    let mut line = install.join("demo").display().to_string();
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    let mut cmd = command(Path::new("script"));
    cmd.args(["-qec", &line, "/dev/null"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("LEAPFROG_ASSUME_YES")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("script(1) from util-linux");
    use std::io::Write;
    // The pty keeps what is typed until the app reads its answer; the
    // pause only keeps the echo after the question, for a readable log.
    std::thread::sleep(Duration::from_millis(1500));
    let mut stdin = child.stdin.take().unwrap();
    // An app that asks nothing may have ended already.
    let _ = stdin.write_all(answer.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `bytes` to `path` with a modification time in a later second than
/// the file it replaces, as `leapfrog publish` does: a web server's ETag
/// (nginx: size and whole seconds) must change, or a client that asks
/// whether the file changed is told it did not.
pub fn write_later(path: &Path, bytes: &[u8]) {
    let seconds = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let before = fs::metadata(path).and_then(|m| m.modified()).ok();
    fs::write(path, bytes).unwrap();
    if let Some(before) = before {
        let file = fs::File::options().write(true).open(path).unwrap();
        let now = file.metadata().unwrap().modified().unwrap();
        if seconds(now) <= seconds(before) {
            file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(seconds(before) + 1))
                .unwrap();
        }
    }
}
