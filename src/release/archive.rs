//! Release archives: deterministic packing and safe unpacking.
//!
//! A release archive `<program>-<version>.tar.gz` holds the release tree and,
//! as its first entry, the file list ([`super::file_list`]).
//!
//! Packing is deterministic: entries sorted by path, mtime, owner and group
//! fixed, modes normalised to 0755/0644, a fixed gzip header. The same tree
//! gives the same bytes.
//!
//! Unpacking, which trusts nothing in the archive beyond its file list,
//! is [`super::unpack`].

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, FlushCompress, Status};
use semver::Version;

use super::file_list::{self, list_tree_unhashed, FileList, Item, FILE_LIST};
use super::hash::HashingReader;
use crate::error::{io_err, Error, Result};

/// The mtime written for every entry (1980-01-01, safe for every tool).
const FIXED_MTIME: u64 = 315_532_800;

/// Input bytes per block compressed on its own thread.
const BLOCK: usize = 1 << 20;
/// The deflate window: each block is compressed with the last 32 KiB of the
/// one before as its dictionary, so splitting costs almost no ratio.
const WINDOW: usize = 32 * 1024;
/// The gzip header: no name, mtime 0, OS "unknown" (255), as before.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// Packs the tree at `dir` as release `program` `version` into `out`
/// (deterministically), returning its file list.
///
/// One pass over the tree: each file is hashed as it is packed, and the
/// tar stream is compressed in 1 MiB blocks on every core (as pigz does),
/// each block with the one before as its dictionary. The file list, which
/// must come first but is complete only at the end, is stored uncompressed
/// in a place of known length at the front (its length does not depend on
/// the hashes), written last. Block bounds depend only on the bytes, so the
/// same tree gives the same archive on any machine.
pub fn pack(
    dir: impl AsRef<Path>,
    program: &str,
    version: &Version,
    out: impl AsRef<Path>,
) -> Result<FileList> {
    let (dir, out) = (dir.as_ref(), out.as_ref());
    let w = |e: io::Error| io_err("writing", out)(e);
    let mut list = list_tree_unhashed(dir, program, version)?;
    let list_len = list.render().len();
    let head_len = (GZIP_HEADER.len() + stored_len(list_chunk_len(list_len))) as u64;

    let mut file = File::create(out).map_err(io_err("creating", out))?;
    file.seek(SeekFrom::Start(head_len)).map_err(w)?;
    let (file, body_crc, body_len) = compress_body(file, |sink| {
        let mut tar = tar::Builder::new(sink);
        for (path, item) in list.items.iter_mut() {
            append_item(&mut tar, dir, path, item)?;
        }
        tar.into_inner().map_err(PackError::Io)?;
        Ok(())
    })
    .map_err(|e| match e {
        PackError::Io(e) => w(e),
        PackError::Other(e) => e,
    })?;

    let text = list.render();
    if text.len() != list_len {
        return Err(Error::Publish(format!(
            "{dir:?}: the file list changed length while the tree was packed"
        )));
    }
    let chunk = list_chunk(&text).map_err(w)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&chunk);
    crc.combine(&body_crc);
    let mut file = file;
    // The gzip trailer after the body, then the front: header, file list.
    let total = chunk.len() as u64 + body_len;
    file.write_all(&crc.finalize().to_le_bytes())
        .and_then(|()| file.write_all(&(total as u32).to_le_bytes()))
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
        .and_then(|()| file.write_all(&GZIP_HEADER))
        .and_then(|()| file.write_all(&stored(&chunk)))
        .and_then(|()| file.sync_all())
        .map_err(w)?;
    Ok(list)
}

