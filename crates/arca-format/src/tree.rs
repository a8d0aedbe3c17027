//! Trees: one blob per directory, its nodes sorted by name bytes. Names, symlink targets and
//! xattrs are raw bytes: no encoding is assumed.

use crate::Id;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The type of a directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    BlockDevice,
    CharDevice,
    Fifo,
    Socket,
    /// A type a newer arca wrote. Its content ids still count for prune and check; restore,
    /// export and copy refuse the entry (docs/FORMAT.md, "Forward compatibility"). Never
    /// written.
    #[serde(other)]
    Unknown,
}

/// One extended attribute; POSIX ACLs travel as `system.posix_acl_*` attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    pub name: ByteBuf,
    pub value: ByteBuf,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One directory entry with everything needed to restore it exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: ByteBuf,
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub mtime_ns: i64,
    #[serde(default)]
    pub atime_ns: i64,
    #[serde(default)]
    pub ctime_ns: i64,
    /// Logical size in bytes (files), target length (symlinks), 0 otherwise.
    #[serde(default)]
    pub size: u64,
    /// Data blobs whose concatenation is the file's data (holes left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// Holes of a sparse file as (offset, length), ascending; the content fills the rest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holes: Vec<(u64, u64)>,
    /// The tree blob of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// Target of a symlink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ByteBuf>,
    /// Device number of a block or character device.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    /// Source inode and device: nodes with `links > 1` and the same pair are one hardlink group.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inode: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub device: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub links: u64,
}

impl Node {
    /// A node of `kind` named `name` with all metadata zero.
    pub fn new(name: &[u8], kind: NodeKind) -> Node {
        Node {
            name: ByteBuf::from(name.to_vec()),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime_ns: 0,
            atime_ns: 0,
            ctime_ns: 0,
            size: 0,
            content: Vec::new(),
            holes: Vec::new(),
            subtree: None,
            target: None,
            rdev: 0,
            xattrs: Vec::new(),
            inode: 0,
            device: 0,
            links: 0,
        }
    }

    /// Bytes of data a file holds (its size without holes).
    pub fn content_len(&self) -> u64 {
        self.size.saturating_sub(self.holes.iter().map(|h| h.1).sum())
    }

    /// True if this node belongs to a hardlink group.
    pub fn is_hardlinked(&self) -> bool {
        self.kind != NodeKind::Dir && self.links > 1
    }

    /// Why `self` cannot be restored as another name of `first` (the group's first member), if
    /// it cannot: a crafted tree could join a file with a symlink or a device under one
    /// (device, inode) pair and make a restore link a "file" to a disk. A backup gives every
    /// member the same kind.
    pub fn link_mismatch(&self, first: &Node) -> Option<String> {
        if self.kind != first.kind {
            return Some(format!(
                "its hardlink group joins a {} with a {} (a crafted or damaged tree); not restored",
                first.kind.describe(),
                self.kind.describe()
            ));
        }
        // Members that differ in contents are linked anyway, to the first: a file written to
        // while a backup read its names can leave them different, and a link to the first
        // member's contents harms nothing.
        None
    }

    /// The layout checks of one file: holes ascending, apart, inside the file, and a size under
    /// [`MAX_FILE_SIZE`]. The restorer's hole arithmetic relies on them.
    fn validate_layout(&self) -> Result<(), String> {
        if self.size > MAX_FILE_SIZE {
            return Err(format!("a size of {} bytes is beyond the limit of 2^56 bytes", self.size));
        }
        if !matches!(self.kind, NodeKind::File | NodeKind::Unknown)
            && (!self.holes.is_empty() || !self.content.is_empty())
        {
            return Err(format!("a {} with file contents", self.kind.describe()));
        }
        let mut end = 0u64;
        for &(start, len) in &self.holes {
            let Some(hole_end) = start.checked_add(len) else {
                return Err(format!("a hole at {start} of {len} bytes overflows"));
            };
            // A hole may reach past `size`: an older arca wrote that for a file that shrank while
            // it was read, and the restorer's arithmetic is safe with it (the size is set last).
            if start < end || len == 0 || start > self.size {
                return Err(format!(
                    "its sparse map is not ascending, overlaps or starts outside its {} bytes (hole at {start}, {len} bytes)",
                    self.size
                ));
            }
            end = hole_end;
        }
        if self.holes.len() > MAX_HOLES {
            return Err(format!("{} holes is beyond the limit of {MAX_HOLES}", self.holes.len()));
        }
        Ok(())
    }
}

