//! `ftp://` and `ftps://` through suppaftp: passive mode, a login from the
//! URL (`ftp://user:password@host/path`) or the credentials, else anonymous;
//! binary transfers; resume with REST, checked against the file's size and
//! modification time. `ftps://` is explicit FTPS (AUTH TLS, port 21 by
//! default) with rustls, the public roots or the ones configured, and TLS on
//! the data connections too.

use std::io::{self, Read};
use std::net::ToSocketAddrs;

use suppaftp::{ImplFtpStream, TlsStream, TransferStream};

use crate::error::Error;
use crate::fetch::{redact, Failure, Limits, Resume, Source};

fn decode(s: &str) -> String {
    crate::fetch::percent_decode(s).unwrap_or_else(|| s.to_owned())
}

/// The parts of an `ftp://` URL.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FtpUrl {
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: u16,
    /// The path on the server, from `/`.
    pub path: String,
}

fn parse(url: &str) -> Option<FtpUrl> {
    let lower = url.get(..7)?.to_ascii_lowercase();
    let rest = if lower.starts_with("ftp://") {
        &url[6..]
    } else if lower == "ftps://" {
        &url[7..]
    } else {
        return None;
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(decode(user)), Some(decode(pass))),
            None => (Some(decode(u)), None),
        },
        None => (None, None),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (h, p.parse().ok()?),
        _ => (hostport, 21),
    };
    if host.is_empty() {
        return None;
    }
    Some(FtpUrl {
        user,
        password,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        path: format!("/{}", decode(path)),
    })
}

/// Reads a transfer to its end, then reads the server's completion reply,
/// so that a transfer the server aborted is an error, not a short file.
struct FtpReader<T: TlsStream> {
    stream: Option<TransferStream<T>>,
    _control: ImplFtpStream<T>,
}

impl<T: TlsStream> Read for FtpReader<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(0);
        };
        let n = stream.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(stream) = self.stream.take() {
                stream
                    .finish()
                    .map_err(|e| io::Error::other(format!("the transfer did not complete: {e}")))?;
            }
        }
        Ok(n)
    }
}

fn boxed<T: TlsStream + Send + 'static>(
    control: ImplFtpStream<T>,
    stream: TransferStream<T>,
) -> Box<dyn Read + Send>
where
    TransferStream<T>: Send,
    ImplFtpStream<T>: Send,
{
    Box::new(FtpReader {
        stream: Some(stream),
        _control: control,
    })
}

/// A logged-in control connection, plain or explicit FTPS.
pub(crate) enum Connected {
    /// `ftp://`.
    Plain(suppaftp::FtpStream),
    /// `ftps://`.
    Secure(suppaftp::RustlsFtpStream),
}

/// Logs in, asks for the file (from `resume.offset` when its size and date
/// still match), and returns the data connection as a stream.
pub fn open(url: &str, limits: &Limits, resume: Option<&Resume>) -> Result<Source, Failure> {
    let shown = redact(url);
    let fail = |message: String| Error::Download {
        url: shown.clone(),
        message,
        source: None,
    };
    let (connected, parts) = connect(url, limits)?;
    match connected {
        Connected::Plain(ftp) => fetch(ftp, &parts, limits, resume, &fail),
        Connected::Secure(ftp) => fetch(ftp, &parts, limits, resume, &fail),
    }
}

