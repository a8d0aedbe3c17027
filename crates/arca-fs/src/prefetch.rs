//! Read-ahead for small files: a pool of reader threads opens and reads the next files of a
//! directory while the walker stores the current one, so a tree of many small files is not
//! read one system call at a time (the disk sees several requests at once).

use crossbeam_channel::{unbounded, Receiver, Sender};
use std::fs::Metadata;
use std::io::Read;
use std::path::PathBuf;
use std::thread::JoinHandle;

/// Files up to this size are read ahead whole (one chunk at the default chunker settings).
pub const SMALL_FILE: u64 = 512 * 1024;
/// How many files a directory may have in flight ahead of the walker.
pub const WINDOW_FILES: usize = 64;
/// How many bytes may be in flight ahead of the walker.
pub const WINDOW_BYTES: u64 = 16 << 20;

/// A small file read in full, with its metadata before and after reading.
pub struct Prefetched {
    pub data: Vec<u8>,
    pub before: Metadata,
    pub after: Metadata,
}

/// The answer for request `key`.
pub type Reply = (usize, std::io::Result<Prefetched>);

struct Request {
    key: usize,
    path: PathBuf,
    size: u64,
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
                        let _ = r.reply.send((r.key, read_small(&r.path, r.size)));
                    }
                })
            })
            .collect();
        Prefetcher { tx: Some(tx), threads }
    }

    /// Ask for `path` to be read; the answer goes to `reply` tagged with `key`. Returns false
    /// if the pool has stopped.
    pub fn request(&self, key: usize, path: PathBuf, size: u64, reply: &Sender<Reply>) -> bool {
        let req = Request { key, path, size, reply: reply.clone() };
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

fn read_small(path: &std::path::Path, size: u64) -> std::io::Result<Prefetched> {
    let mut f = crate::backup::open_for_backup(path)?;
    let before = f.metadata()?;
    let mut data = Vec::with_capacity(size as usize + 1);
    f.read_to_end(&mut data)?;
    let after = f.metadata()?;
    Ok(Prefetched { data, before, after })
}