/// The largest file size a reader accepts (64 PiB): beyond any real file, below the sums that
/// would overflow.
pub const MAX_FILE_SIZE: u64 = 1 << 56;

/// The most holes one file may have. A hole is at least one filesystem block, so even a
/// 64 GiB file of alternating 4 KiB blocks stays under it.
pub const MAX_HOLES: usize = 1 << 23;

impl NodeKind {
    /// The kind in words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            NodeKind::File => "regular file",
            NodeKind::Dir => "directory",
            NodeKind::Symlink => "symlink",
            NodeKind::BlockDevice => "block device",
            NodeKind::CharDevice => "character device",
            NodeKind::Fifo => "fifo",
            NodeKind::Socket => "socket",
            NodeKind::Unknown => "entry of an unknown type",
        }
    }
}

/// A directory listing. Nodes are sorted by name and names are unique.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sort nodes by name (the stored order).
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Find a node by name.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.binary_search_by(|n| n.name.as_slice().cmp(name)).ok().map(|i| &self.nodes[i])
    }

    /// Check the invariants a restorer relies on: sorted, unique, every name a single path
    /// component (no `/`, NUL, `.` or `..`, not empty), and every file's size and sparse map
    /// sane.
    pub fn validate(&self) -> Result<(), crate::FormatError> {
        let mut prev: Option<&[u8]> = None;
        for n in &self.nodes {
            let name = n.name.as_slice();
            if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
                return Err(crate::FormatError::Invalid {
                    what: "tree",
                    reason: format!("unsafe entry name {:?}", String::from_utf8_lossy(name)),
                });
            }
            if let Err(reason) = n.validate_layout() {
                return Err(crate::FormatError::Invalid {
                    what: "tree",
                    reason: format!("entry {:?}: {reason}", String::from_utf8_lossy(name)),
                });
            }
            if let Some(p) = prev {
                if p >= name {
                    return Err(crate::FormatError::Invalid {
                        what: "tree",
                        reason: "entries are not sorted and unique".into(),
                    });
                }
            }
            prev = Some(name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(any::<u8>(), 1..40),
            0u8..7,
            any::<u32>(),
            any::<i64>(),
            any::<u64>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..4),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 1..10), proptest::collection::vec(any::<u8>(), 0..10)),
                0..3,
            ),
        )
            .prop_map(|(name, k, mode, t, size, content, target, xattrs)| {
                let kind = [
                    NodeKind::File,
                    NodeKind::Dir,
                    NodeKind::Symlink,
                    NodeKind::BlockDevice,
                    NodeKind::CharDevice,
                    NodeKind::Fifo,
                    NodeKind::Socket,
                ][k as usize];
                let mut n = Node::new(&name, kind);
                n.mode = mode;
                n.mtime_ns = t;
                n.size = size;
                n.content = content.into_iter().map(Id).collect();
                n.target = target.map(ByteBuf::from);
                n.xattrs = xattrs
                    .into_iter()
                    .map(|(a, b)| Xattr { name: ByteBuf::from(a), value: ByteBuf::from(b) })
                    .collect();
                n.rdev = size / 3;
                n.links = size % 5;
                n.holes = vec![(size, t as u64)];
                n
            })
    }

    proptest! {
        #[test]
        fn tree_round_trip(nodes in proptest::collection::vec(arb_node(), 0..10)) {
            let mut t = Tree { nodes };
            t.sort();
            let bytes = crate::encode("tree", &t).unwrap();
            prop_assert_eq!(crate::decode::<Tree>("tree", &bytes).unwrap(), t);
        }
    }

    #[test]
    fn validate_rejects_unsafe_names() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            let t = Tree { nodes: vec![Node::new(bad, NodeKind::File)] };
            assert!(t.validate().is_err(), "{bad:?}");
        }
        let t = Tree { nodes: vec![Node::new(b"b", NodeKind::File), Node::new(b"a", NodeKind::File)] };
        assert!(t.validate().is_err());
        let t = Tree { nodes: vec![Node::new(b"a", NodeKind::File), Node::new(b"b\xff", NodeKind::File)] };
        assert!(t.validate().is_ok());
        assert!(t.find(b"b\xff").is_some());
    }
}
