//! Unpacking a release archive ([`super::archive`]): safely, and without
//! rewriting what the installed release has already.
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
//!
//! Two threads share the work: this one inflates the archive and checks each
//! entry; a writer thread makes every change to the disk (folders, files,
//! hashes, modes, links), in the archive's order, so inflating and writing
//! overlap and the fault tests' points keep their numbers.
//!
//! A file that the installed release has already, byte for byte (the same
//! sha256, size and mode in its file list, under any path: a renamed file
//! counts), is not written: the writer hard-links it from the backup copy of
//! the install dir (or copies it, where links are impossible), then hashes
//! what it linked and compares it with the new release's list. One that
//! does not match (changed since it was installed) is removed and written
//! from the archive in a second pass over it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

use flate2::bufread::GzDecoder;

use super::file_list::{check_relative, FileList, Item, FILE_LIST, MAX_LIST_BYTES};
use super::hash::HashingWriter;
use crate::error::{io_err, Error, Result};
use crate::os;

/// The most bytes that may follow the end of the tar stream (zero padding
/// to the tar record size; tar pads to 10 KiB, some tools to more).
const MAX_TRAILING_BYTES: u64 = 1024 * 1024;
/// The data of one file goes to the writer in pieces of this size.
const CHUNK: usize = 256 * 1024;
/// Pieces on their way to the writer at most (bounds the memory used).
const IN_FLIGHT: usize = 16;

/// The installed release, whose unchanged files unpacking takes instead
/// of writing them again: the backup copy of the install dir, and the
/// file list it holds.
pub(crate) struct Earlier<'a> {
    /// The backup copy of the install dir.
    pub dir: &'a Path,
    /// Its file list.
    pub list: &'a FileList,
}

/// How to unpack.
#[derive(Default)]
pub(crate) struct Options<'a> {
    /// The installed release to take unchanged files from.
    pub earlier: Option<Earlier<'a>>,
    /// Flush what is written (each file, then each folder) before
    /// returning, so that a journal written next can vouch for it.
    pub durable: bool,
}

/// What [`unpack_with`] did.
pub(crate) struct Unpacked {
    /// The release's file list.
    pub list: FileList,
    /// Files written from the archive.
    pub written: usize,
    /// Files taken from the installed release.
    pub linked: usize,
}

