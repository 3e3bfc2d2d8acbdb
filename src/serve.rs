//! A small static file server for demos and tests: GET and HEAD, single byte
//! ranges (with If-Range against the ETag or Last-Modified it sends),
//! conditional requests (If-None-Match, If-Modified-Since: 304),
//! correct Content-Length, nothing outside the served folder. HTTP is
//! parsed by tiny_http; this module only maps paths and ranges.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::error::{io_err, Error, Result};

/// A running server; it stops when dropped.
pub struct Server {
    http: Arc<tiny_http::Server>,
    addr: SocketAddr,
    workers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Serves `dir` on `addr` (use port 0 for any free port) with a few
    /// worker threads, and returns at once.
    pub fn start(dir: impl AsRef<Path>, addr: &str) -> Result<Server> {
        let dir = dir.as_ref();
        let root = dir
            .canonicalize()
            .map_err(io_err("opening the folder to serve", dir))?;
        let http = tiny_http::Server::http(addr)
            .map_err(|e| Error::Settings(format!("cannot listen on {addr}: {e}")))?;
        let addr = http
            .server_addr()
            .to_ip()
            .ok_or_else(|| Error::Settings(format!("{addr} is not an IP address")))?;
        let http = Arc::new(http);
        let workers = (0..4)
            .map(|_| {
                let http = Arc::clone(&http);
                let root = root.clone();
                std::thread::spawn(move || {
                    while let Ok(request) = http.recv() {
                        handle(&root, request);
                    }
                })
            })
            .collect();
        Ok(Server {
            http,
            addr,
            workers,
        })
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Blocks until the server stops.
    pub fn wait(mut self) {
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.http.unblock();
        for _ in 1..self.workers.len() {
            self.http.unblock();
        }
    }
}

fn handle(root: &Path, request: Request) {
    let response = respond(root, &request);
    let _ = request.respond(response);
}

type Reply = Response<Box<dyn std::io::Read + Send>>;

fn text(status: u16, body: &str) -> Reply {
    let bytes = body.as_bytes().to_vec();
    let len = bytes.len();
    Response::new(
        StatusCode(status),
        vec![header("Content-Type", "text/plain; charset=utf-8")],
        Box::new(std::io::Cursor::new(bytes)),
        Some(len),
        None,
    )
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

fn respond(root: &Path, request: &Request) -> Reply {
    if !matches!(request.method(), Method::Get | Method::Head) {
        return text(405, "only GET and HEAD\n").with_header(header("Allow", "GET, HEAD"));
    }
    let Some(path) = map_path(root, request.url()) else {
        return text(404, "not found\n");
    };
    let Ok(mut file) = File::open(&path) else {
        return text(404, "not found\n");
    };
    let Ok(meta) = file.metadata() else {
        return text(404, "not found\n");
    };
    if !meta.is_file() {
        return text(404, "not found\n");
    }
    let len = meta.len();
    let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
    let last_modified = httpdate::fmt_http_date(modified);
    let etag = format!(
        "\"{len:x}-{:x}\"",
        modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let header_value = |name: &'static str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().to_owned())
    };
    // A conditional request for the copy the client has: 304, no body
    // (If-None-Match decides when it is sent, RFC 9110 13.1.3).
    let unchanged = match header_value("If-None-Match") {
        Some(tags) => tags
            .split(',')
            .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == etag),
        None => header_value("If-Modified-Since")
            .and_then(|v| httpdate::parse_http_date(&v).ok())
            .is_some_and(|since| seconds(modified) <= seconds(since)),
    };
    if unchanged {
        return Response::new(
            StatusCode(304),
            vec![
                header("ETag", &etag),
                header("Last-Modified", &last_modified),
            ],
            Box::new(std::io::empty()),
            Some(0),
            None,
        );
    }
    // If-Range: honour the range only for the same version of the file.
    let same_file = header_value("If-Range").is_none_or(|v| v == etag || v == last_modified);
    let range = header_value("Range")
        .filter(|_| same_file)
        .map(|v| parse_range(&v, len));
    let content_type = if path.extension().is_some_and(|e| e == "txt") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    let mut headers = vec![
        header("Content-Type", content_type),
        header("Accept-Ranges", "bytes"),
        header("ETag", &etag),
        header("Last-Modified", &last_modified),
    ];
    let (status, start, count) = match range {
        None | Some(RangeAsk::Ignore) => (200, 0, len),
        Some(RangeAsk::Unsatisfiable) => {
            return text(416, "range not satisfiable\n")
                .with_header(header("Content-Range", &format!("bytes */{len}")));
        }
        Some(RangeAsk::Bytes(start, end)) => {
            headers.push(header(
                "Content-Range",
                &format!("bytes {start}-{end}/{len}"),
            ));
            (206, start, end - start + 1)
        }
    };
    if file.seek(SeekFrom::Start(start)).is_err() {
        return text(500, "seek failed\n");
    }
    let body: Box<dyn std::io::Read + Send> = Box::new(std::io::Read::take(file, count));
    Response::new(
        StatusCode(status),
        headers,
        body,
        Some(count as usize),
        None,
    )
}

/// Whole seconds since the Unix epoch: what an HTTP date can say.
fn seconds(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Maps a request URL to a file below `root`, or `None` when it would leave it.
fn map_path(root: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let decoded = crate::fetch::percent_decode(path)?;
    let mut out = root.to_owned();
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p if p.contains('\\') || p.contains('\0') || p.contains(':') => return None,
            p => out.push(p),
        }
    }
    // Refuse symlinks that lead out of the served folder.
    let real = out.canonicalize().ok()?;
    real.starts_with(root).then_some(real)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAsk {
    /// Serve the whole file (malformed or multi-range requests).
    Ignore,
    Unsatisfiable,
    /// Inclusive first and last byte.
    Bytes(u64, u64),
}

fn parse_range(value: &str, len: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Ignore;
    };
    if spec.contains(',') {
        return RangeAsk::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, true) => return RangeAsk::Ignore,
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return RangeAsk::Unsatisfiable,
            Ok(n) => Some((len.saturating_sub(n), len.saturating_sub(1))),
            Err(_) => return RangeAsk::Ignore,
        },
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else {
                return RangeAsk::Ignore;
            };
            let end = if b.is_empty() {
                len.saturating_sub(1)
            } else {
                match b.parse::<u64>() {
                    Ok(end) if end >= start => end.min(len.saturating_sub(1)),
                    _ => return RangeAsk::Ignore,
                }
            };
            if start >= len {
                return RangeAsk::Unsatisfiable;
            }
            Some((start, end))
        }
    };
    match parsed {
        Some((s, e)) if len > 0 => RangeAsk::Bytes(s, e),
        _ => RangeAsk::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAsk::*;
        assert_eq!(parse_range("bytes=0-9", 100), Bytes(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Bytes(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Bytes(90, 99));
        assert_eq!(parse_range("bytes=50-500", 100), Bytes(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ignore);
        assert_eq!(parse_range("items=0-1", 100), Ignore);
        assert_eq!(parse_range("bytes=5-2", 100), Ignore);
    }

    #[test]
    fn paths_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("a b.txt"), "x").unwrap();
        assert_eq!(
            map_path(&root, "/a%20b.txt?x=1"),
            Some(root.join("a b.txt"))
        );
        assert_eq!(map_path(&root, "/../etc/passwd"), None);
        assert_eq!(map_path(&root, "/%2e%2e/etc/passwd"), None);
        assert_eq!(map_path(&root, "/missing"), None);
    }
}
