//! Repair: rebuild the index from the packs themselves; rewrite snapshots around lost data.

use crate::writer::{BlobWriter, WriterOptions};
use crate::{pack, RepoError, RepoResult, Repository};
use arca_format::{encode, BlobKind, Id, IndexFile, IndexPack, NodeKind, SnapshotWarning, Tree, WarningKind};
use arca_storage::ObjectKind;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Packs per index object written by a rebuild.
const PACKS_PER_INDEX: usize = 4096;

/// What `repair index` did.
#[derive(Debug, Default, Serialize)]
pub struct RepairIndexReport {
    pub packs_indexed: usize,
    pub blobs_indexed: usize,
    pub unreadable_packs: Vec<String>,
    pub index_files_written: Vec<String>,
    pub index_files_removed: Vec<String>,
}

/// Read every pack's header and replace all index objects with fresh ones. New index objects
/// are stored before old ones are deleted, so an interruption loses nothing.
pub fn repair_index(
    repo: &Repository,
    exclusive: &crate::lock::SessionLock,
    events: &dyn crate::events::Events,
) -> RepoResult<RepairIndexReport> {
    if !exclusive.is_exclusive() {
        return Err(RepoError::NeedsExclusive { operation: "repair index" });
    }
    let mut report = RepairIndexReport::default();
    let old: Vec<String> = repo.storage().list(ObjectKind::Index)?.into_iter().map(|(n, _)| n).collect();
    let packs = repo.storage().list(ObjectKind::Pack)?;
    let mut entries = vec![];
    for (i, (name, size)) in packs.iter().enumerate() {
        events.phase("reading packs", i as u64, packs.len() as u64);
        let Some(id) = Id::from_hex(name) else {
            report.unreadable_packs.push(format!("{name}: name is not a pack id"));
            continue;
        };
        match pack::read_header(repo, &id, *size) {
            Ok(header) => {
                report.blobs_indexed += header.blobs.len();
                entries.push(IndexPack { id, size: *size, key: header.key, blobs: header.blobs });
            }
            Err(e) => {
                // A pack whose header is gone (truncated, damaged at the end) still holds the
                // blobs the old index places inside what is left: keep those, so a repair
                // never loses a blob that could be read before it.
                let index = repo.index();
                let mut key = 0;
                let salvaged: Vec<_> = index
                    .iter()
                    .filter(|(_, l)| l.pack == id && l.offset + l.length as u64 <= *size)
                    .inspect(|(_, l)| key = l.key)
                    .map(|(bid, l)| arca_format::PackHeaderEntry {
                        kind: l.kind,
                        id: bid,
                        offset: l.offset,
                        length: l.length,
                        raw_length: l.raw_length,
                    })
                    .collect();
                drop(index);
                report
                    .unreadable_packs
                    .push(format!("{name}: {e}; kept {} blobs the old index placed in it", salvaged.len()));
                if !salvaged.is_empty() {
                    report.blobs_indexed += salvaged.len();
                    entries.push(IndexPack { id, size: *size, key, blobs: salvaged });
                }
            }
        }
    }
    report.packs_indexed = entries.len();
    let mut new_ids = vec![];
    for group in entries.chunks(PACKS_PER_INDEX) {
        let f = IndexFile { packs: group.to_vec(), supersedes: vec![] };
        new_ids.push(repo.save_object(ObjectKind::Index, &f)?.to_hex());
        crate::failpoint::hit("repair-index-written");
    }
    for name in &old {
        if !new_ids.contains(name) {
            repo.storage().delete(ObjectKind::Index, name).map_err(RepoError::from)?;
            crate::failpoint::hit("repair-index-deleted");
            report.index_files_removed.push(name.clone());
        }
    }
    report.index_files_written = new_ids;
    repo.load_index()?;
    Ok(report)
}

/// One snapshot `repair snapshots` rewrote.
#[derive(Debug, Default, Serialize)]
pub struct RepairedSnapshot {
    pub original: String,
    /// The repaired copy (`None` in a dry run).
    pub repaired: Option<String>,
    /// What was lost: one line per path.
    pub lost: Vec<String>,
}

