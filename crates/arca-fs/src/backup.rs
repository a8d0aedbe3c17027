//! The archiver: walk the source paths, reuse unchanged files' content from the parent
//! snapshot, chunk and store the rest through a BlobWriter, and build one tree per directory.
//!
//! The walk is parallel: the entries of each directory are processed on a pool of threads
//! (rayon, work-stealing), so many small files in many directories are stat'ed and read with
//! several requests in flight — which is what a cold cache and a network filesystem need.
//! Trees stay deterministic: nodes are collected in name order whatever finishes first.
//!
//! The snapshot's root tree mirrors absolute paths: backing up `/home/a` gives a root with
//! `home`, which holds `a`. Directories on the way carry their real metadata.

use crate::excludes::Excludes;
use crate::meta::{node_from, read_xattrs, NameCache};
use crate::sparse::{data_regions, holes_of, RegionReader};
use crate::{FsError, FsResult};
use arca_chunker::Chunker;
use arca_format::{encode, BlobKind, Id, Node, NodeKind, SnapshotSummary, SnapshotWarning, Tree, WarningKind};
use arca_io::{AlignedBuf, DirectReader};
use arca_repo::events::{Event, Events};
use arca_repo::BlobWriter;
use rayon::prelude::*;
use serde_bytes::ByteBuf;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// Files up to this size are read whole into memory (no chunker buffer needed).
const SMALL_FILE: u64 = 512 * 1024;
/// The inode number btrfs gives the empty directory that stands for a nested subvolume in a
/// snapshot of the subvolume above it.
const BTRFS_EMPTY_SUBVOL_INO: u64 = 2;
/// Large files streamed at the same time; each holds a chunker buffer (2 × max chunk size).
const LARGE_STREAMS: usize = 2;

thread_local! {
    /// Each walker thread's buffer for whole small files, aligned for direct reads.
    static SMALL_BUFFER: RefCell<Option<AlignedBuf>> = const { RefCell::new(None) };
}

/// What to back up and how.
pub struct BackupOptions {
    /// Absolute source paths.
    pub paths: Vec<PathBuf>,
    pub excludes: Excludes,
    pub one_file_system: bool,
    /// Compare only size, mtime and inode with the parent (for filesystems with unstable ctime).
    pub ignore_ctime: bool,
    /// Read every file even if it looks unchanged.
    pub rehash: bool,
    /// Threads walking and reading the source (I/O bound, so more than the cores helps).
    pub read_threads: usize,
    /// Checked before every entry and every chunk: a cancelled backup stops there.
    pub cancel: arca_repo::Cancel,
    /// What to do with a running database's files (crate::livedb).
    pub live_databases: crate::livedb::LiveDbPolicy,
    /// Source paths read from somewhere else (a filesystem snapshot of them).
    pub redirects: Vec<Redirect>,
}

/// A source path whose data is read from `read_from`, a frozen copy of it (a btrfs, LVM or
/// ZFS snapshot): the snapshot records `path`, its device number and the paths below it, so
/// listings, excludes, warnings and the next backup's parent all see the original place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub path: PathBuf,
    pub read_from: PathBuf,
}

pub use arca_repo::events::Change;

/// The result of walking and storing the sources.
pub struct BackupOutcome {
    pub tree: Id,
    pub summary: SnapshotSummary,
    pub warnings: Vec<SnapshotWarning>,
}

impl BackupOutcome {
    /// The outcome of a source that stored `files` streams of `bytes` in all as new files
    /// under `tree`, starting at `started` (stdin, a command, a send stream, a description).
    pub fn of_streams(tree: Id, files: u64, bytes: u64, started: Instant) -> BackupOutcome {
        let summary = SnapshotSummary {
            files_new: files,
            files_read: files,
            bytes_read: bytes,
            total_bytes: bytes,
            duration_secs: started.elapsed().as_secs_f64(),
            ..Default::default()
        };
        BackupOutcome { tree, summary, warnings: vec![] }
    }
}

/// Stored contents of one file.
#[derive(Clone)]
struct Content {
    blobs: Vec<Id>,
    holes: Vec<(u64, u64)>,
    size: u64,
}

/// A few chunker buffers shared by the walker threads, so memory does not grow with them.
struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    returned: Condvar,
}

impl BufferPool {
    fn new(n: usize) -> BufferPool {
        BufferPool { free: Mutex::new((0..n).map(|_| Vec::new()).collect()), returned: Condvar::new() }
    }

