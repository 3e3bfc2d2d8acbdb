//! Release archives: deterministic packing and safe unpacking.
//!
//! A release archive `<program>-<version>.tar.gz` holds the release tree and,
//! as its first entry, the file list [`FILE_LIST`]: the program, the version
//! and every directory, file (sha256, size, mode) and symlink of the release.
//! The list is installed with the release, so the next update knows which
//! files of the install dir belong to a release and which are the user's.
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

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::bufread::GzDecoder;
use flate2::{Compression, GzBuilder};
use semver::Version;
use std::io::BufRead;

use crate::error::{io_err, Error, Result};
use crate::os;
use crate::verify::HashingWriter;

/// The file list's name, at the root of every release tree.
pub const FILE_LIST: &str = crate::layout::FILE_LIST;
/// The most bytes that may follow the end of the tar stream (zero padding
/// to the tar record size; tar pads to 10 KiB, some tools to more).
const MAX_TRAILING_BYTES: u64 = 1024 * 1024;
const LIST_MARKER: &str = "# leapfrog release v";
const LIST_FORMAT: u32 = 1;
/// The largest file list accepted (it is read into memory).
const MAX_LIST_BYTES: u64 = 16 * 1024 * 1024;
/// The most items a release may have (entries are bounded by the list).
const MAX_ITEMS: usize = 200_000;
/// The mtime written for every entry (1980-01-01, safe for every tool).
const FIXED_MTIME: u64 = 315_532_800;

/// One item of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A directory.
    Dir,
    /// A regular file.
    File {
        /// Lowercase hex sha256 of the content.
        sha256: String,
        /// Size in bytes.
        size: u64,
        /// Whether it is executable.
        executable: bool,
    },
    /// A symlink, with its (relative) target.
    Link {
        /// The target as stored.
        target: String,
    },
}

/// The file list of a release: which program, which version, and every item
/// by its `/`-separated path relative to the release root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileList {
    /// The program.
    pub program: String,
    /// The version.
    pub version: Version,
    /// Every item, by path.
    pub items: BTreeMap<String, Item>,
}

