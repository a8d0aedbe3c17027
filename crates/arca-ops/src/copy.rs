//! Copying snapshots between repositories: which to copy, storing them, and mirror deletes.

use crate::readable_snapshots;
use crate::{OpsError, OpsResult, Target};
use arca_format::{Id, SnapshotKind};
use arca_repo::copy::{origin_of, BlobMap, Copier, CopyStats};
use arca_repo::retention::protected_until;
use arca_repo::snapshots::{self as snaps, Filter, SnapshotEntry};
use arca_repo::writer::{BlobWriter, WriterOptions};
use arca_repo::{Event, Events, RepoError, Repository};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

/// A copy request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CopyRequest {
    /// Snapshots of the source to copy (ids, prefixes, `latest`); empty: all passing the filter.
    pub snapshots: Vec<String>,
    pub filter: Filter,
    /// Delete destination snapshots (passing the filter) that are not among those selected
    /// in the source, except protected ones.
    pub delete: bool,
    /// Threads storing blobs (default: one per core).
    pub threads: Option<usize>,
    /// Where to keep the map of source to destination blob ids (repositories with different
    /// keys), so an interrupted copy resumes without reading everything again.
    pub map_file: Option<PathBuf>,
}

/// One snapshot copied.
#[derive(Clone, Debug, Serialize)]
pub struct Copied {
    pub from: String,
    /// The new snapshot's id; `None` in a dry run.
    pub to: Option<String>,
}

/// What a copy did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyReport {
    pub dry_run: bool,
    pub snapshots_selected: usize,
    pub snapshots_already_here: usize,
    pub copied: Vec<Copied>,
    /// Destination snapshots deleted (full hex).
    pub deleted: Vec<String>,
    /// Destination snapshots not deleted because they are protected.
    pub protected: Vec<String>,
    pub stats: CopyStats,
}