/// Unpacks the release archive at `archive` into `dest` (which must not exist
/// yet), checking every entry against the archive's file list, and returns
/// the list. On error `dest` may hold part of the release; the caller removes it.
pub fn unpack(archive: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<FileList> {
    unpack_with(archive.as_ref(), dest.as_ref(), Options::default()).map(|u| u.list)
}

/// [`unpack`], taking unchanged files from an earlier release and flushing
/// as `options` say.
pub(crate) fn unpack_with(archive: &Path, dest: &Path, options: Options<'_>) -> Result<Unpacked> {
    crate::failpoint::at("unpack mkdir", dest)?;
    fs::create_dir(dest).map_err(io_err("creating", dest))?;
    let mut gz = open(archive)?;
    let mut tar = tar::Archive::new(&mut gz);
    let mut entries = tar.entries().map_err(read_err(archive))?;
    let (list, text) = read_list(&mut entries, archive)?;
    let plan = Plan::new(&list, options.earlier.as_ref());
    // The list vouches for every byte that will be written: refuse a
    // release the disk cannot hold before writing any of it.
    os::need_space(dest, plan.to_write)?;

    let (give_back, spare) = channel();
    let earlier_root = options
        .earlier
        .as_ref()
        .and_then(|e| e.dir.canonicalize().ok());
    let writer = Writer::new(archive, dest, (options.durable, earlier_root), give_back);
    let (read, wrote) = std::thread::scope(|scope| {
        // Made here, so that a panic below drops the sender and ends the writer.
        let (jobs, incoming) = sync_channel(IN_FLIGHT);
        let thread = scope.spawn(move || {
            let mut writer = writer;
            writer.run(incoming).map(|()| writer)
        });
        let read = read_entries(&mut entries, archive, dest, &list, &plan, (&jobs, &spare));
        drop(jobs);
        let wrote = thread.join().unwrap_or_else(|_| {
            Err(Error::BadArchive {
                archive: archive.to_owned(),
                reason: "unpacking it stopped unexpectedly (the writer thread panicked)".into(),
            })
        });
        (read, wrote)
    });
    // The second pass's buffers are not given back to anyone.
    drop(spare);
    // The writer's own error explains why the reading stopped, if it did.
    let mut writer = wrote?;
    let links = read?;
    // The tar reader is done; what follows its end is read from the decoder.
    check_end(&mut gz, archive)?;
    let rewrite = std::mem::take(&mut writer.rewrite);
    if !rewrite.is_empty() {
        log::info!(
            "{} file(s) of the installed release changed since it was installed; \
             writing them from the archive",
            rewrite.len()
        );
        rewrite_from(archive, dest, &list, &rewrite, &mut writer)?;
    }
    for (name, target) in links {
        let at = dest.join(&name);
        writer.folder_of(&at)?;
        crate::failpoint::at("unpack symlink", &at)?;
        os::symlink(Path::new(&target), &at)?;
    }
    let list_path = dest.join(FILE_LIST);
    crate::failpoint::at("unpack list", &list_path)?;
    let mut file = File::create(&list_path).map_err(io_err("creating", &list_path))?;
    file.write_all(text.as_bytes())
        .and_then(|()| match options.durable {
            true => file.sync_all(),
            false => Ok(()),
        })
        .map_err(io_err("writing", &list_path))?;
    writer.flush_folders(dest)?;
    Ok(Unpacked {
        list,
        written: writer.written,
        linked: writer.linked,
    })
}

type Decoder = GzDecoder<BufReader<File>>;
type Entries<'a, 'b> = tar::Entries<'a, &'b mut Decoder>;

fn open(archive: &Path) -> Result<Decoder> {
    let file = File::open(archive).map_err(io_err("opening", archive))?;
    Ok(GzDecoder::new(BufReader::with_capacity(256 * 1024, file)))
}

fn read_err(archive: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |e| Error::BadArchive {
        archive: archive.to_owned(),
        reason: format!("cannot be read ({e}); download it again"),
    }
}

fn unsafe_entry(archive: &Path, entry: &str, reason: &str) -> Error {
    Error::UnsafeArchive {
        archive: archive.to_owned(),
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    }
}

fn bad(archive: &Path, reason: String) -> Error {
    Error::BadArchive {
        archive: archive.to_owned(),
        reason,
    }
}

/// The file list, the archive's first entry, which bounds everything after it.
fn read_list(entries: &mut Entries<'_, '_>, archive: &Path) -> Result<(FileList, String)> {
    let mut first = entries
        .next()
        .ok_or_else(|| bad(archive, "it is empty".into()))?
        .map_err(read_err(archive))?;
    let first_path =
        entry_path(&first).map_err(|e| unsafe_entry(archive, &e, "path is not UTF-8"))?;
    if first_path != FILE_LIST || first.header().entry_type() != tar::EntryType::Regular {
        return Err(bad(
            archive,
            format!("its first entry is {first_path:?}, not the file list {FILE_LIST}"),
        ));
    }
    if first.size() > MAX_LIST_BYTES {
        return Err(bad(
            archive,
            format!("its file list is larger than {MAX_LIST_BYTES} bytes"),
        ));
    }
    let mut text = String::new();
    (&mut first)
        .take(MAX_LIST_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| bad(archive, format!("its file list is unreadable: {e}")))?;
    let list = FileList::parse(&text, archive)?;
    Ok((list, text))
}

/// Which files of the new release the earlier one has, and where.
struct Plan {
    /// New path -> the earlier release's file with the same content and mode.
    reuse: HashMap<String, PathBuf>,
    /// The bytes to write (files not found in the earlier release).
    to_write: u64,
}

impl Plan {
    fn new(list: &FileList, earlier: Option<&Earlier<'_>>) -> Plan {
        let mut by_content = HashMap::new();
        for (path, item) in earlier.iter().flat_map(|e| &e.list.items) {
            if let Item::File { .. } = item {
                by_content.entry(item).or_insert(path);
            }
        }
        let mut plan = Plan {
            reuse: HashMap::new(),
            to_write: 0,
        };
        for (path, item) in &list.items {
            let Item::File { size, .. } = item else {
                continue;
            };
            let same_path = earlier
                .filter(|e| e.list.items.get(path) == Some(item))
                .map(|_| path);
            match (earlier, same_path.or_else(|| by_content.get(item).copied())) {
                (Some(earlier), Some(from)) if *size > 0 => {
                    plan.reuse
                        .insert(path.clone(), super::file_list::join(earlier.dir, from));
                }
                _ => plan.to_write += size,
            }
        }
        plan
    }
}

/// One change for the writer to make.
enum Job {
    /// Make this folder.
    Dir(PathBuf),
    /// Create this file; its data follows as [`Job::Data`], then [`Job::End`].
    File(Expected),
    Data(Vec<u8>),
    End,
    /// Take this file from the earlier release (`from`), if it holds the
    /// expected content.
    Reuse(Expected, PathBuf),
}

/// A file to write or take, as the file list describes it.
struct Expected {
    name: String,
    target: PathBuf,
    sha256: String,
    size: u64,
    executable: bool,
}

/// Checks the entries after the file list and hands the writer its jobs.
/// Returns the symlinks to make last. Stops early (with `Ok`) when the
/// writer stopped: its error is the one to report.
fn read_entries(
    entries: &mut Entries<'_, '_>,
    archive: &Path,
    dest: &Path,
    list: &FileList,
    plan: &Plan,
    (jobs, spare): (&SyncSender<Job>, &Receiver<Vec<u8>>),
) -> Result<Vec<(String, String)>> {
    let read_err = read_err(archive);
    let unsafe_entry = |entry: &str, reason: &str| unsafe_entry(archive, entry, reason);
    let mut seen = BTreeSet::new();
    let mut links = Vec::new();
    for entry in entries.by_ref() {
        let mut entry = entry.map_err(&read_err)?;
        let name = entry_path(&entry).map_err(|e| unsafe_entry(&e, "path is not UTF-8"))?;
        let name = name.trim_end_matches('/').to_owned();
        check_relative(&name).map_err(|r| unsafe_entry(&name, r))?;
        if !seen.insert(name.clone()) {
            return Err(unsafe_entry(&name, "it appears twice in the archive"));
        }
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().map_err(&read_err)?;
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
        let sent = match (kind, listed) {
            (tar::EntryType::Directory, Item::Dir) => jobs.send(Job::Dir(target)).is_ok(),
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
                let expected = Expected {
                    name: name.clone(),
                    target,
                    sha256: sha256.clone(),
                    size: *size,
                    executable: *executable,
                };
                match plan.reuse.get(&name) {
                    // Its data is skipped (inflated, not read).
                    Some(from) => jobs.send(Job::Reuse(expected, from.clone())).is_ok(),
                    None => send_file(&mut entry, expected, archive, (jobs, spare))?,
                }
            }
            (
                tar::EntryType::Symlink,
                Item::Link {
                    target: listed_target,
                },
            ) => {
                let stored = entry
                    .link_name()
                    .map_err(&read_err)?
                    .and_then(|p| p.to_str().map(str::to_owned))
                    .ok_or_else(|| unsafe_entry(&name, "symlink without a UTF-8 target"))?;
                if &stored != listed_target {
                    return Err(unsafe_entry(
                        &name,
                        "its target differs from the file list's",
                    ));
                }
                links.push((name, stored));
                true
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
        };
        if !sent {
            // The writer stopped on an error, which the caller reports.
            return Ok(links);
        }
    }
    if let Some(missing) = list.items.keys().find(|k| !seen.contains(*k)) {
        return Err(bad(
            archive,
            format!("{missing:?} is in the file list but not in the archive"),
        ));
    }
    Ok(links)
}

/// Sends one file's data to the writer in pieces; false when the writer
/// stopped.
fn send_file<R: Read>(
    entry: &mut R,
    expected: Expected,
    archive: &Path,
    (jobs, spare): (&SyncSender<Job>, &Receiver<Vec<u8>>),
) -> Result<bool> {
    let (size, name) = (expected.size, expected.name.clone());
    if jobs.send(Job::File(expected)).is_err() {
        return Ok(false);
    }
    let mut data = entry.take(size);
    let mut copied = 0u64;
    loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        while filled < CHUNK {
            match data.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(archive)(e)),
            }
        }
        if filled == 0 {
            break;
        }
        buf.truncate(filled);
        copied += filled as u64;
        if jobs.send(Job::Data(buf)).is_err() {
            return Ok(false);
        }
    }
    if copied != size {
        return Err(bad(
            archive,
            format!("{name:?} is cut short; download it again"),
        ));
    }
    Ok(jobs.send(Job::End).is_ok())
}

