//! Caps on what a key holder's crafted objects can make a reader do. Trees are content
//! addressed, so one tree can be named by many entries: 40 levels of directories that each name
//! the same subdirectory twice are 40 small trees that expand to a trillion entries. A walk that
//! would expand that far, or nest deeper than any real filesystem, is refused before it starts.

use crate::{RepoError, RepoResult, Repository};
use arca_format::{Id, NodeKind};
use std::collections::HashMap;

/// The deepest directory nesting a reader follows. PATH_MAX (4096) allows at most 2048 levels
/// of one-letter names; real trees stay far below this, and recursive walkers stay well inside
/// a thread's stack.
pub const MAX_TREE_DEPTH: usize = 1024;

/// The most entries a walk of one snapshot visits, counting every name of a shared directory:
/// far beyond any real snapshot (the largest known repositories hold a few hundred million
/// files), far below what would keep a restore busy for years.
pub const MAX_EXPANDED_ENTRIES: u64 = 1 << 34;

/// The size of a snapshot's tree as a full walk sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    /// Entries a walk visits (a directory named twice counts twice, with all it holds).
    pub entries: u64,
    /// The deepest nesting of directories below the root (the root's entries are depth 1).
    pub depth: usize,
    /// Bytes of file contents (holes left out) a restore writes, hardlinked files counted
    /// at every name: the progress total of a restore.
    pub content_bytes: u64,
}

/// Measure the walk below `root` reading each distinct tree once, and refuse a walk beyond
/// [`MAX_EXPANDED_ENTRIES`] or [`MAX_TREE_DEPTH`]. Unreadable trees count as empty: the walk
/// itself reports them.
pub fn measure(repo: &Repository, root: &Id) -> RepoResult<Extent> {
    measure_with(repo, root, MAX_EXPANDED_ENTRIES, MAX_TREE_DEPTH)
}

/// [`measure`] with explicit caps (tests use small ones).
pub fn measure_with(repo: &Repository, root: &Id, max_entries: u64, max_depth: usize) -> RepoResult<Extent> {
    /// A tree being measured: its subtrees still to visit, and what is summed so far.
    struct Frame {
        id: Id,
        subtrees: Vec<Id>,
        extent: Extent,
    }
    let mut done: HashMap<Id, Extent> = HashMap::new();
    crate::prefetch::prime(repo, root, max_depth);
    let mut trees = crate::prefetch::TreeAhead::new(repo);
    // Its subtrees not measured yet are read ahead (on a remote repository), in the order
    // they are visited.
    let mut open = |id: Id, done: &HashMap<Id, Extent>| -> Frame {
        let t = trees.read(&id);
        if let Ok(t) = &t {
            let next = t.nodes.iter().filter(|n| n.kind == NodeKind::Dir).filter_map(|n| n.subtree);
            trees.ahead(next.filter(|s| !done.contains_key(s)));
        }
        match t {
            Ok(t) => Frame {
                id,
                extent: Extent {
                    entries: t.nodes.len() as u64,
                    depth: usize::from(!t.nodes.is_empty()),
                    content_bytes: t
                        .nodes
                        .iter()
                        .filter(|n| n.kind == NodeKind::File)
                        .fold(0u64, |sum, n| sum.saturating_add(n.content_len())),
                },
                subtrees: t.nodes.iter().rev().filter(|n| n.kind == NodeKind::Dir).filter_map(|n| n.subtree).collect(),
            },
            Err(_) => Frame { id, subtrees: vec![], extent: Extent::default() },
        }
    };
    let too_deep = || RepoError::LimitExceeded {
        what: format!("the tree below {root}"),
        detail: format!("directories nest more than {max_depth} levels deep"),
    };
    let mut stack = vec![open(*root, &done)];
    while let Some(top) = stack.last_mut() {
        match top.subtrees.pop() {
            Some(sub) => match done.get(&sub) {
                Some(e) => {
                    let e = *e;
                    add(&mut top.extent, e);
                }
                None => {
                    // An id on the current path again would be a cycle; content addressing rules
                    // it out, and the depth cap stops it should a crafted index try.
                    if stack.len() >= max_depth {
                        return Err(too_deep());
                    }
                    stack.push(open(sub, &done));
                }
            },
            None => {
                let Some(finished) = stack.pop() else { break };
                if finished.extent.depth > max_depth {
                    return Err(too_deep());
                }
                if finished.extent.entries > max_entries {
                    return Err(RepoError::LimitExceeded {
                        what: format!("the tree below {root}"),
                        detail: format!(
                            "its directories, counted each time they are named, hold more than {max_entries} entries (tree {} alone expands to {})",
                            finished.id,
                            if finished.extent.entries == u64::MAX { "more than 2^64".to_string() } else { finished.extent.entries.to_string() }
                        ),
                    });
                }
                match stack.last_mut() {
                    Some(parent) => add(&mut parent.extent, finished.extent),
                    None => return Ok(finished.extent),
                }
                done.insert(finished.id, finished.extent);
            }
        }
    }
    Ok(Extent::default())
}

/// Add a subtree's extent to its parent's (saturating: a crafted DAG can exceed 2^64).
fn add(parent: &mut Extent, sub: Extent) {
    parent.entries = parent.entries.saturating_add(sub.entries);
    parent.content_bytes = parent.content_bytes.saturating_add(sub.content_bytes);
    parent.depth = parent.depth.max(sub.depth.saturating_add(1));
}

/// [`measure`] what a path lookup found: the tree below a directory, nothing for a single
/// entry.
pub fn measure_found(repo: &Repository, found: &crate::treewalk::Found) -> RepoResult<Option<Extent>> {
    use crate::treewalk::Found;
    match found {
        Found::Root(t) => measure(repo, t).map(Some),
        Found::Node(n) => n.subtree.map(|t| measure(repo, &t)).transpose(),
    }
}
