//! Stats: how big snapshots are when restored, and how much stored data they use.

use crate::snapshots::SnapshotEntry;
use crate::treewalk::{walk, Visit};
use crate::{RepoResult, Repository};
use arca_format::{Id, NodeKind};
use serde::Serialize;
use std::collections::HashSet;

/// Which size to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsMode {
    /// Bytes a restore writes (hardlinked files counted once).
    RestoreSize,
    /// Unique blobs the snapshots use, before and after compression.
    RawData,
}

/// The numbers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub snapshots: usize,
    pub files: u64,
    pub dirs: u64,
    pub total_size: u64,
    pub blobs: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

/// Compute stats over `snaps`.
pub fn stats(repo: &Repository, snaps: &[SnapshotEntry], mode: StatsMode) -> RepoResult<Stats> {
    let mut st = Stats { snapshots: snaps.len(), ..Default::default() };
    let mut blobs: HashSet<Id> = HashSet::new();
    let mut trees: HashSet<Id> = HashSet::new();
    for s in snaps {
        let mut links: HashSet<(u64, u64)> = HashSet::new();
        // Directories on the way to the backed-up paths are not part of what was backed up
        // (a backup of /home/a has the directory `home` in its tree): they are not counted.
        let leading: HashSet<Vec<u8>> = s
            .snapshot
            .paths
            .iter()
            .flat_map(|p| {
                let p = p.trim_matches('/').as_bytes().to_vec();
                (0..p.len())
                    .filter(|&i| p[i] == b'/')
                    .map(|i| p[..i].to_vec())
                    .chain(std::iter::once(vec![]))
                    .collect::<Vec<_>>()
            })
            .collect();
        if mode == StatsMode::RawData {
            trees.insert(s.snapshot.tree);
        } else {
            // Every name of a shared directory is walked: refuse a crafted tree that would
            // expand beyond the readers' limits before walking it.
            crate::limits::measure(repo, &s.snapshot.tree)?;
        }
        walk(
            repo,
            &s.snapshot.tree,
            &mut |path, n| {
                match n.kind {
                    NodeKind::Dir => {
                        if !leading.contains(path) {
                            st.dirs += 1;
                        }
                        if let Some(t) = n.subtree {
                            if mode == StatsMode::RawData && !trees.insert(t) {
                                return Ok(Visit::SkipDir);
                            }
                        }
                    }
                    NodeKind::File => {
                        if !n.is_hardlinked() || links.insert((n.device, n.inode)) {
                            st.files += 1;
                            st.total_size = st.total_size.saturating_add(n.size);
                        }
                        if mode == StatsMode::RawData {
                            blobs.extend(n.content.iter().copied());
                        }
                    }
                    _ => st.files += 1,
                }
                Ok(Visit::Continue)
            },
            &mut |_, _| {},
        )?;
    }
    if mode == StatsMode::RawData {
        let ix = repo.index();
        for id in blobs.iter().chain(trees.iter()) {
            if let Some(loc) = ix.get(id) {
                st.blobs += 1;
                st.raw_bytes += loc.raw_length as u64;
                st.stored_bytes += loc.length as u64;
            }
        }
    }
    Ok(st)
}
