//! Read-ahead: a pool of threads stats the next regular files of a directory and reads the
//! small changed ones whole, while the walker stores the current entry. A tree of many small
//! files is then not walked one system call at a time: the disk sees several requests at once,
//! which matters most with a cold cache.

use crossbeam_channel::{unbounded, Receiver, Sender};
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::thread::JoinHandle;

/// Files up to this size are read ahead whole (one chunk at the default chunker settings).
pub const SMALL_FILE: u64 = 512 * 1024;
/// How many files a directory may have in flight ahead of the walker (at most
/// `WINDOW_FILES × SMALL_FILE` bytes).
pub const WINDOW_FILES: usize = 64;

/// What the parent snapshot knows of a file: if it still matches, the file is not read.
#[derive(Clone, Copy)]
pub struct Hint {
    pub size: u64,
    pub mtime_ns: i64,
    /// `None` when ctime is not trusted.
    pub ctime_ns: Option<i64>,
    pub inode: u64,
}

impl Hint {
    fn matches(&self, md: &Metadata) -> bool {
        self.size == md.size()
            && self.mtime_ns == md.mtime() * 1_000_000_000 + md.mtime_nsec()
            && self.ctime_ns.is_none_or(|c| c == md.ctime() * 1_000_000_000 + md.ctime_nsec())
            && self.inode == md.ino()
    }
}

/// A small file read in full, with its metadata before and after reading.
pub struct Prefetched {
    pub data: Vec<u8>,
    pub before: Metadata,
    pub after: Metadata,
}

/// What the pool found out about one entry.
pub enum Prefetch {
    /// Only its `lstat`: not a small regular file, or unchanged since the parent.
    Stat(Metadata),
    /// Its `lstat`, and its contents.
    Read(Metadata, Prefetched),
}

/// The answer for request `key`.
pub type Reply = (usize, std::io::Result<Prefetch>);

struct Request {
    key: usize,
    path: PathBuf,
    hint: Option<Hint>,
    reply: Sender<Reply>,
}

/// The reader pool.
pub struct Prefetcher {
    tx: Option<Sender<Request>>,
    threads: Vec<JoinHandle<()>>,
}

impl Prefetcher {
    /// Start `n` reader threads.
    pub fn new(n: usize) -> Prefetcher {
        let (tx, rx): (Sender<Request>, Receiver<Request>) = unbounded();
        let threads = (0..n.max(1))
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    for r in rx {
                        let _ = r.reply.send((r.key, work(&r.path, r.hint)));
                    }
                })
            })
            .collect();
        Prefetcher { tx: Some(tx), threads }
    }

    /// Ask for `path` to be looked at; the answer goes to `reply` tagged with `key`. Returns
    /// false if the pool has stopped.
    pub fn request(&self, key: usize, path: PathBuf, hint: Option<Hint>, reply: &Sender<Reply>) -> bool {
        let req = Request { key, path, hint, reply: reply.clone() };
        self.tx.as_ref().is_some_and(|tx| tx.send(req).is_ok())
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn work(path: &std::path::Path, hint: Option<Hint>) -> std::io::Result<Prefetch> {
    let md = std::fs::symlink_metadata(path)?;
    let small = md.is_file() && md.size() <= SMALL_FILE && md.blocks() * 512 >= md.size() && md.nlink() == 1;
    if !small || hint.is_some_and(|h| h.matches(&md)) {
        return Ok(Prefetch::Stat(md));
    }
    let mut f = crate::backup::open_for_backup(path)?;
    let before = f.metadata()?;
    let mut data = Vec::with_capacity(md.size() as usize + 1);
    f.read_to_end(&mut data)?;
    let after = f.metadata()?;
    Ok(Prefetch::Read(md, Prefetched { data, before, after }))
}
