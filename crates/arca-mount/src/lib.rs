//! The read-only FUSE view of a repository:
//!
//! ```text
//! snapshots/<time>_<id8>/…     the snapshot's tree        snapshots/latest -> newest
//! hosts/<host>/<time>          -> ../../snapshots/…       hosts/<host>/latest
//! tags/<tag>/<time>            -> ../../snapshots/…       tags/<tag>/latest
//! ```
//! Directories are read from the repository when first looked at, and an entry's inode lives
//! only while the kernel holds it (FUSE `forget` frees it; listing a directory allocates no
//! inodes), so memory is bounded by what is in use, not by the snapshot's size. Decrypted blobs
//! are kept in a small LRU cache, with the next two of a file read ahead.
//! Every file shows its stored mode, owner, times, size, symlink target, device number, link
//! count and xattrs (ACLs included).

use arca_format::{BlobKind, Id, Node, NodeKind, Tree};
use arca_repo::snapshots::SnapshotEntry;
use arca_repo::Repository;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Snapshot contents never change: the kernel may cache them long.
const TTL_CONTENT: Duration = Duration::from_secs(3600);
/// The virtual directories are built at mount time.
const TTL_VIRTUAL: Duration = Duration::from_secs(60);
/// Decrypted blobs kept for reads (at most 8 MiB each).
const BLOB_CACHE: usize = 32;

/// A piece of a file: `len` bytes at `file_offset` come from `blob` starting at `blob_offset`.
#[derive(Clone, Copy)]
struct Extent {
    file_offset: u64,
    len: u64,
    blob: Id,
    blob_offset: u64,
}

enum Kind {
    /// A directory of the layout, with fixed children.
    Virtual(BTreeMap<Vec<u8>, u64>),
    /// A symlink of the layout.
    Link(Vec<u8>),
    /// A node of a snapshot. A directory's tree is read on first use; `kids` are the children
    /// the kernel currently holds inodes for.
    /// `root` is the inode of the snapshot's root directory (0 for the root itself): members
    /// of a hard-link group share one inode within one snapshot.
    Snap {
        node: Arc<Node>,
        tree: Option<Arc<Tree>>,
        kids: HashMap<Vec<u8>, u64>,
        extents: Option<Arc<Vec<Extent>>>,
        root: u64,
    },
}

struct Inode {
    parent: u64,
    name: Vec<u8>,
    /// Further names of a hard-linked file (parent, name), besides `parent` and `name`.
    also: Vec<(u64, Vec<u8>)>,
    /// Lookups the kernel holds (FUSE reference count).
    lookups: u64,
    /// Layout inodes and snapshot roots are never freed.
    permanent: bool,
    kind: Kind,
}

/// Inode slots; freed slots are reused (the kernel has forgotten those numbers).
#[derive(Default)]
struct Table {
    slots: Vec<Option<Inode>>,
    free: Vec<usize>,
    /// Hard-link groups the kernel holds an inode for: (snapshot root, device, inode) → ino,
    /// so every name of the group shows one inode number and the right link count.
    links: HashMap<(u64, u64, u64), u64>,
}

impl Table {
    fn get(&self, ino: u64) -> Option<&Inode> {
        self.slots.get((ino as usize).checked_sub(1)?)?.as_ref()
    }
    fn get_mut(&mut self, ino: u64) -> Option<&mut Inode> {
        self.slots.get_mut((ino as usize).checked_sub(1)?)?.as_mut()
    }
    fn alloc(&mut self, i: Inode) -> u64 {
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(i);
                slot as u64 + 1
            }
            None => {
                self.slots.push(Some(i));
                self.slots.len() as u64
            }
        }
    }
    /// Free `ino` if nothing holds it, then its parent if that was only kept for it.
    fn release(&mut self, mut ino: u64) {
        loop {
            let Some(i) = self.get(ino) else { return };
            let idle = match &i.kind {
                Kind::Snap { kids, .. } => kids.is_empty(),
                _ => false,
            };
            if i.permanent || i.lookups > 0 || !idle {
                return;
            }
            let (parent, name, also) = (i.parent, i.name.clone(), i.also.clone());
            if let Kind::Snap { node, root, .. } = &i.kind {
                if node.is_hardlinked() {
                    let key = (*root, node.device, node.inode);
                    if self.links.get(&key) == Some(&ino) {
                        self.links.remove(&key);
                    }
                }
            }
            self.slots[ino as usize - 1] = None;
            self.free.push(ino as usize - 1);
            // Every other parent this file was named in may now be idle too.
            for (p, n) in also {
                if let Some(Inode { kind: Kind::Snap { kids, .. }, .. }) = self.get_mut(p) {
                    kids.remove(&n);
                }
                self.release(p);
            }
            match self.get_mut(parent) {
                Some(Inode { kind: Kind::Snap { kids, .. }, .. }) => {
                    kids.remove(&name);
                }
                _ => return,
            }
            ino = parent;
        }
    }

    /// The snapshot root of a snapshot inode.
    fn root_of(&self, ino: u64) -> u64 {
        match self.get(ino).map(|i| &i.kind) {
            Some(Kind::Snap { root: 0, .. }) => ino,
            Some(Kind::Snap { root, .. }) => *root,
            _ => 0,
        }
    }
}