/// Only zero padding may follow the end of the tar stream, and only so
/// much of it; nothing may follow the gzip stream.
fn check_end(gz: &mut Decoder, archive: &Path) -> Result<()> {
    let mut rest = [0u8; 8192];
    let mut trailing = 0u64;
    loop {
        let n = gz.read(&mut rest).map_err(read_err(archive))?;
        if n == 0 {
            break;
        }
        trailing += n as u64;
        if rest[..n].iter().any(|&b| b != 0) {
            return Err(bad(
                archive,
                "data follows the end of the tar stream".into(),
            ));
        }
        if trailing > MAX_TRAILING_BYTES {
            return Err(bad(
                archive,
                format!(
                    "more than {} of padding follow the end of the tar stream",
                    crate::error::human_size(MAX_TRAILING_BYTES)
                ),
            ));
        }
    }
    if !gz
        .get_mut()
        .fill_buf()
        .map_err(read_err(archive))?
        .is_empty()
    {
        return Err(bad(
            archive,
            "data follows the end of the gzip stream".into(),
        ));
    }
    Ok(())
}

/// Writes the named files (checked once already) from the archive.
fn rewrite_from(
    archive: &Path,
    dest: &Path,
    list: &FileList,
    names: &[String],
    writer: &mut Writer<'_>,
) -> Result<()> {
    let mut wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut gz = open(archive)?;
    let mut tar = tar::Archive::new(&mut gz);
    for entry in tar.entries().map_err(read_err(archive))? {
        let mut entry = entry.map_err(read_err(archive))?;
        let name = entry_path(&entry).unwrap_or_default();
        let name = name.trim_end_matches('/');
        if !wanted.remove(name) {
            continue;
        }
        let Some(Item::File {
            sha256,
            size,
            executable,
        }) = list.items.get(name)
        else {
            continue;
        };
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) || entry.size() != *size
        {
            return Err(unsafe_entry(
                archive,
                name,
                "it changed since it was first read; download the archive again",
            ));
        }
        writer.handle(Job::File(Expected {
            name: name.to_owned(),
            target: dest.join(name),
            sha256: sha256.clone(),
            size: *size,
            executable: *executable,
        }))?;
        let mut buf = vec![0u8; CHUNK];
        let mut data = (&mut entry).take(*size);
        loop {
            let n = data.read(&mut buf).map_err(read_err(archive))?;
            if n == 0 {
                break;
            }
            writer.handle(Job::Data(buf[..n].to_vec()))?;
        }
        writer.handle(Job::End)?;
        if wanted.is_empty() {
            return Ok(());
        }
    }
    Err(bad(
        archive,
        "it changed since it was first read; download it again".into(),
    ))
}

