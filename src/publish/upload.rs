//! `leapfrog upload REPO_DIR DEST`: a repository folder pushed to where
//! its users fetch it — a folder or share (`file://` or a path), an FTP or
//! explicit FTPS host (`ftp://`, `ftps://`), or S3-compatible object
//! storage (`s3://bucket/prefix`: AWS, Cloudflare R2, Backblaze B2, MinIO;
//! the usual `AWS_*` variables, `AWS_ENDPOINT_URL` for a host other than
//! AWS).
//!
//! The order is what keeps the previous release served intact when an
//! upload is cut off part way: every artifact first (archives, notes, the
//! ping object), then `versions.txt` and its signature, and the freshness
//! file `versions.txt.fresh` last: until it lands, clients see the old
//! pair. Each file is written whole or not at all (a temporary name then a
//! rename on a folder or FTP host; a single PUT on object storage).
//!
//! Artifacts are immutable: one already at the destination with the same
//! size is left as it is (an upload run again after a cut goes on where it
//! stopped), and one with another size is an error, never rewritten in
//! place. On object storage each file gets the `Cache-Control` a CDN in
//! front should keep: a year and `immutable` for artifacts, `no-cache`
//! (revalidate) for the manifest and its signature, a minute for the
//! freshness file.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Error, Result};
use crate::fetch::{redact, Limits};
use crate::publish::MANIFEST_NAME;

