//! Repair: rebuild the index from the packs themselves.

use crate::{pack, RepoError, RepoResult, Repository};
use arca_format::{Id, IndexFile, IndexPack};
use arca_storage::ObjectKind;
use serde::Serialize;

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
pub fn repair_index(repo: &Repository, progress: &mut dyn FnMut(usize, usize)) -> RepoResult<RepairIndexReport> {
    let mut report = RepairIndexReport::default();
    let old: Vec<String> = repo.storage().list(ObjectKind::Index)?.into_iter().map(|(n, _)| n).collect();
    let packs = repo.storage().list(ObjectKind::Pack)?;
    let mut entries = vec![];
    for (i, (name, size)) in packs.iter().enumerate() {
        progress(i, packs.len());
        let Some(id) = Id::from_hex(name) else {
            report.unreadable_packs.push(format!("{name}: name is not a pack id"));
            continue;
        };
        match pack::read_header(repo, &id, *size) {
            Ok(blobs) => {
                report.blobs_indexed += blobs.len();
                entries.push(IndexPack { id, size: *size, blobs });
            }
            Err(e) => report.unreadable_packs.push(format!("{name}: {e}")),
        }
    }
    report.packs_indexed = entries.len();
    let mut new_ids = vec![];
    for group in entries.chunks(PACKS_PER_INDEX) {
        let f = IndexFile { packs: group.to_vec(), supersedes: vec![] };
        new_ids.push(repo.save_object(ObjectKind::Index, &f)?.to_hex());
    }
    for name in &old {
        if !new_ids.contains(name) {
            repo.storage().delete(ObjectKind::Index, name).map_err(RepoError::from)?;
            report.index_files_removed.push(name.clone());
        }
    }
    report.index_files_written = new_ids;
    repo.load_index()?;
    Ok(report)
}