impl FileList {
    /// Renders the list in its text form.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{LIST_MARKER}{LIST_FORMAT}\nprogram {}\nversion {}\n",
            self.program, self.version
        );
        for (path, item) in &self.items {
            match item {
                Item::Dir => out.push_str(&format!("dir {path}\n")),
                Item::File {
                    sha256,
                    size,
                    executable,
                } => {
                    let mode = if *executable { "755" } else { "644" };
                    out.push_str(&format!("file {sha256} {size} {mode} {path}\n"));
                }
                Item::Link { target } => out.push_str(&format!("link {target} {path}\n")),
            }
        }
        out
    }

    /// Parses the text form; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<FileList> {
        let bad = |line: usize, reason: String| Error::BadArchive {
            archive: origin.to_owned(),
            reason: format!("{FILE_LIST} line {line}: {reason}"),
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, l)) if l == format!("{LIST_MARKER}{LIST_FORMAT}") => {}
            Some((_, l)) if l.starts_with(LIST_MARKER) => {
                return Err(bad(1, format!("unsupported file list format {l:?}")))
            }
            _ => return Err(bad(1, "not a leapfrog file list".into())),
        }
        let mut field = |name: &str| -> Result<String> {
            match lines.next() {
                Some((n, l)) => l
                    .strip_prefix(name)
                    .and_then(|v| v.strip_prefix(' '))
                    .map(str::to_owned)
                    .ok_or_else(|| bad(n, format!("expected `{name} ...`"))),
                None => Err(bad(0, format!("ends before `{name}`"))),
            }
        };
        let program = field("program")?;
        let version_text = field("version")?;
        let version = Version::parse(&version_text)
            .map_err(|e| bad(3, format!("version {version_text:?}: {e}")))?;
        let mut items = BTreeMap::new();
        for (n, line) in lines {
            if items.len() >= MAX_ITEMS {
                return Err(bad(n, format!("too many entries (more than {MAX_ITEMS})")));
            }
            let (kind, rest) = line
                .split_once(' ')
                .ok_or_else(|| bad(n, "no path".into()))?;
            let (path, item) = match kind {
                "dir" => (rest, Item::Dir),
                "file" => {
                    let mut parts = rest.splitn(4, ' ');
                    let (Some(sha256), Some(size), Some(mode), Some(path)) =
                        (parts.next(), parts.next(), parts.next(), parts.next())
                    else {
                        return Err(bad(n, "expected `file SHA256 SIZE MODE PATH`".into()));
                    };
                    let size = size.parse().map_err(|_| bad(n, format!("size {size:?}")))?;
                    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(bad(n, format!("sha256 {sha256:?}")));
                    }
                    let executable = match mode {
                        "755" => true,
                        "644" => false,
                        other => return Err(bad(n, format!("mode {other:?} (755 or 644)"))),
                    };
                    let item = Item::File {
                        sha256: sha256.to_owned(),
                        size,
                        executable,
                    };
                    (path, item)
                }
                "link" => {
                    let (target, path) = rest
                        .split_once(' ')
                        .ok_or_else(|| bad(n, "expected `link TARGET PATH`".into()))?;
                    (
                        path,
                        Item::Link {
                            target: target.to_owned(),
                        },
                    )
                }
                other => return Err(bad(n, format!("unknown kind {other:?}"))),
            };
            check_relative(path).map_err(|reason| bad(n, format!("path {path:?}: {reason}")))?;
            check_portable(path).map_err(|reason| bad(n, format!("path {path:?}: {reason}")))?;
            if let Some(name) = crate::layout::reserved_component(path) {
                return Err(bad(n, reserved_message(path, name)));
            }
            if items.insert(path.to_owned(), item).is_some() {
                return Err(bad(n, format!("{path:?} listed twice")));
            }
        }
        check_twins(items.keys()).map_err(|reason| bad(0, reason))?;
        let list = FileList {
            program,
            version,
            items,
        };
        for path in list.items.keys() {
            if let Some(link) = list.link_above(path) {
                return Err(bad(
                    0,
                    format!("{path:?} lies beneath the symlink {link:?}"),
                ));
            }
        }
        for (path, item) in &list.items {
            if let Item::Link { target } = item {
                list.check_link(path, target).map_err(|reason| {
                    bad(0, format!("symlink {path:?} -> {target:?}: {reason}"))
                })?;
            }
        }
        Ok(list)
    }

    /// Reads the list installed at the root of `dir`, if there is one.
    pub fn read_installed(dir: &Path) -> Result<Option<FileList>> {
        let path = dir.join(FILE_LIST);
        match fs::read_to_string(&path) {
            Ok(text) => FileList::parse(&text, &path).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading", &path)(e)),
        }
    }

    /// The total size of the release's files.
    pub fn total_size(&self) -> u64 {
        self.items
            .values()
            .map(|i| match i {
                Item::File { size, .. } => *size,
                _ => 0,
            })
            .sum()
    }

    /// A symlink of the list that is a proper ancestor of `path`.
    fn link_above<'a>(&'a self, path: &str) -> Option<&'a str> {
        let mut prefix = path;
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            if let Some((k, Item::Link { .. })) = self.items.get_key_value(parent) {
                return Some(k);
            }
            prefix = parent;
        }
        None
    }

    /// Resolves a symlink inside the tree, following other symlinks of the
    /// list, and refuses it when it would lead outside the release root.
    fn check_link(&self, path: &str, target: &str) -> Result<(), String> {
        if target.starts_with('/')
            || target.contains('\\')
            || target.contains(':')
            || target.is_empty()
        {
            return Err("the target must be a relative path".into());
        }
        let mut stack: Vec<&str> = path.split('/').collect();
        stack.pop();
        self.walk(&mut stack, target, 0)
    }

    fn walk<'a>(
        &'a self,
        stack: &mut Vec<&'a str>,
        target: &'a str,
        depth: usize,
    ) -> Result<(), String> {
        if depth > 32 {
            return Err("too many levels of symlinks".into());
        }
        for part in target.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if stack.pop().is_none() {
                        return Err("it points outside the release".into());
                    }
                }
                name => {
                    stack.push(name);
                    let joined = stack.join("/");
                    if let Some(Item::Link { target: next }) = self.items.get(&joined) {
                        stack.pop();
                        self.walk(stack, next, depth + 1)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Checks that a stored path is relative, `/`-separated and made of plain names.
fn check_relative(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.starts_with('/') || path.contains('\\') || path.contains(':') || path.contains('\0') {
        return Err("absolute or non-portable path");
    }
    if path.contains('\n') || path.contains('\r') {
        return Err("line break in the name");
    }
    if path.chars().any(char::is_control) {
        return Err("control character in the name");
    }
    for part in path.split('/') {
        match part {
            "" | "." => return Err("empty or '.' component"),
            ".." => return Err("'..' component"),
            _ => {}
        }
    }
    Ok(())
}

/// Why a name that works on Linux would break on Windows or macOS, if it would.
fn check_portable(path: &str) -> Result<(), String> {
    for part in path.split('/') {
        if let Some(c) = part.chars().find(|c| "<>:\"|?*\\".contains(*c)) {
            return Err(format!("{c:?} cannot be in a file name on Windows"));
        }
        if part.ends_with('.') || part.ends_with(' ') {
            return Err(format!(
                "{part:?} ends with a dot or a space, which Windows drops"
            ));
        }
        let stem = part
            .split('.')
            .next()
            .unwrap_or(part)
            .trim_end()
            .to_uppercase();
        let device = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
            || (stem.len() == 4
                && (stem.starts_with("COM") || stem.starts_with("LPT"))
                && stem.as_bytes()[3].is_ascii_digit());
        if device {
            return Err(format!("{part:?} is a device name on Windows"));
        }
    }
    Ok(())
}

/// Refuses two paths that are one file where names ignore letter case or
/// Unicode normalisation (Windows, macOS).
fn check_twins<'a>(paths: impl Iterator<Item = &'a String>) -> Result<(), String> {
    use unicode_normalization::UnicodeNormalization;
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for path in paths {
        let folded: String = path.nfc().collect::<String>().to_lowercase();
        if let Some(other) = seen.insert(folded, path) {
            return Err(format!(
                "{other:?} and {path:?} differ only in letter case or Unicode normalisation: \
                 they would be one file on Windows and macOS; rename one"
            ));
        }
    }
    Ok(())
}

fn reserved_message(path: &str, name: &str) -> String {
    format!(
        "{path:?}: the name {name:?} is leapfrog's own ({}, in any letter case); \
         remove it from the release",
        crate::layout::reserved_names().join(", ")
    )
}

/// Builds the file list of the tree at `dir` (skipping any [`FILE_LIST`] in it).
pub fn list_tree(dir: impl AsRef<Path>, program: &str, version: &Version) -> Result<FileList> {
    let dir = dir.as_ref();
    let mut items = BTreeMap::new();
    walk_tree(dir, dir, &mut items)?;
    let list = FileList {
        program: program.to_owned(),
        version: version.clone(),
        items,
    };
    // Validate links the same way unpacking will, so a publish fails early.
    let text = list.render();
    FileList::parse(&text, dir).map_err(|e| Error::Publish(format!("{dir:?}: {e}")))?;
    Ok(list)
}

fn walk_tree(root: &Path, dir: &Path, items: &mut BTreeMap<String, Item>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(io_err("listing", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("listing", dir))?;
        let path = entry.path();
        let rel = path.strip_prefix(root).expect("walk stays below its root");
        let rel = rel
            .components()
            .map(|c| match c {
                Component::Normal(s) => s.to_str().map(str::to_owned),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::Publish(format!("{path:?}: file names must be UTF-8")))?
            .join("/");
        if rel == FILE_LIST {
            continue;
        }
        if let Some(name) = crate::layout::reserved_component(&rel) {
            return Err(Error::Publish(reserved_message(
                &path.to_string_lossy(),
                name,
            )));
        }
        check_relative(&rel).map_err(|r| Error::Publish(format!("{path:?}: {r}")))?;
        let meta = fs::symlink_metadata(&path).map_err(io_err("reading", &path))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err("reading link", &path))?;
            let target = target
                .to_str()
                .ok_or_else(|| Error::Publish(format!("{path:?}: link target must be UTF-8")))?;
            items.insert(
                rel,
                Item::Link {
                    target: target.replace('\\', "/"),
                },
            );
        } else if ft.is_dir() {
            items.insert(rel, Item::Dir);
            walk_tree(root, &path, items)?;
        } else if ft.is_file() {
            let (sha256, size) = crate::verify::sha256_file(&path)?;
            items.insert(
                rel,
                Item::File {
                    sha256,
                    size,
                    executable: os::is_executable(&meta),
                },
            );
        } else {
            return Err(Error::Publish(format!(
                "{path:?} is neither a file, a directory nor a symlink; remove it from the release"
            )));
        }
    }
    Ok(())
}

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
                "more than {} KiB of padding follow the end of the tar stream",
                MAX_TRAILING_BYTES / 1024
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