    fn take(&self) -> Vec<u8> {
        let mut free = lock(&self.free);
        loop {
            if let Some(b) = free.pop() {
                return b;
            }
            free = self.returned.wait(free).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn give(&self, b: Vec<u8>) {
        lock(&self.free).push(b);
        self.returned.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Archiver<'a> {
    writer: &'a BlobWriter,
    chunker: Chunker,
    opts: &'a BackupOptions,
    events: &'a dyn Events,
    names: Mutex<NameCache>,
    summary: Mutex<SnapshotSummary>,
    warnings: Mutex<Vec<SnapshotWarning>>,
    hardlinks: Mutex<HashMap<(u64, u64), Content>>,
    buffers: BufferPool,
    live: crate::livedb::Detector,
    /// Device numbers of redirected sources' copies, and the originals' they stand for.
    devices: HashMap<u64, u64>,
}

/// Back up `opts.paths`, using `parent` (a root tree) to skip unchanged files.
pub fn backup(
    writer: &BlobWriter,
    parent: Option<Id>,
    opts: &BackupOptions,
    events: &dyn Events,
) -> FsResult<BackupOutcome> {
    let started = Instant::now();
    let a = Archiver {
        writer,
        chunker: writer.repository().chunker_for(writer.key())?,
        opts,
        events,
        names: Mutex::new(NameCache::default()),
        summary: Mutex::new(SnapshotSummary::default()),
        warnings: Mutex::new(vec![]),
        hardlinks: Mutex::new(HashMap::new()),
        buffers: BufferPool::new(LARGE_STREAMS),
        live: crate::livedb::Detector::new(),
        devices: redirected_devices(&opts.redirects),
    };
    let mut root = PathTrie::default();
    for p in &opts.paths {
        if !p.is_absolute() {
            return Err(FsError::NotAbsolute(p.display().to_string()));
        }
        root.insert(p);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.read_threads.max(1))
        .stack_size(16 << 20)
        .thread_name(|i| format!("arca-walk-{i}"))
        .build()
        .map_err(|e| FsError::Threads { what: "walker", detail: e.to_string() })?;
    if let Some(id) = &parent {
        // A remote repository: the parent's trees are read breadth first, many at once, into
        // the repository's tree cache, instead of one round trip per directory as the walk
        // reaches it.
        arca_repo::prefetch::prime(a.writer.repository(), id, arca_repo::limits::MAX_TREE_DEPTH);
    }
    let tree = pool.install(|| {
        let parent_tree = parent.and_then(|id| a.load_tree(&id));
        if root.is_source {
            // Backing up "/" itself.
            let md = std::fs::symlink_metadata("/").map_err(|e| FsError::io(Path::new("/"), e))?;
            a.dir_tree(Path::new("/"), md.dev(), parent_tree.as_ref(), None)
        } else {
            a.trie_tree(&root, Path::new("/"), parent_tree.as_ref())
        }
    })?;
    let mut summary = a.summary.into_inner().unwrap_or_else(|p| p.into_inner());
    summary.duration_secs = started.elapsed().as_secs_f64();
    let mut warnings = a.warnings.into_inner().unwrap_or_else(|p| p.into_inner());
    warnings.sort_by(|x, y| x.path.cmp(&y.path));
    Ok(BackupOutcome { tree, summary, warnings })
}

/// The device numbers of the redirected sources' copies, mapped to the originals'.
fn redirected_devices(redirects: &[Redirect]) -> HashMap<u64, u64> {
    let dev = |p: &Path| std::fs::symlink_metadata(p).ok().map(|m| m.dev());
    redirects.iter().filter_map(|r| Some((dev(&r.read_from)?, dev(&r.path)?))).collect()
}

/// Store a single stream as a snapshot containing one file named `name`.
pub fn backup_stream(
    writer: &BlobWriter,
    name: &str,
    reader: impl Read,
    events: &dyn Events,
    cancel: &arca_repo::Cancel,
) -> FsResult<BackupOutcome> {
    let started = Instant::now();
    let clean: &[u8] = name.trim_matches('/').as_bytes();
    if clean.is_empty() || clean.contains(&b'/') || clean == b"." || clean == b".." {
        return Err(FsError::BadStreamName(name.to_string()));
    }
    let (blobs, size) = store_stream(writer, reader, Path::new("<stdin>"), events, cancel)?;
    let node = stream_node(clean, blobs, size);
    let id = store_tree(writer, vec![node])?;
    Ok(BackupOutcome::of_streams(id, 1, size, started))
}

/// Chunk and store everything `reader` gives (named `what` in errors); the blobs in order and
/// the byte count. Sources that are streams (a dump, a command's output) build on this.
pub fn store_stream(
    writer: &BlobWriter,
    reader: impl Read,
    what: &Path,
    events: &dyn Events,
    cancel: &arca_repo::Cancel,
) -> FsResult<(Vec<Id>, u64)> {
    let chunker = writer.repository().chunker_for(writer.key())?;
    let mut stream = chunker.stream(reader);
    let mut blobs = vec![];
    let mut size = 0u64;
    while let Some(chunk) = stream.next_chunk().map_err(|e| FsError::io(what, e))? {
        cancel.check()?;
        size += chunk.len() as u64;
        events.emit(Event::Bytes(chunk.len() as u64));
        blobs.push(writer.add(BlobKind::Data, chunk)?.0);
    }
    Ok((blobs, size))
}

/// A regular file of this user, made now, holding `blobs` (`size` bytes): how a stream is
/// stored in a snapshot.
pub fn stream_node(name: &[u8], blobs: Vec<Id>, size: u64) -> Node {
    let mut node = Node::new(name, NodeKind::File);
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
    node.mode = 0o644;
    node.uid = nix::unistd::getuid().as_raw();
    node.gid = nix::unistd::getgid().as_raw();
    node.mtime_ns = now;
    node.atime_ns = now;
    node.ctime_ns = now;
    node.size = size;
    node.content = blobs;
    node
}

/// A directory of this user, made now, whose listing is the stored tree `subtree`.
pub fn dir_node(name: &[u8], subtree: Id) -> Node {
    let mut node = stream_node(name, vec![], 0);
    node.kind = NodeKind::Dir;
    node.mode = 0o755;
    node.subtree = Some(subtree);
    node
}

/// Store a directory listing of `nodes` (sorted here) and return its id.
pub fn store_tree(writer: &BlobWriter, nodes: Vec<Node>) -> FsResult<Id> {
    let mut tree = Tree { nodes };
    tree.sort();
    let bytes = encode("tree", &tree)?;
    Ok(writer.add(BlobKind::Tree, &bytes)?.0)
}

/// The source paths as a tree of components.
#[derive(Default)]
struct PathTrie {
    children: BTreeMap<Vec<u8>, PathTrie>,
    /// This path was named as a source: back up everything below it.
    is_source: bool,
}

impl PathTrie {
    fn insert(&mut self, p: &Path) {
        let mut t = self;
        for c in p.components() {
            if let std::path::Component::Normal(name) = c {
                t = t.children.entry(name.as_bytes().to_vec()).or_default();
            }
        }
        t.is_source = true;
    }
}

impl Archiver<'_> {
    fn warn(&self, path: &Path, message: impl Into<String>) {
        self.warn_kind(path, message, WarningKind::Unreadable)
    }

    fn warn_kind(&self, path: &Path, message: impl Into<String>, kind: WarningKind) {
        let message = message.into();
        let path = &*self.shown(path);
        self.events.emit(Event::Warning { path, message: &message });
        lock(&self.warnings).push(SnapshotWarning { path: path.display().to_string(), message, kind });
    }

    fn count(&self, f: impl FnOnce(&mut SnapshotSummary)) {
        f(&mut lock(&self.summary));
    }

    fn node(&self, name: &[u8], md: &Metadata) -> Node {
        let mut node = node_from(name, md, &mut lock(&self.names));
        node.device = self.device(md);
        node
    }

    /// The device number a file is recorded with (a redirected source's original one).
    fn device(&self, md: &Metadata) -> u64 {
        self.devices.get(&md.dev()).copied().unwrap_or(md.dev())
    }

    /// Where a path read through a redirect is shown and matched: below the original path.
    fn shown<'p>(&self, path: &'p Path) -> std::borrow::Cow<'p, Path> {
        for r in &self.opts.redirects {
            if let Ok(rest) = path.strip_prefix(&r.read_from) {
                let shown = if rest.as_os_str().is_empty() { r.path.clone() } else { r.path.join(rest) };
                return std::borrow::Cow::Owned(shown);
            }
        }
        std::borrow::Cow::Borrowed(path)
    }