/// `Cache-Control` for artifacts: they never change.
pub const CACHE_ARTIFACT: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` for the manifest and its signature: revalidate each
/// time (a 304 costs headers only).
pub const CACHE_MANIFEST: &str = "no-cache";
/// `Cache-Control` for the freshness file: short, so that a refresh and a
/// release reach the clients within a minute.
pub const CACHE_FRESH: &str = "public, max-age=60";

/// What an upload did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Uploaded {
    /// Artifacts written.
    pub written: Vec<String>,
    /// Artifacts already there (same size), left as they were.
    pub already_there: Vec<String>,
    /// The manifest files written, in order.
    pub pointers: Vec<String>,
}

/// Where files go.
trait Store {
    /// The size of `name` there, `None` when it is not there.
    fn size(&mut self, name: &str) -> Result<Option<u64>>;
    /// Writes `local` as `name`, whole or not at all.
    fn put(&mut self, name: &str, local: &Path, cache_control: &str) -> Result<()>;
}

/// Uploads the repository `repo` to `dest` in the safe order (see the
/// module's documentation).
pub fn upload(repo: &Path, dest: &str, limits: &Limits) -> Result<Uploaded> {
    let manifest_path = repo.join(MANIFEST_NAME);
    let manifest = super::read_manifest(repo)?;
    // A manifest is never sent ahead of a file it names.
    for release in &manifest.releases {
        for name in std::iter::once(release.file_name()).chain(release.notes.clone()) {
            if !repo.join(&name).is_file() {
                return Err(Error::Publish(format!(
                    "{} names {name}, which is not in {}; publish again, or fix the manifest",
                    manifest_path.display(),
                    repo.display()
                )));
            }
        }
    }
    // The freshness file must name the manifest as it is here: a publish
    // cut off part way is mended by `refresh` before it goes anywhere.
    let fresh_file = super::fresh_path(repo);
    if let Ok(text) = fs::read_to_string(&fresh_file) {
        let manifest_bytes = fs::read(&manifest_path).map_err(io_err("reading", &manifest_path))?;
        let names_it = crate::release::freshness::split(&text)
            .and_then(|(body, _)| crate::release::freshness::Freshness::parse(body, "").ok())
            .is_some_and(|f| {
                f.size == manifest_bytes.len() as u64
                    && f.sha256 == crate::release::hash::sha256_bytes(&manifest_bytes)
            });
        if !names_it {
            return Err(Error::Publish(format!(
                "{} does not name {} as it is (a publish cut off part way?); run leapfrog refresh, then upload",
                fresh_file.display(),
                manifest_path.display()
            )));
        }
    }
    let pointers: Vec<String> = [manifest_path, super::signature_path(repo), fresh_file]
        .iter()
        .filter(|path| path.is_file())
        .filter_map(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
        .collect();
    let mut artifacts = Vec::new();
    list_files(repo, "", &mut artifacts)?;
    artifacts.retain(|name| !pointers.contains(name));
    artifacts.sort();
    let mut store = open_store(dest, limits)?;
    let mut done = Uploaded::default();
    for name in &artifacts {
        let local = repo.join(name);
        let size = fs::metadata(&local)
            .map_err(io_err("reading", &local))?
            .len();
        match store.size(name)? {
            Some(there) if there == size => {
                log::debug!("{name} is already at {}", redact(dest));
                done.already_there.push(name.clone());
            }
            Some(there) => {
                return Err(Error::Publish(format!(
                "{}/{name} exists with {there} bytes, not the {size} of {}: a published file is \
                     never rewritten in place; publish a new version instead",
                redact(dest).trim_end_matches('/'),
                local.display()
            )))
            }
            None => {
                store.put(name, &local, CACHE_ARTIFACT)?;
                log::info!("uploaded {name} ({size} bytes)");
                done.written.push(name.clone());
            }
        }
    }
    for name in &pointers {
        let cache = if name.ends_with(crate::release::freshness::FRESH_SUFFIX) {
            CACHE_FRESH
        } else {
            CACHE_MANIFEST
        };
        store.put(name, &repo.join(name), cache)?;
        log::info!("uploaded {name}");
        done.pointers.push(name.clone());
    }
    Ok(done)
}

/// The regular files below `dir` (relative, `/`-separated), leaving out
/// hidden ones (a `.leapfrog-verify-*` scratch folder, editors' files).
fn list_files(root: &Path, below: &str, out: &mut Vec<String>) -> Result<()> {
    let dir = root.join(below);
    for entry in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
        let entry = entry.map_err(io_err("listing", &dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let relative = if below.is_empty() {
            name
        } else {
            format!("{below}/{name}")
        };
        let kind = entry.file_type().map_err(io_err("reading", entry.path()))?;
        if kind.is_dir() {
            list_files(root, &relative, out)?;
        } else if kind.is_file() {
            out.push(relative);
        }
    }
    Ok(())
}

fn open_store(dest: &str, limits: &Limits) -> Result<Box<dyn Store>> {
    let lower = dest.to_ascii_lowercase();
    if lower.starts_with("s3://") {
        return Ok(Box::new(S3::open(dest, limits)?));
    }
    if lower.starts_with("ftp://") || lower.starts_with("ftps://") {
        return Ok(Box::new(Ftp::open(dest, limits)?));
    }
    if lower.starts_with("file://") || !lower.contains("://") {
        let path = match dest.strip_prefix("file://") {
            Some(rest) => PathBuf::from(crate::fetch::percent_decode(rest).unwrap_or(rest.into())),
            None => PathBuf::from(dest),
        };
        return Ok(Box::new(Folder(path)));
    }
    Err(Error::Publish(format!(
        "{}: upload to file://, ftp://, ftps:// or s3://bucket/prefix",
        redact(dest)
    )))
}

/// A folder or share.
struct Folder(PathBuf);

impl Store for Folder {
    fn size(&mut self, name: &str) -> Result<Option<u64>> {
        let path = self.0.join(name);
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading", &path)(e)),
        }
    }

    fn put(&mut self, name: &str, local: &Path, _: &str) -> Result<()> {
        let path = self.0.join(name);
        let dir = path.parent().unwrap_or(&self.0).to_owned();
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let temp = dir.join(format!(
            ".{}.leapfrog-upload-{}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        // The copy keeps the original's modification time, which web
        // servers make their ETag of (see the manifest files' writing).
        let copied = (|| {
            fs::copy(local, &temp)?;
            let file = File::options().write(true).open(&temp)?;
            file.set_modified(fs::metadata(local)?.modified()?)?;
            file.sync_all()
        })();
        if let Err(e) = copied {
            let _ = fs::remove_file(&temp);
            return Err(io_err("writing", &temp)(e));
        }
        fs::rename(&temp, &path).map_err(|e| {
            let _ = fs::remove_file(&temp);
            io_err("renaming into place", &path)(e)
        })?;
        crate::os::sync_dir(&dir)
    }
}

/// An FTP or FTPS host.
struct Ftp {
    session: crate::fetch::ftp::Connected,
    base: String,
    shown: String,
}

impl Ftp {
    fn open(dest: &str, limits: &Limits) -> Result<Ftp> {
        let (session, parts) =
            crate::fetch::ftp::connect(dest, limits).map_err(|failure| failure.error)?;
        Ok(Ftp {
            session,
            base: parts.path.trim_end_matches('/').to_owned(),
            shown: redact(dest).trim_end_matches('/').to_owned(),
        })
    }

    fn fail(&self, name: &str, what: &str, e: &suppaftp::FtpError) -> Error {
        Error::Publish(format!(
            "{}/{name}: {what} failed: {e}; check that the login may write there",
            self.shown
        ))
    }
}

impl Store for Ftp {
    fn size(&mut self, name: &str) -> Result<Option<u64>> {
        let path = format!("{}/{name}", self.base);
        let result = self.session.storing().size_of(&path);
        result.map_err(|e| self.fail(name, "SIZE", &e))
    }

    fn put(&mut self, name: &str, local: &Path, _: &str) -> Result<()> {
        let path = format!("{}/{name}", self.base);
        let (dir, file) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        let temp = format!("{dir}/.{file}.leapfrog-upload-{}", std::process::id());
        let mut reader = File::open(local).map_err(io_err("reading", local))?;
        let ftp = self.session.storing();
        ftp.make_dirs(dir);
        if let Err(e) = ftp.store(&temp, &mut reader) {
            ftp.remove(&temp);
            return Err(self.fail(name, "STOR", &e));
        }
        if let Err(e) = ftp.rename_to(&temp, &path) {
            ftp.remove(&temp);
            return Err(self.fail(name, "RNTO", &e));
        }
        Ok(())
    }
}

/// S3-compatible object storage: requests signed by rusty-s3 (SigV4,
/// query-string), sent by ureq.
struct S3 {
    bucket: rusty_s3::Bucket,
    credentials: rusty_s3::Credentials,
    prefix: String,
    agent: ureq::Agent,
    shown: String,
}

impl S3 {
    fn open(dest: &str, limits: &Limits) -> Result<S3> {
        let rest = &dest[5..];
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let missing = |what: &str| {
            Error::Publish(format!(
                "{dest}: {what} is not set; give the storage's credentials in AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for a host other than AWS)"
            ))
        };
        let key = env("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?;
        let secret =
            env("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?;
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let custom = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL"));
        let (endpoint, style) = match &custom {
            Some(url) => (url.clone(), rusty_s3::UrlStyle::Path),
            None => (
                format!("https://s3.{region}.amazonaws.com"),
                rusty_s3::UrlStyle::VirtualHost,
            ),
        };
        let endpoint = url::Url::parse(&endpoint)
            .map_err(|e| Error::Publish(format!("the S3 endpoint {endpoint:?}: {e}")))?;
        let bucket = rusty_s3::Bucket::new(endpoint, style, name.to_owned(), region)
            .map_err(|e| Error::Publish(format!("{dest}: {e}")))?;
        let credentials = match env("AWS_SESSION_TOKEN") {
            Some(token) => rusty_s3::Credentials::new_with_token(key, secret, token),
            None => rusty_s3::Credentials::new(key, secret),
        };
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(limits.connect_timeout))
            .timeout_recv_response(Some(limits.read_timeout * 4))
            .http_status_as_error(false)
            .user_agent(limits.user_agent.as_str())
            .build()
            .into();
        Ok(S3 {
            bucket,
            credentials,
            prefix: prefix.trim_matches('/').to_owned(),
            agent,
            shown: dest.trim_end_matches('/').to_owned(),
        })
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    fn fail(&self, name: &str, message: String) -> Error {
        Error::Publish(format!("{}/{name}: {message}", self.shown))
    }
}

/// How long a signed request stays valid.
const SIGNED_FOR: std::time::Duration = std::time::Duration::from_secs(3600);

impl Store for S3 {
    fn size(&mut self, name: &str) -> Result<Option<u64>> {
        use rusty_s3::S3Action as _;
        let key = self.key(name);
        let url = self
            .bucket
            .head_object(Some(&self.credentials), &key)
            .sign(SIGNED_FOR);
        let response = self
            .agent
            .head(url.as_str())
            .call()
            .map_err(|e| self.fail(name, format!("HEAD failed: {e}")))?;
        match response.status().as_u16() {
            200 => Ok(response
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())),
            404 => Ok(None),
            403 => Err(self.fail(
                name,
                "HEAD answered 403: the credentials must be allowed to read the bucket's \
                 objects and to list it (without listing, a missing object is 403, not 404)"
                    .into(),
            )),
            status => Err(self.fail(
                name,
                format!("HEAD answered {status}; check the credentials and the bucket"),
            )),
        }
    }

    fn put(&mut self, name: &str, local: &Path, cache_control: &str) -> Result<()> {
        use rusty_s3::S3Action as _;
        let key = self.key(name);
        let url = self
            .bucket
            .put_object(Some(&self.credentials), &key)
            .sign(SIGNED_FOR);
        let file = File::open(local).map_err(io_err("reading", local))?;
        let content_type = if name.ends_with(".txt") || name.ends_with(".fresh") {
            "text/plain; charset=utf-8"
        } else {
            "application/octet-stream"
        };
        let mut response = self
            .agent
            .put(url.as_str())
            .header("Cache-Control", cache_control)
            .header("Content-Type", content_type)
            .send(file)
            .map_err(|e| self.fail(name, format!("PUT failed: {e}")))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let mut body = String::new();
            let _ = response
                .body_mut()
                .as_reader()
                .take(2048)
                .read_to_string(&mut body);
            return Err(self.fail(name, format!("PUT answered {status}: {}", body.trim())));
        }
        Ok(())
    }
}