/// Copy snapshots from `src` (read under its own session) into `dst`. Snapshots already in
/// `dst` (by the identity they carry from their first repository) are skipped, so a copy run
/// again sends only what is new.
pub fn copy(
    src: &Repository,
    dst: &Arc<Repository>,
    target: Target,
    req: &CopyRequest,
    events: &dyn Events,
) -> OpsResult<CopyReport> {
    if src.config().repo_id == dst.config().repo_id {
        return Err(OpsError::SameRepository);
    }
    let dry_run = target.is_dry_run();
    if let Target::Locked(lock) = target {
        // Packs an interrupted copy uploaded after its last checkpoint are reused.
        if let Ok(n @ 1..) = arca_repo::repair::adopt_orphan_packs(dst, lock) {
            events.emit(Event::Notice(&format!("reusing {n} packs left by an interrupted session")));
        }
    }
    let filter = &req.filter;
    let all_src = readable_snapshots(src, events)?;
    let selected: Vec<SnapshotEntry> = if req.snapshots.is_empty() {
        all_src.iter().filter(|e| filter.matches(&e.snapshot)).cloned().collect()
    } else {
        req.snapshots.iter().map(|s| snaps::resolve(&all_src, s, filter)).collect::<Result<_, _>>()?
    };
    let all_dst = readable_snapshots(dst, events)?;
    let mut here: HashMap<Id, Id> = all_dst.iter().map(|e| (origin_of(&e.id, &e.snapshot), e.id)).collect();
    let todo: Vec<&SnapshotEntry> =
        selected.iter().filter(|e| !here.contains_key(&origin_of(&e.id, &e.snapshot))).collect();
    if let Some(e) = todo.iter().find(|e| e.snapshot.kind == SnapshotKind::Unknown) {
        return Err(RepoError::NewerFormat { what: format!("snapshot {}", e.id.short()), action: "copy" }.into());
    }
    let writer_opts =
        WriterOptions { threads: req.threads.unwrap_or(WriterOptions::default().threads), ..Default::default() };
    // One pass per class: a class's snapshots go into the destination's class of the same name
    // (created there if new), sealed with its keys, so `key destroy-class` reaches the copy too.
    let mut classes: Vec<Option<String>> = vec![];
    for e in &todo {
        if !classes.contains(&e.snapshot.class) {
            classes.push(e.snapshot.class.clone());
        }
    }
    let mut trees: HashMap<Id, Id> = HashMap::new();
    let mut stats = arca_repo::copy::CopyStats::default();
    let mut done = 0u64;
    for class in classes {
        let (src_key, dst_key, map_file) = match &class {
            None => (src.default_key(), dst.default_key(), req.map_file.clone()),
            Some(c) => {
                let dst_key = match target {
                    Target::Locked(_) => dst.create_class(c)?,
                    Target::DryRun => match dst.writing_key(c) {
                        Ok(k) => k,
                        Err(RepoError::Class(..)) => {
                            Arc::new(arca_repo::keyring::ContentKey::unsaved(c, dst.config().encryption))
                        }
                        Err(e) => return Err(e.into()),
                    },
                };
                let map_file = req.map_file.as_ref().map(|p| p.with_extension(format!("class-{c}")));
                (src.writing_key(c)?, dst_key, map_file)
            }
        };
        let writer = match target {
            Target::Locked(lock) => BlobWriter::with_key(dst.clone(), dst_key.clone(), lock, writer_opts),
            Target::DryRun => BlobWriter::dry_run(dst.clone(), Some(dst_key.clone()), writer_opts),
        };
        let mut copier =
            Copier { src, writer: &writer, map: BlobMap::open(&src_key, &dst_key, map_file), stats, dry_run };
        for e in todo.iter().filter(|e| e.snapshot.class == class) {
            done += 1;
            events.phase(&format!("snapshot {}", e.id.short()), done, todo.len() as u64);
            trees.insert(e.id, copier.tree(&e.snapshot.tree)?);
        }
        stats = copier.stats.clone();
        drop(copier);
        writer.finish()?;
        if let Target::Locked(_) = target {
            arca_repo::shred::confirm_class_alive(dst, &dst_key)?;
        }
    }
    let copies: Vec<(&SnapshotEntry, Id)> = todo.iter().filter_map(|e| Some((*e, *trees.get(&e.id)?))).collect();
    let mut report = CopyReport {
        dry_run,
        snapshots_selected: selected.len(),
        snapshots_already_here: selected.len() - todo.len(),
        stats,
        ..Default::default()
    };
    if let Target::Locked(lock) = target {
        let trees: Vec<Id> = copies.iter().map(|(_, t)| *t).collect();
        lock.confirm_commit(dst, &trees)?;
        lock.check_alive()?;
    }
    let src_by_id: HashMap<Id, &SnapshotEntry> = all_src.iter().map(|e| (e.id, e)).collect();
    // Oldest first, so a copy's parent is already here when it is saved.
    for (e, tree) in copies {
        let mut s = e.snapshot.clone();
        s.tree = tree;
        s.original = Some(origin_of(&e.id, &e.snapshot));
        s.parent = e
            .snapshot
            .parent
            .and_then(|p| src_by_id.get(&p))
            .and_then(|p| here.get(&origin_of(&p.id, &p.snapshot)).copied());
        if dry_run {
            report.copied.push(Copied { from: e.id.to_hex(), to: None });
            continue;
        }
        let id = snaps::save(dst, &s)?;
        here.insert(origin_of(&e.id, &e.snapshot), id);
        report.copied.push(Copied { from: e.id.to_hex(), to: Some(id.to_hex()) });
    }
    if req.delete {
        let wanted: HashSet<Id> = selected.iter().map(|e| origin_of(&e.id, &e.snapshot)).collect();
        let now = chrono::Local::now().fixed_offset();
        for e in all_dst.iter().filter(|e| filter.matches(&e.snapshot)) {
            if wanted.contains(&origin_of(&e.id, &e.snapshot)) {
                continue;
            }
            if let Some(p) = protected_until(e, now) {
                report.protected.push(format!("{} is {p}", e.id.short()));
                continue;
            }
            if !dry_run {
                arca_repo::snapshots::delete(dst, &[e.id])?;
            }
            report.deleted.push(e.id.to_hex());
        }
    }
    Ok(report)
}
