//! The archiver: walk the source paths, reuse unchanged files' content from the parent
//! snapshot, chunk and store the rest through a BlobWriter, and build one tree per directory.
//!
//! The snapshot's root tree mirrors absolute paths: backing up `/home/a` gives a root with
//! `home`, which holds `a`. Directories on the way carry their real metadata.

use crate::excludes::Excludes;
use crate::meta::{node_from, read_xattrs, NameCache};
use crate::prefetch::{Hint, Prefetch, Prefetched, Prefetcher, Reply, WINDOW_FILES};
use crate::sparse::{data_regions, holes_of, RegionReader};
use crate::{FsError, FsResult};
use arca_chunker::Chunker;
use arca_format::{encode, BlobKind, Id, Node, NodeKind, SnapshotSummary, SnapshotWarning, Tree, WarningKind};
use arca_repo::BlobWriter;
use serde_bytes::ByteBuf;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
}

/// Callbacks for progress display. All default to doing nothing.
pub trait BackupProgress {
    fn file(&self, _path: &Path, _size: u64) {}
    fn bytes(&self, _n: u64) {}
    /// An unchanged file of `size` bytes was not read.
    fn skipped(&self, _size: u64) {}
    fn file_done(&self) {}
    fn warning(&self, _path: &Path, _message: &str) {}
}

/// A progress sink that shows nothing.
pub struct NoProgress;
impl BackupProgress for NoProgress {}

/// The result of walking and storing the sources.
pub struct BackupOutcome {
    pub tree: Id,
    pub summary: SnapshotSummary,
    pub warnings: Vec<SnapshotWarning>,
}

/// Stored contents of one file.
#[derive(Clone)]
struct Content {
    blobs: Vec<Id>,
    holes: Vec<(u64, u64)>,
    size: u64,
}

struct Archiver<'a> {
    writer: &'a BlobWriter,
    chunker: Chunker,
    opts: &'a BackupOptions,
    progress: &'a dyn BackupProgress,
    names: NameCache,
    summary: SnapshotSummary,
    warnings: Vec<SnapshotWarning>,
    hardlinks: HashMap<(u64, u64), Content>,
    /// The chunker's buffer, reused from file to file.
    buffer: Vec<u8>,
    prefetcher: Prefetcher,
    /// The read-ahead contents of the file `entry` is about to store.
    prefetched: Option<Prefetched>,
}

/// Back up `opts.paths`, using `parent` (a root tree) to skip unchanged files.
pub fn backup(
    writer: &BlobWriter,
    parent: Option<Id>,
    opts: &BackupOptions,
    progress: &dyn BackupProgress,
) -> FsResult<BackupOutcome> {
    let started = Instant::now();
    let chunker = writer.repository().chunker()?;
    let mut a = Archiver {
        writer,
        chunker,
        opts,
        progress,
        names: NameCache::default(),
        summary: SnapshotSummary::default(),
        warnings: vec![],
        hardlinks: HashMap::new(),
        buffer: Vec::new(),
        prefetcher: Prefetcher::new(8),
        prefetched: None,
    };
    let mut root = PathTrie::default();
    for p in &opts.paths {
        if !p.is_absolute() {
            return Err(FsError::Invalid(format!("{} is not an absolute path", p.display())));
        }
        root.insert(p);
    }
    let parent_tree = parent.and_then(|id| a.load_tree(&id));
    let tree = if root.is_source {
        // Backing up "/" itself.
        let md = std::fs::symlink_metadata("/").map_err(|e| FsError::io(Path::new("/"), e))?;
        a.dir_tree(Path::new("/"), md.dev(), parent_tree.as_ref())?
    } else {
        a.trie_tree(&root, Path::new("/"), parent_tree.as_ref())?
    };
    a.summary.duration_secs = started.elapsed().as_secs_f64();
    Ok(BackupOutcome { tree, summary: a.summary, warnings: a.warnings })
}

