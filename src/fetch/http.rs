//! `http://` and `https://` through ureq: rustls with the usual roots, no
//! automatic decompression (an archive arrives byte for byte as published),
//! proxies from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` and `NO_PROXY` (ureq
//! reads them), redirects followed up to ten, credentials never sent to a
//! redirect's target.

use base64::Engine as _;

use crate::error::Error;
use crate::fetch::{redact, Failure, Limits, Resume, Source};

/// Opens a GET request (from `resume.offset`, when the file is still the
/// one `resume.validator` names) and returns the body as a stream.
pub fn open(url: &str, limits: &Limits, resume: Option<&Resume>) -> Result<Source, Failure> {
    let shown = redact(url);
    let fail = |message: String| Error::Download {
        url: shown.clone(),
        message,
    };
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(roots) = crate::fetch::tls_roots(limits, url)? {
        let certs: Vec<_> = roots
            .into_iter()
            .map(|der| ureq::tls::Certificate::from_der(&der).to_owned())
            .collect();
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .timeout_connect(Some(limits.connect_timeout))
        .timeout_recv_response(Some(limits.read_timeout))
        .timeout_per_read(Some(limits.read_timeout))
        .user_agent(limits.user_agent.as_str())
        .max_redirects(10)
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(url);
    let creds = &limits.credentials;
    if let Some((user, password)) = &creds.basic {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request = request.header("Authorization", format!("Basic {token}"));
    }
    if let Some(token) = &creds.bearer {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    for (name, value) in &creds.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    // Resuming without a validator could splice two versions of a file.
    let resume = resume.filter(|r| r.validator.is_some());
    if let Some(r) = resume {
        request = request
            .header("Range", format!("bytes={}-", r.offset))
            .header("If-Range", r.validator.as_deref().unwrap_or_default());
    }
    let response = request.call().map_err(|e| {
        let retryable = matches!(
            e,
            ureq::Error::Io(_)
                | ureq::Error::Timeout(_)
                | ureq::Error::ConnectionFailed
                | ureq::Error::HostNotFound
        );
        Failure {
            error: fail(describe(&e)),
            retryable,
        }
    })?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let advice = match status {
            404 | 410 => {
                "the file is not on the server; check the URL and that the release was uploaded"
            }
            401 | 403 => {
                "the server refused access; check the credentials or the host's permissions"
            }
            416 => "the server refused to continue the download; it starts over next time",
            500..=599 => "the server failed; try again later",
            _ => "unexpected answer from the server",
        };
        let error = fail(format!("HTTP {}: {advice}", response.status()));
        return Err(Failure {
            error,
            retryable: status >= 500 || status == 408 || status == 429,
        });
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let validator = header("etag")
        .filter(|e| !e.starts_with("W/"))
        .or_else(|| header("last-modified"));
    let offset = match (status, resume) {
        (206, Some(r)) => {
            let start = header("content-range").and_then(|v| {
                v.strip_prefix("bytes ")?
                    .split('-')
                    .next()?
                    .trim()
                    .parse::<u64>()
                    .ok()
            });
            if start != Some(r.offset) {
                return Err(Failure::fatal(fail(format!(
                    "the server sent another range ({}) than asked for (from {})",
                    header("content-range").unwrap_or_default(),
                    r.offset
                ))));
            }
            r.offset
        }
        (206, None) => {
            return Err(Failure::fatal(fail(
                "a partial answer to a full request".into(),
            )))
        }
        _ => 0,
    };
    let body = response.into_body();
    let len = body.content_length();
    Ok(Source {
        reader: Box::new(body.into_reader()),
        len,
        validator,
        offset,
    })
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(what) => {
            format!("timed out ({what:?}); the server is slow or unreachable, try again later")
        }
        ureq::Error::TooManyRedirects => "too many redirects; the host is misconfigured".into(),
        ureq::Error::HostNotFound => "host not found; check the URL and the network".into(),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused; is the server running, and is the URL's port right?".into()
        }
        other => other.to_string(),
    }
}