    fn load_tree(&self, id: &Id) -> Option<Tree> {
        match self.writer.repository().read_tree(id) {
            Ok(t) => Some(t),
            Err(e) => {
                // Not a problem with the new snapshot (its files are read in full), but worth
                // seeing: the parent snapshot is damaged.
                let note = format!("parent tree {} unreadable, reading its files again: {e}", id.short());
                self.events.emit(Event::Caution(&note));
                None
            }
        }
    }

    fn store_tree(&self, mut tree: Tree) -> FsResult<Id> {
        tree.sort();
        let bytes = encode("tree", &tree)?;
        Ok(self.writer.add(BlobKind::Tree, &bytes)?.0)
    }

    /// A directory on the way to the sources: only the named children.
    fn trie_tree(&self, trie: &PathTrie, dir: &Path, parent: Option<&Tree>) -> FsResult<Id> {
        let mut tree = Tree::default();
        for (name, child) in &trie.children {
            let shown = dir.join(std::ffi::OsStr::from_bytes(name));
            // A redirected source is read from its copy; the way to it stays the original's.
            let redirect = self.opts.redirects.iter().find(|r| child.is_source && r.path == shown);
            let path = redirect.map(|r| r.read_from.clone()).unwrap_or_else(|| shown.clone());
            let md = match std::fs::symlink_metadata(&path) {
                Ok(md) => md,
                Err(e) => {
                    self.warn(&path, format!("cannot back up: {e}"));
                    continue;
                }
            };
            let pnode = parent.and_then(|t| t.find(name));
            if child.is_source {
                if let Some(n) = self.entry(&path, name, &md, pnode, md.dev())? {
                    tree.nodes.push(n);
                }
            } else if md.is_dir() {
                let sub_parent = pnode.and_then(|n| n.subtree).and_then(|id| self.load_tree(&id));
                let mut node = self.node(name, &md);
                node.xattrs = read_xattrs(&path).unwrap_or_default();
                node.subtree = Some(self.trie_tree(child, &shown, sub_parent.as_ref())?);
                tree.nodes.push(node);
            } else {
                self.warn(&path, "is not a directory; the sources below it were skipped");
            }
        }
        self.store_tree(tree)
    }

