//! The power-cut test's file system: an in-memory FUSE file system that
//! keeps what processes see and what would survive a power cut (see the
//! parent module).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, WriteFlags,
};

type Data = Arc<Vec<u8>>;

const SYNCFS_PROBE: &str = ".leapfrog-syncfs";
const TTL: Duration = Duration::from_millis(0);

enum Kind {
    File(Data),
    Dir(BTreeMap<OsString, u64>),
    Link(PathBuf),
}

struct Node {
    kind: Kind,
    mode: u32,
    nlink: u32,
}

/// What survives a cut.
#[derive(Clone, Default)]
pub(super) struct Durable {
    files: HashMap<u64, (Data, u32)>,
    dirs: HashMap<u64, BTreeMap<OsString, u64>>,
}

#[derive(Default)]
pub(super) struct State {
    nodes: HashMap<u64, Node>,
    next: u64,
    durable: Durable,
    /// Flushes so far, and the one to cut at.
    pub(super) flushes: usize,
    pub(super) cut_at: Option<usize>,
    /// The durable state at the cut.
    pub(super) cut: Option<Durable>,
}

#[derive(Clone)]
pub(super) struct PowerFs(Arc<Mutex<State>>);

impl State {
    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.nodes.get(&ino)?;
        let (kind, size) = match &node.kind {
            Kind::File(d) => (FileType::RegularFile, d.len() as u64),
            Kind::Dir(_) => (FileType::Directory, 0),
            Kind::Link(t) => (FileType::Symlink, t.as_os_str().len() as u64),
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: SystemTime::UNIX_EPOCH,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm: (node.mode & 0o7777) as u16,
            nlink: node.nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn entries(&mut self, dir: u64) -> Option<&mut BTreeMap<OsString, u64>> {
        match &mut self.nodes.get_mut(&dir)?.kind {
            Kind::Dir(e) => Some(e),
            _ => None,
        }
    }

    fn add(&mut self, kind: Kind, mode: u32) -> u64 {
        self.next += 1;
        let ino = self.next;
        let nlink = if matches!(kind, Kind::Dir(_)) { 2 } else { 1 };
        self.nodes.insert(ino, Node { kind, mode, nlink });
        ino
    }

    /// A flush is about to happen: the cut, when it is this one.
    fn flush(&mut self) -> bool {
        if self.cut.is_some() {
            return false;
        }
        self.flushes += 1;
        if self.cut_at == Some(self.flushes) {
            self.cut = Some(self.durable.clone());
            return false;
        }
        true
    }

    fn make_file_durable(&mut self, ino: u64) {
        if let Some(Node {
            kind: Kind::File(d),
            mode,
            ..
        }) = self.nodes.get(&ino)
        {
            self.durable.files.insert(ino, (d.clone(), *mode));
        }
    }

    fn make_all_durable(&mut self) {
        let inos: Vec<u64> = self.nodes.keys().copied().collect();
        for ino in inos {
            match &self.nodes[&ino].kind {
                Kind::File(_) => self.make_file_durable(ino),
                Kind::Dir(e) => {
                    let e = e.clone();
                    self.durable.dirs.insert(ino, e);
                }
                Kind::Link(_) => {}
            }
        }
    }

    fn load(&mut self, dir: &Path) -> u64 {
        let mut entries = BTreeMap::new();
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let meta = fs::symlink_metadata(entry.path()).unwrap();
            let ino = if meta.is_dir() {
                self.load(&entry.path())
            } else if meta.file_type().is_symlink() {
                self.add(Kind::Link(fs::read_link(entry.path()).unwrap()), 0o777)
            } else {
                let data = Arc::new(fs::read(entry.path()).unwrap());
                self.add(Kind::File(data), meta.permissions().mode() & 0o7777)
            };
            entries.insert(entry.file_name(), ino);
        }
        let mode = fs::metadata(dir).unwrap().permissions().mode() & 0o7777;
        self.add(Kind::Dir(entries), mode)
    }
}

