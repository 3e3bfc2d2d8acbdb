//! Any static host: what goes over HTTP (User-Agent, credentials, proxies),
//! retries, mirrors. Real nginx and vsftpd are in `servers`.

use std::fs;

use crate::util::evil::{Behave, EvilServer};
use crate::util::*;

fn heads(server: &EvilServer, path: &str) -> Vec<String> {
    server
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h.lines().next().is_some_and(|l| l.contains(path)))
        .map(|h| h.to_ascii_lowercase())
        .collect()
}

#[test]
fn http_user_agent_names_leapfrog_and_the_app() {
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    world
        .launch(&server.manifest_url())
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    let first = &heads(&server, "versions.txt")[0];
    assert!(
        first.contains(&format!(
            "user-agent: leapfrog/{} (demo/1.0.0)",
            env!("CARGO_PKG_VERSION")
        )),
        "{first}"
    );
}

#[test]
fn http_basic_auth_is_sent_and_never_printed() {
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    world
        .launch_env(
            &server.manifest_url(),
            &[
                ("LEAPFROG_AUTH_USER", "bob"),
                ("LEAPFROG_AUTH_PASSWORD", "s3cret-pass"),
            ],
        )
        .expect_code(0)
        .expect_output("demo 1.1.0 running")
        .expect_no_output("s3cret");
    let all = heads(&server, "");
    assert!(!all.is_empty());
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD
        .encode("bob:s3cret-pass")
        .to_ascii_lowercase();
    assert!(
        all.iter()
            .all(|h| h.contains(&format!("authorization: basic {token}"))),
        "{all:?}"
    );
}

#[test]
fn http_bearer_token_and_headers_are_sent_and_never_printed() {
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    server.set("versions.txt", Behave::Status(401));
    world
        .launch_env(
            &server.manifest_url(),
            &[
                ("LEAPFROG_AUTH_TOKEN", "t0ken-xyz"),
                ("LEAPFROG_HEADERS", "X-Api-Key: k3y-abc"),
            ],
        )
        .expect_code(0)
        .expect_output("HTTP 401")
        .expect_output("check the credentials")
        .expect_no_output("t0ken-xyz")
        .expect_no_output("k3y-abc");
    let head = &heads(&server, "versions.txt")[0];
    assert!(
        head.contains("authorization: bearer t0ken-xyz") && head.contains("x-api-key: k3y-abc"),
        "{head}"
    );
    // A 4xx is not retried.
    assert_eq!(heads(&server, "versions.txt").len(), 1);
}

#[test]
fn http_password_in_url_is_redacted() {
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    server.set("versions.txt", Behave::Status(403));
    let url = server
        .manifest_url()
        .replace("http://", "http://bob:hunter2@");
    world
        .launch(&url)
        .expect_code(0)
        .expect_output("bob:***@")
        .expect_no_output("hunter2");
}

#[test]
fn http_server_errors_are_retried() {
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    server.set(
        "versions.txt",
        Behave::FailTimes {
            status: 503,
            times: 2,
        },
    );
    server.set(
        "demo-1.1.0.tar.gz",
        Behave::FailTimes {
            status: 500,
            times: 1,
        },
    );
    world
        .launch(&server.manifest_url())
        .expect_code(0)
        .expect_output("HTTP 503")
        .expect_output("trying again in")
        .expect_output("demo 1.1.0 running");
    assert_eq!(heads(&server, "versions.txt").len(), 3);
    assert_eq!(heads(&server, "demo-1.1.0.tar.gz").len(), 2);
}

#[test]
fn http_proxy_from_environment() {
    let world = World::new();
    let proxy = EvilServer::start(world.releases.clone());
    // A host name that does not exist: only the proxy can answer for it.
    world
        .launch_env(
            "http://releases.leapfrog.invalid/versions.txt",
            &[
                ("HTTP_PROXY", proxy.base.trim_end_matches('/')),
                ("NO_PROXY", ""),
            ],
        )
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
    let seen = heads(&proxy, "releases.leapfrog.invalid");
    assert!(
        seen.iter()
            .any(|h| h.starts_with("connect releases.leapfrog.invalid:80")),
        "{:?}",
        proxy.requests.lock().unwrap()
    );
}

#[test]
fn http_no_proxy_goes_direct() {
    let world = World::new();
    let server = EvilServer::start(world.releases.clone());
    world
        .launch_env(
            &server.manifest_url(),
            &[
                ("HTTP_PROXY", "http://127.0.0.1:9"),
                ("NO_PROXY", "127.0.0.1"),
            ],
        )
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
}