/// Connects to the host of `url` (TLS for `ftps://`), logs in, and sets
/// binary transfers; returns the session and the URL's parts.
pub(crate) fn connect(url: &str, limits: &Limits) -> Result<(Connected, FtpUrl), Failure> {
    let shown = redact(url);
    let fail = |message: String| Error::Download {
        url: shown.clone(),
        message,
        source: None,
    };
    let secure = url.len() > 6 && url[..7].eq_ignore_ascii_case("ftps://");
    let parts =
        parse(url).ok_or_else(|| Failure::fatal(fail("not an ftp://host/path URL".into())))?;
    let addr = (parts.host.as_str(), parts.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Failure::retry(fail(format!("cannot resolve {}", parts.host))))?;
    let tcp = std::net::TcpStream::connect_timeout(&addr, limits.connect_timeout).map_err(|e| {
        Failure::retry(fail(format!(
            "cannot connect to {}:{} ({e}); is the server running?",
            parts.host, parts.port
        )))
    })?;
    let _ = tcp.set_read_timeout(Some(limits.read_timeout));
    let network = |e: suppaftp::FtpError| Failure::retry(fail(format!("FTP: {e}")));
    if !secure {
        let mut ftp = suppaftp::FtpStream::connect_with_stream(tcp).map_err(network)?;
        login(&mut ftp, &parts, limits, &fail)?;
        return Ok((Connected::Plain(ftp), parts));
    }
    let mut roots = rustls::RootCertStore::empty();
    let custom = limits.tls_roots_pem.is_some();
    for der in crate::fetch::tls_roots(limits, url)? {
        match roots.add(rustls::pki_types::CertificateDer::from(der)) {
            Ok(()) => {}
            Err(e) if custom => {
                return Err(Failure::fatal(fail(format!(
                    "a root certificate given is unusable ({e})"
                ))))
            }
            // One odd certificate in the system's store is skipped.
            Err(e) => log::debug!("skipping a root certificate: {e}"),
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Failure::fatal(fail(format!("TLS setup: {e}"))))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = suppaftp::RustlsConnector::from(std::sync::Arc::new(config));
    let mut ftp = suppaftp::RustlsFtpStream::connect_with_stream(tcp)
        .map_err(network)?
        .into_secure(connector, &parts.host)
        .map_err(|e| {
            Failure::fatal(fail(format!(
                "the TLS handshake failed ({e}); is the server's certificate valid for {}?",
                parts.host
            )))
        })?;
    login(&mut ftp, &parts, limits, &fail)?;
    Ok((Connected::Secure(ftp), parts))
}

/// The login (from the URL, the credentials, else anonymous) and binary mode.
fn login<T: TlsStream>(
    ftp: &mut ImplFtpStream<T>,
    parts: &FtpUrl,
    limits: &Limits,
    fail: &dyn Fn(String) -> Error,
) -> Result<(), Failure> {
    let (user, password) = match (&parts.user, &limits.credentials.basic) {
        (Some(user), _) => (user.clone(), parts.password.clone().unwrap_or_default()),
        (None, Some((user, password))) => (user.clone(), password.clone()),
        (None, None) => ("anonymous".to_owned(), "leapfrog@".to_owned()),
    };
    ftp.login(user.as_str(), password.as_str()).map_err(|e| {
        Failure::fatal(fail(format!(
            "login as {user:?} refused: {e}; check the credentials"
        )))
    })?;
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .map_err(|e| Failure::retry(fail(format!("FTP: {e}"))))
}

/// The transfer, the same over plain FTP and FTPS.
fn fetch<T: TlsStream + Send + 'static>(
    mut ftp: ImplFtpStream<T>,
    parts: &FtpUrl,
    limits: &Limits,
    resume: Option<&Resume>,
    fail: &dyn Fn(String) -> Error,
) -> Result<Source, Failure>
where
    TransferStream<T>: Send,
    ImplFtpStream<T>: Send,
{
    let network = |e: suppaftp::FtpError| Failure::retry(fail(format!("FTP: {e}")));
    let size = ftp.size(&parts.path).map_err(|e| {
        let message = format!(
            "{} is not on the server ({e}); check the URL and that the release was uploaded",
            parts.path
        );
        let missing = matches!(&e, suppaftp::FtpError::UnexpectedResponse(r)
            if r.status == suppaftp::Status::FileUnavailable);
        let mut error = fail(message);
        if let (true, Error::Download { source, .. }) = (missing, &mut error) {
            *source = Some(Box::new(io::Error::new(
                io::ErrorKind::NotFound,
                e.to_string(),
            )));
        }
        Failure::fatal(error)
    })? as u64;
    let date = ftp
        .mdtm(&parts.path)
        .map(|d| d.to_string())
        .unwrap_or_default();
    let validator = format!("{size}-{date}");
    let offset = match resume {
        Some(r) if r.validator.as_deref() == Some(validator.as_str()) && r.offset < size => {
            ftp.resume_transfer(r.offset as usize).map_err(network)?;
            r.offset
        }
        _ => 0,
    };
    let stream = ftp.retr_as_stream(&parts.path).map_err(network)?;
    let _ = stream
        .get_ref()
        .get_ref()
        .set_read_timeout(Some(limits.read_timeout));
    Ok(Source {
        reader: boxed(ftp, stream),
        len: Some(size - offset),
        validator: Some(validator),
        offset,
    })
}