impl PowerFs {
    /// A file system holding a copy of `tree`, all of it durable.
    pub(super) fn new(tree: &Path) -> PowerFs {
        let mut state = State {
            next: 1,
            ..State::default()
        };
        let root = state.load(tree);
        // The loaded root becomes inode 1.
        let node = state.nodes.remove(&root).unwrap();
        state.nodes.insert(1, node);
        state.make_all_durable();
        PowerFs(Arc::new(Mutex::new(state)))
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    /// Writes what survived the cut (or, with no cut, everything durable)
    /// into `to`.
    pub(super) fn write_durable(&self, to: &Path) {
        let state = self.state();
        let durable = state.cut.clone().unwrap_or_else(|| state.durable.clone());
        write_dir(&state, &durable, 1, to);
    }
}

fn write_dir(state: &State, durable: &Durable, dir: u64, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let Some(entries) = durable.dirs.get(&dir) else {
        return;
    };
    for (name, ino) in entries {
        let at = to.join(name);
        match &state.nodes[ino].kind {
            Kind::Dir(_) => write_dir(state, durable, *ino, &at),
            Kind::Link(target) => std::os::unix::fs::symlink(target, &at).unwrap(),
            Kind::File(_) => {
                // Data never flushed is lost: an empty file.
                let (data, mode) = durable
                    .files
                    .get(ino)
                    .map(|(d, m)| (d.as_slice(), *m))
                    .unwrap_or((&[], state.nodes[ino].mode));
                fs::write(&at, data).unwrap();
                fs::set_permissions(&at, fs::Permissions::from_mode(mode)).unwrap();
            }
        }
    }
}

impl Filesystem for PowerFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut s = self.state();
        if name == SYNCFS_PROBE {
            if s.flush() {
                s.make_all_durable();
            }
            return reply.error(Errno::ENOENT);
        }
        let found = s.entries(parent.0).and_then(|e| e.get(name).copied());
        match found.and_then(|ino| s.attr(ino)) {
            Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.state().attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.state();
        let Some(node) = s.nodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(mode) = mode {
            node.mode = mode & 0o7777;
        }
        if let (Some(size), Kind::File(data)) = (size, &mut node.kind) {
            Arc::make_mut(data).resize(size as usize, 0);
        }
        let attr = s.attr(ino.0).unwrap();
        reply.attr(&TTL, &attr)
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.state().nodes.get(&ino.0).map(|n| &n.kind) {
            Some(Kind::Link(t)) => reply.data(t.as_os_str().as_encoded_bytes()),
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.make(parent, name, Kind::Dir(BTreeMap::new()), mode, reply)
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.state();
        let Some(ino) = s.entries(parent.0).and_then(|e| e.remove(name)) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(n) = s.nodes.get_mut(&ino) {
            n.nlink = n.nlink.saturating_sub(1);
        }
        reply.ok()
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.state();
        let Some(ino) = s.entries(parent.0).and_then(|e| e.get(name).copied()) else {
            return reply.error(Errno::ENOENT);
        };
        match s.entries(ino) {
            Some(e) if !e.is_empty() => return reply.error(Errno::ENOTEMPTY),
            None => return reply.error(Errno::ENOTDIR),
            _ => {}
        }
        s.entries(parent.0).unwrap().remove(name);
        reply.ok()
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.make(
            parent,
            link_name,
            Kind::Link(target.to_owned()),
            0o777,
            reply,
        )
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let Some(ino) = s.entries(parent.0).and_then(|e| e.get(name).copied()) else {
            return reply.error(Errno::ENOENT);
        };
        let Some(target) = s.entries(newparent.0) else {
            return reply.error(Errno::ENOENT);
        };
        if flags.contains(RenameFlags::RENAME_NOREPLACE) && target.contains_key(newname) {
            return reply.error(Errno::EEXIST);
        }
        let replaced = target.insert(newname.to_owned(), ino);
        if replaced != Some(ino) {
            s.entries(parent.0).unwrap().remove(name);
            if let Some(old) = replaced.and_then(|o| s.nodes.get_mut(&o)) {
                old.nlink = old.nlink.saturating_sub(1);
            }
        }
        reply.ok()
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut s = self.state();
        let Some(entries) = s.entries(newparent.0) else {
            return reply.error(Errno::ENOENT);
        };
        if entries.contains_key(newname) {
            return reply.error(Errno::EEXIST);
        }
        entries.insert(newname.to_owned(), ino.0);
        if let Some(n) = s.nodes.get_mut(&ino.0) {
            n.nlink += 1;
        }
        let attr = s.attr(ino.0).unwrap();
        reply.entry(&TTL, &attr, Generation(0))
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_TRUNC != 0 {
            if let Some(Node {
                kind: Kind::File(d),
                ..
            }) = self.state().nodes.get_mut(&ino.0)
            {
                *d = Arc::default();
            }
        }
        reply.opened(FileHandle(0), FopenFlags::empty())
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.state().nodes.get(&ino.0).map(|n| &n.kind) {
            Some(Kind::File(d)) => {
                let start = (offset as usize).min(d.len());
                let end = (start + size as usize).min(d.len());
                reply.data(&d[start..end])
            }
            _ => reply.error(Errno::EISDIR),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.state();
        match s.nodes.get_mut(&ino.0).map(|n| &mut n.kind) {
            Some(Kind::File(d)) => {
                let d = Arc::make_mut(d);
                let end = offset as usize + data.len();
                if d.len() < end {
                    d.resize(end, 0);
                }
                d[offset as usize..end].copy_from_slice(data);
                reply.written(data.len() as u32)
            }
            _ => reply.error(Errno::EISDIR),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        if !s.flush() {
            return reply.error(Errno::EIO);
        }
        s.make_file_durable(ino.0);
        reply.ok()
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut s = self.state();
        let Some(entries) = s.entries(ino.0).map(|e| e.clone()) else {
            return reply.error(Errno::ENOTDIR);
        };
        let mut all = vec![
            (ino.0, FileType::Directory, OsString::from(".")),
            (ino.0, FileType::Directory, OsString::from("..")),
        ];
        for (name, child) in entries {
            let kind = match s.nodes[&child].kind {
                Kind::File(_) => FileType::RegularFile,
                Kind::Dir(_) => FileType::Directory,
                Kind::Link(_) => FileType::Symlink,
            };
            all.push((child, kind, name));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok()
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        if !s.flush() {
            return reply.error(Errno::EIO);
        }
        if let Some(e) = s.entries(ino.0).map(|e| e.clone()) {
            s.durable.dirs.insert(ino.0, e);
        }
        reply.ok()
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 24, 1 << 24, 1 << 24, 1 << 20, 1 << 20, 4096, 255, 4096)
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok()
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.state();
        let Some(entries) = s.entries(parent.0) else {
            return reply.error(Errno::ENOENT);
        };
        if entries.contains_key(name) {
            return reply.error(Errno::EEXIST);
        }
        let ino = s.add(Kind::File(Arc::default()), mode & 0o7777);
        s.entries(parent.0).unwrap().insert(name.to_owned(), ino);
        let attr = s.attr(ino).unwrap();
        reply.created(
            &TTL,
            &attr,
            Generation(0),
            FileHandle(0),
            FopenFlags::empty(),
        )
    }
}

impl PowerFs {
    fn make(&self, parent: INodeNo, name: &OsStr, kind: Kind, mode: u32, reply: ReplyEntry) {
        let mut s = self.state();
        match s.entries(parent.0) {
            None => return reply.error(Errno::ENOENT),
            Some(e) if e.contains_key(name) => return reply.error(Errno::EEXIST),
            _ => {}
        }
        let ino = s.add(kind, mode & 0o7777);
        s.entries(parent.0).unwrap().insert(name.to_owned(), ino);
        let attr = s.attr(ino).unwrap();
        reply.entry(&TTL, &attr, Generation(0))
    }
}