/// A stable inode number for a directory entry the kernel has not looked up (readdir needs
/// one; the kernel uses the number from lookup for the real inode).
fn listing_ino(parent: u64, name: &[u8]) -> u64 {
    let h = blake3::hash(&[&parent.to_le_bytes()[..], name].concat());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or([0; 8])) | (1 << 63)
}

/// Decrypted blobs, shared with the threads that read ahead.
struct BlobCache {
    repo: Arc<Repository>,
    lru: Mutex<lru::LruCache<Id, Arc<Vec<u8>>>>,
    /// Blobs being read ahead; readers of one wait for it instead of reading it twice.
    pending: Mutex<HashSet<Id>>,
    arrived: Condvar,
}

impl BlobCache {
    fn get(&self, id: &Id) -> Result<Arc<Vec<u8>>, Errno> {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            while pending.contains(id) {
                pending = self.arrived.wait(pending).unwrap_or_else(|p| p.into_inner());
            }
        }
        if let Some(b) = self.lru.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(b.clone());
        }
        let data = Arc::new(self.repo.read_blob(BlobKind::Data, id).map_err(|e| {
            tracing::error!("cannot read data: {e}");
            Errno::EIO
        })?);
        self.lru.lock().unwrap_or_else(|p| p.into_inner()).put(*id, data.clone());
        Ok(data)
    }

    /// Decrypt `id` on another thread, so a sequential reader finds it ready.
    fn prefetch(self: &Arc<Self>, id: Id) {
        if self.lru.lock().unwrap_or_else(|p| p.into_inner()).contains(&id) {
            return;
        }
        if !self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id) {
            return;
        }
        let me = self.clone();
        std::thread::spawn(move || {
            if let Ok(data) = me.repo.read_blob(BlobKind::Data, &id) {
                me.lru.lock().unwrap_or_else(|p| p.into_inner()).put(id, Arc::new(data));
            }
            me.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            me.arrived.notify_all();
        });
    }
}

/// The filesystem.
pub struct SnapshotFs {
    repo: Arc<Repository>,
    inodes: RwLock<Table>,
    blobs: Arc<BlobCache>,
    owner: (u32, u32),
    mounted_at: SystemTime,
}

fn to_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn file_type(k: NodeKind) -> FileType {
    match k {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::BlockDevice => FileType::BlockDevice,
        NodeKind::CharDevice => FileType::CharDevice,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Socket => FileType::Socket,
        // Written by a newer arca: listed, but reading it fails (EINVAL).
        NodeKind::Unknown => FileType::RegularFile,
    }
}

/// A name for a snapshot directory: local time, then the id prefix.
fn snapshot_name(e: &SnapshotEntry) -> String {
    let t = e.time().map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%dT%H:%M:%S").to_string());
    format!("{}_{}", t.unwrap_or_else(|| e.snapshot.time.clone()), e.id.short())
}

