//! `file://` URLs, plain paths and UNC paths (`\\server\share\...`) for
//! releases on a file share or a local folder.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::PathBuf;

use crate::error::Error;
use crate::fetch::{Failure, Limits, Resume, Source};

fn decode(s: &str) -> String {
    crate::fetch::percent_decode(s).unwrap_or_else(|| s.to_owned())
}

/// The local path a `file://` URL or plain path names.
pub fn to_path(url: &str) -> PathBuf {
    match url.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("file://") => {
            let rest = &url[7..];
            // file:///C:/x on Windows; file://server/share is a UNC path.
            if let Some(local) = rest.strip_prefix('/') {
                if local.as_bytes().get(1) == Some(&b':') {
                    PathBuf::from(decode(local))
                } else {
                    PathBuf::from(decode(rest))
                }
            } else {
                PathBuf::from(format!("//{}", decode(rest)))
            }
        }
        _ => PathBuf::from(url),
    }
}

/// Opens the file for streaming (from `resume.offset` when its size and
/// modification time are still those `resume.validator` names).
pub fn open(url: &str, _limits: &Limits, resume: Option<&Resume>) -> Result<Source, Failure> {
    let path = to_path(url);
    // A share that is briefly away is worth another try; a missing file is not.
    let fail = |e: std::io::Error| Failure {
        retryable: e.kind() != std::io::ErrorKind::NotFound,
        error: Error::Download {
            url: url.to_owned(),
            message: format!("cannot read {}", path.display()),
            source: Some(Box::new(e)),
        },
    };
    let mut file = File::open(&path).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(Failure::fatal(Error::Download {
            url: url.to_owned(),
            message: format!("{} is not a file", path.display()),
            source: None,
        }));
    }
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let validator = format!("{}-{modified}", meta.len());
    let offset = match resume {
        Some(r) if r.validator.as_deref() == Some(validator.as_str()) && r.offset < meta.len() => {
            file.seek(SeekFrom::Start(r.offset)).map_err(fail)?;
            r.offset
        }
        _ => 0,
    };
    Ok(Source {
        reader: Box::new(BufReader::with_capacity(256 * 1024, file)),
        len: Some(meta.len() - offset),
        validator: Some(validator),
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_map_to_paths() {
        assert_eq!(
            to_path("file:///srv/rel/versions.txt"),
            PathBuf::from("/srv/rel/versions.txt")
        );
        assert_eq!(
            to_path("file:///srv/my%20rel/v.txt"),
            PathBuf::from("/srv/my rel/v.txt")
        );
        assert_eq!(
            to_path("file://server/share/v.txt"),
            PathBuf::from("//server/share/v.txt")
        );
        assert_eq!(to_path("/plain/path"), PathBuf::from("/plain/path"));
        assert_eq!(
            to_path(r"\\server\share\v.txt"),
            PathBuf::from(r"\\server\share\v.txt")
        );
    }
}