/// Appends one item of the tree; a file is hashed as it is read, and its
/// sha256 written into the list.
fn append_item<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    path: &str,
    item: &mut Item,
) -> std::result::Result<(), PackError> {
    let io = PackError::Io;
    match item {
        Item::Dir => {
            append(tar, path, tar::EntryType::Directory, 0o755, 0, io::empty()).map_err(io)
        }
        Item::File {
            sha256,
            size,
            executable,
        } => {
            let src = file_list::join(dir, path);
            let f = File::open(&src).map_err(|e| PackError::Other(io_err("opening", &src)(e)))?;
            let mode = if *executable { 0o755 } else { 0o644 };
            let mut reader = HashingReader::new(f.take(*size));
            append(tar, path, tar::EntryType::Regular, mode, *size, &mut reader).map_err(io)?;
            let (computed, count) = reader.finish();
            if count != *size {
                return Err(PackError::Other(Error::Publish(format!(
                    "{src:?} changed while it was packed ({count} bytes, not {size}); pack again"
                ))));
            }
            *sha256 = computed;
            Ok(())
        }
        Item::Link { target } => {
            let mut header = header(tar::EntryType::Symlink, 0o777, 0);
            tar.append_link(&mut header, path, target.as_str())
                .map_err(io)
        }
    }
}

enum PackError {
    Io(io::Error),
    Other(Error),
}

/// The tar bytes of the file list entry: header, text, padding.
fn list_chunk(text: &str) -> io::Result<Vec<u8>> {
    let mut h = header(tar::EntryType::Regular, 0o644, text.len() as u64);
    h.set_path(FILE_LIST)?;
    h.set_cksum();
    let mut chunk = h.as_bytes().to_vec();
    chunk.extend_from_slice(text.as_bytes());
    chunk.resize(list_chunk_len(text.len()), 0);
    Ok(chunk)
}

fn list_chunk_len(text_len: usize) -> usize {
    512 + text_len.div_ceil(512) * 512
}

/// `data` as deflate stored blocks (none final), 64 KiB at most each.
fn stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored_len(data.len()));
    for piece in data.chunks(0xffff) {
        let len = piece.len() as u16;
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(piece);
    }
    out
}

fn stored_len(len: usize) -> usize {
    len + 5 * len.div_ceil(0xffff)
}

/// Runs `produce` with a writer whose bytes are deflated in blocks on
/// every core and written in order to `file` (at its position), the last
/// block final. Returns the file, the crc32 and the length of the input.
fn compress_body(
    file: File,
    produce: impl FnOnce(&mut BlockSink) -> std::result::Result<(), PackError>,
) -> std::result::Result<(File, crc32fast::Hasher, u64), PackError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    // At most this many blocks between the last one written and the next
    // one cut: the memory used stays a few MiB whatever the pace of each.
    let ahead = workers * 4;
    let (blocks, queue) = sync_channel::<Block>(workers * 2);
    // Owned by the workers: once the last one is gone, cutting stops.
    let queue = Arc::new(Mutex::new(queue));
    let (done, compressed) = sync_channel::<Compressed>(workers * 2);
    let (give_credit, credits) = sync_channel::<()>(ahead);
    for _ in 0..ahead {
        let _ = give_credit.send(());
    }
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done = done.clone();
            let queue = Arc::clone(&queue);
            scope.spawn(move || deflate_blocks(&queue, &done));
        }
        drop((done, queue));
        let writer = scope.spawn(move || write_in_order(file, compressed, give_credit));
        let mut sink = BlockSink {
            current: Vec::with_capacity(BLOCK),
            previous: None,
            index: 0,
            blocks: Some(blocks),
            credits,
        };
        let produced = produce(&mut sink).and_then(|()| sink.finish().map_err(PackError::Io));
        drop(sink);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the archive writer panicked")));
        // The writer's error (a full disk, say) is why the cutting stopped.
        match (produced, written) {
            (_, Err(e)) => Err(PackError::Io(e)),
            (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(done)) => Ok(done),
        }
    })
}

