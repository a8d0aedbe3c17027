//! Metadata: from `lstat` and xattrs into a Node, and from a Node back onto a restored path.

use arca_format::tree::Xattr;
use arca_format::{Node, NodeKind};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use serde_bytes::ByteBuf;
use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// The node kind of a file type.
pub fn kind_of(md: &Metadata) -> NodeKind {
    let t = md.file_type();
    if t.is_dir() {
        NodeKind::Dir
    } else if t.is_symlink() {
        NodeKind::Symlink
    } else if t.is_block_device() {
        NodeKind::BlockDevice
    } else if t.is_char_device() {
        NodeKind::CharDevice
    } else if t.is_fifo() {
        NodeKind::Fifo
    } else if t.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    }
}

/// uid/gid → name, looked up once each.
#[derive(Default)]
pub struct NameCache {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
}

impl NameCache {
    fn user(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| nix::unistd::User::from_uid(uid.into()).ok().flatten().map(|u| u.name))
            .clone()
    }
    fn group(&mut self, gid: u32) -> Option<String> {
        self.groups
            .entry(gid)
            .or_insert_with(|| nix::unistd::Group::from_gid(gid.into()).ok().flatten().map(|g| g.name))
            .clone()
    }
}

/// A node for `name` from its `lstat` result, without content, subtree or xattrs.
pub fn node_from(name: &[u8], md: &Metadata, names: &mut NameCache) -> Node {
    let kind = kind_of(md);
    let mut n = Node::new(name, kind);
    n.mode = md.mode() & 0o7777;
    n.uid = md.uid();
    n.gid = md.gid();
    n.user = names.user(n.uid);
    n.group = names.group(n.gid);
    n.mtime_ns = md.mtime() * 1_000_000_000 + md.mtime_nsec();
    // Listing a directory updates its atime, so recording it would change every tree on
    // every backup and defeat tree deduplication; directories keep atime 0 (not restored).
    if kind != NodeKind::Dir {
        n.atime_ns = md.atime() * 1_000_000_000 + md.atime_nsec();
    }
    n.ctime_ns = md.ctime() * 1_000_000_000 + md.ctime_nsec();
    if matches!(kind, NodeKind::File | NodeKind::Symlink) {
        n.size = md.size();
    }
    if matches!(kind, NodeKind::BlockDevice | NodeKind::CharDevice) {
        n.rdev = md.rdev();
    }
    n.inode = md.ino();
    n.device = md.dev();
    if kind != NodeKind::Dir {
        n.links = md.nlink();
    }
    n
}

/// All extended attributes of `path` (not following symlinks), sorted by name.
pub fn read_xattrs(path: &Path) -> std::io::Result<Vec<Xattr>> {
    let mut out = vec![];
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(e),
    };
    for name in names {
        if let Some(value) = xattr::get(path, &name)? {
            out.push(Xattr { name: ByteBuf::from(name.as_bytes().to_vec()), value: ByteBuf::from(value) });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Kinds of metadata a restore may be unable to set; each is warned about once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetaKind {
    Ownership,
    Mode,
    Xattrs,
    Times,
}

impl MetaKind {
    /// Words for a warning.
    pub fn describe(self) -> &'static str {
        match self {
            MetaKind::Ownership => "ownership",
            MetaKind::Mode => "permissions",
            MetaKind::Xattrs => "extended attributes / ACLs",
            MetaKind::Times => "timestamps",
        }
    }
}

/// Apply ownership, mode, xattrs and times to a restored path, in the order that keeps each
/// (chown clears setuid bits, so mode comes after it; times come last).
pub fn apply(path: &Path, node: &Node, set_owner: bool) -> Vec<(MetaKind, std::io::Error)> {
    let mut failed = vec![];
    if set_owner {
        if let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)) {
            failed.push((MetaKind::Ownership, e));
        }
    }
    if node.kind != NodeKind::Symlink {
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode)) {
            failed.push((MetaKind::Mode, e));
        }
    }
    for x in &node.xattrs {
        let name = std::ffi::OsStr::from_bytes(&x.name);
        if let Err(e) = xattr::set(path, name, &x.value) {
            failed.push((MetaKind::Xattrs, e));
        }
    }
    let ts = |ns: i64| TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    let atime = if node.atime_ns == 0 { TimeSpec::UTIME_OMIT } else { ts(node.atime_ns) };
    if let Err(e) = utimensat(None, path, &atime, &ts(node.mtime_ns), UtimensatFlags::NoFollowSymlink) {
        failed.push((MetaKind::Times, std::io::Error::from(e)));
    }
    failed
}
