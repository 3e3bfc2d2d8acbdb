//! Full updates through real servers on loopback: nginx for HTTP (with a
//! download killed half way and resumed) and vsftpd for FTP. Each server is
//! started by the test with its own config in a temp dir. Where they are
//! not installed the tests say what to install and stop, except in CI
//! (`CI` set), where they fail: `.ci/run` installs them.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

fn have(program: &str, package: &str) -> bool {
    if Path::new(program).is_file() {
        return true;
    }
    let advice = format!("{program} is not installed: apt-get install {package}");
    assert!(std::env::var_os("CI").is_none(), "{advice}");
    eprintln!("SKIPPED: {advice}");
    false
}

/// A server process, killed when dropped.
pub struct Daemon {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// nginx's access log.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self._dir.path().join("access.log")).unwrap_or_default()
    }

    /// vsftpd's transfer log.
    pub fn xfer_log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(mut self, what: &str) -> Daemon {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{what} exited with {status}: {}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx serving `root`, archives limited to `rate` (e.g. "2m") when given.
pub fn nginx(root: &Path, rate: Option<&str>) -> Option<Daemon> {
    nginx_with(root, rate, None)
}

/// nginx as above, over TLS with `tls` when given.
fn nginx_with(root: &Path, rate: Option<&str>, tls: Option<&Certs>) -> Option<Daemon> {
    if !have("/usr/sbin/nginx", "nginx-light") {
        return None;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_owned();
    let port = free_port();
    let limit = rate.map_or(String::new(), |r| {
        format!("location ~ \\.tar\\.gz$ {{ limit_rate {r}; }}")
    });
    let log = dir.join("error.log");
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {log};\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           types {{ text/plain txt; application/octet-stream gz; }}\n\
           server {{ listen 127.0.0.1:{port}{ssl}; root {root}; {limit} }}\n}}\n",
        ssl = tls.map_or(String::new(), |c| format!(
            " ssl; ssl_certificate {}; ssl_certificate_key {}",
            c.cert.display(),
            c.key.display()
        )),
        d = dir.display(),
        log = log.display(),
        root = root.display(),
    );
    fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new("/usr/sbin/nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Some(
        Daemon {
            child,
            port,
            log,
            _dir: temp,
        }
        .wait_ready("nginx"),
    )
}

/// vsftpd serving `root` to anonymous users, at most `rate` bytes/s.
fn vsftpd(root: &Path, rate: Option<u64>) -> Option<Daemon> {
    vsftpd_with(root, rate, None, false)
}

/// vsftpd serving `root` to anonymous users, who may also upload, make
/// folders, rename and delete below it (in folders the `ftp` user may
/// write to); its transfer log is [`Daemon::xfer_log`].
pub fn vsftpd_writable(root: &Path) -> Option<Daemon> {
    vsftpd_with(root, None, None, true)
}

