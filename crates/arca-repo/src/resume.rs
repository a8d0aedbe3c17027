//! Uploads an interrupted session left unfinished. Where the storage can resume an upload
//! (S3 multipart, the backends' `multipart.rs`), large packs wait in `uploads/` of the
//! repository's cache until their upload completes. The next session that writes finishes
//! what a killed one left there and indexes those packs before it adds anything, so their
//! blobs are deduplicated, not uploaded again; from then on its own packs wait there too.

use crate::lock::SessionLock;
use crate::{pack, RepoResult, Repository};
use arca_format::{Id, IndexFile, IndexPack};
use arca_storage::ObjectKind;
use std::collections::HashMap;

/// What an earlier session's uploads left, and this one finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Resumed {
    /// Packs whose upload was finished, and their bytes.
    pub packs: u64,
    pub bytes: u64,
    /// Spooled packs found damaged (torn by a crash of the machine, altered): not completed.
    pub dropped: u64,
}

/// Finish the uploads an earlier session left, index their packs (one index object), and
/// have this session's uploads wait in the cache too. Nothing happens without a cache or on
/// a storage that cannot resume uploads. A spooled pack is taken only if its bytes hash to
/// its name and its header opens with this repository's keys: a torn or foreign one is
/// dropped, and its upload abandoned.
pub fn resume_uploads(repo: &Repository, lock: &SessionLock) -> RepoResult<Resumed> {
    let Some(cache) = repo.cache_dir().filter(|_| repo.is_remote()) else { return Ok(Resumed::default()) };
    let spool = cache.join("uploads");
    let mut found: HashMap<String, IndexPack> = HashMap::new();
    let mut dropped = 0;
    let finished = repo.storage().resume_uploads(&spool, &mut |name, bytes| {
        let sound = Id::from_hex(name).filter(|id| blake3::hash(bytes).as_bytes() == &id.0);
        let Some(id) = sound else {
            dropped += 1;
            return false;
        };
        match pack::header_from_bytes(repo, &id, bytes) {
            Ok(h) => {
                found.insert(name.to_string(), IndexPack { id, size: bytes.len() as u64, key: h.key, blobs: h.blobs });
                true
            }
            Err(e) => {
                tracing::debug!(pack = name, error = %e, "a spooled pack does not open");
                dropped += 1;
                false
            }
        }
    })?;
    // A pack the index knows already (indexed, or marked by a prune, whose sweep may delete
    // it) is not indexed again: that would make a marked pack live for deduplication.
    let packs: Vec<IndexPack> = {
        let index = repo.index();
        finished.iter().filter_map(|n| found.remove(n)).filter(|p| index.pack_size(&p.id).is_none()).collect()
    };
    if packs.is_empty() {
        return Ok(Resumed { dropped, ..Resumed::default() });
    }
    let ids: Vec<Id> = packs.iter().map(|p| p.id).collect();
    lock.guard().confirm_packs(repo, &ids)?;
    let bytes = packs.iter().map(|p| p.size).sum();
    let file = IndexFile { packs, supersedes: vec![] };
    repo.save_object(ObjectKind::Index, &file)?;
    let mut index = repo.index_mut();
    for p in &file.packs {
        index.add_pack(p);
    }
    Ok(Resumed { packs: file.packs.len() as u64, bytes, dropped })
}