/// What `repair snapshots` did.
#[derive(Debug, Default, Serialize)]
pub struct RepairSnapshotsReport {
    pub snapshots_checked: usize,
    pub repaired: Vec<RepairedSnapshot>,
    pub originals_forgotten: Vec<String>,
}

/// Rewrite every snapshot whose trees reference data that is gone (not indexed, or in a pack
/// missing from storage) or trees that cannot be read. A file keeps every readable byte:
/// a lost blob of known length becomes zeros of that length, one of unknown length cuts the
/// file there; an unreadable directory becomes empty. The copy is tagged `repaired`, lists
/// what was lost in its warnings, and the original stays unless `forget` is set.
pub fn repair_snapshots(
    repo: &Arc<Repository>,
    lock: &crate::lock::SessionLock,
    dry_run: bool,
    forget: bool,
    events: &dyn crate::events::Events,
) -> RepoResult<RepairSnapshotsReport> {
    repo.read_trees_from_storage();
    let (snaps, errors) = crate::snapshots::list_all_from_storage(repo)?;
    if let Some(e) = errors.into_iter().next() {
        return Err(RepoError::UnreadableSnapshot {
            detail: e.to_string(),
            consequence: "an unreadable snapshot cannot be repaired, only forgotten",
        });
    }
    let stored: HashSet<Id> =
        repo.storage().list(ObjectKind::Pack)?.into_iter().filter_map(|(n, _)| Id::from_hex(&n)).collect();
    let writer = if dry_run {
        BlobWriter::dry_run(repo.clone(), None, WriterOptions::default())
    } else {
        BlobWriter::new(repo.clone(), lock, WriterOptions::default())
    };
    let mut fixer = Fixer { repo, stored: &stored, writer: &writer, memo: HashMap::new() };
    let mut report = RepairSnapshotsReport::default();
    let mut to_save = vec![];
    for (i, s) in snaps.iter().enumerate() {
        events.phase("snapshots", i as u64, snaps.len() as u64);
        report.snapshots_checked += 1;
        if let Some(c) = &s.snapshot.class {
            // Repaired trees would be written with the default class's key: left alone.
            let e = RepoError::ClassNotCarried { class: c.clone(), snapshot: s.id.short(), action: "repair snapshots" };
            events.emit(crate::events::Event::Caution(&format!("skipped: {e}")));
            continue;
        }
        let Some((tree, lost)) = fixer.tree(&s.snapshot.tree)? else { continue };
        to_save.push((s, tree, lost));
    }
    writer.finish()?;
    for (s, tree, lost) in to_save {
        let mut copy = s.snapshot.clone();
        copy.tree = tree;
        copy.parent = Some(s.id);
        if !copy.tags.iter().any(|t| t == "repaired") {
            copy.tags.push("repaired".into());
        }
        copy.keep_until = None;
        for l in &lost {
            copy.warnings.push(SnapshotWarning {
                path: l.clone(),
                message: format!("lost: repaired from snapshot {}", s.id.short()),
                kind: WarningKind::Unreadable,
            });
        }
        let repaired = if dry_run { None } else { Some(crate::snapshots::save(repo, &copy)?.to_hex()) };
        if forget && !dry_run && s.snapshot.keep_until.is_none() {
            crate::snapshots::delete(repo, &[s.id])?;
            report.originals_forgotten.push(s.id.to_hex());
        }
        report.repaired.push(RepairedSnapshot { original: s.id.to_hex(), repaired, lost });
    }
    Ok(report)
}

/// Rewrites trees bottom-up, remembering results per tree id (trees are shared between
/// snapshots). Lost paths are relative to the tree.
struct Fixer<'a> {
    repo: &'a Repository,
    stored: &'a HashSet<Id>,
    writer: &'a BlobWriter,
    memo: HashMap<Id, Option<(Id, Vec<String>)>>,
}

/// A data blob's state: readable, lost with a known length, or lost with none known.
enum BlobState {
    Ok,
    Lost(Option<u32>),
}