impl SnapshotFs {
    /// Build the layout for `snapshots` (oldest first).
    pub fn new(repo: Arc<Repository>, snapshots: &[SnapshotEntry]) -> SnapshotFs {
        let owner = (nix_uid(), nix_gid());
        let mut inodes = Table::default();
        let mut add = |parent: u64, kind: Kind| {
            inodes.alloc(Inode { parent, name: vec![], also: vec![], lookups: 0, permanent: true, kind })
        };
        let root = add(1, Kind::Virtual(BTreeMap::new()));
        let snaps_dir = add(root, Kind::Virtual(BTreeMap::new()));
        let hosts_dir = add(root, Kind::Virtual(BTreeMap::new()));
        let tags_dir = add(root, Kind::Virtual(BTreeMap::new()));
        let mut snap_children = BTreeMap::new();
        let mut hosts: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> = BTreeMap::new();
        let mut tags: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> = BTreeMap::new();
        let mut latest_name = None;
        for e in snapshots {
            let name = snapshot_name(e);
            let mut node = Node::new(name.as_bytes(), NodeKind::Dir);
            node.mode = 0o755;
            node.uid = owner.0;
            node.gid = owner.1;
            node.mtime_ns = e.time().and_then(|t| t.timestamp_nanos_opt()).unwrap_or(0);
            node.ctime_ns = node.mtime_ns;
            node.subtree = Some(e.snapshot.tree);
            let kind = Kind::Snap { node: Arc::new(node), tree: None, kids: HashMap::new(), extents: None, root: 0 };
            let ino = add(snaps_dir, kind);
            snap_children.insert(name.clone().into_bytes(), ino);
            let short = name.split('_').next().unwrap_or(&name).to_string();
            let link = format!("../../snapshots/{name}").into_bytes();
            let file = |dir: &mut BTreeMap<Vec<u8>, Vec<u8>>| {
                let entry_name = if dir.contains_key(short.as_bytes()) { name.clone() } else { short.clone() };
                dir.insert(entry_name.into_bytes(), link.clone());
                dir.insert(b"latest".to_vec(), link.clone());
            };
            file(hosts.entry(e.snapshot.hostname.clone()).or_default());
            for t in &e.snapshot.tags {
                file(tags.entry(t.clone()).or_default());
            }
            latest_name = Some(name);
        }
        if let Some(name) = latest_name {
            let ino = add(snaps_dir, Kind::Link(name.into_bytes()));
            snap_children.insert(b"latest".to_vec(), ino);
        }
        let mut fill = |dir: u64, groups: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>| {
            let mut top = BTreeMap::new();
            for (group, links) in groups {
                let gino = add(dir, Kind::Virtual(BTreeMap::new()));
                let mut kids = BTreeMap::new();
                for (n, target) in links {
                    kids.insert(n, add(gino, Kind::Link(target)));
                }
                top.insert(group.replace('/', "_").into_bytes(), (gino, kids));
            }
            top
        };
        let host_dirs = fill(hosts_dir, hosts);
        let tag_dirs = fill(tags_dir, tags);
        let set = |inodes: &mut Table, ino: u64, kids: BTreeMap<Vec<u8>, u64>| {
            if let Some(i) = inodes.get_mut(ino) {
                i.kind = Kind::Virtual(kids);
            }
        };
        for (top, dirs) in [(hosts_dir, host_dirs), (tags_dir, tag_dirs)] {
            let mut kids = BTreeMap::new();
            for (name, (gino, gkids)) in dirs {
                set(&mut inodes, gino, gkids);
                kids.insert(name, gino);
            }
            set(&mut inodes, top, kids);
        }
        set(&mut inodes, snaps_dir, snap_children);
        let root_kids = BTreeMap::from([
            (b"snapshots".to_vec(), snaps_dir),
            (b"hosts".to_vec(), hosts_dir),
            (b"tags".to_vec(), tags_dir),
        ]);
        set(&mut inodes, root, root_kids);
        SnapshotFs {
            repo: repo.clone(),
            inodes: RwLock::new(inodes),
            blobs: Arc::new(BlobCache {
                repo,
                lru: Mutex::new(lru::LruCache::new(NonZeroUsize::new(BLOB_CACHE).unwrap_or(NonZeroUsize::MIN))),
                pending: Mutex::new(HashSet::new()),
                arrived: Condvar::new(),
            }),
            owner,
            mounted_at: SystemTime::now(),
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let inodes = self.inodes.read().unwrap_or_else(|p| p.into_inner());
        let i = inodes.get(ino)?;
        let virt = |kind, size, perm| FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: 0,
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            crtime: self.mounted_at,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: self.owner.0,
            gid: self.owner.1,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        Some(match &i.kind {
            Kind::Virtual(_) => virt(FileType::Directory, 0, 0o555),
            Kind::Link(t) => virt(FileType::Symlink, t.len() as u64, 0o777),
            Kind::Snap { node: n, .. } => FileAttr {
                ino: INodeNo(ino),
                size: n.size,
                blocks: n.content_len().div_ceil(512),
                atime: to_time(if n.atime_ns != 0 { n.atime_ns } else { n.mtime_ns }),
                mtime: to_time(n.mtime_ns),
                ctime: to_time(n.ctime_ns),
                crtime: to_time(n.mtime_ns),
                kind: file_type(n.kind),
                perm: (n.mode & 0o7777) as u16,
                nlink: if n.kind == NodeKind::Dir { 2 } else { n.links.max(1) as u32 },
                uid: n.uid,
                gid: n.gid,
                rdev: n.rdev as u32,
                blksize: 4096,
                flags: 0,
            },
        })
    }

    /// The tree of snapshot directory `ino`, read on first use.
    fn tree_of(&self, ino: u64) -> Result<Arc<Tree>, Errno> {
        let subtree = {
            let inodes = self.inodes.read().unwrap_or_else(|p| p.into_inner());
            match &inodes.get(ino).ok_or(Errno::ENOENT)?.kind {
                Kind::Snap { tree: Some(t), .. } => return Ok(t.clone()),
                Kind::Snap { node, .. } if node.kind == NodeKind::Dir => node.subtree,
                _ => return Err(Errno::ENOTDIR),
            }
        };
        let tree = Arc::new(match subtree {
            Some(id) => self.repo.read_tree(&id).map_err(|e| {
                tracing::error!("cannot read directory: {e}");
                Errno::EIO
            })?,
            None => Tree::default(),
        });
        let mut inodes = self.inodes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(Inode { kind: Kind::Snap { tree: t, .. }, .. }) = inodes.get_mut(ino) {
            return Ok(t.get_or_insert(tree).clone());
        }
        Ok(tree)
    }

    /// The entries of directory `ino`: name, inode number (real if held, else a listing
    /// number), type.
    fn entries(&self, ino: u64) -> Result<Vec<(Vec<u8>, u64, FileType)>, Errno> {
        let virtual_kids = {
            let inodes = self.inodes.read().unwrap_or_else(|p| p.into_inner());
            match &inodes.get(ino).ok_or(Errno::ENOENT)?.kind {
                Kind::Virtual(c) => Some(c.clone()),
                Kind::Link(_) => return Err(Errno::ENOTDIR),
                Kind::Snap { .. } => None,
            }
        };
        if let Some(kids) = virtual_kids {
            return Ok(kids
                .into_iter()
                .map(|(n, child)| {
                    let kind = self.attr(child).map(|a| a.kind).unwrap_or(FileType::Directory);
                    (n, child, kind)
                })
                .collect());
        }
        let tree = self.tree_of(ino)?;
        let inodes = self.inodes.read().unwrap_or_else(|p| p.into_inner());
        let held = match &inodes.get(ino).ok_or(Errno::ENOENT)?.kind {
            Kind::Snap { kids, .. } => kids.clone(),
            _ => HashMap::new(),
        };
        Ok(tree
            .nodes
            .iter()
            .map(|n| {
                let child = held.get(n.name.as_slice()).copied().unwrap_or_else(|| listing_ino(ino, &n.name));
                (n.name.to_vec(), child, file_type(n.kind))
            })
            .collect())
    }

    /// Look `name` up in directory `parent`, taking a kernel reference on the child.
    fn child(&self, parent: u64, name: &[u8]) -> Result<u64, Errno> {
        {
            let mut inodes = self.inodes.write().unwrap_or_else(|p| p.into_inner());
            let found = match &inodes.get(parent).ok_or(Errno::ENOENT)?.kind {
                Kind::Virtual(c) => Some(c.get(name).copied().ok_or(Errno::ENOENT)?),
                Kind::Link(_) => return Err(Errno::ENOTDIR),
                Kind::Snap { kids, .. } => kids.get(name).copied(),
            };
            if let Some(child) = found {
                if let Some(c) = inodes.get_mut(child) {
                    c.lookups += 1;
                }
                return Ok(child);
            }
        }
        let tree = self.tree_of(parent)?;
        let node = tree.find(name).ok_or(Errno::ENOENT)?.clone();
        let mut inodes = self.inodes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(Inode { kind: Kind::Snap { kids, .. }, .. }) = inodes.get(parent) {
            if let Some(&child) = kids.get(name) {
                // Another thread looked it up meanwhile.
                if let Some(c) = inodes.get_mut(child) {
                    c.lookups += 1;
                }
                return Ok(child);
            }
        }
        let root = inodes.root_of(parent);
        let link_key = node.is_hardlinked().then_some((root, node.device, node.inode));
        // A member that differs from the inode it would share (a crafted tree joining a file
        // with a device, say) gets an inode of its own: it shows as what it claims to be.
        let shared = link_key.and_then(|k| inodes.links.get(&k).copied()).filter(|&ino| {
            matches!(inodes.get(ino), Some(Inode { kind: Kind::Snap { node: first, .. }, .. })
                if node.link_mismatch(first).is_none())
        });
        let child = match shared {
            // Another name of a hard-linked file whose inode the kernel holds: the same inode.
            Some(ino) => {
                if let Some(c) = inodes.get_mut(ino) {
                    c.lookups += 1;
                    c.also.push((parent, name.to_vec()));
                }
                ino
            }
            None => {
                let kind = Kind::Snap { node: Arc::new(node), tree: None, kids: HashMap::new(), extents: None, root };
                let ino = inodes.alloc(Inode {
                    parent,
                    name: name.to_vec(),
                    also: vec![],
                    lookups: 1,
                    permanent: false,
                    kind,
                });
                if let Some(k) = link_key {
                    inodes.links.entry(k).or_insert(ino);
                }
                ino
            }
        };
        if let Some(Inode { kind: Kind::Snap { kids, .. }, .. }) = inodes.get_mut(parent) {
            kids.insert(name.to_vec(), child);
        }
        Ok(child)
    }

    fn node(&self, ino: u64) -> Option<Arc<Node>> {
        let inodes = self.inodes.read().unwrap_or_else(|p| p.into_inner());
        match &inodes.get(ino)?.kind {
            Kind::Snap { node, .. } => Some(node.clone()),
            _ => None,
        }
    }

    /// Where each byte range of file `ino` comes from (computed once per file).
    fn extents(&self, ino: u64) -> Result<Arc<Vec<Extent>>, Errno> {
        let node = {
            let inodes = self.inodes.read().unwrap_or_else(|p| p.into_inner());
            match &inodes.get(ino).ok_or(Errno::ENOENT)?.kind {
                Kind::Snap { extents: Some(e), .. } => return Ok(e.clone()),
                Kind::Snap { node, .. } if node.kind == NodeKind::File => node.clone(),
                Kind::Snap { node, .. } if node.kind == NodeKind::Dir => return Err(Errno::EISDIR),
                _ => return Err(Errno::EINVAL),
            }
        };
        let mut out = Vec::with_capacity(node.content.len());
        let mut holes = node.holes.iter().peekable();
        let mut pos = 0u64;
        {
            let index = self.repo.index();
            for id in &node.content {
                let len = index.get(id).ok_or(Errno::EIO)?.raw_length as u64;
                let mut done = 0;
                while done < len {
                    while let Some(&&(hs, hl)) = holes.peek() {
                        if pos >= hs {
                            pos = pos.max(hs + hl);
                            holes.next();
                        } else {
                            break;
                        }
                    }
                    let room = holes.peek().map(|h| h.0 - pos).unwrap_or(u64::MAX);
                    let n = room.min(len - done);
                    out.push(Extent { file_offset: pos, len: n, blob: *id, blob_offset: done });
                    pos += n;
                    done += n;
                }
            }
        }
        let out = Arc::new(out);
        let mut inodes = self.inodes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(Inode { kind: Kind::Snap { extents, .. }, .. }) = inodes.get_mut(ino) {
            *extents = Some(out.clone());
        }
        Ok(out)
    }

    fn read_range(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let node = self.node(ino).ok_or(Errno::ENOENT)?;
        let end = (offset + size as u64).min(node.size);
        if offset >= end {
            return Ok(vec![]);
        }
        let ext = self.extents(ino)?;
        let mut out = vec![0u8; (end - offset) as usize];
        let first = ext.partition_point(|e| e.file_offset + e.len <= offset);
        for e in &ext[first..] {
            if e.file_offset >= end {
                break;
            }
            let from = offset.max(e.file_offset);
            let to = end.min(e.file_offset + e.len);
            let data = self.blobs.get(&e.blob)?;
            let src = (e.blob_offset + (from - e.file_offset)) as usize;
            let dst = (from - offset) as usize;
            let n = (to - from) as usize;
            out[dst..dst + n].copy_from_slice(data.get(src..src + n).ok_or(Errno::EIO)?);
        }
        // Read ahead the next two blobs of the file.
        let next = ext.partition_point(|e| e.file_offset < end);
        for e in ext[next..].iter().take(2) {
            self.blobs.prefetch(e.blob);
        }
        Ok(out)
    }

    fn xattr_reply(data: Vec<u8>, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(data.len() as u32);
        } else if (size as usize) < data.len() {
            reply.error(Errno::ERANGE);
        } else {
            reply.data(&data);
        }
    }
}