/// What an upload does on an FTP host, the same over FTP and FTPS.
#[cfg(feature = "upload")]
pub(crate) trait Storing {
    /// The size of the file at `path`; `None` when there is none.
    fn size_of(&mut self, path: &str) -> Result<Option<u64>, suppaftp::FtpError>;
    /// Stores `from` at `path` (STOR).
    fn store(&mut self, path: &str, from: &mut dyn Read) -> Result<(), suppaftp::FtpError>;
    /// Renames `from` to `to`, replacing it (RNFR, RNTO).
    fn rename_to(&mut self, from: &str, to: &str) -> Result<(), suppaftp::FtpError>;
    /// Makes `dir` and the folders above it that are missing.
    fn make_dirs(&mut self, dir: &str);
    /// Removes the file at `path`, if it can.
    fn remove(&mut self, path: &str);
}

#[cfg(feature = "upload")]
impl<T: TlsStream> Storing for ImplFtpStream<T> {
    fn size_of(&mut self, path: &str) -> Result<Option<u64>, suppaftp::FtpError> {
        match self.size(path) {
            Ok(n) => Ok(Some(n as u64)),
            Err(suppaftp::FtpError::UnexpectedResponse(r))
                if r.status == suppaftp::Status::FileUnavailable =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn store(&mut self, path: &str, mut from: &mut dyn Read) -> Result<(), suppaftp::FtpError> {
        self.put_file(path, &mut from).map(|_| ())
    }

    fn rename_to(&mut self, from: &str, to: &str) -> Result<(), suppaftp::FtpError> {
        self.rename(from, to)
    }

    fn make_dirs(&mut self, dir: &str) {
        let mut at = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            at.push('/');
            at.push_str(part);
            // One that exists is refused; a real failure shows at STOR.
            let _ = self.mkdir(&at);
        }
    }

    fn remove(&mut self, path: &str) {
        let _ = self.rm(path);
    }
}

#[cfg(feature = "upload")]
impl Connected {
    /// The session, for an upload.
    pub(crate) fn storing(&mut self) -> &mut dyn Storing {
        match self {
            Connected::Plain(ftp) => ftp,
            Connected::Secure(ftp) => ftp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ftp_urls() {
        assert_eq!(
            parse("ftp://bob:p%40ss@files.example.com:2121/rel/versions.txt"),
            Some(FtpUrl {
                user: Some("bob".into()),
                password: Some("p@ss".into()),
                host: "files.example.com".into(),
                port: 2121,
                path: "/rel/versions.txt".into(),
            })
        );
        let anon = parse("ftp://127.0.0.1/v.txt").unwrap();
        assert_eq!(
            (anon.user, anon.port, anon.path.as_str()),
            (None, 21, "/v.txt")
        );
        assert_eq!(parse("ftps://h/x").map(|u| u.port), Some(21));
        assert_eq!(parse("http://x/"), None);
        assert_eq!(parse("ftp:///nohost"), None);
    }
}
