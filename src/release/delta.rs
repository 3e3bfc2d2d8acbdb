//! File deltas: a patch that rebuilds a new file from an old one.
//!
//! Matching follows bsdiff (Colin Percival, "Naive differences of
//! executable code"): the longest matches of the new file in the old one
//! are found with a suffix array, extended both ways while at least half the
//! bytes agree, and everything between is sent as new bytes. What a match
//! covers is sent as the bytewise difference from the old bytes, mostly
//! zeros, with the small regular changes that moved code leaves in the
//! addresses it holds. Six streams come out, each compressed on its own
//! with LZMA2 (xz) so that each gets a model of its own kind of data:
//!
//! - add, copy, seek: per step, how many bytes to add from the old file,
//!   how many to copy from the extra stream, and how far to move in the old
//!   file (zigzag), as LEB128 varints;
//! - runs, literals: the added bytes' differences, as pairs of varints (a
//!   run of zeros, then a run of literal bytes taken from the literals
//!   stream);
//! - extra: bytes the old file has nothing for.
//!
//! Each stream's dictionary is no larger than the stream, so that applying
//! needs little memory beyond the old file. Making a patch scans the two
//! halves of the new file on two threads and compresses the streams in
//! parallel.
//!
//! A patch names the old and the new file by size and sha256: applying it
//! to any other old file is refused up front, the output size is known (and
//! checked against the caller's cap) before anything is written, every copy
//! is checked against the old file's bounds, and the result is checked
//! against the new file's sha256 before it is put in place.
//!
//! ```text
//! "LFDELTA1"
//! varint old size, old sha256 (32 bytes), varint new size, new sha256 (32 bytes)
//! six varints: the compressed length of add, copy, seek, runs, literals, extra
//! the six streams, each one xz stream
//! ```

use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{io_err, Error, Result};
use crate::release::hash::HashingWriter;

const MAGIC: &[u8; 8] = b"LFDELTA1";
/// The dictionary of the largest stream; applying needs about this much.
const MAX_DICT: u64 = 32 << 20;
/// A match shorter than this many bytes more than what the current
/// alignment already gives is not worth a new step (measured on ruff's
/// executables: 8, bsdiff's, gives 1.5 % larger patches).
const MIN_GAIN: usize = 12;
/// The streams, in the order they are stored.
const STREAMS: usize = 6;

/// What a patch says about itself, read from its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The old file's size in bytes.
    pub old_size: u64,
    /// The old file's sha256.
    pub old_sha256: [u8; 32],
    /// The new file's size in bytes.
    pub new_size: u64,
    /// The new file's sha256.
    pub new_sha256: [u8; 32],
}

/// Makes the patch that rebuilds `new` from `old`, in memory.
///
/// # Panics
///
/// When `old` is larger than the suffix array takes (2 GiB); [`make`]
/// refuses such a file with an error instead.
pub fn diff(old: &[u8], new: &[u8]) -> Vec<u8> {
    let steps = scan(old, new);
    let streams = encode(old, new, &steps);
    let packed: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let jobs: Vec<_> = streams
            .iter()
            .zip(LITERAL_CONTEXT)
            .map(|(s, context)| scope.spawn(move || compress(s, context)))
            .collect();
        jobs.into_iter()
            .map(|j| j.join().expect("a compression thread"))
            .collect()
    });
    let header = Header {
        old_size: old.len() as u64,
        old_sha256: Sha256::digest(old).into(),
        new_size: new.len() as u64,
        new_sha256: Sha256::digest(new).into(),
    };
    let mut patch = Vec::with_capacity(packed.iter().map(Vec::len).sum::<usize>() + 128);
    patch.extend_from_slice(MAGIC);
    put_varint(&mut patch, header.old_size);
    patch.extend_from_slice(&header.old_sha256);
    put_varint(&mut patch, header.new_size);
    patch.extend_from_slice(&header.new_sha256);
    for s in &packed {
        put_varint(&mut patch, s.len() as u64);
    }
    for s in &packed {
        patch.extend_from_slice(s);
    }
    patch
}

