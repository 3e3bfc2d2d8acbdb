//! A deliberately misbehaving HTTP server for the attack suite: it serves a
//! folder, but any path can be told to answer wrongly (drip, stall, lie
//! about its length, redirect forever, fail, or send something else).

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How one path answers.
#[derive(Clone, Debug)]
pub enum Behave {
    /// The file, as it is.
    Normal,
    /// This status and a short body.
    Status(u16),
    /// 200 with this body instead of the file.
    Body(Vec<u8>),
    /// The file, `chunk` bytes every `every`.
    Drip { chunk: usize, every: Duration },
    /// The first `after` bytes of the file, then nothing (connection held open).
    Stall { after: usize },
    /// The file followed by `extra` more bytes, with a Content-Length that
    /// says so, or with no Content-Length at all.
    Longer { extra: usize, announce: bool },
    /// A redirect to the same path, forever.
    RedirectLoop,
    /// A redirect (302) to this location.
    Redirect(String),
    /// The file with an ETag, honouring a `Range: bytes=N-` request
    /// (206), and sent `chunk` bytes every `every` when `drip` says so.
    Ranged { drip: Option<(usize, Duration)> },
    /// 503 with `Retry-After: seconds`.
    Busy(u64),
    /// This status for the first `times` requests, then the file.
    FailTimes { status: u16, times: usize },
}

/// The server; it runs until the test process ends.
pub struct EvilServer {
    pub base: String,
    rules: Arc<Mutex<HashMap<String, Behave>>>,
    /// Every request's head (request line and headers), in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl EvilServer {
    pub fn start(dir: PathBuf) -> EvilServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let rules: Arc<Mutex<HashMap<String, Behave>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (shared, log) = (rules.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (dir, rules, log) = (dir.clone(), shared.clone(), log.clone());
                std::thread::spawn(move || serve(stream, &dir, &rules, &log));
            }
        });
        EvilServer {
            base,
            rules,
            requests,
        }
    }

    /// Makes `path` (e.g. "versions.txt") answer as `behave`.
    pub fn set(&self, path: &str, behave: Behave) {
        self.rules.lock().unwrap().insert(path.to_owned(), behave);
    }

    /// Every path answers normally again.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    pub fn manifest_url(&self) -> String {
        format!("{}versions.txt", self.base)
    }
}

fn serve(
    mut stream: TcpStream,
    dir: &std::path::Path,
    rules: &Mutex<HashMap<String, Behave>>,
    log: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    let mut request_head;
    // As a proxy, a CONNECT opens a tunnel; the requests that come through
    // it are answered here as well.
    loop {
        request.clear();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        let mut head = request.clone();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        request_head = head.clone();
        log.lock().unwrap().push(head);
        if !request.starts_with("CONNECT ") {
            break;
        }
        let _ = stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
    }
    // A proxy is asked for the absolute URL: serve its path all the same.
    let target = request.split_whitespace().nth(1).unwrap_or("/");
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let path = target.trim_start_matches('/').to_owned();
    let mut behave = rules
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or(Behave::Normal);
    if let Behave::FailTimes { status, times } = behave {
        behave = if times > 0 {
            rules.lock().unwrap().insert(
                path.clone(),
                Behave::FailTimes {
                    status,
                    times: times - 1,
                },
            );
            Behave::Status(status)
        } else {
            Behave::Normal
        };
    }
    let file = fs::read(dir.join(&path));
    let head = |stream: &mut TcpStream, status: &str, len: Option<usize>| {
        let len = len.map_or(String::new(), |l| format!("Content-Length: {l}\r\n"));
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\n{len}Connection: close\r\n\r\n"
        );
    };
    let body = match (&behave, file) {
        (Behave::Status(code), _) => {
            let text = format!("error {code}\n");
            head(&mut stream, &format!("{code} Error"), Some(text.len()));
            let _ = stream.write_all(text.as_bytes());
            return;
        }
        (Behave::Busy(seconds), _) => {
            let text = "busy\n";
            let _ = write!(
                stream,
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {seconds}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
            return;
        }
        (Behave::Body(bytes), _) => {
            head(&mut stream, "200 OK", Some(bytes.len()));
            let _ = stream.write_all(bytes);
            return;
        }
        (Behave::Redirect(to), _) => {
            let _ = write!(stream, "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        (Behave::RedirectLoop, _) => {
            let _ = write!(stream, "HTTP/1.1 302 Found\r\nLocation: /{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        (_, Err(_)) => {
            head(&mut stream, "404 Not Found", Some(0));
            return;
        }
        (_, Ok(body)) => body,
    };
    match behave {
        Behave::Drip { chunk, every } => {
            head(&mut stream, "200 OK", Some(body.len()));
            for piece in body.chunks(chunk) {
                if stream.write_all(piece).is_err() {
                    return;
                }
                std::thread::sleep(every);
            }
        }
        Behave::Ranged { drip } => {
            let from = request_head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("range").then(|| value.trim())
                })
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim().strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n < body.len());
            let _ = match from {
                Some(n) => write!(
                    stream,
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {n}-{}/{}\r\nETag: \"{}\"\r\nConnection: close\r\n\r\n",
                    body.len() - n,
                    body.len() - 1,
                    body.len(),
                    body.len()
                ),
                None => write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"{}\"\r\nConnection: close\r\n\r\n",
                    body.len(),
                    body.len()
                ),
            };
            let rest = &body[from.unwrap_or(0)..];
            let (chunk, every) = drip.unwrap_or((rest.len().max(1), Duration::ZERO));
            for piece in rest.chunks(chunk) {
                if stream.write_all(piece).is_err() {
                    return;
                }
                std::thread::sleep(every);
            }
        }
        Behave::Stall { after } => {
            head(&mut stream, "200 OK", Some(body.len()));
            let _ = stream.write_all(&body[..after.min(body.len())]);
            std::thread::sleep(Duration::from_secs(30));
        }
        Behave::Longer { extra, announce } => {
            head(
                &mut stream,
                "200 OK",
                announce.then_some(body.len() + extra),
            );
            let _ = stream.write_all(&body);
            let _ = stream.write_all(&vec![b'x'; extra]);
        }
        _ => {
            // An ETag, but Range requests are ignored: always the whole file.
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"{}\"\r\nConnection: close\r\n\r\n",
                body.len(),
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    }
}
