//! Getting bytes from wherever the releases are hosted.
//!
//! One module per transport, each with the same `open` signature: [`http`]
//! (`http://`, `https://` through ureq) and [`file`](mod@file) (`file://` URLs, plain
//! paths and UNC paths for shares). Everything is streamed; the manifest is
//! capped in size, and a download stops at the size the manifest states.

pub mod file;
pub mod http;

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{io_err, Error, Result};
use crate::verify::HashingReader;

/// Progress of a download: bytes so far, and the total when known.
pub type ProgressFn = Arc<dyn Fn(u64, Option<u64>) + Send + Sync>;

/// How patient and how trusting a fetch is.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed without receiving a byte.
    pub read_timeout: Duration,
    /// The largest manifest accepted.
    pub max_manifest_bytes: u64,
    /// The User-Agent sent over HTTP.
    pub user_agent: String,
    /// The slowest transfer accepted, in bytes per second, averaged over
    /// `rate_window` (a server that drips bytes is given up on).
    pub min_rate: u64,
    /// The span over which `min_rate` is measured.
    pub rate_window: Duration,
}

impl Limits {
    /// Applies `LEAPFROG_CONNECT_TIMEOUT`, `LEAPFROG_READ_TIMEOUT`,
    /// `LEAPFROG_RATE_WINDOW` (durations such as `10s` or `500ms`) and
    /// `LEAPFROG_MIN_RATE` (bytes per second) when set.
    pub fn apply_env(&mut self) -> Result<()> {
        let duration = |name: &str, slot: &mut Duration| -> Result<()> {
            if let Ok(v) = std::env::var(name) {
                *slot = humantime::parse_duration(v.trim())
                    .map_err(|e| Error::Settings(format!("{name}={v:?}: {e} (e.g. 10s, 500ms)")))?;
            }
            Ok(())
        };
        duration("LEAPFROG_CONNECT_TIMEOUT", &mut self.connect_timeout)?;
        duration("LEAPFROG_READ_TIMEOUT", &mut self.read_timeout)?;
        duration("LEAPFROG_RATE_WINDOW", &mut self.rate_window)?;
        if let Ok(v) = std::env::var("LEAPFROG_MIN_RATE") {
            self.min_rate = v.trim().parse().map_err(|_| {
                Error::Settings(format!(
                    "LEAPFROG_MIN_RATE={v:?}: expected bytes per second"
                ))
            })?;
        }
        Ok(())
    }
}

/// Fails a transfer whose average rate over a window falls below a minimum
/// (slow retrieval: a server that sends a byte now and then never trips a
/// read timeout).
struct RateGuard<R> {
    inner: R,
    min_rate: u64,
    window: Duration,
    window_start: std::time::Instant,
    window_bytes: u64,
}

impl<R: Read> Read for RateGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.window_bytes += n as u64;
        let elapsed = self.window_start.elapsed();
        if elapsed >= self.window && !self.window.is_zero() {
            let rate = self.window_bytes as f64 / elapsed.as_secs_f64();
            if rate < self.min_rate as f64 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "slower than {} bytes/s over {:?} ({rate:.0} bytes/s)",
                        self.min_rate, self.window
                    ),
                ));
            }
            self.window_start = std::time::Instant::now();
            self.window_bytes = 0;
        }
        Ok(n)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_manifest_bytes: 1024 * 1024,
            user_agent: format!("leapfrog/{}", env!("CARGO_PKG_VERSION")),
            min_rate: 1024,
            rate_window: Duration::from_secs(30),
        }
    }
}

/// An open stream and, when the source says, its length.
pub struct Source {
    /// The bytes.
    pub reader: Box<dyn Read + Send>,
    /// The length announced by the source.
    pub len: Option<u64>,
}

/// Opens `url` with the transport its scheme names; the stream fails when
/// it falls below `limits.min_rate`.
pub fn open(url: &str, limits: &Limits) -> Result<Source> {
    let lower = url.to_ascii_lowercase();
    let source = if lower.starts_with("http://") || lower.starts_with("https://") {
        http::open(url, limits)?
    } else if lower.starts_with("file://") || !lower.contains("://") {
        file::open(url, limits)?
    } else {
        return Err(Error::Download {
            url: url.to_owned(),
            message: "unsupported URL scheme; use http://, https://, file:// or a path".into(),
        });
    };
    Ok(Source {
        reader: Box::new(RateGuard {
            inner: source.reader,
            min_rate: limits.min_rate,
            window: limits.rate_window,
            window_start: std::time::Instant::now(),
            window_bytes: 0,
        }),
        len: source.len,
    })
}