    /// Every entry of a directory (or, with `only`, just those names: the tags of an excluded
    /// directory), processed in parallel, stored in name order.
    fn dir_tree(
        &self,
        dir: &Path,
        dev: u64,
        parent: Option<&Tree>,
        only: Option<&[std::ffi::OsString]>,
    ) -> FsResult<Id> {
        let mut names = vec![];
        match std::fs::read_dir(dir) {
            Ok(rd) => {
                for e in rd {
                    match e {
                        Ok(e) => names.push(e.file_name()),
                        Err(e) => self.warn(dir, format!("cannot list directory: {e}")),
                    }
                }
            }
            Err(e) => self.warn(dir, format!("cannot list directory: {e}")),
        }
        if let Some(only) = only {
            names.retain(|n| only.contains(n));
        }
        self.live_databases(dir, &mut names)?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let nodes: Vec<FsResult<Option<Node>>> = names
            .par_iter()
            .map(|name| {
                let path = dir.join(name);
                // A name-only pattern that matches saves the lstat of an excluded file.
                if self.opts.excludes.matches(&self.shown(&path), false) {
                    return Ok(None);
                }
                let md = match std::fs::symlink_metadata(&path) {
                    Ok(md) => md,
                    Err(e) => {
                        self.warn(&path, format!("cannot read: {e}"));
                        return Ok(None);
                    }
                };
                if md.is_dir() && self.opts.excludes.matches_dir_only(&self.shown(&path)) {
                    return Ok(None);
                }
                let pnode = parent.and_then(|t| t.find(name.as_bytes()));
                self.entry(&path, name.as_bytes(), &md, pnode, dev)
            })
            .collect();
        let mut tree = Tree { nodes: Vec::with_capacity(nodes.len()) };
        for n in nodes {
            if let Some(n) = n? {
                tree.nodes.push(n);
            }
        }
        self.store_tree(tree)
    }

