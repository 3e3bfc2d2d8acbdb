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

mod download;
pub(crate) mod file;
#[cfg(feature = "ftp")]
pub(crate) mod ftp;
pub(crate) mod http;
mod options;

pub use download::{download, download_until, Expect};
pub use options::{Credentials, Limits, ProgressFn};

use std::io::{self, Read};
use std::time::Duration;

use crate::error::{Error, Result};

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

#[cfg(feature = "ftp")]
fn open_ftp(url: &str, limits: &Limits, resume: Option<&Resume>) -> Result<Source, Failure> {
    ftp::open(url, limits, resume)
}

#[cfg(not(feature = "ftp"))]
fn open_ftp(url: &str, _: &Limits, _: Option<&Resume>) -> Result<Source, Failure> {
    Err(Failure::fatal(Error::Download {
        url: redact(url),
        message: "this program was built without FTP support (leapfrog's `ftp` feature); \
                  serve the releases over HTTP(S) or a file share, or build with the feature"
            .into(),
        source: None,
    }))
}

pub(crate) fn open_once(
    url: &str,
    limits: &Limits,
    resume: Option<&Resume>,
) -> Result<Source, Failure> {
    let lower = url.to_ascii_lowercase();
    let source = if lower.starts_with("http://") || lower.starts_with("https://") {
        http::open(url, limits, resume)?
    } else if lower.starts_with("ftp://") || lower.starts_with("ftps://") {
        open_ftp(url, limits, resume)?
    } else if lower.starts_with("file://") || !lower.contains("://") {
        file::open(url, limits, resume)?
    } else {
        return Err(Failure::fatal(Error::Download {
            url: redact(url),
            message:
                "unsupported URL scheme; use http://, https://, ftp://, ftps://, file:// or a path"
                    .into(),
            source: None,
        }));
    };
    Ok(guarded(source, limits))
}

/// `source` with its reader held to the minimum rate.
fn guarded(source: Source, limits: &Limits) -> Source {
    Source {
        reader: Box::new(RateGuard {
            inner: source.reader,
            min_rate: limits.min_rate,
            window: limits.rate_window,
            window_start: std::time::Instant::now(),
            window_bytes: 0,
        }),
        ..source
    }
}

pub(crate) fn backoff(limits: &Limits, attempt: u32) -> Duration {
    limits.retry_backoff.saturating_mul(1 << attempt.min(10))
}

/// Opens `url` with the transport its scheme names, trying again with
/// backoff after network and server errors.
pub fn open(url: &str, limits: &Limits, resume: Option<&Resume>) -> Result<Source> {
    retrying(limits, || open_once(url, limits, resume))
}

/// Fetches a small text document (the manifest), refusing one larger than
/// `limits.max_manifest_bytes`.
pub fn fetch_text(url: &str, limits: &Limits) -> Result<String> {
    read_text(url, open(url, limits, None)?, limits)
}

/// What identifies a copy of a document to its web server: what a
/// conditional request sends back (`If-None-Match`, `If-Modified-Since`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    /// The `ETag` it came with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The `Last-Modified` date it came with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl Validators {
    /// Whether there is anything to send.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// A small document fetched, perhaps conditionally.
#[derive(Debug)]
pub enum Fetched {
    /// The text, and the validators it came with.
    Text(String, Validators),
    /// The copy at hand is current (HTTP 304).
    NotModified,
}

/// [`fetch_text`], conditional on the copy `cached` describes when the
/// host speaks HTTP: a `304 Not Modified` costs a few hundred bytes of
/// headers, and says the copy at hand is current. Other hosts send the
/// whole text each time.
pub fn fetch_text_if(url: &str, limits: &Limits, cached: Option<&Validators>) -> Result<Fetched> {
    let lower = url.to_ascii_lowercase();
    let web = lower.starts_with("http://") || lower.starts_with("https://");
    if !web {
        return Ok(Fetched::Text(
            fetch_text(url, limits)?,
            Validators::default(),
        ));
    }
    let cached = cached.filter(|v| !v.is_empty());
    let got = retrying(limits, || http::get(url, limits, None, cached))?;
    match got {
        http::Got::NotModified => Ok(Fetched::NotModified),
        http::Got::Body(source, validators) => Ok(Fetched::Text(
            read_text(url, guarded(source, limits), limits)?,
            validators,
        )),
    }
}