#[test]
fn mirrors_skip_down_and_bad_hosts() {
    let world = World::new();
    let bad = EvilServer::start(world.releases.clone());
    bad.set(
        "demo-1.1.0.tar.gz",
        Behave::Body(b"<html>not the archive</html>".to_vec()),
    );
    let good = EvilServer::start(world.releases.clone());
    let dead = format!("http://127.0.0.1:{}/versions.txt", free_port());
    let mirrors = format!("{} {}", bad.manifest_url(), good.manifest_url());
    world
        .launch_env(&dead, &[("LEAPFROG_MIRRORS", &mirrors)])
        .expect_code(0)
        .expect_output("mirror http://127.0.0.1:")
        .expect_output("skipped")
        .expect_output("size mismatch")
        .expect_output(&format!("trying mirror {}", good.manifest_url()))
        .expect_output("demo 1.1.0 running");
    assert_eq!(heads(&good, "demo-1.1.0.tar.gz").len(), 1);
}

#[test]
fn mirrors_all_failing_are_reported_together() {
    let world = World::new();
    let before = tree_hashes(&world.install);
    let (a, b) = (free_port(), free_port());
    let mirrors = format!("http://127.0.0.1:{b}/versions.txt");
    world
        .launch_env(
            &format!("http://127.0.0.1:{a}/versions.txt"),
            &[("LEAPFROG_MIRRORS", &mirrors), ("LEAPFROG_RETRIES", "0")],
        )
        .expect_code(0)
        .expect_output("every mirror failed")
        .expect_output(&format!("127.0.0.1:{a}"))
        .expect_output(&format!("127.0.0.1:{b}"))
        .expect_output("demo 1.0.0 running");
    assert_eq!(tree_hashes(&world.install), before);
}

#[test]
fn json_version_endpoint_works_as_a_source() {
    let world = World::new();
    let archive = world.releases.join("demo-1.1.0.tar.gz");
    let (sha, _) = leapfrog::publish::sha256_file(&archive).unwrap();
    let server = EvilServer::start(world.releases.clone());
    let json = format!(
        r#"{{"latest_version":"1.1.0","download_url":"{}demo-1.1.0.tar.gz","release_notes":"fixes","checksum":"{sha}"}}"#,
        server.base
    );
    fs::write(world.releases.join("latest.json"), json).unwrap();
    world
        .launch(&format!("{}latest.json", server.base))
        .expect_code(0)
        .expect_output("demo 1.1.0 running");
}

/// Plants a kept partial download of `dest` that claims `validator`.
fn plant_partial(dest: &std::path::Path, url: &str, validator: &str, size: u64, junk: usize) {
    let partial = dest.with_file_name(format!(
        "{}.partial",
        dest.file_name().unwrap().to_string_lossy()
    ));
    fs::write(&partial, vec![b'J'; junk]).unwrap();
    let meta = serde_json::json!({"url": url, "validator": validator, "size": size});
    fs::write(
        partial.with_file_name(format!(
            "{}.meta",
            partial.file_name().unwrap().to_string_lossy()
        )),
        meta.to_string(),
    )
    .unwrap();
}

#[test]
fn resume_starts_over_when_the_file_changed_or_range_is_ignored() {
    let fx = fixture();
    let archive = fx.releases.join("demo-1.1.0.tar.gz");
    let (sha, size) = leapfrog::publish::sha256_file(&archive).unwrap();
    let expect = leapfrog::internal::Expect {
        sha256: Some(&sha),
        size: Some(size),
    };
    let limits = leapfrog::internal::Limits::default();
    let dir = tempfile::tempdir().unwrap();

    // The embedded server honours If-Range: a stale validator gets the whole file.
    let server = leapfrog::serve::Server::start(&fx.releases, "127.0.0.1:0").unwrap();
    let url = format!("{}demo-1.1.0.tar.gz", server.url());
    let dest = dir.path().join("a.tar.gz");
    plant_partial(&dest, &url, "\"an older file\"", size, 1000);
    let got = leapfrog::internal::download(&url, &dest, &expect, &limits, None).unwrap();
    assert_eq!(got, (sha.clone(), size));

    // A server that ignores Range: the whole file again, not spliced on.
    let evil = EvilServer::start(fx.releases.clone());
    let url = format!("{}demo-1.1.0.tar.gz", evil.base);
    let dest = dir.path().join("b.tar.gz");
    plant_partial(&dest, &url, &format!("\"{size}\""), size, 1000);
    let got = leapfrog::internal::download(&url, &dest, &expect, &limits, None).unwrap();
    assert_eq!(got, (sha.clone(), size));
    assert!(heads(&evil, "demo-1.1.0.tar.gz")[0].contains("range: bytes=1000-"));

    // A kept part that is corrupt but claims the right validator: the
    // result fails its hash, and the download starts over once by itself.
    let url = format!("{}demo-1.1.0.tar.gz", server.url());
    let etag = ureq::get(&url)
        .call()
        .unwrap()
        .headers()
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let dest = dir.path().join("c.tar.gz");
    plant_partial(&dest, &url, &etag, size, 1000);
    let got = leapfrog::internal::download(&url, &dest, &expect, &limits, None).unwrap();
    assert_eq!(got, (sha, size));
    assert!(!dir.path().join("c.tar.gz.partial").exists());
}