/// Store a single stream as a snapshot containing one file named `name`.
pub fn backup_stream(
    writer: &BlobWriter,
    name: &str,
    reader: impl Read,
    progress: &dyn BackupProgress,
) -> FsResult<BackupOutcome> {
    let started = Instant::now();
    let clean: &[u8] = name.trim_matches('/').as_bytes();
    if clean.is_empty() || clean.contains(&b'/') || clean == b"." || clean == b".." {
        return Err(FsError::Invalid(format!("--stdin-filename {name:?} must be a plain file name")));
    }
    let chunker = writer.repository().chunker()?;
    let mut stream = chunker.stream(reader);
    let mut blobs = vec![];
    let mut size = 0u64;
    while let Some(chunk) = stream.next_chunk().map_err(|e| FsError::io(Path::new("<stdin>"), e))? {
        size += chunk.len() as u64;
        progress.bytes(chunk.len() as u64);
        blobs.push(writer.add(BlobKind::Data, chunk)?.0);
    }
    let mut node = Node::new(clean, NodeKind::File);
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
    let tree = Tree { nodes: vec![node] };
    let bytes = encode("tree", &tree).map_err(|e| FsError::Invalid(e.to_string()))?;
    let (id, _) = writer.add(BlobKind::Tree, &bytes)?;
    let summary = SnapshotSummary {
        files_new: 1,
        files_read: 1,
        bytes_read: size,
        total_bytes: size,
        duration_secs: started.elapsed().as_secs_f64(),
        ..Default::default()
    };
    Ok(BackupOutcome { tree: id, summary, warnings: vec![] })
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
    fn warn(&mut self, path: &Path, message: impl Into<String>) {
        self.warn_kind(path, message, WarningKind::Unreadable)
    }

    fn warn_kind(&mut self, path: &Path, message: impl Into<String>, kind: WarningKind) {
        let message = message.into();
        self.progress.warning(path, &message);
        self.warnings.push(SnapshotWarning { path: path.display().to_string(), message, kind });
    }

    fn load_tree(&self, id: &Id) -> Option<Tree> {
        match self.writer.repository().read_tree(id) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("parent tree {id} unreadable, reading files again: {e}");
                None
            }
        }
    }

    fn store_tree(&mut self, mut tree: Tree) -> FsResult<Id> {
        tree.sort();
        let bytes = encode("tree", &tree).map_err(|e| FsError::Invalid(e.to_string()))?;
        Ok(self.writer.add(BlobKind::Tree, &bytes)?.0)
    }

    /// A directory on the way to the sources: only the named children.
    fn trie_tree(&mut self, trie: &PathTrie, dir: &Path, parent: Option<&Tree>) -> FsResult<Id> {
        let mut tree = Tree::default();
        for (name, child) in &trie.children {
            let path = dir.join(std::ffi::OsStr::from_bytes(name));
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
                let mut node = node_from(name, &md, &mut self.names);
                node.xattrs = read_xattrs(&path).unwrap_or_default();
                node.subtree = Some(self.trie_tree(child, &path, sub_parent.as_ref())?);
                tree.nodes.push(node);
            } else {
                self.warn(&path, "is not a directory; the sources below it were skipped");
            }
        }
        self.store_tree(tree)
    }

    /// Every entry of a directory.
    fn dir_tree(&mut self, dir: &Path, dev: u64, parent: Option<&Tree>) -> FsResult<Id> {
        let mut tree = Tree::default();
        // Names and d_type only: the stats of regular files go to the read-ahead pool.
        let mut entries = vec![];
        match std::fs::read_dir(dir) {
            Ok(rd) => {
                for e in rd {
                    match e {
                        Ok(e) => {
                            let regular = e.file_type().map(|t| t.is_file()).unwrap_or(false);
                            entries.push((e.file_name(), regular));
                        }
                        Err(e) => self.warn(dir, format!("cannot list directory: {e}")),
                    }
                }
            }
            Err(e) => self.warn(dir, format!("cannot list directory: {e}")),
        }
        entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let items: Vec<(std::ffi::OsString, PathBuf, bool)> = entries
            .into_iter()
            .map(|(name, regular)| {
                let path = dir.join(&name);
                (name, path, regular)
            })
            .filter(|(_, path, _)| !self.opts.excludes.matches(path))
            .collect();
        let (reply_tx, reply_rx) = crossbeam_channel::unbounded::<Reply>();
        let mut ready: HashMap<usize, std::io::Result<Prefetch>> = HashMap::new();
        let (mut next, mut in_flight) = (0usize, 0usize);
        for i in 0..items.len() {
            while next < items.len() && (next <= i || in_flight < WINDOW_FILES) {
                let (name, path, regular) = &items[next];
                if *regular {
                    let hint = self.hint(parent.and_then(|t| t.find(name.as_bytes())));
                    if self.prefetcher.request(next, path.clone(), hint, &reply_tx) {
                        in_flight += 1;
                    }
                }
                next += 1;
            }
            let (name, path, regular) = &items[i];
            let mut answer = None;
            if *regular {
                while !ready.contains_key(&i) {
                    match reply_rx.recv() {
                        Ok((k, r)) => {
                            ready.insert(k, r);
                        }
                        Err(_) => break,
                    }
                }
                answer = ready.remove(&i);
                in_flight = in_flight.saturating_sub(1);
            }
            let md = match answer {
                Some(Ok(Prefetch::Stat(md))) => Ok(md),
                Some(Ok(Prefetch::Read(md, data))) => {
                    self.prefetched = Some(data);
                    Ok(md)
                }
                Some(Err(e)) => Err(e),
                None => std::fs::symlink_metadata(path),
            };
            let md = match md {
                Ok(md) => md,
                Err(e) => {
                    self.warn(path, format!("vanished or unreadable: {e}"));
                    continue;
                }
            };
            let pnode = parent.and_then(|t| t.find(name.as_bytes()));
            let node = self.entry(path, name.as_bytes(), &md, pnode, dev);
            self.prefetched = None;
            if let Some(n) = node? {
                tree.nodes.push(n);
            }
        }
        self.store_tree(tree)
    }

    /// One entry of any kind; `None` if it is skipped.
    fn entry(
        &mut self,
        path: &Path,
        name: &[u8],
        md: &Metadata,
        pnode: Option<&Node>,
        dev: u64,
    ) -> FsResult<Option<Node>> {
        let mut node = node_from(name, md, &mut self.names);
        match read_xattrs(path) {
            Ok(x) => node.xattrs = x,
            Err(e) => self.warn(path, format!("cannot read extended attributes: {e}")),
        }
        match node.kind {
            NodeKind::Dir => {
                if self.opts.one_file_system && md.dev() != dev {
                    return Ok(None);
                }
                if self.opts.excludes.skip_dir(path) {
                    return Ok(None);
                }
                self.summary.dirs += 1;
                let sub_parent = pnode
                    .filter(|n| n.kind == NodeKind::Dir)
                    .and_then(|n| n.subtree)
                    .and_then(|id| self.load_tree(&id));
                node.subtree = Some(self.dir_tree(path, md.dev(), sub_parent.as_ref())?);
            }
            NodeKind::Symlink => {
                self.summary.other_nodes += 1;
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
            _ => self.summary.other_nodes += 1,
        }
        Ok(Some(node))
    }

    /// What the read-ahead pool may compare a file with to skip reading it.
    fn hint(&self, p: Option<&Node>) -> Option<Hint> {
        let p = p.filter(|p| !self.opts.rehash && p.kind == NodeKind::File)?;
        Some(Hint {
            size: p.size,
            mtime_ns: p.mtime_ns,
            ctime_ns: (!self.opts.ignore_ctime).then_some(p.ctime_ns),
            inode: p.inode,
        })
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
                p.content.iter().all(|c| ix.contains(c))
            }
    }

    /// Fill in a file's content; false if it could not be read at all.
    fn file(&mut self, path: &Path, md: &Metadata, node: &mut Node, pnode: Option<&Node>) -> FsResult<bool> {
        self.summary.total_bytes += md.size();
        let link_key = (md.dev(), md.ino());
        if md.nlink() > 1 {
            if let Some(c) = self.hardlinks.get(&link_key).cloned() {
                set_content(node, c);
                self.summary.files_unchanged += 1;
                return Ok(true);
            }
        }
        if let Some(p) = pnode.filter(|p| self.unchanged(md, p)) {
            node.content = p.content.clone();
            node.holes = p.holes.clone();
            self.summary.files_unchanged += 1;
            self.progress.skipped(p.size);
            if md.nlink() > 1 {
                self.hardlinks
                    .insert(link_key, Content { blobs: p.content.clone(), holes: p.holes.clone(), size: p.size });
            }
            return Ok(true);
        }
        self.progress.file(path, md.size());
        let prefetched = self.prefetched.take().filter(|p| same_version(&p.before, &p.after));
        let read = match prefetched {
            Some(p) => self.store_prefetched(p, node),
            None => self.read_file(path, node),
        };
        let content = match read {
            Ok(c) => c,
            Err(e) => {
                self.warn(path, format!("cannot read: {e}"));
                return Ok(false);
            }
        };
        self.summary.files_read += 1;
        if pnode.is_some() {
            self.summary.files_changed += 1;
        } else {
            self.summary.files_new += 1;
        }
        if md.nlink() > 1 {
            self.hardlinks.insert(link_key, content.clone());
        }
        set_content(node, content);
        self.progress.file_done();
        Ok(true)
    }

    /// Read a file, re-reading once if it changes meanwhile. Updates the node's times and
    /// size to what was read.
    fn read_file(&mut self, path: &Path, node: &mut Node) -> Result<Content, FsError> {
        let mut last = None;
        for attempt in 0..2 {
            let f = open_for_backup(path).map_err(|e| FsError::io(path, e))?;
            let before = f.metadata().map_err(|e| FsError::io(path, e))?;
            if !before.is_file() {
                return Err(FsError::Invalid(format!(
                    "{} was replaced by something that is not a file",
                    path.display()
                )));
            }
            let content = self.read_open_file(path, &f, &before)?;
            let after = f.metadata().map_err(|e| FsError::io(path, e))?;
            let stable = same_version(&before, &after) && content.size == after.size();
            let fresh = node_from(&node.name, &after, &mut self.names);
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
        last.ok_or_else(|| FsError::Invalid("unreachable: no read attempt".into()))
    }

    /// Store a small file read ahead by the pool (it did not change while being read).
    fn store_prefetched(&mut self, p: Prefetched, node: &mut Node) -> Result<Content, FsError> {
        let fresh = node_from(&node.name, &p.after, &mut self.names);
        node.mtime_ns = fresh.mtime_ns;
        node.ctime_ns = fresh.ctime_ns;
        node.inode = fresh.inode;
        let mut blobs = vec![];
        // The whole file is in memory, so `cut` sees the end of the stream.
        let mut rest = p.data.as_slice();
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(self.chunker.cut(rest));
            self.progress.bytes(chunk.len() as u64);
            blobs.push(self.writer.add(BlobKind::Data, chunk)?.0);
            rest = tail;
        }
        self.summary.bytes_read += p.data.len() as u64;
        Ok(Content { blobs, holes: vec![], size: p.data.len() as u64 })
    }

    fn read_open_file(&mut self, path: &Path, f: &File, md: &Metadata) -> FsResult<Content> {
        let size = md.size();
        let maybe_sparse = md.blocks() * 512 < size;
        let regions =
            if maybe_sparse { data_regions(f, size).map_err(|e| FsError::io(path, e))? } else { vec![(0, size)] };
        let holes = if maybe_sparse { holes_of(&regions, size) } else { vec![] };
        let hole_bytes: u64 = holes.iter().map(|h| h.1).sum();
        let mut stream =
            self.chunker.stream_with_buffer(RegionReader::new(f, regions), std::mem::take(&mut self.buffer));
        let mut blobs = vec![];
        let mut read = 0u64;
        let result = loop {
            match stream.next_chunk() {
                Ok(Some(chunk)) => {
                    read += chunk.len() as u64;
                    self.progress.bytes(chunk.len() as u64);
                    match self.writer.add(BlobKind::Data, chunk) {
                        Ok((id, _)) => blobs.push(id),
                        Err(e) => break Err(FsError::from(e)),
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(FsError::io(path, e)),
            }
        };
        self.buffer = stream.into_buffer();
        result?;
        self.summary.bytes_read += read;
        Ok(Content { blobs, holes, size: read + hole_bytes })
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

/// Open without following a symlink that replaced the file, and without touching atime where
/// the kernel allows it (owner or root).
pub(crate) fn open_for_backup(path: &Path) -> std::io::Result<File> {
    let open = |flags| std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path);
    match open(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(libc::O_NOFOLLOW | libc::O_NONBLOCK),
        r => r,
    }
}
