//! Getting bytes from wherever the releases are hosted.
//!
//! One module per transport, each with the same `open` signature: [`http`]
//! (`http://`, `https://` through ureq), [`ftp`] (`ftp://`, `ftps://` through
//! suppaftp) and [`file`](mod@file) (`file://` URLs, plain paths and UNC
//! paths for shares). Everything is streamed; the manifest is capped in
//! size, a download stops at the size the manifest states, and a transfer
//! that stalls or drips is given up on.
//!
//! Network errors and server errors (5xx) are retried with backoff; client
//! errors (4xx) are not. A download that breaks off is continued from where
//! it stopped (an HTTP Range request checked against the ETag or
//! Last-Modified date, FTP REST, a seek for files), within one run and across
//! a relaunch of the app: the `.partial` file and its `.partial.meta` are
//! kept until the download verifies or proves wrong.

pub mod file;
pub mod ftp;
pub mod http;

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{io_err, Error, Result};
use crate::release::hash::Hasher;

/// Progress of a download: bytes so far, and the total when known.
pub type ProgressFn = Arc<dyn Fn(u64, Option<u64>) + Send + Sync>;

/// Credentials for private hosts. Never printed: `Debug` shows only which
/// kinds are set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// HTTP basic auth, and the FTP login.
    pub basic: Option<(String, String)>,
    /// An HTTP bearer token.
    pub bearer: Option<String>,
    /// Extra HTTP headers (name, value).
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field(
                "basic",
                &self.basic.as_ref().map(|(user, _)| format!("{user}:***")),
            )
            .field("bearer", &self.bearer.as_ref().map(|_| "***"))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| format!("{name}: ***"))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// How fetches are made: patience, retries, identity.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed without receiving a byte.
    pub read_timeout: Duration,
    /// The largest manifest accepted.
    pub max_manifest_bytes: u64,
    /// The User-Agent sent over HTTP (the updater sets it to name the app too).
    pub user_agent: String,
    /// The slowest transfer accepted, in bytes per second, averaged over
    /// `rate_window` (a server that drips bytes is given up on).
    pub min_rate: u64,
    /// The span over which `min_rate` is measured.
    pub rate_window: Duration,
    /// How often a failed request is tried again (network errors and 5xx).
    pub retries: u32,
    /// The first wait before trying again; it doubles each time.
    pub retry_backoff: Duration,
    /// Credentials for private hosts.
    pub credentials: Credentials,
    /// Root certificates (PEM) to trust instead of the public ones, for a
    /// host with its own certificate authority (HTTPS and FTPS).
    pub tls_roots_pem: Option<Vec<u8>>,
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
            retries: 2,
            retry_backoff: Duration::from_millis(250),
            credentials: Credentials::default(),
            tls_roots_pem: None,
        }
    }
}

impl Limits {
    /// Applies `LEAPFROG_CONNECT_TIMEOUT`, `LEAPFROG_READ_TIMEOUT`,
    /// `LEAPFROG_RATE_WINDOW` (durations such as `10s` or `500ms`),
    /// `LEAPFROG_MIN_RATE` (bytes per second), `LEAPFROG_RETRIES`, and the
    /// credentials `LEAPFROG_AUTH_USER` with `LEAPFROG_AUTH_PASSWORD`,
    /// `LEAPFROG_AUTH_TOKEN`, `LEAPFROG_HEADERS` (`Name: value`, one per
    /// line), and `LEAPFROG_CA_FILE` (root certificates, PEM), when set.
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
        let number =
            |name: &str| -> Result<Option<u64>> {
                match std::env::var(name) {
                    Ok(v) => v.trim().parse().map(Some).map_err(|_| {
                        Error::Settings(format!("{name}={v:?}: expected a whole number"))
                    }),
                    Err(_) => Ok(None),
                }
            };
        if let Some(rate) = number("LEAPFROG_MIN_RATE")? {
            self.min_rate = rate;
        }
        if let Some(retries) = number("LEAPFROG_RETRIES")? {
            self.retries = retries.min(100) as u32;
        }
        if let Ok(user) = std::env::var("LEAPFROG_AUTH_USER") {
            let password = std::env::var("LEAPFROG_AUTH_PASSWORD").unwrap_or_default();
            self.credentials.basic = Some((user, password));
        }
        if let Ok(token) = std::env::var("LEAPFROG_AUTH_TOKEN") {
            self.credentials.bearer = Some(token);
        }
        if let Some(path) = std::env::var_os("LEAPFROG_CA_FILE") {
            let path = std::path::PathBuf::from(path);
            self.tls_roots_pem =
                Some(fs::read(&path).map_err(io_err("reading LEAPFROG_CA_FILE", &path))?);
        }
        if let Ok(headers) = std::env::var("LEAPFROG_HEADERS") {
            for line in headers.lines().filter(|l| !l.trim().is_empty()) {
                let (name, value) = line.split_once(':').ok_or_else(|| {
                    Error::Settings("LEAPFROG_HEADERS: expected `Name: value` lines".into())
                })?;
                self.credentials
                    .headers
                    .push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        Ok(())
    }
}

/// Decodes `%XX` escapes (a malformed escape is kept as it is); `None` when
/// the result is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A URL as it may be shown: any password in it replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme_end + 3], &rest[at..])
        }
        None => url.to_owned(),
    }
}