/// vsftpd as above, requiring TLS (explicit FTPS) with `tls` when given.
fn vsftpd_with(
    root: &Path,
    rate: Option<u64>,
    tls: Option<&Certs>,
    writable: bool,
) -> Option<Daemon> {
    if !have("/usr/sbin/vsftpd", "vsftpd") {
        return None;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_owned();
    let port = free_port();
    let log = dir.join("vsftpd.log");
    let empty = dir.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let conf = format!(
        "listen=YES\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n\
         anonymous_enable=YES\nanon_root={root}\nno_anon_password=YES\nlocal_enable=NO\n{write}\
         pasv_enable=YES\npasv_address=127.0.0.1\nseccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\n\
         secure_chroot_dir={empty}\nvsftpd_log_file={log}\nxferlog_enable=YES\nanon_max_rate={rate}\n{ssl}",
        ssl = tls.map_or(String::new(), |c| format!(
            "ssl_enable=YES\nallow_anon_ssl=YES\nforce_anon_logins_ssl=YES\nforce_anon_data_ssl=YES\n\
             require_ssl_reuse=NO\nssl_tlsv1=NO\nssl_sslv2=NO\nssl_sslv3=NO\nssl_ciphers=HIGH\n\
             rsa_cert_file={}\nrsa_private_key_file={}\n",
            c.cert.display(),
            c.key.display()
        )),
        root = root.display(),
        empty = empty.display(),
        log = log.display(),
        rate = rate.unwrap_or(0),
        write = if writable {
            "write_enable=YES\nanon_upload_enable=YES\nanon_mkdir_write_enable=YES\n\
             anon_other_write_enable=YES\nanon_umask=022\n"
        } else {
            "write_enable=NO\n"
        },
    );
    fs::write(dir.join("vsftpd.conf"), conf).unwrap();
    let child = Command::new("/usr/sbin/vsftpd")
        .arg(dir.join("vsftpd.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Some(
        Daemon {
            child,
            port,
            log,
            _dir: temp,
        }
        .wait_ready("vsftpd"),
    )
}

/// A private certificate authority and a server certificate for 127.0.0.1.
struct Certs {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certs() -> Option<Certs> {
    if !have("/usr/bin/openssl", "openssl") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let openssl = |args: &[&str]| {
        let out = Command::new("/usr/bin/openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=leapfrog test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    Some(Certs {
        ca: d.join("ca.pem"),
        cert: d.join("server.pem"),
        key: d.join("server.key"),
        _dir: dir,
    })
}

/// The anonymous FTP user must be able to read the releases.
fn open_to_all(world: &World) {
    use std::os::unix::fs::PermissionsExt;
    for dir in [world.dir.path(), &world.releases] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    for entry in fs::read_dir(&world.releases).unwrap() {
        fs::set_permissions(entry.unwrap().path(), fs::Permissions::from_mode(0o644)).unwrap();
    }
}

fn expected_after_update(world: &World) -> std::collections::BTreeMap<String, String> {
    let mut installed = tree_hashes(&world.install);
    installed.remove(leapfrog::internal::STATE_NAME);
    let mut want = tree_hashes(&world.fixture.tree_1_1);
    want.insert(USER_FILE.into(), installed[USER_FILE].clone());
    want.insert(
        ".leapfrog-release".into(),
        installed[".leapfrog-release"].clone(),
    );
    assert_eq!(installed, want);
    want
}

#[test]
fn nginx_full_update() {
    let world = World::new();
    let Some(server) = nginx(&world.releases, None) else {
        return;
    };
    world
        .launch(&format!("http://127.0.0.1:{}/versions.txt", server.port))
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    expected_after_update(&world);
}

#[test]
fn nginx_adoption_pings_are_opt_in_daily_and_name_no_install() {
    // An app that did not turn pings on sends none.
    let quiet = World::new();
    let Some(server) = nginx(&quiet.releases, None) else {
        return;
    };
    let url = format!("http://127.0.0.1:{}/versions.txt", server.port);
    quiet
        .launch(&url)
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    assert!(
        !server.access_log().contains("ping.txt"),
        "{}",
        server.access_log()
    );
    // One that did: a ping with its first check, none again that day.
    let world = World::new();
    let config = world.install.join("data/config.json");
    let turn_on = || {
        let mut doc: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&config).unwrap()).unwrap();
        doc["Update_app"]["adoption_ping"] = true.into();
        fs::write(&config, doc.to_string()).unwrap();
    };
    turn_on();
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    // (The setting is the release's: 1.1.0's config would carry it too.)
    turn_on();
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("up to date");
    // Three days later.
    let mut state = leapfrog::internal::State::read(&world.install).unwrap();
    let today = state.last_ping.expect("the day of the ping is kept");
    state.last_ping = Some(today - 3);
    state.write(&world.install).unwrap();
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("up to date");
    let log = server.access_log();
    let pings: Vec<&str> = log.lines().filter(|l| l.contains("ping.txt")).collect();
    assert_eq!(pings.len(), 2, "{log}");
    assert!(
        pings[0].contains("\"GET /ping.txt?p=demo&v=1.0.0&c=stable&d=new HTTP/1.1\" 200"),
        "{log}"
    );
    assert!(
        pings[1].contains("\"GET /ping.txt?p=demo&v=1.1.0&c=stable&d=3 HTTP/1.1\" 200"),
        "{log}"
    );
    // The manifest is asked for by one URL, the same for every install.
    for line in log.lines().filter(|l| l.contains("versions.txt")) {
        assert!(line.contains("\"GET /versions.txt HTTP/1.1\""), "{line}");
    }
    let access = world.dir.path().join("access.log");
    fs::write(&access, &log).unwrap();
    run(
        leapfrog().arg("adoption").arg(&access),
        Duration::from_secs(30),
    )
    .expect_code(0)
    .expect_output("demo 1.0.0 (stable): 1 pings: 1 new installs, 0 a day after the last")
    .expect_output(
        "demo 1.1.0 (stable): 1 pings: 0 new installs, 0 a day after the last, 1 within a week",
    );
}

#[test]
fn nginx_signed_update() {
    let world = World::signed();
    let Some(server) = nginx(&world.releases, None) else {
        return;
    };
    world
        .launch(&format!("http://127.0.0.1:{}/versions.txt", server.port))
        .expect_code(0)
        .expect_output("signature verified")
        .expect_output("demo 1.1.0 running");
    expected_after_update(&world);
}

/// Kills the app once its partial download has `at_least` bytes.
fn launch_and_kill_mid_download(world: &World, url: &str, at_least: u64) -> u64 {
    let partial = world
        .backup
        .join(".leapfrog-download/demo-1.1.0.tar.gz.partial");
    let mut child = command(&world.install.join("demo"))
        .env("LEAPFROG_ASSUME_YES", "1")
        .env("LEAPFROG_MANIFEST_URL", url)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = fs::metadata(&partial).map_or(0, |m| m.len());
        if got >= at_least {
            child.kill().unwrap();
            child.wait().unwrap();
            return fs::metadata(&partial).unwrap().len();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the app ended before the download was cut"
        );
        assert!(Instant::now() < deadline, "the download did not get going");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn nginx_download_killed_then_resumed() {
    let world = World::new();
    let Some(server) = nginx(&world.releases, Some("2m")) else {
        return;
    };
    let url = format!("http://127.0.0.1:{}/versions.txt", server.port);
    let kept = launch_and_kill_mid_download(&world, &url, 1_000_000);
    let size = fs::metadata(world.releases.join("demo-1.1.0.tar.gz"))
        .unwrap()
        .len();
    assert!(kept > 0 && kept < size, "{kept} of {size}");
    let run = world
        .launch(&url)
        .expect_code(0)
        .expect_output("resuming http://127.0.0.1:")
        .expect_output("demo 1.1.0 running");
    let at: u64 = run
        .stdout()
        .split("at byte ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(at >= kept.min(1_000_000), "resumed at {at}, kept {kept}");
    expected_after_update(&world);
    // nginx served the rest with 206 from where the kept part ended.
    let access = fs::read_to_string(server.log.with_file_name("access.log")).unwrap();
    assert!(
        access
            .lines()
            .any(|l| l.contains("demo-1.1.0.tar.gz") && l.contains("\" 206 ")),
        "{access}"
    );
}

#[test]
fn vsftpd_full_update() {
    let world = World::new();
    open_to_all(&world);
    let Some(server) = vsftpd(&world.releases, None) else {
        return;
    };
    world
        .launch(&format!("ftp://127.0.0.1:{}/versions.txt", server.port))
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    expected_after_update(&world);
}

#[test]
fn vsftpd_download_killed_then_resumed_with_rest() {
    let world = World::new();
    open_to_all(&world);
    let Some(server) = vsftpd(&world.releases, Some(2_000_000)) else {
        return;
    };
    let url = format!("ftp://127.0.0.1:{}/versions.txt", server.port);
    let kept = launch_and_kill_mid_download(&world, &url, 1_000_000);
    world
        .launch(&url)
        .expect_code(0)
        .expect_output(&format!("at byte {kept}"))
        .expect_output("demo 1.1.0 running");
    expected_after_update(&world);
}

#[test]
fn vsftpd_missing_file_is_a_clear_error() {
    let world = World::new();
    open_to_all(&world);
    fs::remove_file(world.releases.join("demo-1.1.0.tar.gz")).unwrap();
    let Some(server) = vsftpd(&world.releases, None) else {
        return;
    };
    let before = tree_hashes(&world.install);
    world
        .launch(&format!("ftp://127.0.0.1:{}/versions.txt", server.port))
        .expect_code(0)
        .expect_output("/demo-1.1.0.tar.gz is not on the server")
        .expect_output("demo 1.0.0 running");
    assert_eq!(tree_hashes(&world.install), before);
}

#[test]
fn nginx_https_with_a_private_ca() {
    let world = World::new();
    let Some(certs) = certs() else { return };
    let Some(server) = nginx_with(&world.releases, None, Some(&certs)) else {
        return;
    };
    let url = format!("https://127.0.0.1:{}/versions.txt", server.port);
    // Not trusted by the public roots: refused, nothing changes.
    let before = tree_hashes(&world.install);
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("certificate")
        .expect_output("demo 1.0.0 running")
        .expect_no_output("demo 1.1.0 running");
    assert_eq!(tree_hashes(&world.install), before);
    // Trusted through LEAPFROG_CA_FILE: the update goes through.
    world
        .launch_env(&url, &[("LEAPFROG_CA_FILE", certs.ca.to_str().unwrap())])
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    expected_after_update(&world);
}

#[test]
fn nginx_https_trusted_through_the_system_certificate_store() {
    // A company's own authority (a TLS-inspecting proxy, an internal host)
    // is trusted where the operating system trusts it: here the system
    // store is the CA file named by SSL_CERT_FILE, as OpenSSL and
    // rustls-native-certs read it on Linux. The app sets no roots itself.
    let world = World::new();
    let Some(certs) = certs() else { return };
    let Some(server) = nginx_with(&world.releases, None, Some(&certs)) else {
        return;
    };
    let url = format!("https://127.0.0.1:{}/versions.txt", server.port);
    world
        .launch_env(&url, &[("SSL_CERT_FILE", certs.ca.to_str().unwrap())])
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    expected_after_update(&world);
}

#[test]
fn vsftpd_ftps_update() {
    let world = World::new();
    open_to_all(&world);
    let Some(certs) = certs() else { return };
    let Some(server) = vsftpd_with(&world.releases, None, Some(&certs), false) else {
        return;
    };
    // Plain FTP is refused by this server (TLS required)...
    world
        .launch(&format!("ftp://127.0.0.1:{}/versions.txt", server.port))
        .expect_code(0)
        .expect_output("refused")
        .expect_no_output("demo 1.1.0 running");
    // ... and FTPS with the private CA works.
    world
        .launch_env(
            &format!("ftps://127.0.0.1:{}/versions.txt", server.port),
            &[("LEAPFROG_CA_FILE", certs.ca.to_str().unwrap())],
        )
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    expected_after_update(&world);
}