    /// Report the live databases in `dir` as the policy says (leaving their files out of
    /// `names` with `skip`).
    fn live_databases(&self, dir: &Path, names: &mut Vec<std::ffi::OsString>) -> FsResult<()> {
        use crate::livedb::LiveDbPolicy;
        let live = self.live.in_dir(dir, names);
        for l in &live {
            match self.opts.live_databases {
                LiveDbPolicy::Fail => return Err(FsError::LiveDatabase(l.message())),
                LiveDbPolicy::Warn => self.warn_kind(&l.path, l.message(), WarningKind::LiveDatabase),
                LiveDbPolicy::Skip => {
                    self.warn_kind(&l.path, format!("left out: {}", l.message()), WarningKind::LiveDatabase)
                }
            }
        }
        if self.opts.live_databases == LiveDbPolicy::Skip && !live.is_empty() {
            let out = crate::livedb::left_out(&live);
            names.retain(|n| !out.contains(n));
        }
        Ok(())
    }

    /// One entry of any kind; `None` if it is skipped.
    fn entry(&self, path: &Path, name: &[u8], md: &Metadata, pnode: Option<&Node>, dev: u64) -> FsResult<Option<Node>> {
        self.opts.cancel.check()?;
        if self.opts.excludes.is_own_at(self.device(md), md.ino()) {
            // A repository backed up into itself grows by its own size every run.
            tracing::info!("{}: arca's own repository, cache or key file; left out", path.display());
            return Ok(None);
        }
        let mut node = self.node(name, md);
        match read_xattrs(path) {
            Ok(x) => node.xattrs = x,
            Err(e) => self.warn(path, format!("cannot read extended attributes: {e}")),
        }
        match node.kind {
            NodeKind::Dir => {
                // A source inside another source's frozen copy has a frozen copy of its own
                // (a nested subvolume named as a path): read that one.
                if !self.opts.redirects.is_empty() {
                    let shown = self.shown(path);
                    if let Some(r) = self.opts.redirects.iter().find(|r| *r.path == *shown && r.read_from != path) {
                        match std::fs::symlink_metadata(&r.read_from) {
                            Ok(own) => return self.entry(&r.read_from, name, &own, pnode, own.dev()),
                            Err(e) => self.warn(&r.read_from, format!("cannot read its snapshot: {e}")),
                        }
                    }
                }
                // `dev` is the directory above's: inside a redirected btrfs snapshot.
                if md.ino() == BTRFS_EMPTY_SUBVOL_INO && self.devices.contains_key(&dev) {
                    // In a btrfs snapshot a nested subvolume is an empty stand-in directory.
                    self.warn_kind(
                        path,
                        "a nested btrfs subvolume: a snapshot of the subvolume above does not hold it (stored empty); name it as a path of its own too",
                        WarningKind::Unreadable,
                    );
                }
                if self.opts.one_file_system && md.dev() != dev {
                    return Ok(None);
                }
                let only = self.opts.excludes.tags_in(path);
                self.count(|s| s.dirs += 1);
                let sub_parent = pnode
                    .filter(|n| n.kind == NodeKind::Dir)
                    .and_then(|n| n.subtree)
                    .and_then(|id| self.load_tree(&id));
                node.subtree = Some(self.dir_tree(path, md.dev(), sub_parent.as_ref(), only.as_deref())?);
            }
            NodeKind::Symlink => {
                self.count(|s| s.other_nodes += 1);
                match std::fs::read_link(path) {
                    Ok(t) => node.target = Some(ByteBuf::from(t.as_os_str().as_bytes().to_vec())),
                    Err(e) => {
                        self.warn(path, format!("cannot read symlink: {e}"));
                        return Ok(None);
                    }
                }
            }
            NodeKind::File => {
                if !self.file(path, md, &mut node, pnode)? {
                    return Ok(None);
                }
            }
            _ => self.count(|s| s.other_nodes += 1),
        }
        Ok(Some(node))
    }

    fn unchanged(&self, md: &Metadata, p: &Node) -> bool {
        !self.opts.rehash
            && p.kind == NodeKind::File
            && p.size == md.size()
            && p.mtime_ns == md.mtime() * 1_000_000_000 + md.mtime_nsec()
            && (self.opts.ignore_ctime || p.ctime_ns == md.ctime() * 1_000_000_000 + md.ctime_nsec())
            && p.inode == md.ino()
            && (p.size == 0 || !p.content.is_empty() || !p.holes.is_empty())
            && {
                let ix = self.writer.repository().index();
                p.content.iter().all(|c| ix.has_live(c))
            }
    }