impl Fixer<'_> {
    fn blob(&self, id: &Id) -> BlobState {
        match self.repo.index().get(id) {
            None => BlobState::Lost(None),
            Some(loc) if !self.stored.contains(&loc.pack) => BlobState::Lost(Some(loc.raw_length)),
            Some(_) => BlobState::Ok,
        }
    }

    /// The repaired tree and what was lost, or `None` if nothing under `id` is lost.
    fn tree(&mut self, id: &Id) -> RepoResult<Option<(Id, Vec<String>)>> {
        if let Some(m) = self.memo.get(id) {
            return Ok(m.clone());
        }
        let readable = matches!(self.blob(id), BlobState::Ok);
        let (mut tree, mut lost, mut changed) = match readable.then(|| self.repo.read_tree(id)) {
            Some(Ok(t)) => (t, vec![], false),
            _ => (Tree::default(), vec!["/ (the directory listing is lost)".to_string()], true),
        };
        for n in &mut tree.nodes {
            let name = String::from_utf8_lossy(&n.name).into_owned();
            if n.kind == NodeKind::Dir {
                if let Some(sub) = n.subtree {
                    if let Some((new, l)) = self.tree(&sub)? {
                        n.subtree = Some(new);
                        lost.extend(l.into_iter().map(|p| format!("/{name}{p}")));
                        changed = true;
                    }
                }
                continue;
            }
            if n.content.iter().all(|c| matches!(self.blob(c), BlobState::Ok)) {
                continue;
            }
            changed = true;
            let mut content = vec![];
            let mut data_len = 0u64;
            let mut what = "lost ranges are zeros";
            for c in &n.content {
                match self.blob(c) {
                    BlobState::Ok => {
                        data_len += self.repo.index().get(c).map_or(0, |l| l.raw_length as u64);
                        content.push(*c);
                    }
                    BlobState::Lost(Some(len)) => {
                        let (zero, _) = self.writer.add(BlobKind::Data, &vec![0u8; len as usize])?;
                        data_len += len as u64;
                        content.push(zero);
                    }
                    BlobState::Lost(None) => {
                        what = "cut where its data is lost";
                        break;
                    }
                }
            }
            if content.len() < n.content.len() {
                n.size = logical_size(data_len, &n.holes);
                n.holes.retain(|h| h.0 < n.size);
            }
            n.content = content;
            lost.push(format!("/{name} ({what})"));
        }
        let result = if changed {
            let bytes = encode("tree", &tree)?;
            Some((self.writer.add(BlobKind::Tree, &bytes)?.0, lost))
        } else {
            None
        };
        self.memo.insert(*id, result.clone());
        Ok(result)
    }
}

/// The logical size of a file holding `data` bytes of content around `holes`.
fn logical_size(data: u64, holes: &[(u64, u64)]) -> u64 {
    let (mut pos, mut left) = (0u64, data);
    for (off, len) in holes {
        let gap = off.saturating_sub(pos);
        if left <= gap {
            break;
        }
        left -= gap;
        pos = off + len;
    }
    pos + left
}

/// After an interrupted session (a stale lock): index the packs it uploaded but never
/// indexed, so the next backup deduplicates against them instead of uploading them again.
/// Reads one header per such pack; returns how many packs were adopted. Needs the session's
/// lock: the adopted packs must not be swept while this session relies on them.
pub fn adopt_orphan_packs(repo: &Repository, session: &crate::lock::SessionLock) -> RepoResult<usize> {
    let (locks, _) = crate::lock::list_except(repo, Some(&session.name()))?;
    let now = crate::lock::now_ns();
    if !locks.iter().any(|l| crate::lock::is_stale(l, now)) {
        return Ok(0);
    }
    let known: HashSet<Id> = repo.index().packs().into_iter().map(|p| p.0).collect();
    let mut adopted = vec![];
    for (name, size) in repo.storage().list(ObjectKind::Pack)? {
        let Some(id) = Id::from_hex(&name) else { continue };
        if known.contains(&id) {
            continue;
        }
        // An unreadable header is left for check and prune to report.
        if let Ok(header) = pack::read_header(repo, &id, size) {
            adopted.push(IndexPack { id, size, key: header.key, blobs: header.blobs });
        }
    }
    if adopted.is_empty() {
        return Ok(0);
    }
    repo.save_object(ObjectKind::Index, &IndexFile { packs: adopted.clone(), supersedes: vec![] })?;
    let mut ix = repo.index_mut();
    adopted.iter().for_each(|p| ix.add_pack(p));
    Ok(adopted.len())
}