/// An open stream and what the source said about it.
pub struct Source {
    /// The bytes.
    pub reader: Box<dyn Read + Send>,
    /// The length of what `reader` yields, when the source says.
    pub len: Option<u64>,
    /// What identifies this version of the file (ETag or Last-Modified),
    /// for resuming.
    pub validator: Option<String>,
    /// Where `reader` starts in the file: the offset of an honoured resume
    /// request, else 0.
    pub offset: u64,
}

/// A transport's failure, and whether trying again may help.
pub struct Failure {
    /// What went wrong.
    pub error: Error,
    /// Network errors and server errors are worth another try.
    pub retryable: bool,
}

impl Failure {
    /// A failure worth another try.
    pub fn retry(error: Error) -> Failure {
        Failure {
            error,
            retryable: true,
        }
    }

    /// A final failure.
    pub fn fatal(error: Error) -> Failure {
        Failure {
            error,
            retryable: false,
        }
    }
}

/// A request to continue a download: from `offset`, if the file is still
/// the one `validator` names.
#[derive(Debug, Clone)]
pub struct Resume {
    /// Bytes already there.
    pub offset: u64,
    /// The ETag or Last-Modified seen when the download started.
    pub validator: Option<String>,
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

fn open_once(url: &str, limits: &Limits, resume: Option<&Resume>) -> Result<Source, Failure> {
    let lower = url.to_ascii_lowercase();
    let source = if lower.starts_with("http://") || lower.starts_with("https://") {
        http::open(url, limits, resume)?
    } else if lower.starts_with("ftp://") || lower.starts_with("ftps://") {
        ftp::open(url, limits, resume)?
    } else if lower.starts_with("file://") || !lower.contains("://") {
        file::open(url, limits, resume)?
    } else {
        return Err(Failure::fatal(Error::Download {
            url: redact(url),
            message:
                "unsupported URL scheme; use http://, https://, ftp://, ftps://, file:// or a path"
                    .into(),
        }));
    };
    Ok(Source {
        reader: Box::new(RateGuard {
            inner: source.reader,
            min_rate: limits.min_rate,
            window: limits.rate_window,
            window_start: std::time::Instant::now(),
            window_bytes: 0,
        }),
        ..source
    })
}

fn backoff(limits: &Limits, attempt: u32) -> Duration {
    limits.retry_backoff.saturating_mul(1 << attempt.min(10))
}

/// Opens `url` with the transport its scheme names, trying again with
/// backoff after network and server errors.
pub fn open(url: &str, limits: &Limits, resume: Option<&Resume>) -> Result<Source> {
    let mut attempt = 0;
    loop {
        match open_once(url, limits, resume) {
            Ok(source) => return Ok(source),
            Err(f) if f.retryable && attempt < limits.retries => {
                let wait = backoff(limits, attempt);
                log::info!("{}; trying again in {wait:?}", f.error.chain());
                std::thread::sleep(wait);
                attempt += 1;
            }
            Err(f) => return Err(f.error),
        }
    }
}

/// Fetches a small text document (the manifest), refusing one larger than
/// `limits.max_manifest_bytes`.
pub fn fetch_text(url: &str, limits: &Limits) -> Result<String> {
    let source = open(url, limits, None)?;
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
        url: redact(url),
        message: "the manifest is not UTF-8 text".into(),
    })
}

fn too_big(url: &str, cap: u64) -> Error {
    Error::Download {
        url: redact(url),
        message: format!("larger than the {cap}-byte limit for a manifest; is this the right URL?"),
    }
}

/// The root certificates of `limits.tls_roots_pem`, DER-encoded.
pub(crate) fn tls_roots(limits: &Limits, url: &str) -> Result<Option<Vec<Vec<u8>>>, Failure> {
    let Some(pem) = &limits.tls_roots_pem else {
        return Ok(None);
    };
    let mut roots = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => roots.push(cert.der().to_vec()),
            Ok(_) => {}
            Err(e) => {
                return Err(Failure::fatal(Error::Download {
                    url: redact(url),
                    message: format!("the root certificates given are not valid PEM ({e})"),
                }))
            }
        }
    }
    if roots.is_empty() {
        return Err(Failure::fatal(Error::Download {
            url: redact(url),
            message: "the root certificates given hold no certificate".into(),
        }));
    }
    Ok(Some(roots))
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
        url: redact(url),
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