fn nix_uid() -> u32 {
    // SAFETY: getuid/getgid cannot fail.
    unsafe { libc::getuid() }
}

fn nix_gid() -> u32 {
    // SAFETY: as above.
    unsafe { libc::getgid() }
}

impl Filesystem for SnapshotFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let child = match self.child(parent.0, name.as_bytes()) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        match self.attr(child) {
            Some(attr) => {
                let ttl = if self.node(child).is_some() { TTL_CONTENT } else { TTL_VIRTUAL };
                reply.entry(&ttl, &attr, Generation(0))
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut inodes = self.inodes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = inodes.get_mut(ino.0) {
            i.lookups = i.lookups.saturating_sub(nlookup);
        }
        inodes.release(ino.0);
        tracing::debug!(live = inodes.slots.len() - inodes.free.len(), "forget");
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(a) => reply.attr(if self.node(ino.0).is_some() { &TTL_CONTENT } else { &TTL_VIRTUAL }, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let inodes = self.inodes.read().unwrap_or_else(|p| p.into_inner());
        match inodes.get(ino.0).map(|i| &i.kind) {
            Some(Kind::Link(t)) => reply.data(t),
            Some(Kind::Snap { node, .. }) if node.kind == NodeKind::Symlink => {
                reply.data(node.target.as_ref().map(|t| t.as_slice()).unwrap_or_default())
            }
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & (libc::O_WRONLY | libc::O_RDWR) != 0 {
            return reply.error(Errno::EROFS);
        }
        match self.extents(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_range(ino.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let kids = match self.entries(ino.0) {
            Ok(k) => k,
            Err(e) => return reply.error(e),
        };
        let parent = self.inodes.read().unwrap_or_else(|p| p.into_inner()).get(ino.0).map(|i| i.parent).unwrap_or(1);
        let dots = [(b".".to_vec(), ino.0, FileType::Directory), (b"..".to_vec(), parent, FileType::Directory)];
        for (i, (name, child, kind)) in dots.into_iter().chain(kids).enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, OsStr::from_bytes(&name)) {
                break;
            }
        }
        reply.ok();
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock: LockOwner, reply: ReplyEmpty) {
        // Nothing is ever written, so there is nothing to flush.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let Some(node) = self.node(ino.0) else { return reply.error(Errno::ENODATA) };
        match node.xattrs.iter().find(|x| x.name.as_slice() == name.as_bytes()) {
            Some(x) => Self::xattr_reply(x.value.to_vec(), size, reply),
            None => reply.error(Errno::ENODATA),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let mut data = vec![];
        if let Some(node) = self.node(ino.0) {
            for x in &node.xattrs {
                data.extend_from_slice(&x.name);
                data.push(0);
            }
        }
        Self::xattr_reply(data, size, reply);
    }
}

/// Mount options for a read-only view.
pub fn config(allow_other: bool) -> fuser::Config {
    let mut c = fuser::Config::default();
    c.mount_options.extend([
        fuser::MountOption::RO,
        fuser::MountOption::FSName("arca".into()),
        fuser::MountOption::Subtype("arca".into()),
        fuser::MountOption::Dev,
        fuser::MountOption::Suid,
    ]);
    if allow_other {
        c.acl = fuser::SessionACL::All;
    }
    c.n_threads = Some(4);
    c
}
