//! Differences between two trees: added, removed, and changed entries (content or which
//! metadata). Identical subtrees are skipped by id, so diffing two snapshots of a large,
//! mostly unchanged tree reads only the directories that changed.

use crate::{RepoResult, Repository};
use arca_format::{Id, Node, NodeKind};
use serde::Serialize;

/// One difference.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Change {
    /// `+` added, `-` removed, `M` modified, `T` type changed.
    pub op: char,
    pub path: String,
    /// For `M`: what differs (content, mode, owner, mtime, xattrs, target, device, size).
    pub what: Vec<&'static str>,
}

/// What differs between two nodes of the same name and type.
pub fn node_differences(a: &Node, b: &Node) -> Vec<&'static str> {
    let mut w = vec![];
    if a.kind == NodeKind::File && (a.content != b.content || a.holes != b.holes) {
        w.push("content");
    }
    if a.size != b.size && a.kind != NodeKind::Dir {
        w.push("size");
    }
    if a.mode != b.mode {
        w.push("mode");
    }
    if a.uid != b.uid || a.gid != b.gid {
        w.push("owner");
    }
    if a.mtime_ns != b.mtime_ns && a.kind != NodeKind::Dir {
        w.push("mtime");
    }
    if a.xattrs != b.xattrs {
        w.push("xattrs");
    }
    if a.target != b.target {
        w.push("target");
    }
    if a.rdev != b.rdev {
        w.push("device");
    }
    w
}

fn join(prefix: &str, name: &[u8]) -> String {
    format!("{prefix}/{}", String::from_utf8_lossy(name))
}

/// Every path below tree `id`, for added or removed directories.
fn all_below(repo: &Repository, id: &Id, prefix: &str, op: char, out: &mut Vec<Change>) -> RepoResult<()> {
    for n in repo.read_tree(id)?.nodes {
        one_side(repo, &n, prefix, op, out)?;
    }
    Ok(())
}

/// A node present on one side only, with everything below it.
fn one_side(repo: &Repository, n: &Node, prefix: &str, op: char, out: &mut Vec<Change>) -> RepoResult<()> {
    let p = join(prefix, &n.name);
    out.push(Change { op, path: p.clone(), what: vec![] });
    if let (NodeKind::Dir, Some(sub)) = (n.kind, &n.subtree) {
        all_below(repo, sub, &p, op, out)?;
    }
    Ok(())
}

/// Differences from tree `a` to tree `b` (either may be absent), paths under `prefix`.
pub fn diff_trees(
    repo: &Repository,
    a: Option<&Id>,
    b: Option<&Id>,
    prefix: &str,
    out: &mut Vec<Change>,
) -> RepoResult<()> {
    // Before the shortcut: a summary-only key's snapshots all carry the all-zero tree.
    repo.require_trees("compare snapshots (file names)")?;
    if a == b {
        return Ok(());
    }
    let (ta, tb) = match (a, b) {
        (Some(a), Some(b)) => (repo.read_tree(a)?, repo.read_tree(b)?),
        (Some(a), None) => return all_below(repo, a, prefix, '-', out),
        (None, Some(b)) => return all_below(repo, b, prefix, '+', out),
        (None, None) => return Ok(()),
    };
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let order = match (ta.nodes.get(i), tb.nodes.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                one_side(repo, &ta.nodes[i], prefix, '-', out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                one_side(repo, &tb.nodes[j], prefix, '+', out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&ta.nodes[i], &tb.nodes[j]);
                let p = join(prefix, &x.name);
                if x.kind != y.kind {
                    out.push(Change { op: 'T', path: p.clone(), what: vec!["type"] });
                    let (sa, sb) =
                        (x.subtree.filter(|_| x.kind == NodeKind::Dir), y.subtree.filter(|_| y.kind == NodeKind::Dir));
                    diff_trees(repo, sa.as_ref(), sb.as_ref(), &p, out)?;
                } else {
                    let what = node_differences(x, y);
                    if !what.is_empty() {
                        out.push(Change { op: 'M', path: p.clone(), what });
                    }
                    if x.kind == NodeKind::Dir {
                        diff_trees(repo, x.subtree.as_ref(), y.subtree.as_ref(), &p, out)?;
                    }
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}
