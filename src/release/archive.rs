//! Release archives: deterministic packing and safe unpacking.
//!
//! A release archive `<program>-<version>.tar.gz` holds the release tree and,
//! as its first entry, the file list ([`super::file_list`]).
//!
//! Packing is deterministic: entries sorted by path, mtime, owner and group
//! fixed, modes normalised to 0755/0644, a fixed gzip header. The same tree
//! gives the same bytes.
//!
//! Unpacking trusts nothing in the archive beyond what the list allows. It
//! refuses, before writing anything outside the destination:
//! absolute paths and `..`; entries not in the list or listed twice; files
//! whose size or sha256 differ from the list; hard links, devices, FIFOs and
//! every other special entry; symlinks that are absolute or resolve outside
//! the tree, and entries beneath a symlink. Symlinks are created last, after
//! every file was written and checked, so nothing is ever written through one.
//! The total size and entry count are bounded by the list, and anything after
//! the end of the archive is refused.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use flate2::bufread::GzDecoder;
use flate2::{Compression, GzBuilder};
use semver::Version;

use super::file_list::{check_relative, list_tree, FileList, Item, FILE_LIST, MAX_LIST_BYTES};
use super::hash::HashingWriter;
use crate::error::{io_err, Error, Result};
use crate::os;

/// The most bytes that may follow the end of the tar stream (zero padding
/// to the tar record size; tar pads to 10 KiB, some tools to more).
const MAX_TRAILING_BYTES: u64 = 1024 * 1024;
/// The mtime written for every entry (1980-01-01, safe for every tool).
const FIXED_MTIME: u64 = 315_532_800;

