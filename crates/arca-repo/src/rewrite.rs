//! Rewriting snapshots without some of their entries (`arca rewrite`): a secret backed up by
//! mistake leaves the snapshots, and the next prune takes its data out of the repository.
//! Only the trees on the way to a removed entry are written anew; everything else keeps its
//! blobs.

use crate::{BlobWriter, RepoResult, Repository};
use arca_format::{encode, BlobKind, Id, Node, NodeKind, Tree};
use std::collections::HashMap;

/// Decides which entries go: the entry's absolute path in the snapshot (`/home/a/.env`) and
/// whether it is a directory.
pub type Drop<'a> = &'a dyn Fn(&std::path::Path, bool) -> bool;

/// One snapshot's tree without the entries `drop` selects.
pub struct Rewriter<'a> {
    pub repo: &'a Repository,
    /// Where new trees go; `None` computes what would go and writes nothing (a dry run).
    pub writer: Option<&'a BlobWriter>,
    pub drop: Drop<'a>,
    /// Trees already rewritten, by id: the same directory in many snapshots is done once.
    done: HashMap<(Id, Vec<u8>), Option<Id>>,
}

impl<'a> Rewriter<'a> {
    pub fn new(repo: &'a Repository, writer: Option<&'a BlobWriter>, drop: Drop<'a>) -> Rewriter<'a> {
        Rewriter { repo, writer, drop, done: HashMap::new() }
    }

    /// The new root tree, or `None` if nothing below `root` is dropped; `removed` gets the
    /// paths of the entries that went.
    pub fn tree(&mut self, root: &Id, removed: &mut Vec<String>) -> RepoResult<Option<Id>> {
        self.subtree(root, b"", removed)
    }

    fn subtree(&mut self, id: &Id, path: &[u8], removed: &mut Vec<String>) -> RepoResult<Option<Id>> {
        let key = (*id, path.to_vec());
        if let Some(r) = self.done.get(&key) {
            return Ok(*r);
        }
        let tree = self.repo.read_tree(id)?;
        let mut nodes: Vec<Node> = Vec::with_capacity(tree.nodes.len());
        let mut changed = false;
        for n in tree.nodes {
            let child = [path, b"/", &n.name].concat();
            let shown = std::path::Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&child));
            if (self.drop)(shown, n.kind == NodeKind::Dir) {
                removed.push(String::from_utf8_lossy(&child).into_owned());
                changed = true;
                continue;
            }
            let mut n = n;
            if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
                if let Some(new) = self.subtree(&sub, &child, removed)? {
                    n.subtree = Some(new);
                    changed = true;
                }
            }
            nodes.push(n);
        }
        let result = if !changed {
            None
        } else {
            let bytes = encode("tree", &Tree { nodes })?;
            match self.writer {
                Some(w) => Some(w.add(BlobKind::Tree, &bytes)?.0),
                None => Some(self.repo.default_key().blob_id(&bytes)),
            }
        };
        self.done.insert(key, result);
        Ok(result)
    }
}