/// A host's "come back later": an HTTP 429 or 503 with `Retry-After`.
/// Found in an [`Error`]'s sources by [`Error::retry_after`].
#[derive(Debug, Clone, Copy)]
pub struct RetryAfter(pub Duration);

impl std::fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Retry-After: {} s", self.0.as_secs())
    }
}

impl std::error::Error for RetryAfter {}

/// The HTTP status a request failed with.
#[derive(Debug, Clone, Copy)]
pub struct Status(pub u16);

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP status {}", self.0)
    }
}

impl std::error::Error for Status {}

/// The longest `Retry-After` waited out within a run; a host that asks
/// for longer is asked again by the next scheduled check.
const MAX_RETRY_AFTER_IN_RUN: Duration = Duration::from_secs(30);

/// How long to wait before trying `failure` again: the backoff, or the
/// host's own `Retry-After` when it asked; `None` when it asked for longer
/// than a run waits.
pub(crate) fn retry_wait(limits: &Limits, failure: &Failure, attempt: u32) -> Option<Duration> {
    match failure.error.retry_after() {
        Some(asked) if asked > MAX_RETRY_AFTER_IN_RUN => None,
        Some(asked) => Some(asked),
        None => Some(backoff(limits, attempt)),
    }
}

/// Runs `attempt` again with backoff after network and server errors (or
/// after the host's own short `Retry-After`).
fn retrying<T>(limits: &Limits, mut attempt: impl FnMut() -> Result<T, Failure>) -> Result<T> {
    let mut tries = 0;
    loop {
        match attempt() {
            Ok(done) => return Ok(done),
            Err(f) if f.retryable && tries < limits.retries => {
                let Some(wait) = retry_wait(limits, &f, tries) else {
                    return Err(f.error);
                };
                log::info!("{}; trying again in {wait:?}", f.error.chain());
                std::thread::sleep(wait);
                tries += 1;
            }
            Err(f) => return Err(f.error),
        }
    }
}

/// The text of `source`, within `limits.max_manifest_bytes`.
fn read_text(url: &str, source: Source, limits: &Limits) -> Result<String> {
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
        source: None,
    })
}

fn too_big(url: &str, cap: u64) -> Error {
    Error::Download {
        url: redact(url),
        message: format!("larger than the {cap}-byte limit for a manifest; is this the right URL?"),
        source: None,
    }
}

/// The root certificates an HTTPS or FTPS connection trusts, DER-encoded:
/// the ones the app gave (`limits.tls_roots_pem`) instead of any other;
/// else the public roots bundled with leapfrog (Mozilla's) together with
/// the operating system's certificate store, so that a company's own
/// authority (a TLS-inspecting proxy, an internal host) is trusted where
/// the system trusts it.
pub(crate) fn tls_roots(limits: &Limits, url: &str) -> Result<Vec<Vec<u8>>, Failure> {
    let Some(pem) = &limits.tls_roots_pem else {
        return Ok(default_roots().to_vec());
    };
    let mut roots = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => roots.push(cert.der().to_vec()),
            Ok(_) => {}
            Err(e) => {
                return Err(Failure::fatal(Error::Download {
                    url: redact(url),
                    message: "the root certificates given are not valid PEM".into(),
                    source: Some(Box::new(e)),
                }))
            }
        }
    }
    if roots.is_empty() {
        return Err(Failure::fatal(Error::Download {
            url: redact(url),
            message: "the root certificates given hold no certificate".into(),
            source: None,
        }));
    }
    Ok(roots)
}

/// The bundled public roots and the system's, read once.
fn default_roots() -> &'static [Vec<u8>] {
    static ROOTS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots: Vec<Vec<u8>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|cert| cert.to_vec())
            .collect();
        let system = rustls_native_certs::load_native_certs();
        for e in &system.errors {
            log::debug!("the system's certificate store: {e}");
        }
        log::debug!(
            "trusting {} bundled and {} system root certificates",
            roots.len(),
            system.certs.len()
        );
        roots.extend(system.certs.iter().map(|cert| cert.to_vec()));
        roots
    })
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
            "the server stopped sending; try again later"
        }
        _ => "the transfer broke off; try again",
    };
    Error::Download {
        url: redact(url),
        message: message.into(),
        source: Some(Box::new(e)),
    }
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
