//! Copy snapshots from one repository into another. Keys differ, so blob ids differ: every
//! blob the destination lacks is read from the source, verified, and added to the destination
//! under its own id, and trees are rewritten with the new ids. A map from source to
//! destination ids, kept in a local file, lets an interrupted copy resume without reading or
//! sending again what already arrived (each entry is trusted only if the destination's index
//! has the blob).

use crate::keyring::ContentKey;
use crate::writer::BlobWriter;
use crate::{RepoError, RepoResult, Repository};
use arca_format::{encode, BlobKind, Id, NodeKind, Snapshot, Tree};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;

/// Source blob id → destination blob id, optionally persisted.
pub struct BlobMap {
    map: HashMap<Id, Id>,
    file: Option<std::fs::File>,
    /// Both repositories share the MAC key: ids are the same on both sides.
    identity: bool,
}

impl BlobMap {
    /// A map for copying blobs made with `src` (a content key of the source) to blobs made
    /// with `dst` (one of the destination's), loaded from (and appended to) `path` if given.
    pub fn open(src: &ContentKey, dst: &ContentKey, path: Option<PathBuf>) -> BlobMap {
        let probe = b"arca copy key probe";
        let identity = src.blob_id(probe) == dst.blob_id(probe);
        let mut map = HashMap::new();
        let mut file = None;
        if let (Some(p), false) = (path, identity) {
            if let Ok(mut f) = std::fs::File::open(&p) {
                let mut bytes = vec![];
                if f.read_to_end(&mut bytes).is_ok() {
                    for rec in bytes.chunks_exact(64) {
                        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
                        a.copy_from_slice(&rec[..32]);
                        b.copy_from_slice(&rec[32..]);
                        map.insert(Id(a), Id(b));
                    }
                }
            }
            let _ = p.parent().map(crate::cachedir::create);
            file = std::fs::OpenOptions::new().create(true).append(true).open(&p).ok();
        }
        BlobMap { map, file, identity }
    }

    fn get(&self, src: &Id) -> Option<Id> {
        if self.identity {
            return Some(*src);
        }
        self.map.get(src).copied()
    }

    fn insert(&mut self, src: Id, dst: Id) {
        if self.identity {
            return;
        }
        if self.map.insert(src, dst).is_none() {
            if let Some(f) = &mut self.file {
                let mut rec = [0u8; 64];
                rec[..32].copy_from_slice(&src.0);
                rec[32..].copy_from_slice(&dst.0);
                let _ = f.write_all(&rec);
            }
        }
    }
}

/// What a copy moved.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyStats {
    pub blobs_sent: u64,
    /// Plaintext bytes of the blobs sent.
    pub bytes_sent: u64,
    pub blobs_present: u64,
    pub trees_rewritten: u64,
}

/// Copies trees and their blobs into a destination writer.
pub struct Copier<'a> {
    pub src: &'a Repository,
    pub writer: &'a BlobWriter,
    pub map: BlobMap,
    pub stats: CopyStats,
    /// Count what would be sent, send nothing.
    pub dry_run: bool,
}

impl Copier<'_> {
    fn present(&self, src: &Id) -> Option<Id> {
        let d = self.map.get(src)?;
        self.writer.repository().index().has_live(&d).then_some(d)
    }

    fn blob(&mut self, kind: BlobKind, id: &Id) -> RepoResult<Id> {
        if let Some(d) = self.present(id) {
            self.stats.blobs_present += 1;
            return Ok(d);
        }
        if self.dry_run {
            self.stats.blobs_sent += 1;
            self.stats.bytes_sent += self.src.index().get(id).map_or(0, |l| l.raw_length as u64);
            return Ok(*id);
        }
        let data = self.src.read_blob(kind, id)?;
        let (d, new) = self.writer.add(kind, &data)?;
        if new {
            self.stats.blobs_sent += 1;
            self.stats.bytes_sent += data.len() as u64;
        } else {
            self.stats.blobs_present += 1;
        }
        self.map.insert(*id, d);
        Ok(d)
    }

    /// Copy the tree `id` and everything below it; returns its id in the destination.
    pub fn tree(&mut self, id: &Id) -> RepoResult<Id> {
        if let Some(d) = self.present(id) {
            self.stats.blobs_present += 1;
            return Ok(d);
        }
        let mut tree: Tree = self.src.read_tree(id)?;
        if let Some(n) = tree.nodes.iter().find(|n| n.kind == NodeKind::Unknown) {
            // Re-encoding the tree would lose the entry's real type.
            return Err(RepoError::NewerFormat {
                what: format!("entry {:?} of tree {id}", String::from_utf8_lossy(&n.name)),
                action: "copy",
            });
        }
        for n in &mut tree.nodes {
            let content = std::mem::take(&mut n.content);
            for c in &content {
                let d = self.blob(BlobKind::Data, c)?;
                n.content.push(d);
            }
            if n.kind == NodeKind::Dir {
                if let Some(sub) = n.subtree {
                    n.subtree = Some(self.tree(&sub)?);
                }
            }
        }
        if self.dry_run {
            self.stats.trees_rewritten += 1;
            return Ok(*id);
        }
        let bytes = encode("tree", &tree)?;
        let (d, new) = self.writer.add(BlobKind::Tree, &bytes)?;
        if new {
            self.stats.trees_rewritten += 1;
        }
        self.map.insert(*id, d);
        Ok(d)
    }
}

/// The identity a snapshot keeps across copies: the id it had where it was first made.
pub fn origin_of(id: &Id, s: &Snapshot) -> Id {
    s.original.unwrap_or(*id)
}