/// Writes chunks to a file in a thread of its own, recycling a few buffers.
struct ChunkWriter {
    chunks: Option<std::sync::mpsc::SyncSender<(Vec<u8>, usize)>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl ChunkWriter {
    const CHUNK: usize = 256 * 1024;
    const IN_FLIGHT: usize = 4;

    fn start(mut file: std::fs::File) -> ChunkWriter {
        let (chunks, incoming) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(Self::IN_FLIGHT);
        let (give_back, spare) = std::sync::mpsc::sync_channel(Self::IN_FLIGHT + 2);
        for _ in 0..Self::IN_FLIGHT + 2 {
            let _ = give_back.send(vec![0u8; Self::CHUNK]);
        }
        let thread = std::thread::spawn(move || {
            let mut written = 0u64;
            for (buf, n) in incoming {
                // A fail point per 256 KiB, wherever the network cut the chunks.
                let next = written + n as u64;
                for _ in written >> 18..next >> 18 {
                    crate::failpoint::hit("download write")?;
                }
                written = next;
                file.write_all(&buf[..n])?;
                let _ = give_back.send(buf);
            }
            file.flush()
        });
        ChunkWriter {
            chunks: Some(chunks),
            spare,
            thread: Some(thread),
        }
    }

    /// A free buffer (waits for the writer when all are in flight).
    fn buffer(&self) -> Vec<u8> {
        self.spare.recv().unwrap_or_else(|_| vec![0u8; Self::CHUNK])
    }

    /// Hands the first `n` bytes of `buf` to the writer; an error means the
    /// writer stopped (its error comes from `finish`).
    fn write(&self, buf: Vec<u8>, n: usize) -> Result<(), ()> {
        match &self.chunks {
            Some(tx) => tx.send((buf, n)).map_err(|_| ()),
            None => Err(()),
        }
    }

    /// Waits for every chunk to be written.
    fn finish(mut self) -> io::Result<()> {
        drop(self.chunks.take());
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the writer thread panicked")),
            None => Ok(()),
        }
    }
}

/// What is remembered next to a `.partial` file, to resume it later.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PartialMeta {
    url: String,
    validator: Option<String>,
    size: Option<u64>,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Downloads `url` to `dest`: the bytes go to `dest.partial` while being
/// hashed, and only a download of the expected size and sha256 is renamed to
/// `dest`. A transfer that breaks off is continued where it stopped (also by
/// a later call, after a relaunch), and started over when the server's file
/// changed or ignores the range. A download that proves wrong is removed.
/// Returns the sha256 and size of what arrived.
pub fn download(
    url: &str,
    dest: &Path,
    expect: &Expect<'_>,
    limits: &Limits,
    progress: Option<&ProgressFn>,
) -> Result<(String, u64)> {
    let partial = with_suffix(dest, ".partial");
    let meta = with_suffix(dest, ".partial.meta");
    let discard = || {
        let _ = fs::remove_file(&partial);
        let _ = fs::remove_file(&meta);
    };
    let mut attempt = 0;
    let mut fresh_after_mismatch = false;
    loop {
        let resume = resumable(&partial, &meta, url, expect);
        if resume.is_none() {
            discard();
        }
        let result = match open_once(url, limits, resume.as_ref()) {
            Ok(source) => transfer(
                url,
                source,
                &partial,
                &meta,
                resume.as_ref(),
                expect,
                progress,
            ),
            Err(f) => Err(f),
        };
        match result {
            Ok(done) => {
                let _ = fs::remove_file(&meta);
                crate::failpoint::at("download rename", dest)?;
                fs::rename(&partial, dest)
                    .map_err(io_err(&format!("renaming {} to", partial.display()), dest))?;
                return Ok(done);
            }
            // A resumed download that does not verify: the part kept from
            // before may be bad. Start over once.
            Err(Failure {
                error: Error::ChecksumMismatch { .. },
                ..
            }) if resume.is_some() && !fresh_after_mismatch => {
                log::warn!(
                    "{}: the resumed download did not verify; starting over",
                    redact(url)
                );
                discard();
                fresh_after_mismatch = true;
            }
            Err(f) if f.retryable && attempt < limits.retries => {
                let wait = backoff(limits, attempt);
                log::info!("{}; trying again in {wait:?}", f.error.chain());
                std::thread::sleep(wait);
                attempt += 1;
            }
            Err(f) => {
                // A transfer that broke off is kept for the next attempt.
                if !f.retryable {
                    discard();
                }
                return Err(f.error);
            }
        }
    }
}