/// Makes the patch file `patch` that rebuilds the file `new` from the file
/// `old`; returns its size.
pub fn make(old: &Path, new: &Path, patch: &Path) -> Result<u64> {
    let old_bytes = read_input(old)?;
    let new_bytes = read_input(new)?;
    let bytes = diff(&old_bytes, &new_bytes);
    crate::os::write_atomic(patch, &bytes)?;
    Ok(bytes.len() as u64)
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    let bytes = fs::read(path).map_err(io_err("reading", path))?;
    if bytes.len() > suffix_array::MAX_LENGTH {
        return Err(Error::Publish(format!(
            "{} is {} bytes; deltas are made of files under 2 GiB",
            path.display(),
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Reads a patch's header, refusing what is not a leapfrog patch.
pub fn read_header(patch: &mut impl Read) -> std::result::Result<Header, String> {
    let mut magic = [0u8; 8];
    patch
        .read_exact(&mut magic)
        .map_err(|_| "too short to be a patch".to_owned())?;
    if &magic != MAGIC {
        return Err("not a leapfrog patch (its first bytes are not LFDELTA1)".to_owned());
    }
    let old_size = get_varint(patch)?;
    let old_sha256 = get_hash(patch)?;
    let new_size = get_varint(patch)?;
    let new_sha256 = get_hash(patch)?;
    Ok(Header {
        old_size,
        old_sha256,
        new_size,
        new_sha256,
    })
}

/// Rebuilds into `out` the new file that `patch` makes from `old`, refusing
/// an output larger than `max_output` bytes. `out` appears only once its
/// content is the one the patch names (by size and sha256); on any failure
/// nothing is left there.
pub fn apply(old: &Path, patch: &Path, out: &Path, max_output: u64) -> Result<()> {
    let bad = |reason: String| Error::BadDelta {
        patch: patch.to_owned(),
        reason,
    };
    let mut file = io::BufReader::new(fs::File::open(patch).map_err(io_err("opening", patch))?);
    let header = read_header(&mut file).map_err(bad)?;
    // The old file's size first, from its metadata: a wrong (or endless)
    // file is refused before it is read.
    let old_size = fs::metadata(old).map_err(io_err("reading", old))?.len();
    let old_bytes = if old_size == header.old_size {
        let mut bytes = Vec::new();
        fs::File::open(old)
            .and_then(|f| f.take(header.old_size + 1).read_to_end(&mut bytes))
            .map_err(io_err("reading", old))?;
        bytes
    } else {
        Vec::new()
    };
    if header.old_size != old_bytes.len() as u64
        || header.old_sha256 != <[u8; 32]>::from(Sha256::digest(&old_bytes))
    {
        return Err(bad(format!(
            "it is made for another old file ({} bytes, sha256 {}), not {} ({} bytes); \
             download the whole release instead",
            header.old_size,
            hex::encode(header.old_sha256),
            old.display(),
            old_size
        )));
    }
    if header.new_size > max_output {
        return Err(bad(format!(
            "it claims a {}-byte result, more than the {max_output} bytes allowed",
            header.new_size
        )));
    }
    let tmp = temp_beside(out);
    let result = (|| {
        // A new file, never one planted at the temp name (a link would be
        // followed), with the old file's permissions: a program stays
        // executable.
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err("creating", &tmp))?;
        let permissions = fs::metadata(old)
            .map_err(io_err("reading", old))?
            .permissions();
        f.set_permissions(permissions)
            .map_err(io_err("setting the permissions of", &tmp))?;
        let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 20, f));
        rebuild(&old_bytes, &header, &mut file, &mut w).map_err(|e| match e {
            Rebuild::Bad(reason) => bad(reason),
            Rebuild::Write(e) => io_err("writing", &tmp)(e),
        })?;
        let (w, digest, written) = w.finish();
        let named = hex::encode(header.new_sha256);
        if written != header.new_size || digest != named {
            return Err(bad(format!(
                "the result is {written} bytes with sha256 {digest}, not the {} bytes with sha256 {named} it names",
                header.new_size,
            )));
        }
        let f = w
            .into_inner()
            .map_err(|e| io_err("writing", &tmp)(e.into_error()))?;
        f.sync_all().map_err(io_err("flushing", &tmp))?;
        drop(f);
        fs::rename(&tmp, out).map_err(io_err(&format!("renaming {} to", tmp.display()), out))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn temp_beside(out: &Path) -> PathBuf {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    crate::layout::temp_path(dir, name)
}

enum Rebuild {
    Bad(String),
    Write(io::Error),
}

/// Runs the patch's three streams against `old`, writing the result.
fn rebuild(
    old: &[u8],
    header: &Header,
    patch: &mut impl Read,
    out: &mut impl Write,
) -> std::result::Result<(), Rebuild> {
    let bad = |s: &str| Rebuild::Bad(s.to_owned());
    let mut lens = [0u64; STREAMS];
    for len in &mut lens {
        *len = get_varint(patch).map_err(Rebuild::Bad)?;
    }
    // The streams follow one another and the patch need not be seekable:
    // all but the last (extra) are read whole, compressed. A patch cannot
    // make this take more memory than the patch's own size.
    let mut raw = Vec::new();
    for len in &lens[..STREAMS - 1] {
        let mut s = Vec::new();
        patch
            .take(*len)
            .read_to_end(&mut s)
            .map_err(|e| Rebuild::Bad(format!("reading it: {e}")))?;
        if s.len() as u64 != *len {
            return Err(bad("it ends early (cut off?)"));
        }
        raw.push(io::BufReader::new(decoder(
            io::Cursor::new(s),
            header.new_size,
        )));
    }
    let mut raw = raw.into_iter();
    let mut next = || raw.next().expect("five streams");
    let (mut adds, mut copies, mut seeks) = (next(), next(), next());
    let mut difference = Differences {
        runs: next(),
        literals: next(),
        zeros: 0,
        literal: 0,
    };
    let mut extra = decoder(patch.take(lens[STREAMS - 1]), header.new_size);

    let mut pos: u64 = 0;
    let mut written: u64 = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let add = match get_varint_or_end(&mut adds).map_err(Rebuild::Bad)? {
            None => break,
            Some(n) => n,
        };
        let copy = get_varint(&mut copies).map_err(Rebuild::Bad)?;
        let seek = unzigzag(get_varint(&mut seeks).map_err(Rebuild::Bad)?);
        if add == 0 && copy == 0 {
            return Err(bad("it has a step that writes nothing"));
        }
        if written
            .checked_add(add)
            .and_then(|w| w.checked_add(copy))
            .is_none_or(|w| w > header.new_size)
        {
            return Err(bad("its steps write more than the result's size"));
        }
        if pos
            .checked_add(add)
            .is_none_or(|end| end > old.len() as u64)
        {
            return Err(bad("it reads past the end of the old file"));
        }
        let mut left = add as usize;
        let mut at = pos as usize;
        while left > 0 {
            let n = left.min(buf.len());
            difference.fill(&mut buf[..n]).map_err(Rebuild::Bad)?;
            for (b, o) in buf[..n].iter_mut().zip(&old[at..at + n]) {
                *b = b.wrapping_add(*o);
            }
            out.write_all(&buf[..n]).map_err(Rebuild::Write)?;
            at += n;
            left -= n;
        }
        let mut left = usize::try_from(copy).map_err(|_| bad("a step copies too much"))?;
        while left > 0 {
            let n = left.min(buf.len());
            extra
                .read_exact(&mut buf[..n])
                .map_err(|_| bad("its extra stream ends early or is damaged"))?;
            out.write_all(&buf[..n]).map_err(Rebuild::Write)?;
            left -= n;
        }
        written += add + copy;
        pos = (pos + add)
            .checked_add_signed(seek)
            .filter(|p| *p <= old.len() as u64)
            .ok_or_else(|| bad("it moves outside the old file"))?;
    }
    if written != header.new_size {
        return Err(bad("its steps end before the whole result is written"));
    }
    // The extra stream whole: a cut-off patch is refused even where the
    // bytes it still has would rebuild the file.
    match extra.read(&mut buf[..1]) {
        Ok(0) => {}
        Ok(_) => return Err(bad("its extra stream holds more than its steps use")),
        Err(_) => return Err(bad("its extra stream is cut off or damaged")),
    }
    out.flush().map_err(Rebuild::Write)
}

/// One step of a patch: add `add` bytes from the old file at `old_pos`
/// (new byte = old byte + difference), then copy `copy` bytes of extra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    old_pos: usize,
    add: usize,
    copy: usize,
}

/// The steps that rebuild `new` from `old`: the two halves of `new`
/// scanned on two threads against one suffix array of `old`.
fn scan(old: &[u8], new: &[u8]) -> Vec<Step> {
    let sa = suffix_array::SuffixArray::new(old);
    let half = new.len() / 2;
    let (mut first, second) = std::thread::scope(|scope| {
        let second = scope.spawn(|| scan_range(&sa, old, new, half, new.len()));
        let first = scan_range(&sa, old, new, 0, half);
        (first, second.join().expect("a scanning thread"))
    });
    first.extend(second);
    first
}

/// The bsdiff scan of `new[begin..end]`.
fn scan_range(
    sa: &suffix_array::SuffixArray<'_>,
    old: &[u8],
    new: &[u8],
    begin: usize,
    end: usize,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let at = |i: isize| usize::try_from(i).ok().and_then(|i| old.get(i).copied());
    let (mut scan, mut len, mut pos) = (begin, 0usize, 0usize);
    let mut last_scan = begin;
    // Start aligned with the same place in the old file.
    let mut last_pos = begin.min(old.len());
    let mut last_offset = last_pos as isize - begin as isize;
    while scan < end {
        let mut old_score = 0usize;
        scan += len;
        let mut scored = scan;
        while scan < end {
            let found = sa.search_lcp(&new[scan..end]);
            pos = found.start;
            len = found.len();
            while scored < scan + len {
                if at(scored as isize + last_offset) == Some(new[scored]) {
                    old_score += 1;
                }
                scored += 1;
            }
            if (len == old_score && len != 0) || len > old_score + MIN_GAIN {
                break;
            }
            if at(scan as isize + last_offset) == Some(new[scan]) {
                old_score = old_score.saturating_sub(1);
            }
            scan += 1;
        }
        if len == old_score && scan < end {
            continue;
        }
        // Extend the last match forward while at least half agrees...
        let (mut s, mut best, mut len_f) = (0isize, 0isize, 0usize);
        let mut i = 0;
        while last_scan + i < scan && last_pos + i < old.len() {
            if old[last_pos + i] == new[last_scan + i] {
                s += 1;
            }
            i += 1;
            if s * 2 - i as isize > best * 2 - len_f as isize {
                best = s;
                len_f = i;
            }
        }
        // ... and the new one backward.
        let mut len_b = 0usize;
        if scan < end {
            let (mut s, mut best) = (0isize, 0isize);
            let mut i = 1;
            while scan >= last_scan + i && pos >= i {
                if old[pos - i] == new[scan - i] {
                    s += 1;
                }
                if s * 2 - i as isize > best * 2 - len_b as isize {
                    best = s;
                    len_b = i;
                }
                i += 1;
            }
        }
        // Where the two overlap, split at the best point.
        if last_scan + len_f > scan - len_b {
            let overlap = (last_scan + len_f) - (scan - len_b);
            let (mut s, mut best, mut split) = (0isize, 0isize, 0usize);
            for i in 0..overlap {
                if new[last_scan + len_f - overlap + i] == old[last_pos + len_f - overlap + i] {
                    s += 1;
                }
                if new[scan - len_b + i] == old[pos - len_b + i] {
                    s -= 1;
                }
                if s > best {
                    best = s;
                    split = i + 1;
                }
            }
            len_f = len_f + split - overlap;
            len_b -= split;
        }
        let extra_end = scan.min(end) - len_b;
        steps.push(Step {
            old_pos: last_pos,
            add: len_f,
            copy: extra_end - (last_scan + len_f),
        });
        last_scan = extra_end;
        last_pos = pos - len_b;
        last_offset = pos as isize - scan as isize;
    }
    steps
}

/// The six streams of `steps`, uncompressed.
fn encode(old: &[u8], new: &[u8], steps: &[Step]) -> [Vec<u8>; STREAMS] {
    // A step that adds and copies nothing only moves in the old file, which
    // the step before it can do: there are none, so that applying can
    // refuse them (each step then writes at least one byte).
    let steps: Vec<Step> = steps
        .iter()
        .copied()
        .filter(|s| s.add + s.copy > 0)
        .collect();
    let (mut adds, mut copies, mut seeks) = (Vec::new(), Vec::new(), Vec::new());
    let (mut runs, mut literals, mut extra) = (Vec::new(), Vec::new(), Vec::new());
    let mut zeros = 0u64;
    let mut new_pos = 0;
    for (k, step) in steps.iter().enumerate() {
        put_varint(&mut adds, step.add as u64);
        put_varint(&mut copies, step.copy as u64);
        let here = step.old_pos + step.add;
        let next = steps.get(k + 1).map_or(here, |s| s.old_pos);
        put_varint(&mut seeks, zigzag(next as i64 - here as i64));
        let added = new[new_pos..new_pos + step.add]
            .iter()
            .zip(&old[step.old_pos..here]);
        let mut literal_run = 0u64;
        for (n, o) in added {
            let d = n.wrapping_sub(*o);
            if d == 0 {
                if literal_run > 0 {
                    put_varint(&mut runs, literal_run);
                    literal_run = 0;
                }
                zeros += 1;
            } else {
                if literal_run == 0 {
                    put_varint(&mut runs, zeros);
                    zeros = 0;
                }
                literals.push(d);
                literal_run += 1;
            }
        }
        if literal_run > 0 {
            put_varint(&mut runs, literal_run);
        }
        new_pos += step.add;
        extra.extend_from_slice(&new[new_pos..new_pos + step.copy]);
        new_pos += step.copy;
    }
    put_varint(&mut runs, zeros);
    put_varint(&mut runs, 0);
    [adds, copies, seeks, runs, literals, extra]
}

/// The added bytes' differences, decoded from the runs and literals streams.
struct Differences<R> {
    runs: R,
    literals: R,
    /// Zeros left in the current run, then literal bytes left.
    zeros: u64,
    literal: u64,
}

impl<R: Read> Differences<R> {
    fn fill(&mut self, mut buf: &mut [u8]) -> std::result::Result<(), String> {
        while !buf.is_empty() {
            if self.zeros > 0 {
                let n = buf
                    .len()
                    .min(usize::try_from(self.zeros).unwrap_or(usize::MAX));
                buf[..n].fill(0);
                buf = &mut buf[n..];
                self.zeros -= n as u64;
            } else if self.literal > 0 {
                let n = buf
                    .len()
                    .min(usize::try_from(self.literal).unwrap_or(usize::MAX));
                self.literals
                    .read_exact(&mut buf[..n])
                    .map_err(|_| "its literals stream ends early or is damaged".to_owned())?;
                buf = &mut buf[n..];
                self.literal -= n as u64;
            } else {
                let end = || "its differences end before its steps do".to_owned();
                self.zeros = get_varint_or_end(&mut self.runs)?.ok_or_else(end)?;
                self.literal = get_varint_or_end(&mut self.runs)?.ok_or_else(end)?;
                if self.zeros == 0 && self.literal == 0 {
                    return Err(end());
                }
            }
        }
        Ok(())
    }
}

/// The dictionary for a stream of `len` bytes.
fn dict_size(len: u64) -> u64 {
    len.checked_next_power_of_two()
        .unwrap_or(MAX_DICT)
        .clamp(4096, MAX_DICT)
}

/// LZMA's literal context, literal position and position bits for each
/// stream (measured on ruff's executables, 0.6 % smaller than the
/// defaults): the steps and runs are varints, whose bytes tell little about
/// the next, the literals and new bytes are machine code.
const LITERAL_CONTEXT: [(u32, u32, u32); STREAMS] = [
    (1, 0, 0),
    (1, 0, 0),
    (1, 0, 0),
    (4, 0, 0),
    (3, 0, 0),
    (3, 1, 1),
];

fn compress(data: &[u8], (lc, lp, pb): (u32, u32, u32)) -> Vec<u8> {
    use liblzma::stream::{Check, Filters, LzmaOptions, Stream, PRESET_EXTREME};
    let dict = dict_size(data.len() as u64) as u32;
    let mut options = LzmaOptions::new_preset(9 | PRESET_EXTREME).expect("preset 9e exists");
    options
        .dict_size(dict)
        .literal_context_bits(lc)
        .literal_position_bits(lp)
        .position_bits(pb);
    let mut filters = Filters::new();
    filters.lzma2(&options);
    let stream = Stream::new_stream_encoder(&filters, Check::None).expect("an LZMA2 encoder");
    let mut out = Vec::new();
    let mut enc = liblzma::write::XzEncoder::new_stream(&mut out, stream);
    enc.write_all(data).expect("writing to memory");
    enc.finish().expect("writing to memory");
    out
}

fn decoder<R: Read>(r: R, new_size: u64) -> impl Read {
    // The memory limit: the dictionary a patch of ours uses for a stream of
    // a result this size (no stream is larger than the result), and room
    // for the decoder's own state.
    let limit = dict_size(new_size) + (1 << 20);
    let stream = liblzma::stream::Stream::new_stream_decoder(limit, 0).expect("an xz decoder");
    liblzma::read::XzDecoder::new_stream(io::BufReader::new(r), stream)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint_or_end(r: &mut impl Read) -> std::result::Result<Option<u64>, String> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let mut b = [0u8];
        match r.read(&mut b) {
            Ok(0) if i == 0 => return Ok(None),
            Ok(0) => return Err("a number in it is cut off".to_owned()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading it: {e}")),
        }
        let bits = u64::from(b[0] & 0x7f);
        if i == 9 && b[0] > 1 {
            return Err("a number in it is too large".to_owned());
        }
        v |= bits << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok(Some(v));
        }
    }
    Err("a number in it is too large".to_owned())
}

fn get_varint(r: &mut impl Read) -> std::result::Result<u64, String> {
    get_varint_or_end(r)?.ok_or_else(|| "it ends early (cut off?)".to_owned())
}

fn get_hash(r: &mut impl Read) -> std::result::Result<[u8; 32], String> {
    let mut h = [0u8; 32];
    r.read_exact(&mut h)
        .map_err(|_| "it ends early (cut off?)".to_owned())?;
    Ok(h)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(old: &[u8], new: &[u8]) -> Vec<u8> {
        let patch = diff(old, new);
        let mut body = &patch[..];
        let header = read_header(&mut body).unwrap();
        let mut out = Vec::new();
        match rebuild(old, &header, &mut body, &mut out) {
            Ok(()) => {}
            Err(Rebuild::Bad(r)) => panic!("{r}"),
            Err(Rebuild::Write(e)) => panic!("{e}"),
        }
        assert_eq!(out, new);
        patch
    }

    #[test]
    fn rebuilds_edits_moves_and_empty_files() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let old: Vec<u8> = (0..200_000).map(|_| (next() % 7) as u8).collect();
        let mut new = old.clone();
        for _ in 0..50 {
            let i = (next() % new.len() as u64) as usize;
            new[i] = new[i].wrapping_add(3);
        }
        new.splice(1000..1000, b"inserted bytes".iter().copied());
        new.drain(50_000..60_000);
        let moved: Vec<u8> = new[100_000..120_000].to_vec();
        new.extend_from_slice(&moved);
        let patch = roundtrip(&old, &new);
        assert!(patch.len() < new.len() / 10, "{} bytes", patch.len());
        roundtrip(b"", b"");
        roundtrip(b"", b"all new");
        roundtrip(b"all old", b"");
        roundtrip(&old, &old);
    }

    /// A patch with the given header fields and raw (uncompressed) streams.
    fn crafted(
        old: &[u8],
        new_size: u64,
        new_sha256: [u8; 32],
        streams: [&[u8]; STREAMS],
    ) -> Vec<u8> {
        let mut patch = MAGIC.to_vec();
        put_varint(&mut patch, old.len() as u64);
        patch.extend_from_slice(&Sha256::digest(old));
        put_varint(&mut patch, new_size);
        patch.extend_from_slice(&new_sha256);
        let packed: Vec<Vec<u8>> = streams
            .iter()
            .zip(LITERAL_CONTEXT)
            .map(|(s, context)| compress(s, context))
            .collect();
        for s in &packed {
            put_varint(&mut patch, s.len() as u64);
        }
        for s in &packed {
            patch.extend_from_slice(s);
        }
        patch
    }

    fn varints(values: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in values {
            put_varint(&mut out, *v);
        }
        out
    }

    /// Applies `patch` to `old` through the file API; the error's text, and
    /// whether anything was left at the output path.
    fn apply_files(old: &[u8], patch: &[u8], max: u64) -> (Result<()>, bool) {
        let dir = tempfile::tempdir().unwrap();
        let (o, p, out) = (
            dir.path().join("old"),
            dir.path().join("patch"),
            dir.path().join("out"),
        );
        fs::write(&o, old).unwrap();
        fs::write(&p, patch).unwrap();
        let result = apply(&o, &p, &out, max);
        let left = fs::read_dir(dir.path()).unwrap().count() != 2;
        (result, left)
    }

    fn refused(old: &[u8], patch: &[u8], max: u64, says: &str) {
        let (result, left) = apply_files(old, patch, max);
        let err = result
            .expect_err("a crafted patch must be refused")
            .to_string();
        assert!(err.contains(says), "{err:?} does not say {says:?}");
        assert!(!left, "a refused patch left a file behind");
    }

    #[test]
    fn crafted_patches_are_refused_and_leave_nothing() {
        let old = b"0123456789".to_vec();
        let new = b"0123456789abc".to_vec();
        let sha: [u8; 32] = Sha256::digest(&new).into();
        let good = diff(&old, &new);
        let (ok, _) = apply_files(&old, &good, 1 << 20);
        ok.unwrap();
        // Made for another old file.
        refused(
            b"another old file",
            &good,
            1 << 20,
            "made for another old file",
        );
        // A result larger than the caller allows.
        refused(&old, &good, 5, "more than the 5 bytes allowed");
        let runs = [10, 0];
        // A patch for a 13-byte result of `sha` with these streams.
        let steps =
            |size: u64, adds: &[u64], copies: &[u64], seeks: &[u64], runs: &[u64], extra: &[u8]| {
                crafted(
                    &old,
                    size,
                    sha,
                    [
                        &varints(adds),
                        &varints(copies),
                        &varints(seeks),
                        &varints(runs),
                        b"",
                        extra,
                    ],
                )
            };
        // Adding from past the old file's end.
        let p = steps(20, &[20], &[0], &[0], &runs, b"");
        refused(&old, &p, 1 << 20, "past the end of the old file");
        // Steps that write more than the result's size.
        let p = steps(4, &[2, 3], &[0, 0], &[0, 0], &runs, b"");
        refused(&old, &p, 1 << 20, "more than the result's size");
        // A move outside the old file.
        let p = steps(13, &[2, 2], &[0, 0], &[zigzag(-100), 0], &runs, b"");
        refused(&old, &p, 1 << 20, "outside the old file");
        // Differences that run out.
        let p = steps(13, &[10], &[3], &[0], &[2, 0], b"abc");
        refused(&old, &p, 1 << 20, "differences end before");
        // Extra bytes that run out.
        let p = steps(13, &[10], &[3], &[0], &runs, b"ab");
        refused(&old, &p, 1 << 20, "extra stream ends early");
        // Steps that end before the result does.
        let p = steps(13, &[10], &[0], &[0], &runs, b"");
        refused(&old, &p, 1 << 20, "end before the whole result");
        // Well-formed steps, a different result: the sha256 says so.
        let p = steps(13, &[10], &[3], &[0], &runs, b"abd");
        refused(&old, &p, 1 << 20, "not the 13 bytes with sha256");
        // Steps that write nothing (a stream of zeros costs a patch next
        // to nothing, so they would spin without end).
        let p = steps(13, &[0; 3000], &[0; 3000], &[0; 3000], &runs, b"");
        refused(&old, &p, 1 << 20, "a step that writes nothing");
        // Cut off, and not a patch at all.
        refused(&old, &good[..good.len() - 3], 1 << 20, "delta");
        refused(
            &old,
            b"PK\x03\x04 a zip file",
            1 << 20,
            "not a leapfrog patch",
        );
    }

    #[test]
    fn varints_and_zigzag_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(get_varint(&mut &b[..]).unwrap(), v);
        }
        for v in [0i64, 1, -1, 12345, -12345, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