/// The path of `rel` (a `/`-separated list path) below `root`.
pub fn join(root: &Path, rel: &str) -> PathBuf {
    rel.split('/').fold(root.to_owned(), |p, part| p.join(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[(&str, Item)]) -> FileList {
        FileList {
            program: "p".into(),
            version: Version::new(1, 0, 0),
            items: items
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    fn link(t: &str) -> Item {
        Item::Link { target: t.into() }
    }

    #[test]
    fn links_inside_the_tree_are_allowed() {
        let l = list(&[
            ("d", Item::Dir),
            ("d/a", link("../b")),
            ("b", link("d")),
            ("c", link("./d/../b")),
        ]);
        assert!(FileList::parse(&l.render(), Path::new("t")).is_ok());
    }

    #[test]
    fn links_escaping_the_tree_are_refused() {
        for items in [
            vec![("a", link("/etc/passwd"))],
            vec![("a", link(".."))],
            vec![("d", Item::Dir), ("d/a", link("../../x"))],
            // lexically inside, really outside: d/l is the root, so d/l/.. is above it
            vec![("d", Item::Dir), ("d/l", link("..")), ("e", link("d/l/.."))],
            vec![("a", link("a"))],
        ] {
            let l = list(&items);
            assert!(
                FileList::parse(&l.render(), Path::new("t")).is_err(),
                "{items:?}"
            );
        }
    }

    #[test]
    fn entries_beneath_a_link_are_refused() {
        let l = list(&[("d", link(".")), ("d/x", Item::Dir)]);
        let err = FileList::parse(&l.render(), Path::new("t"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("beneath the symlink"), "{err}");
    }
}
