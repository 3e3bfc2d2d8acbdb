//! Downloading a release archive: streamed to a `.partial` file while
//! hashed, continued where it broke off, renamed into place only once it
//! verifies.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{open_once, redact, transfer_error, Failure, Limits, ProgressFn, Resume, Source};
use crate::error::{io_err, Error, Result};
use crate::release::hash::Hasher;

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
    download_until(url, dest, expect, limits, progress, None)
}

/// [`download`], stopped with [`Error::Cancelled`] as soon as `cancel`
/// is set (from another thread): what arrived is kept, to be continued.
pub fn download_until(
    url: &str,
    dest: &Path,
    expect: &Expect<'_>,
    limits: &Limits,
    progress: Option<&ProgressFn>,
    cancel: Option<&AtomicBool>,
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
                (progress, cancel),
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
            Err(Failure {
                error: e @ Error::Cancelled { .. },
                ..
            }) => return Err(e),
            Err(f) if f.retryable && attempt < limits.retries => {
                let Some(wait) = crate::fetch::retry_wait(limits, &f, attempt) else {
                    // The host asked for a long wait: the partial download
                    // is kept for the next update.
                    return Err(f.error);
                };
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
    (progress, cancel): (Option<&ProgressFn>, Option<&AtomicBool>),
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
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            // What arrived is kept, to be continued.
            let _ = writer.finish();
            return Err(Failure::fatal(Error::Cancelled { url: shown.clone() }));
        }
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
    // No fsync here: the archive is read back by the unpack that follows at
    // once, and across a crash it is trusted only after it is hashed again
    // (the journal is written after the unpacked tree is flushed).
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
