//! Walking a snapshot's trees: visit every node with its path, or find one path.

use crate::{RepoError, RepoResult, Repository};
use arca_format::{Id, Node, NodeKind};

/// What a visitor wants next.
#[derive(PartialEq, Eq)]
pub enum Visit {
    Continue,
    /// Do not descend into this directory.
    SkipDir,
}

/// Visit every node below `tree` depth-first, in name order. `path` is the node's path with
/// `/` separators, relative to the tree's root. Unreadable subtrees go to `on_error` and the
/// walk goes on.
pub fn walk(
    repo: &Repository,
    tree: &Id,
    visit: &mut dyn FnMut(&[u8], &Node) -> RepoResult<Visit>,
    on_error: &mut dyn FnMut(&[u8], RepoError),
) -> RepoResult<()> {
    let mut path = Vec::new();
    walk_inner(repo, tree, &mut path, 1, visit, on_error)
}

fn walk_inner(
    repo: &Repository,
    tree: &Id,
    path: &mut Vec<u8>,
    depth: usize,
    visit: &mut dyn FnMut(&[u8], &Node) -> RepoResult<Visit>,
    on_error: &mut dyn FnMut(&[u8], RepoError),
) -> RepoResult<()> {
    if depth > crate::limits::MAX_TREE_DEPTH {
        return Err(RepoError::LimitExceeded {
            what: format!("/{}", String::from_utf8_lossy(path)),
            detail: format!("directories nest more than {} levels deep", crate::limits::MAX_TREE_DEPTH),
        });
    }
    let t = match repo.read_tree(tree) {
        Ok(t) => t,
        // What the key may not do is no damaged directory: it stops the walk.
        Err(e @ (RepoError::ReaderKey { .. } | RepoError::BackupOnly { .. })) => return Err(e),
        Err(e) => {
            on_error(path, e);
            return Ok(());
        }
    };
    for n in &t.nodes {
        let len = path.len();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&n.name);
        let v = visit(path, n)?;
        if n.kind == NodeKind::Dir && v == Visit::Continue {
            if let Some(sub) = &n.subtree {
                walk_inner(repo, sub, path, depth + 1, visit, on_error)?;
            }
        }
        path.truncate(len);
    }
    Ok(())
}

/// What a path inside a snapshot names.
pub enum Found {
    /// The snapshot root (an empty path).
    Root(Id),
    Node(Box<Node>),
}

/// Find `path` (components separated by `/`) below `root`.
pub fn lookup(repo: &Repository, root: &Id, path: &[u8]) -> RepoResult<Option<Found>> {
    let comps: Vec<&[u8]> = path.split(|b| *b == b'/').filter(|c| !c.is_empty() && *c != b".").collect();
    if comps.is_empty() {
        return Ok(Some(Found::Root(*root)));
    }
    let mut tree = *root;
    for (i, c) in comps.iter().enumerate() {
        let t = repo.read_tree(&tree)?;
        let Some(n) = t.find(c) else { return Ok(None) };
        if i + 1 == comps.len() {
            return Ok(Some(Found::Node(Box::new(n.clone()))));
        }
        match (&n.kind, &n.subtree) {
            (NodeKind::Dir, Some(sub)) => tree = *sub,
            _ => return Ok(None),
        }
    }
    Ok(None)
}
