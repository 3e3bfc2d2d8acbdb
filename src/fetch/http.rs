//! `http://` and `https://` through ureq (rustls, no automatic decompression,
//! so an archive arrives byte for byte as it was published).

use crate::error::{Error, Result};
use crate::fetch::{Limits, Source};

/// Opens a GET request and returns the body as a stream.
pub fn open(url: &str, limits: &Limits) -> Result<Source> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(limits.connect_timeout))
        .timeout_recv_response(Some(limits.read_timeout))
        .timeout_per_read(Some(limits.read_timeout))
        .user_agent(limits.user_agent.as_str())
        .max_redirects(10)
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| Error::Download {
        url: url.to_owned(),
        message: describe(&e),
    })?;
    let status = response.status();
    if !status.is_success() {
        let advice = match status.as_u16() {
            404 | 410 => {
                "the file is not on the server; check the URL and that the release was uploaded"
            }
            401 | 403 => {
                "the server refused access; check the credentials or the host's permissions"
            }
            500..=599 => "the server failed; try again later",
            _ => "unexpected answer from the server",
        };
        return Err(Error::Download {
            url: url.to_owned(),
            message: format!("HTTP {status}: {advice}"),
        });
    }
    let body = response.into_body();
    let len = body.content_length();
    Ok(Source {
        reader: Box::new(body.into_reader()),
        len,
    })
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(what) => {
            format!("timed out ({what:?}); the server is slow or unreachable, try again later")
        }
        ureq::Error::TooManyRedirects => "too many redirects; the host is misconfigured".into(),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused; is the server running, and is the URL's port right?".into()
        }
        other => other.to_string(),
    }
}
