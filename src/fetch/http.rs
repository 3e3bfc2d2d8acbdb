//! `http://` and `https://` through ureq: rustls with the usual roots, no
//! automatic decompression (an archive arrives byte for byte as published),
//! proxies from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` and `NO_PROXY` (ureq
//! reads them), redirects followed up to ten, credentials never sent to a
//! redirect's target.

use base64::Engine as _;

use crate::error::Error;
use crate::fetch::{redact, Failure, Limits, Resume, Source, Validators};

/// Opens a GET request (from `resume.offset`, when the file is still the
/// one `resume.validator` names) and returns the body as a stream.
pub fn open(url: &str, limits: &Limits, resume: Option<&Resume>) -> Result<Source, Failure> {
    match get(url, limits, resume, None)? {
        Got::Body(source, _) => Ok(source),
        Got::NotModified => Err(Failure::fatal(Error::Download {
            url: redact(url),
            message: "a 304 Not Modified to an unconditional request".into(),
            source: None,
        })),
    }
}

/// What a conditional GET got.
pub enum Got {
    /// The body, and the validators to send next time.
    Body(Source, Validators),
    /// 304: the copy the validators came from is still current.
    NotModified,
}

/// A GET, conditional when `cached` gives the validators of a copy at hand
/// (`If-None-Match`, `If-Modified-Since`).
pub fn get(
    url: &str,
    limits: &Limits,
    resume: Option<&Resume>,
    cached: Option<&Validators>,
) -> Result<Got, Failure> {
    let shown = redact(url);
    let fail = |message: String| Error::Download {
        url: shown.clone(),
        message,
        source: None,
    };
    let certs: Vec<_> = crate::fetch::tls_roots(limits, url)?
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
        .collect();
    let tls =
        ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .timeout_connect(Some(limits.connect_timeout))
        .timeout_recv_response(Some(limits.read_timeout))
        .timeout_per_read(Some(limits.read_timeout))
        .user_agent(limits.user_agent.as_str())
        // Redirects are followed below, where credentials are kept from
        // any other origin.
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    // Resuming without a validator could splice two versions of a file.
    let resume = resume.filter(|r| r.validator.is_some());
    let origin = Origin::of(url);
    let mut current = url.to_owned();
    let mut redirects = 0;
    let response = loop {
        let request = prepare(
            agent.get(&current),
            limits,
            resume,
            origin == Origin::of(&current),
        );
        let request = match cached {
            Some(v) => conditional(request, v),
            None => request,
        };
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
        if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
            break response;
        }
        redirects += 1;
        if redirects > MAX_REDIRECTS {
            return Err(Failure::fatal(fail(format!(
                "too many redirects (more than {MAX_REDIRECTS}); the host is misconfigured"
            ))));
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        current = follow(&current, &location).map_err(|reason| Failure::fatal(fail(reason)))?;
        log::debug!("redirected to {}", redact(&current));
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if status == 304 && cached.is_some() {
        return Ok(Got::NotModified);
    }
    // A host that asks to be left alone for a while: a short wait is
    // waited out in this run; after a long one, the schedule comes back
    // (see `fetch::retrying`).
    if matches!(status, 429 | 503) {
        if let Some(wait) = header("retry-after").and_then(|v| parse_retry_after(&v)) {
            return Err(Failure::retry(Error::Download {
                url: shown.clone(),
                message: format!(
                    "HTTP {}: the host is busy and asks to come back in {} s",
                    response.status(),
                    wait.as_secs()
                ),
                source: Some(Box::new(crate::fetch::RetryAfter(wait))),
            }));
        }
    }
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
        let error = Error::Download {
            url: shown.clone(),
            message: format!("HTTP {}: {advice}", response.status()),
            source: Some(Box::new(crate::fetch::Status(status))),
        };
        return Err(Failure {
            error,
            retryable: status >= 500 || status == 408 || status == 429,
        });
    }
    let validators = Validators {
        etag: header("etag"),
        last_modified: header("last-modified"),
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
    Ok(Got::Body(
        Source {
            reader: Box::new(body.into_reader()),
            len,
            validator,
            offset,
        },
        validators,
    ))
}

/// The request made conditional on the copy `cached` describes.
fn conditional(
    mut request: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    cached: &Validators,
) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
    if let Some(etag) = &cached.etag {
        request = request.header("If-None-Match", etag.as_str());
    }
    if let Some(date) = &cached.last_modified {
        request = request.header("If-Modified-Since", date.as_str());
    }
    request
}

/// `Retry-After`: seconds, or an HTTP date (a date past is no wait).
fn parse_retry_after(value: &str) -> Option<std::time::Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(std::time::Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// The most redirects followed for one request.
const MAX_REDIRECTS: u32 = 10;

/// Scheme, host and port: where credentials may go.
#[derive(Debug, PartialEq, Eq)]
struct Origin(Option<(String, String, Option<u16>)>);

impl Origin {
    fn of(url: &str) -> Origin {
        Origin(url::Url::parse(url).ok().map(|u| {
            (
                u.scheme().to_owned(),
                u.host_str().unwrap_or_default().to_owned(),
                u.port_or_known_default(),
            )
        }))
    }
}

/// The request with the resume headers, and the credentials (basic,
/// bearer, extra headers) only when it goes to the origin they were given for.
fn prepare(
    mut request: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    limits: &Limits,
    resume: Option<&Resume>,
    same_origin: bool,
) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
    let creds = &limits.credentials;
    if same_origin {
        if let Some((user, password)) = &creds.basic {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request = request.header("Authorization", format!("Basic {token}"));
        }
        if let Some(token) = &creds.bearer {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in &creds.headers {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    if let Some(r) = resume {
        request = request
            .header("Range", format!("bytes={}-", r.offset))
            .header("If-Range", r.validator.as_deref().unwrap_or_default());
    }
    request
}

/// Where a redirect from `from` to `location` leads; only to http(s), and
/// never from https down to http.
fn follow(from: &str, location: &str) -> Result<String, String> {
    let base = url::Url::parse(from).map_err(|e| format!("cannot follow a redirect ({e})"))?;
    let to = base
        .join(location)
        .map_err(|e| format!("the server redirected to {location:?}, which is not a URL ({e})"))?;
    let shown = redact(to.as_str());
    match (base.scheme(), to.scheme()) {
        ("https", "http") => Err(format!(
            "the server redirected from https to {shown}, which is not allowed: a download is never \
             downgraded to plain http; fix the host's redirect"
        )),
        (_, "http" | "https") => Ok(to.into()),
        _ => Err(format!(
            "the server redirected to {shown}, which is not allowed: a host may only redirect to http(s)"
        )),
    }
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