/// One block of input: its number, its bytes, the block before (for the
/// dictionary), and whether it ends the stream.
struct Block {
    index: u64,
    data: Arc<Vec<u8>>,
    previous: Option<Arc<Vec<u8>>>,
    last: bool,
}

/// One block deflated: its number, output, input crc32 and length.
struct Compressed {
    index: u64,
    data: io::Result<Vec<u8>>,
    crc: crc32fast::Hasher,
    len: u64,
}

/// The writer that cuts the tar stream into blocks for the workers.
struct BlockSink {
    current: Vec<u8>,
    previous: Option<Arc<Vec<u8>>>,
    index: u64,
    blocks: Option<SyncSender<Block>>,
    /// One per block written: cutting a block takes one.
    credits: Receiver<()>,
}

impl BlockSink {
    fn send(&mut self, last: bool) -> io::Result<()> {
        let data = Arc::new(std::mem::replace(
            &mut self.current,
            Vec::with_capacity(BLOCK),
        ));
        let block = Block {
            index: self.index,
            data: data.clone(),
            previous: self.previous.replace(data),
            last,
        };
        self.index += 1;
        self.credits
            .recv()
            .map_err(|_| io::Error::other("the archive writer stopped"))?;
        match &self.blocks {
            Some(blocks) => blocks
                .send(block)
                .map_err(|_| io::Error::other("the compressing threads stopped")),
            None => Err(io::Error::other("the archive is finished already")),
        }
    }

    /// Sends the last block, final.
    fn finish(&mut self) -> io::Result<()> {
        self.send(true)?;
        self.blocks = None;
        Ok(())
    }
}

impl Write for BlockSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A full block goes only once more bytes come: the last one must
        // be the final block of the stream.
        if self.current.len() == BLOCK && !buf.is_empty() {
            self.send(false)?;
        }
        let n = buf.len().min(BLOCK - self.current.len());
        self.current.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn deflate_blocks(queue: &Mutex<Receiver<Block>>, done: &SyncSender<Compressed>) {
    let mut deflate = Compress::new(Compression::default(), false);
    loop {
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(block) = next else {
            return;
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&block.data);
        let data = deflate_block(&mut deflate, &block);
        if done
            .send(Compressed {
                index: block.index,
                data,
                crc,
                len: block.data.len() as u64,
            })
            .is_err()
        {
            return;
        }
    }
}

fn deflate_block(deflate: &mut Compress, block: &Block) -> io::Result<Vec<u8>> {
    deflate.reset();
    if let Some(previous) = &block.previous {
        let from = previous.len().saturating_sub(WINDOW);
        deflate
            .set_dictionary(&previous[from..])
            .map_err(io::Error::other)?;
    }
    let flush = if block.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let input = &block.data[..];
    let mut out = Vec::with_capacity(input.len() / 2 + 4096);
    let start = deflate.total_in();
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = (deflate.total_in() - start) as usize;
        let status = deflate
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let consumed = (deflate.total_in() - start) as usize;
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => return Ok(out),
            _ if !block.last && consumed == input.len() && room_left => return Ok(out),
            _ => {}
        }
    }
}

/// Writes the deflated blocks in their order; returns the file, the crc32
/// and length of the whole input.
fn write_in_order(
    file: File,
    compressed: Receiver<Compressed>,
    give_credit: SyncSender<()>,
) -> io::Result<(File, crc32fast::Hasher, u64)> {
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut waiting = std::collections::BTreeMap::new();
    let (mut next, mut crc, mut len) = (0u64, crc32fast::Hasher::new(), 0u64);
    for block in compressed {
        waiting.insert(block.index, block);
        while let Some(block) = waiting.remove(&next) {
            out.write_all(&block.data?)?;
            len += block.len;
            crc.combine(&block.crc);
            next += 1;
            let _ = give_credit.try_send(());
        }
    }
    if !waiting.is_empty() {
        return Err(io::Error::other("a compressed block is missing"));
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    Ok((file, crc, len))
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
