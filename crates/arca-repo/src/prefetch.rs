//! Trees read ahead. On a repository behind a network every tree read waits a round trip,
//! and a walk that reads trees one at a time spends its time waiting (a restore of 194
//! directories over a 40 ms link waited 9 s per walk). A walker names the subtrees it will
//! visit next; up to [`WINDOW`] of them are read at once and kept until asked for. On a
//! local repository nothing is read ahead: the disk answers at once, and threads would cost
//! more than they save.

use crate::{RepoResult, Repository};
use arca_format::{Id, NodeKind, Tree};
use std::collections::HashMap;

/// Trees read at once.
pub const WINDOW: usize = 32;

/// Levels below the trees named that are read ahead.
pub const LEVELS: usize = 8;

/// Trees kept at most (about 1 KiB each for a directory of ten entries).
pub const KEPT: usize = 4096;

/// A tree reader for one walk.
pub struct TreeAhead<'r> {
    repo: &'r Repository,
    on: bool,
    /// Read ahead, not asked for yet (a failed read is not kept: asked for, it is read again
    /// and its error reported then).
    kept: HashMap<Id, Tree>,
}

impl<'r> TreeAhead<'r> {
    /// Reading ahead where the repository is remote.
    pub fn new(repo: &'r Repository) -> TreeAhead<'r> {
        TreeAhead { repo, on: repo.is_remote(), kept: HashMap::new() }
    }

    /// Tree `id`: the one read ahead, or read now.
    pub fn read(&mut self, id: &Id) -> RepoResult<Tree> {
        match self.kept.remove(id) {
            Some(t) => Ok(t),
            None => self.repo.read_tree(id),
        }
    }

    /// Start reading these trees and what lies below them (the walk's next ones, in its
    /// order), level by level, up to [`WINDOW`] at once, [`LEVELS`] levels down, while fewer
    /// than [`KEPT`] are kept: chains of single directories cost one round trip per level,
    /// not one per directory. Only trees the walk will ask for should be named: one never
    /// asked for stays in memory until the walk ends.
    pub fn ahead(&mut self, ids: impl IntoIterator<Item = Id>) {
        if !self.on {
            return;
        }
        let mut frontier: Vec<Id> = ids.into_iter().collect();
        for _ in 0..LEVELS {
            if frontier.is_empty() || self.kept.len() >= KEPT {
                return;
            }
            let mut want: Vec<Id> = vec![];
            for id in &frontier {
                if want.len() == WINDOW {
                    break;
                }
                if !self.kept.contains_key(id) && !want.contains(id) {
                    want.push(*id);
                }
            }
            let repo = self.repo;
            let read: Vec<(Id, Option<Tree>)> = std::thread::scope(|s| {
                let reads: Vec<_> = want.iter().map(|id| (*id, s.spawn(move || repo.read_tree(id).ok()))).collect();
                reads.into_iter().map(|(id, r)| (id, r.join().ok().flatten())).collect()
            });
            for (id, tree) in read {
                if let Some(t) = tree {
                    self.kept.insert(id, t);
                }
            }
            // The next level: below what is kept of this one.
            frontier = frontier
                .iter()
                .filter_map(|id| self.kept.get(id))
                .flat_map(|t| t.nodes.iter().filter(|n| n.kind == NodeKind::Dir).filter_map(|n| n.subtree))
                .collect();
        }
    }
}

/// Read the trees below `root` breadth first into the repository's tree cache (a remote
/// repository; nothing on a local one), [`WINDOW`] at once, at most [`KEPT`] trees and
/// `max_depth` levels: a walk that follows finds them there. A level costs a round trip per
/// [`WINDOW`] trees, where a depth-first walk that reads ahead below each tree it visits
/// waits again at every branch.
pub fn prime(repo: &Repository, root: &Id, max_depth: usize) {
    if !repo.is_remote() {
        return;
    }
    let mut level = vec![*root];
    let mut seen: std::collections::HashSet<Id> = level.iter().copied().collect();
    let mut read = 0usize;
    for _ in 0..max_depth {
        if level.is_empty() || read >= KEPT {
            return;
        }
        let mut next = vec![];
        for window in level.chunks(WINDOW) {
            let trees: Vec<Option<Tree>> = std::thread::scope(|s| {
                let reads: Vec<_> = window.iter().map(|id| s.spawn(move || repo.read_tree(id).ok())).collect();
                reads.into_iter().map(|r| r.join().ok().flatten()).collect()
            });
            read += window.len();
            for t in trees.into_iter().flatten() {
                let subtrees = t.nodes.iter().filter(|n| n.kind == NodeKind::Dir).filter_map(|n| n.subtree);
                next.extend(subtrees.filter(|id| seen.insert(*id)));
            }
            if read >= KEPT {
                return;
            }
        }
        level = next;
    }
}