/// Packs the tree at `dir` as release `program` `version` into `out`
/// (deterministically), returning its file list.
pub fn pack(
    dir: impl AsRef<Path>,
    program: &str,
    version: &Version,
    out: impl AsRef<Path>,
) -> Result<FileList> {
    let (dir, out) = (dir.as_ref(), out.as_ref());
    let list = list_tree(dir, program, version)?;
    let file = File::create(out).map_err(io_err("creating", out))?;
    let gz = GzBuilder::new().mtime(0).operating_system(255).write(
        BufWriter::with_capacity(256 * 1024, file),
        Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let w = |e: io::Error| io_err("writing", out)(e);

    let text = list.render();
    append(
        &mut tar,
        FILE_LIST,
        tar::EntryType::Regular,
        0o644,
        text.len() as u64,
        text.as_bytes(),
    )
    .map_err(w)?;
    for (path, item) in &list.items {
        match item {
            Item::Dir => append(
                &mut tar,
                path,
                tar::EntryType::Directory,
                0o755,
                0,
                io::empty(),
            )
            .map_err(w)?,
            Item::File {
                size, executable, ..
            } => {
                let src = dir.join(path);
                let f = File::open(&src).map_err(io_err("opening", &src))?;
                let mode = if *executable { 0o755 } else { 0o644 };
                // A file that changed since it was hashed makes tar fail on the size.
                append(
                    &mut tar,
                    path,
                    tar::EntryType::Regular,
                    mode,
                    *size,
                    f.take(*size),
                )
                .map_err(|e| Error::Publish(format!("{src:?} changed while it was packed: {e}")))?;
            }
            Item::Link { target } => {
                let mut header = header(tar::EntryType::Symlink, 0o777, 0);
                tar.append_link(&mut header, path, target).map_err(w)?;
            }
        }
    }
    let gz = tar.into_inner().map_err(w)?;
    let buf = gz.finish().map_err(w)?;
    let file = buf.into_inner().map_err(|e| w(e.into_error()))?;
    file.sync_all().map_err(w)?;
    Ok(list)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(FIXED_MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    kind: tar::EntryType,
    mode: u32,
    size: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut h = header(kind, mode, size);
    tar.append_data(&mut h, path, data)
}

/// Unpacks the release archive at `archive` into `dest` (which must not exist
/// yet), checking every entry against the archive's file list, and returns
/// the list. On error `dest` may hold part of the release; the caller removes it.
pub fn unpack(archive: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<FileList> {
    let (archive, dest) = (archive.as_ref(), dest.as_ref());
    let file = File::open(archive).map_err(io_err("opening", archive))?;
    unpack_from(BufReader::with_capacity(256 * 1024, file), archive, dest)
}

fn unpack_from<R: BufRead>(reader: R, archive: &Path, dest: &Path) -> Result<FileList> {
    let unsafe_entry = |entry: &str, reason: &str| Error::UnsafeArchive {
        archive: archive.to_owned(),
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    };
    let bad = |reason: String| Error::BadArchive {
        archive: archive.to_owned(),
        reason,
    };
    let read_err = |e: io::Error| bad(format!("cannot be read ({e}); download it again"));

    crate::failpoint::at("unpack mkdir", dest)?;
    fs::create_dir(dest).map_err(io_err("creating", dest))?;
    let mut gz = GzDecoder::new(reader);
    let mut tar = tar::Archive::new(&mut gz);
    let mut entries = tar.entries().map_err(read_err)?;

    // The file list comes first and bounds everything after it.
    let mut first = entries
        .next()
        .ok_or_else(|| bad("it is empty".into()))?
        .map_err(read_err)?;
    let first_path = entry_path(&first).map_err(|e| unsafe_entry(&e, "path is not UTF-8"))?;
    if first_path != FILE_LIST || first.header().entry_type() != tar::EntryType::Regular {
        return Err(bad(format!(
            "its first entry is {first_path:?}, not the file list {FILE_LIST}"
        )));
    }
    if first.size() > MAX_LIST_BYTES {
        return Err(bad(format!(
            "its file list is larger than {MAX_LIST_BYTES} bytes"
        )));
    }
    let mut text = String::new();
    (&mut first)
        .take(MAX_LIST_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| bad(format!("its file list is unreadable: {e}")))?;
    drop(first);
    let list = FileList::parse(&text, archive)?;
    let list_path = dest.join(FILE_LIST);
    // The list vouches for every byte that will be written: refuse a
    // release the disk cannot hold before writing any of it.
    crate::os::need_space(dest, list.total_size())?;

    let mut seen = std::collections::BTreeSet::new();
    let mut links = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(read_err)?;
        let name = entry_path(&entry).map_err(|e| unsafe_entry(&e, "path is not UTF-8"))?;
        let name = name.trim_end_matches('/').to_owned();
        check_relative(&name).map_err(|r| unsafe_entry(&name, r))?;
        if !seen.insert(name.clone()) {
            return Err(unsafe_entry(&name, "it appears twice in the archive"));
        }
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().map_err(read_err)?;
        if matches!(
            kind,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory
        ) && mode & 0o7022 != 0
        {
            return Err(unsafe_entry(
                &name,
                &format!("mode {mode:o}: setuid, setgid, sticky or group/world-writable entries are not allowed"),
            ));
        }
        let listed = list
            .items
            .get(&name)
            .ok_or_else(|| unsafe_entry(&name, "it is not in the release's file list"))?;
        let target = dest.join(&name);
        match (kind, listed) {
            (tar::EntryType::Directory, Item::Dir) => {
                crate::failpoint::at("unpack mkdir", &target)?;
                fs::create_dir_all(&target).map_err(io_err("creating", &target))?;
            }
            (
                tar::EntryType::Regular | tar::EntryType::Continuous,
                Item::File {
                    sha256,
                    size,
                    executable,
                },
            ) => {
                if entry.size() != *size {
                    return Err(unsafe_entry(
                        &name,
                        &format!(
                            "its size {} differs from the file list's {size}",
                            entry.size()
                        ),
                    ));
                }
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
                }
                crate::failpoint::at("unpack create", &target)?;
                let out = File::create(&target).map_err(io_err("creating", &target))?;
                let mut writer = HashingWriter::new(crate::failpoint::Writer::new(
                    BufWriter::with_capacity(128 * 1024, out),
                    "unpack write",
                ));
                let copied =
                    io::copy(&mut (&mut entry).take(*size), &mut writer).map_err(read_err)?;
                let (buf, computed, _) = writer.finish();
                buf.into_inner()
                    .into_inner()
                    .map_err(|e| io_err("writing", &target)(e.into_error()))?;
                if copied != *size {
                    return Err(bad(format!("{name:?} is cut short; download it again")));
                }
                if &computed != sha256 {
                    return Err(unsafe_entry(
                        &name,
                        &format!("its sha256 {computed} differs from the file list's {sha256}"),
                    ));
                }
                crate::failpoint::at("unpack chmod", &target)?;
                os::set_executable(&target, *executable)?;
            }
            (
                tar::EntryType::Symlink,
                Item::Link {
                    target: listed_target,
                },
            ) => {
                let stored = entry
                    .link_name()
                    .map_err(read_err)?
                    .and_then(|p| p.to_str().map(str::to_owned))
                    .ok_or_else(|| unsafe_entry(&name, "symlink without a UTF-8 target"))?;
                if &stored != listed_target {
                    return Err(unsafe_entry(
                        &name,
                        "its target differs from the file list's",
                    ));
                }
                links.push((name, stored));
            }
            (tar::EntryType::Link, _) => {
                return Err(unsafe_entry(&name, "hard links are not allowed"))
            }
            (tar::EntryType::Char | tar::EntryType::Block, _) => {
                return Err(unsafe_entry(&name, "device entries are not allowed"))
            }
            (tar::EntryType::Fifo, _) => {
                return Err(unsafe_entry(&name, "FIFO entries are not allowed"))
            }
            (kind, _) => {
                return Err(unsafe_entry(
                    &name,
                    &format!("its type {kind:?} differs from the file list's"),
                ))
            }
        }
    }
    if let Some(missing) = list.items.keys().find(|k| !seen.contains(*k)) {
        return Err(bad(format!(
            "{missing:?} is in the file list but not in the archive"
        )));
    }
    // Only zero padding may follow the end of the tar stream, and only so
    // much of it; nothing may follow the gzip stream.
    let _ = tar;
    let mut rest = [0u8; 8192];
    let mut trailing = 0u64;
    loop {
        let n = gz.read(&mut rest).map_err(read_err)?;
        if n == 0 {
            break;
        }
        trailing += n as u64;
        if rest[..n].iter().any(|&b| b != 0) {
            return Err(bad("data follows the end of the tar stream".into()));
        }
        if trailing > MAX_TRAILING_BYTES {
            return Err(bad(format!(
                "more than {} of padding follow the end of the tar stream",
                crate::error::human_size(MAX_TRAILING_BYTES)
            )));
        }
    }
    if !gz.into_inner().fill_buf().map_err(read_err)?.is_empty() {
        return Err(bad("data follows the end of the gzip stream".into()));
    }
    for (name, target) in links {
        let at = dest.join(&name);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        crate::failpoint::at("unpack symlink", &at)?;
        os::symlink(Path::new(&target), &at)?;
    }
    crate::failpoint::at("unpack list", &list_path)?;
    fs::write(&list_path, text.as_bytes()).map_err(io_err("writing", &list_path))?;
    Ok(list)
}

fn entry_path<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, String> {
    let bytes = entry.path_bytes();
    std::str::from_utf8(&bytes)
        .map(str::to_owned)
        .map_err(|_| String::from_utf8_lossy(&bytes).into_owned())
}