/// The one thread that changes the disk while unpacking.
struct Writer<'a> {
    archive: &'a Path,
    dest: &'a Path,
    durable: bool,
    /// The real path of the earlier release's root (the backup copy).
    earlier_root: Option<PathBuf>,
    give_back: Sender<Vec<u8>>,
    /// The file being written.
    open: Option<(
        Expected,
        HashingWriter<crate::failpoint::Writer<BufWriter<File>>>,
    )>,
    /// Folders made or found, to flush at the end and to make each once.
    folders: BTreeSet<PathBuf>,
    /// Earlier files found to differ from the list: written in a second pass.
    rewrite: Vec<String>,
    /// Whether each folder of the earlier release is a real folder inside it.
    inside: HashMap<PathBuf, bool>,
    written: usize,
    linked: usize,
}

impl<'a> Writer<'a> {
    fn new(
        archive: &'a Path,
        dest: &'a Path,
        (durable, earlier_root): (bool, Option<PathBuf>),
        give_back: Sender<Vec<u8>>,
    ) -> Writer<'a> {
        Writer {
            archive,
            dest,
            durable,
            earlier_root,
            give_back,
            open: None,
            folders: BTreeSet::new(),
            rewrite: Vec::new(),
            inside: HashMap::new(),
            written: 0,
            linked: 0,
        }
    }

    fn run(&mut self, incoming: Receiver<Job>) -> Result<()> {
        for job in incoming {
            self.handle(job)?;
        }
        Ok(())
    }

    fn handle(&mut self, job: Job) -> Result<()> {
        match job {
            Job::Dir(dir) => {
                crate::failpoint::at("unpack mkdir", &dir)?;
                fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
                self.made(&dir);
                Ok(())
            }
            Job::File(expected) => {
                self.folder_of(&expected.target)?;
                crate::failpoint::at("unpack create", &expected.target)?;
                let out =
                    File::create(&expected.target).map_err(io_err("creating", &expected.target))?;
                let writer = HashingWriter::new(crate::failpoint::Writer::new(
                    BufWriter::with_capacity(128 * 1024, out),
                    "unpack write",
                ));
                self.open = Some((expected, writer));
                Ok(())
            }
            Job::Data(buf) => {
                if let Some((expected, writer)) = &mut self.open {
                    writer
                        .write_all(&buf)
                        .map_err(io_err("writing", &expected.target))?;
                }
                let _ = self.give_back.send(buf);
                Ok(())
            }
            Job::End => match self.open.take() {
                Some((expected, writer)) => self.close(expected, writer),
                None => Ok(()),
            },
            Job::Reuse(expected, from) => self.reuse(expected, &from),
        }
    }

    fn close(
        &mut self,
        expected: Expected,
        writer: HashingWriter<crate::failpoint::Writer<BufWriter<File>>>,
    ) -> Result<()> {
        let target = &expected.target;
        let (buf, computed, count) = writer.finish();
        let file = buf
            .into_inner()
            .into_inner()
            .map_err(|e| io_err("writing", target)(e.into_error()))?;
        if count != expected.size {
            return Err(bad(
                self.archive,
                format!("{:?} is cut short; download it again", expected.name),
            ));
        }
        if computed != expected.sha256 {
            return Err(unsafe_entry(
                self.archive,
                &expected.name,
                &format!(
                    "its sha256 {computed} differs from the file list's {}",
                    expected.sha256
                ),
            ));
        }
        crate::failpoint::at("unpack chmod", target)?;
        os::set_executable(target, expected.executable)?;
        if self.durable {
            crate::failpoint::at("unpack sync", target)?;
            file.sync_all().map_err(io_err("flushing", target))?;
        }
        self.written += 1;
        Ok(())
    }

    /// Takes `expected` from the earlier release's `from`: a hard link (a
    /// copy where links are impossible) that must hold the listed content
    /// and mode; otherwise it is removed and left for the second pass.
    fn reuse(&mut self, expected: Expected, from: &Path) -> Result<()> {
        self.folder_of(&expected.target)?;
        let target = &expected.target;
        crate::failpoint::at("unpack link", target)?;
        let mut copied = false;
        let taken = self.inside_earlier(from)
            && fs::symlink_metadata(from).is_ok_and(|m| m.is_file())
            && match fs::hard_link(from, target) {
                Ok(()) => true,
                Err(_) => {
                    copied = true;
                    fs::copy(from, target).is_ok()
                }
            };
        let verified = taken
            && fs::symlink_metadata(target).is_ok_and(|m| {
                m.is_file() && m.len() == expected.size && os::mode_is(&m, expected.executable)
            })
            && matches!(
                super::hash::sha256_file(target),
                Ok((sha256, size)) if sha256 == expected.sha256 && size == expected.size
            );
        if verified {
            if copied && self.durable {
                // A link's data is the installed file's, on disk already.
                crate::failpoint::at("unpack sync", target)?;
                File::open(target)
                    .and_then(|f| f.sync_all())
                    .map_err(io_err("flushing", target))?;
            }
            self.linked += 1;
            return Ok(());
        }
        if taken {
            fs::remove_file(target).map_err(io_err("removing", target))?;
        }
        log::info!(
            "{} of the installed release does not hold {}'s listed content any more",
            from.display(),
            expected.name
        );
        self.rewrite.push(expected.name);
        Ok(())
    }

    /// Whether `from`'s folder is a real folder inside the earlier release
    /// (no symlink on the way leads out of it), looked at once per folder.
    fn inside_earlier(&mut self, from: &Path) -> bool {
        let Some(parent) = from.parent() else {
            return false;
        };
        if let Some(known) = self.inside.get(parent) {
            return *known;
        }
        let inside = match (parent.canonicalize(), &self.earlier_root) {
            (Ok(real), Some(root)) => real.starts_with(root),
            _ => false,
        };
        self.inside.insert(parent.to_owned(), inside);
        inside
    }

    /// Makes `path`'s folder, once.
    fn folder_of(&mut self, path: &Path) -> Result<()> {
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        if !self.folders.contains(parent) {
            fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
            self.made(parent);
        }
        Ok(())
    }

    /// Records `dir` and every folder above it up to the destination (a
    /// list need not name them all), so that each is flushed.
    fn made(&mut self, dir: &Path) {
        for folder in dir.ancestors() {
            if !folder.starts_with(self.dest) || !self.folders.insert(folder.to_owned()) {
                break;
            }
        }
    }

    /// Flushes every folder made or written in (deepest first), then `dest`'s
    /// own entries, when unpacking is to be durable.
    fn flush_folders(&self, dest: &Path) -> Result<()> {
        if !self.durable {
            return Ok(());
        }
        let dest = dest.to_owned();
        let others = self.folders.iter().rev().filter(|d| **d != dest);
        for dir in others.chain([&dest]) {
            crate::failpoint::at("unpack sync dir", dir)?;
            os::sync_dir(dir)?;
        }
        // And `dest`'s own name, on file systems that do not keep metadata
        // in order.
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            os::sync_dir(parent)?;
        }
        Ok(())
    }
}

fn entry_path<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, String> {
    let bytes = entry.path_bytes();
    std::str::from_utf8(&bytes)
        .map(str::to_owned)
        .map_err(|_| String::from_utf8_lossy(&bytes).into_owned())
}