/// Fetches a small text document (the manifest), refusing one larger than
/// `limits.max_manifest_bytes`.
pub fn fetch_text(url: &str, limits: &Limits) -> Result<String> {
    let source = open(url, limits)?;
    let cap = limits.max_manifest_bytes;
    if source.len.is_some_and(|n| n > cap) {
        return Err(too_big(url, cap));
    }
    let mut bytes = Vec::new();
    source
        .reader
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| transfer_error(url, e))?;
    if bytes.len() as u64 > cap {
        return Err(too_big(url, cap));
    }
    String::from_utf8(bytes).map_err(|_| Error::Download {
        url: url.to_owned(),
        message: "the manifest is not UTF-8 text".into(),
    })
}

fn too_big(url: &str, cap: u64) -> Error {
    Error::Download {
        url: url.to_owned(),
        message: format!("larger than the {cap}-byte limit for a manifest; is this the right URL?"),
    }
}

pub(crate) fn transfer_error(url: &str, e: io::Error) -> Error {
    let ureq_timeout = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)));
    let kind = if ureq_timeout {
        io::ErrorKind::TimedOut
    } else {
        e.kind()
    };
    let message = match kind {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("the server stopped sending ({e}); try again later")
        }
        _ => format!("the transfer broke off ({e}); try again"),
    };
    Error::Download {
        url: url.to_owned(),
        message,
    }
}

/// What [`download`] must check.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// The lowercase hex sha256, when the manifest gives one.
    pub sha256: Option<&'a str>,
    /// The size in bytes, when the manifest gives one.
    pub size: Option<u64>,
}

/// Downloads `url` to `dest`: the bytes go to `dest.partial` while being
/// hashed, and only a download of the expected size and sha256 is renamed to
/// `dest`. On any mismatch the partial file is removed and nothing is at `dest`.
/// Returns the sha256 and size of what arrived.
pub fn download(
    url: &str,
    dest: &Path,
    expect: &Expect<'_>,
    limits: &Limits,
    progress: Option<&ProgressFn>,
) -> Result<(String, u64)> {
    let partial = partial_path(dest);
    let result = download_to(url, &partial, expect, limits, progress);
    match result {
        Ok(done) => {
            fs::rename(&partial, dest)
                .map_err(io_err(&format!("renaming {} to", partial.display()), dest))?;
            Ok(done)
        }
        Err(e) => {
            let _ = fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

fn download_to(
    url: &str,
    partial: &Path,
    expect: &Expect<'_>,
    limits: &Limits,
    progress: Option<&ProgressFn>,
) -> Result<(String, u64)> {
    let source = open(url, limits)?;
    if let (Some(expected), Some(announced)) = (expect.size, source.len) {
        if announced != expected {
            return Err(Error::SizeMismatch {
                url: url.to_owned(),
                expected,
                got: announced,
            });
        }
    }
    let total = expect.size.or(source.len);
    // Never read more than one byte past the promised size.
    let cap = expect.size.map_or(u64::MAX, |s| s + 1);
    let mut reader = HashingReader::new(source.reader.take(cap));
    let file = File::create(partial).map_err(io_err("creating", partial))?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let mut buf = vec![0u8; 256 * 1024];
    let mut last_report = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(transfer_error(url, e)),
        };
        out.write_all(&buf[..n])
            .map_err(io_err("writing", partial))?;
        if let Some(report) = progress {
            let so_far = reader.count();
            if so_far - last_report >= 1 << 20 || Some(so_far) == total {
                report(so_far, total);
                last_report = so_far;
            }
        }
    }
    // No fsync here: the archive is only read back by the unpack that
    // follows at once, and nothing trusts it across a crash (the journal is
    // written after the unpacked tree, and without it staging starts over).
    out.into_inner()
        .map_err(|e| io_err("writing", partial)(e.into_error()))?;
    let (computed, got) = reader.finish();
    if let Some(expected) = expect.size {
        if got != expected {
            return Err(Error::SizeMismatch {
                url: url.to_owned(),
                expected,
                got,
            });
        }
    }
    if let Some(expected) = expect.sha256 {
        if computed != expected {
            return Err(Error::ChecksumMismatch {
                url: url.to_owned(),
                expected: expected.to_owned(),
                computed,
            });
        }
    }
    if let Some(report) = progress {
        report(got, Some(got));
    }
    Ok((computed, got))
}