    /// Fill in a file's content; false if it could not be read at all.
    fn file(&self, path: &Path, md: &Metadata, node: &mut Node, pnode: Option<&Node>) -> FsResult<bool> {
        self.count(|s| s.total_bytes += md.size());
        let link_key = (md.dev(), md.ino());
        if md.nlink() > 1 {
            if let Some(c) = lock(&self.hardlinks).get(&link_key).cloned() {
                set_content(node, c);
                // Another name of a file already stored: it counts as that file would.
                let change = match pnode {
                    None => Change::New,
                    Some(p) if self.unchanged(md, p) => {
                        node.atime_ns = p.atime_ns;
                        Change::Unchanged
                    }
                    Some(_) => Change::Modified,
                };
                self.count(|s| match change {
                    Change::New => s.files_new += 1,
                    Change::Modified => s.files_changed += 1,
                    Change::Unchanged => s.files_unchanged += 1,
                });
                self.events.emit(Event::Change { path: &self.shown(path), change });
                return Ok(true);
            }
        }
        if let Some(p) = pnode.filter(|p| self.unchanged(md, p)) {
            node.content = p.content.clone();
            node.holes = p.holes.clone();
            // Reading a file changes its atime and nothing else: an unchanged file keeps the
            // parent's, so that another program (or a backup without O_NOATIME) reading the
            // tree does not make every tree of the next snapshot new.
            node.atime_ns = p.atime_ns;
            self.count(|s| s.files_unchanged += 1);
            self.events.emit(Event::Change { path: &self.shown(path), change: Change::Unchanged });
            self.events.emit(Event::Skipped(p.size));
            if md.nlink() > 1 {
                let c = Content { blobs: p.content.clone(), holes: p.holes.clone(), size: p.size };
                lock(&self.hardlinks).insert(link_key, c);
            }
            return Ok(true);
        }
        self.events.emit(Event::File { path: &self.shown(path), size: md.size() });
        let content = match self.read_file(path, node) {
            Ok(c) => c,
            // The repository side failed (storage full, a verification fault): that ends the
            // backup; it must never become a warning on one file of a snapshot that is saved.
            Err(e @ FsError::Repo(_)) => return Err(e),
            Err(e) => {
                // The warning names the path already: only the cause goes in the message.
                let cause = match &e {
                    FsError::Io { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                self.warn(path, format!("cannot read: {cause}"));
                return Ok(false);
            }
        };
        self.count(|s| {
            s.files_read += 1;
            s.bytes_read += content.size - content.holes.iter().map(|h| h.1).sum::<u64>();
            if pnode.is_some() {
                s.files_changed += 1;
            } else {
                s.files_new += 1;
            }
        });
        if md.nlink() > 1 {
            lock(&self.hardlinks).insert(link_key, content.clone());
        }
        set_content(node, content);
        let change = if pnode.is_some() { Change::Modified } else { Change::New };
        self.events.emit(Event::Change { path: &self.shown(path), change });
        self.events.emit(Event::FileDone);
        Ok(true)
    }

    /// Read a file, re-reading once if it changes meanwhile. Updates the node's times and
    /// size to what was read.
    fn read_file(&self, path: &Path, node: &mut Node) -> Result<Content, FsError> {
        let mut last = None;
        for attempt in 0..2 {
            let f = open_for_backup(path).map_err(|e| FsError::io(path, e))?;
            let before = f.metadata().map_err(|e| FsError::io(path, e))?;
            if !before.is_file() {
                return Err(FsError::NotAFile(path.display().to_string()));
            }
            let content = self.read_open_file(path, &f, &before)?;
            let after = f.metadata().map_err(|e| FsError::io(path, e))?;
            let stable = same_version(&before, &after) && content.size == after.size();
            let fresh = self.node(&node.name, &after);
            node.mtime_ns = fresh.mtime_ns;
            node.ctime_ns = fresh.ctime_ns;
            node.inode = fresh.inode;
            if stable {
                return Ok(content);
            }
            if attempt == 1 {
                self.warn_kind(path, "changed while being read (re-read once); stored as read", WarningKind::Changed);
            }
            last = Some(content);
        }
        last.ok_or(FsError::Internal("no read attempt"))
    }

    fn read_open_file(&self, path: &Path, f: &File, md: &Metadata) -> FsResult<Content> {
        let size = md.size();
        let maybe_sparse = md.blocks() * 512 < size;
        if !maybe_sparse && size <= SMALL_FILE {
            // Whole file in this thread's buffer, in one direct read: `cut` sees the end of
            // the stream. (Taken out of its slot while in use, so nothing can borrow it twice.)
            let mut buf = SMALL_BUFFER
                .with(|b| b.borrow_mut().take())
                .unwrap_or_else(|| AlignedBuf::new(SMALL_FILE as usize + arca_io::ALIGN));
            // Ask for one byte more than the stat'ed size (rounded up to the alignment): a direct
            // read past the end makes the kernel zero the rest of the request first.
            let want = ((size as usize + 1).div_ceil(arca_io::ALIGN) * arca_io::ALIGN).min(buf.len());
            let result = match DirectReader::new(f).read_whole(&mut buf.as_mut_slice()[..want]) {
                // Grew since it was stat'ed, or came back shorter than its size (it shrank,
                // or a filesystem ended a direct read early): stream it like a large file,
                // whose reads go on until the real end.
                Ok(n) if n == want || n < size as usize => Ok(None),
                Ok(n) => self.store_whole(&buf.as_slice()[..n]).map(Some),
                Err(e) => Err(FsError::io(path, e)),
            };
            SMALL_BUFFER.with(|b| *b.borrow_mut() = Some(buf));
            if let Some(content) = result? {
                return Ok(content);
            }
        }
        if !maybe_sparse {
            // Large and dense: straight from the disk, bypassing the page cache (arca-io).
            let (blobs, read) = self.chunk_stream(path, DirectReader::new(f))?;
            return Ok(Content { blobs, holes: vec![], size: read });
        }
        let regions = data_regions(f, size).map_err(|e| FsError::io(path, e))?;
        let mut holes = holes_of(&regions, size);
        let hole_bytes: u64 = holes.iter().map(|h| h.1).sum();
        let (blobs, read) = self.chunk_stream(path, RegionReader::new(f, regions))?;
        let size = read + hole_bytes;
        // A file that shrank while it was read: no hole may reach past its end (readers refuse
        // such a sparse map).
        holes.retain_mut(|h| {
            h.1 = h.1.min(size.saturating_sub(h.0));
            h.1 > 0
        });
        Ok(Content { blobs, holes, size })
    }

    /// Chunk and store a whole file's bytes.
    fn store_whole(&self, data: &[u8]) -> FsResult<Content> {
        let mut blobs = vec![];
        let mut rest = data;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(self.chunker.cut(rest));
            self.events.emit(Event::Bytes(chunk.len() as u64));
            blobs.push(self.writer.add(BlobKind::Data, chunk)?.0);
            rest = tail;
        }
        Ok(Content { blobs, holes: vec![], size: data.len() as u64 })
    }

    /// Chunk and store everything `reader` yields; the blob ids and the bytes read.
    fn chunk_stream(&self, path: &Path, reader: impl Read) -> FsResult<(Vec<Id>, u64)> {
        let mut stream = self.chunker.stream_with_buffer(reader, self.buffers.take());
        let mut blobs = vec![];
        let mut read = 0u64;
        let result = loop {
            match stream.next_chunk() {
                Ok(Some(_)) if self.opts.cancel.is_cancelled() => break Err(arca_repo::RepoError::Cancelled.into()),
                Ok(Some(chunk)) => {
                    read += chunk.len() as u64;
                    self.events.emit(Event::Bytes(chunk.len() as u64));
                    match self.writer.add(BlobKind::Data, chunk) {
                        Ok((id, _)) => blobs.push(id),
                        Err(e) => break Err(FsError::from(e)),
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(FsError::io(path, e)),
            }
        };
        self.buffers.give(stream.into_buffer());
        result?;
        Ok((blobs, read))
    }
}

fn set_content(node: &mut Node, c: Content) {
    node.content = c.blobs;
    node.holes = c.holes;
    node.size = c.size;
}

fn same_version(a: &Metadata, b: &Metadata) -> bool {
    a.size() == b.size()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
        && a.ctime() == b.ctime()
        && a.ctime_nsec() == b.ctime_nsec()
}

/// Open without following a symlink that replaced the file, without blocking on a fifo that
/// replaced it, and without touching atime where the kernel allows it (owner or root).
pub(crate) fn open_for_backup(path: &Path) -> std::io::Result<File> {
    let open = |flags| std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path);
    match open(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(libc::O_NOFOLLOW | libc::O_NONBLOCK),
        r => r,
    }
}