/// The resume request for a kept `.partial`, if it belongs to this download.
fn resumable(partial: &Path, meta: &Path, url: &str, expect: &Expect<'_>) -> Option<Resume> {
    let offset = fs::metadata(partial).ok()?.len();
    let meta: PartialMeta = serde_json::from_slice(&fs::read(meta).ok()?).ok()?;
    let complete = expect.size.is_some_and(|size| offset >= size);
    if meta.url != url || meta.size != expect.size || offset == 0 || complete {
        return None;
    }
    Some(Resume {
        offset,
        validator: meta.validator,
    })
}

#[allow(clippy::too_many_arguments)]
fn transfer(
    url: &str,
    source: Source,
    partial: &Path,
    meta: &Path,
    resume: Option<&Resume>,
    expect: &Expect<'_>,
    progress: Option<&ProgressFn>,
) -> Result<(String, u64), Failure> {
    let shown = redact(url);
    let io_fail = |action: &str, path: &Path| {
        let action = action.to_owned();
        let path = path.to_owned();
        move |e: io::Error| Failure::fatal(io_err(&action, path)(e))
    };
    let start = match resume {
        Some(r) if source.offset == r.offset => {
            log::info!("resuming {shown} at byte {}", r.offset);
            r.offset
        }
        _ => 0,
    };
    if let (Some(expected), Some(len)) = (expect.size, source.len) {
        if start + len != expected {
            return Err(Failure::fatal(Error::SizeMismatch {
                url: shown,
                expected,
                got: start + len,
            }));
        }
    }
    if start == 0 {
        let record = PartialMeta {
            url: url.to_owned(),
            validator: source.validator.clone(),
            size: expect.size,
        };
        let text = serde_json::to_vec(&record).expect("meta serialises");
        crate::failpoint::hit("download meta")
            .and_then(|()| fs::write(meta, text))
            .map_err(io_fail("writing", meta))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(start == 0)
        .read(true)
        .write(true)
        .open(partial)
        .map_err(io_fail("opening", partial))?;
    // The part kept from before is hashed again, then the rest follows it.
    let mut hasher = Hasher::default();
    if start > 0 {
        let mut kept = (&mut file).take(start);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = kept.read(&mut buf).map_err(io_fail("reading", partial))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        file.seek(SeekFrom::Start(start))
            .map_err(io_fail("seeking", partial))?;
    }
    let total = expect.size.or(source.len.map(|l| l + start));
    // Never read more than one byte past the promised size.
    let cap = expect
        .size
        .map_or(u64::MAX, |s| s.saturating_sub(start) + 1);
    let mut reader = source.reader.take(cap);
    // Reading and hashing here, writing in a second thread: the disk and
    // the hash overlap, as they do in a plain `curl -o`, which only writes.
    let writer = ChunkWriter::start(file);
    let mut so_far = start;
    let mut last_report = 0u64;
    loop {
        let mut buf = writer.buffer();
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // What arrived is kept, to be continued.
                let _ = writer.finish();
                return Err(Failure::retry(transfer_error(url, e)));
            }
        };
        hasher.update(&buf[..n]);
        if writer.write(buf, n).is_err() {
            break;
        }
        so_far += n as u64;
        if let Some(report) = progress {
            if so_far - last_report >= 1 << 20 || Some(so_far) == total {
                report(so_far, total);
                last_report = so_far;
            }
        }
    }
    // No fsync here: the archive is only read back by the unpack that
    // follows at once, and nothing trusts it across a crash (the journal is
    // written after the unpacked tree, and without it staging starts over).
    writer.finish().map_err(io_fail("writing", partial))?;
    let (computed, got) = hasher.finish();
    if let Some(expected) = expect.size {
        if got != expected {
            // The stream ended cleanly at another size: the file on the
            // server is not the one published (a cut transfer is an error
            // of the stream itself, kept and continued above).
            return Err(Failure::fatal(Error::SizeMismatch {
                url: shown,
                expected,
                got,
            }));
        }
    }
    if let Some(expected) = expect.sha256 {
        if computed != expected {
            return Err(Failure::fatal(Error::ChecksumMismatch {
                url: shown,
                expected: expected.to_owned(),
                computed,
            }));
        }
    }
    if let Some(report) = progress {
        report(got, Some(got));
    }
    Ok((computed, got))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact("ftp://bob:s3cret@host:21/a/b"),
            "ftp://bob:***@host:21/a/b"
        );
        assert_eq!(redact("https://host/a@b"), "https://host/a@b");
        assert_eq!(redact("/plain/path"), "/plain/path");
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = Credentials {
            basic: Some(("bob".into(), "s3cret".into())),
            bearer: Some("tok3n".into()),
            headers: vec![("X-Key".into(), "v4lue".into())],
        };
        let shown = format!(
            "{:?}",
            Limits {
                credentials: c,
                ..Limits::default()
            }
        );
        for secret in ["s3cret", "tok3n", "v4lue"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("bob:***") && shown.contains("X-Key: ***"));
    }
}
