//! Prune: reclaim space without ever blocking or breaking a backup that runs at the same time.
//!
//! Mark-then-sweep. The **mark** phase finds packs no snapshot needs (and repacks the used
//! blobs of wasteful packs into new packs), then moves those packs' index entries from `index/`
//! into a `marks/` object: readers still find their blobs, but deduplication no longer sees
//! them, so nothing started from then on can come to depend on them. The **sweep** phase
//! deletes a mark's packs once every session that was alive when the mark was completed has
//! ended (see `lock`) and the grace period has passed, after checking once more that no
//! snapshot written meanwhile needs a blob that lives only there (such packs go back into the
//! index). One prune run sweeps what is ready, marks, then sweeps its own mark if nothing else
//! was running — so an idle repository is reclaimed in one run.
//!
//! Every step writes new objects before it deletes old ones, so a prune killed anywhere leaves
//! a repository that checks clean, and the next prune finishes the work.

use crate::events::Events;
use crate::keyring::{ContentKey, KeyRole};
use crate::lock::{self, SessionLock};
use crate::writer::{BlobWriter, WriterOptions};
use crate::{failpoint, pack, RepoError, RepoResult, Repository};
use arca_format::{BlobKind, Id, IndexFile, IndexPack, MarkFile, NodeKind};
use arca_storage::ObjectKind;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Packs per index object written by a compaction.
const PACKS_PER_INDEX: usize = 4096;
/// Index objects listing fewer packs than this are merged by a compaction.
const SMALL_INDEX: usize = PACKS_PER_INDEX / 4;

/// How much unused space may stay in partly used packs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxUnused {
    /// Unused bytes as a percentage of all stored bytes after the prune.
    Percent(f64),
    Bytes(u64),
}

/// What a prune may do.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    pub max_unused: MaxUnused,
    /// At most this many used bytes are rewritten by repacking (`None`: no limit).
    pub max_repack: Option<u64>,
    /// Plan and report only.
    pub dry_run: bool,
    /// A mark is swept only once it is at least this old (on top of the session rule).
    pub grace: Duration,
    pub threads: usize,
    /// Content keys whose packs are repacked whatever their waste, each blob under its
    /// class's writing key (`key rotate --rewrite`: the keys a rotation retired).
    pub rewrite_keys: BTreeSet<u32>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: MaxUnused::Percent(5.0),
            max_repack: None,
            dry_run: false,
            grace: Duration::ZERO,
            threads: 2,
            rewrite_keys: BTreeSet::new(),
        }
    }
}

/// Sizes of a repository's stored data.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Size {
    pub packs: u64,
    pub bytes: u64,
}

/// The plan of the mark phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    /// Packs no snapshot needs.
    pub unused_packs: u64,
    pub unused_bytes: u64,
    /// Packs in storage that no index names (left by an interrupted backup).
    pub orphan_packs: u64,
    pub orphan_bytes: u64,
    /// Partly used packs whose used blobs are rewritten.
    pub repack_packs: u64,
    pub repack_blobs: u64,
    /// Used bytes read and written again by repacking.
    pub repack_bytes: u64,
    /// Unused bytes freed by repacking.
    pub repack_frees: u64,
    /// Unused bytes left in partly used packs afterwards.
    pub unused_left: u64,
    /// Of the packs repacked, those sealed with a key being rewritten (`key rotate
    /// --rewrite`), and their used bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub rewrite_packs: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub rewrite_bytes: u64,
    /// Bytes all snapshots need.
    pub used_bytes: u64,
}

/// What one sweep did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sweep {
    pub marks_swept: u64,
    pub packs_deleted: u64,
    pub bytes_deleted: u64,
    /// Marked packs that a snapshot written meanwhile needs: put back into the index.
    pub packs_restored: u64,
    pub index_files_deleted: u64,
    /// Marks still waiting, and why.
    pub marks_waiting: u64,
    pub waiting_for: Vec<String>,
}

/// The outcome of a prune.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub before: Size,
    pub after: Size,
    pub plan: Plan,
    pub swept: Sweep,
    pub stale_locks_removed: u64,
    /// Temporary files that killed writers left (a local repository's `*.tmp-*`).
    pub temporaries_removed: u64,
    pub marks_completed: u64,
}

/// Run a prune. The caller holds `session`, an exclusive lock (a dry run needs none).
pub fn prune(
    repo: &Arc<Repository>,
    session: Option<&SessionLock>,
    opts: &PruneOptions,
    events: &dyn Events,
) -> RepoResult<PruneReport> {
    let mut report = PruneReport { dry_run: opts.dry_run, ..Default::default() };
    report.before = stored_size(repo)?;
    // A dry run writes nothing at all: no stale-lock removal, no sweep, whatever lock it holds.
    let session = match (session, opts.dry_run) {
        (_, true) => None,
        (Some(s), false) => Some(s),
        (None, false) => return Err(RepoError::NeedsExclusive { operation: "prune" }),
    };
    let mut walk = None;
    if let Some(session) = session {
        report.stale_locks_removed = remove_stale_locks(repo)?;
        // Temporary files of writers that were killed: older than the stale limit, their
        // writer's lock would have gone stale too, so none is still being written.
        report.temporaries_removed = repo.storage().remove_abandoned(lock::stale_after())?;
        report.marks_completed = complete_marks(repo, session)?;
        report.swept = sweep(repo, session, opts, events, &mut walk)?;
    }
    let used = referenced_blobs(repo, events, &mut walk)?;
    let plan = plan(repo, used, opts)?;
    report.plan = plan.summary.clone();
    if opts.dry_run {
        report.after = report.before;
        let p = &report.plan;
        report.after.packs = report.before.packs.saturating_sub(p.unused_packs + p.orphan_packs + p.repack_packs);
        report.after.bytes = report.before.bytes.saturating_sub(p.unused_bytes + p.orphan_bytes + p.repack_frees);
        return Ok(report);
    }
    let Some(session) = session else { return Ok(report) };
    mark(repo, session, &plan, used, opts, events)?;
    let again = sweep(repo, session, opts, events, &mut walk)?;
    merge_sweeps(&mut report.swept, again);
    repo.load_index()?;
    report.after = stored_size(repo)?;
    Ok(report)
}

fn merge_sweeps(into: &mut Sweep, s: Sweep) {
    into.marks_swept += s.marks_swept;
    into.packs_deleted += s.packs_deleted;
    into.bytes_deleted += s.bytes_deleted;
    into.packs_restored += s.packs_restored;
    into.index_files_deleted += s.index_files_deleted;
    into.marks_waiting = s.marks_waiting;
    into.waiting_for = s.waiting_for;
}

/// Packs and bytes in storage.
pub fn stored_size(repo: &Repository) -> RepoResult<Size> {
    let packs = repo.storage().list(ObjectKind::Pack)?;
    Ok(Size { packs: packs.len() as u64, bytes: packs.iter().map(|(_, s)| s).sum() })
}

/// Delete lock objects nobody refreshes any more.
fn remove_stale_locks(repo: &Repository) -> RepoResult<u64> {
    let (locks, _) = lock::list(repo)?;
    let now = lock::now_ns();
    let mut n = 0;
    for l in locks.iter().filter(|l| lock::is_stale(l, now)) {
        repo.storage().delete(ObjectKind::Lock, &l.session.to_hex())?;
        n += 1;
    }
    Ok(n)
}

/// Live sessions other than ours.
fn live_sessions(repo: &Repository, ours: Id) -> RepoResult<Vec<arca_format::LockFile>> {
    let (locks, bad) = lock::list(repo)?;
    if let Some((name, e)) = bad.into_iter().next() {
        // An unreadable lock could be a live session; sweeping past it could break it.
        return Err(RepoError::UnreadableLock { name: name.clone(), detail: e.to_string() });
    }
    let now = lock::now_ns();
    Ok(locks.into_iter().filter(|l| l.session != ours && !lock::is_stale(l, now)).collect())
}

/// Marks by name, oldest first.
pub(crate) fn load_marks(repo: &Repository) -> RepoResult<Vec<(String, MarkFile)>> {
    let mut out = vec![];
    for (name, _) in repo.storage().list(ObjectKind::Mark)? {
        match repo.load_object::<MarkFile>(ObjectKind::Mark, &name) {
            Ok(m) => out.push((name, m)),
            Err(RepoError::Storage(e)) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|(n, m)| (m.created, n.clone()));
    Ok(out)
}

/// Finish marks an interrupted prune left without their session list: the sessions alive now
/// include every one that could have missed the mark.
fn complete_marks(repo: &Repository, session: &SessionLock) -> RepoResult<u64> {
    let mut n = 0;
    for (name, mut m) in load_marks(repo)? {
        if m.sessions.is_some() {
            continue;
        }
        m.sessions = Some(live_sessions(repo, session.session())?.iter().map(|l| l.session).collect());
        repo.save_object(ObjectKind::Mark, &m)?;
        repo.storage().delete(ObjectKind::Mark, &name)?;
        n += 1;
    }
    Ok(n)
}

/// Which index objects exist and which of them supersede which.
struct IndexObjects {
    /// Effective objects (not superseded) with the packs they list.
    effective: Vec<(Id, Vec<Id>)>,
    /// Objects that an existing object supersedes.
    superseded: HashSet<Id>,
    /// What each existing object supersedes.
    supersedes_of: HashMap<Id, Vec<Id>>,
    /// Every existing object.
    present: HashSet<Id>,
    /// Per pack, the stored bytes of all its blobs (the rest of a pack is its header).
    blob_bytes: HashMap<Id, u64>,
}

fn index_objects(repo: &Repository) -> RepoResult<IndexObjects> {
    let mut all = vec![];
    let mut blob_bytes = HashMap::new();
    for (name, _) in repo.storage().list(ObjectKind::Index)? {
        let Some(id) = Id::from_hex(&name) else { continue };
        let f: IndexFile = repo
            .load_object(ObjectKind::Index, &name)
            .map_err(|e| RepoError::IndexIncomplete { operation: "prune", detail: e.to_string() })?;
        for p in &f.packs {
            blob_bytes.insert(p.id, p.blobs.iter().map(|b| b.length as u64).sum::<u64>());
        }
        all.push((id, f.supersedes, f.packs.into_iter().map(|p| p.id).collect::<Vec<_>>()));
    }
    let superseded: HashSet<Id> = all.iter().flat_map(|(_, s, _)| s.iter().copied()).collect();
    let present: HashSet<Id> = all.iter().map(|(id, _, _)| *id).collect();
    let supersedes_of = all.iter().filter(|(_, s, _)| !s.is_empty()).map(|(id, s, _)| (*id, s.clone())).collect();
    let effective = all.into_iter().filter(|(id, _, _)| !superseded.contains(id)).map(|(id, _, p)| (id, p)).collect();
    Ok(IndexObjects { effective, superseded, supersedes_of, present, blob_bytes })
}

/// The blobs a set of snapshots needs. Snapshots are immutable and named by their contents,
/// so the same set of snapshot ids always needs the same blobs: a prune walks the trees again
/// only when the snapshots changed between its phases.
struct Walk {
    snapshots: Vec<Id>,
    used: HashSet<Id>,
}

/// Every blob any snapshot needs, and the index reloaded to match. Snapshots are listed
/// before the index is loaded: a backup stores its index before its snapshot, so every
/// listed snapshot's blobs are then in the index. Any unreadable snapshot or tree stops the
/// prune: what it references cannot be known, so nothing may be deleted.
fn referenced_blobs<'a>(
    repo: &Repository,
    events: &dyn Events,
    walk: &'a mut Option<Walk>,
) -> RepoResult<&'a HashSet<Id>> {
    // A listing from now, never one kept from the session's start: a snapshot saved since
    // must keep its packs.
    repo.snapshots_changed();
    let (snaps, errors) = crate::snapshots::list_all(repo)?;
    if let Some(e) = errors.into_iter().next() {
        return Err(RepoError::UnreadableSnapshot {
            detail: e.to_string(),
            consequence:
                "prune must read every snapshot to know what is used (forget the damaged snapshot, or run `arca check`)",
        });
    }
    if let Some(e) = repo.load_index()?.into_iter().next() {
        return Err(RepoError::IndexIncomplete { operation: "prune", detail: e.to_string() });
    }
    let mut ids: Vec<Id> = snaps.iter().map(|s| s.id).collect();
    ids.sort();
    if walk.as_ref().is_none_or(|w| w.snapshots != ids) {
        *walk = Some(Walk { used: walk_trees(repo, &snaps, events)?, snapshots: ids });
    }
    match walk {
        Some(w) => Ok(&w.used),
        None => Err(RepoError::Internal("prune: no tree walk")),
    }
}

/// Walk every tree of `snaps` and collect the blobs they reference.
fn walk_trees(
    repo: &Repository,
    snaps: &[crate::snapshots::SnapshotEntry],
    events: &dyn Events,
) -> RepoResult<HashSet<Id>> {
    let mut used = HashSet::new();
    let mut stack = vec![];
    for (i, s) in snaps.iter().enumerate() {
        events.phase("reading trees", i as u64, snaps.len() as u64);
        stack.push((s.snapshot.tree, s.id));
        while let Some((tree, snap)) = stack.pop() {
            if !used.insert(tree) {
                continue;
            }
            let t = repo
                .read_tree(&tree)
                .map_err(|e| RepoError::UnreadableTree { snapshot: snap.to_string(), detail: e.to_string() })?;
            for n in &t.nodes {
                used.extend(n.content.iter().copied());
                if n.kind == NodeKind::Dir {
                    if let Some(sub) = n.subtree {
                        stack.push((sub, snap));
                    }
                }
            }
        }
    }
    events.phase("reading trees", snaps.len() as u64, snaps.len() as u64);
    Ok(used)
}

/// The packs the mark phase will take out of the index.
struct MarkPlan {
    summary: Plan,
    /// Unused and orphan packs, with sizes.
    drop: Vec<(Id, u64)>,
    /// Partly used packs to repack.
    repack: Vec<(Id, u64)>,
    /// Packs in storage no index names.
    orphans: Vec<(Id, u64)>,
    objects: IndexObjects,
}

fn plan(repo: &Repository, used: &HashSet<Id>, opts: &PruneOptions) -> RepoResult<MarkPlan> {
    let objects = index_objects(repo)?;
    let index = repo.index();
    let live: HashMap<Id, u64> = index.packs().into_iter().filter(|(id, _)| !index.is_retired(id)).collect();
    let rewritten: HashSet<Id> = index
        .packs_with_keys()
        .into_iter()
        .filter(|(id, _, key)| opts.rewrite_keys.contains(key) && !index.is_retired(id))
        .map(|(id, _, _)| id)
        .collect();
    let marked: HashSet<Id> = index.packs().into_iter().filter(|(id, _)| index.is_retired(id)).map(|p| p.0).collect();
    let mut used_bytes: HashMap<Id, u64> = HashMap::new();
    for (id, loc) in index.iter() {
        if used.contains(&id) && live.contains_key(&loc.pack) {
            *used_bytes.entry(loc.pack).or_default() += loc.length as u64;
        }
    }
    drop(index);
    let mut s = Plan::default();
    let (mut drop_packs, mut partly) = (vec![], vec![]);
    for (id, size) in &live {
        match used_bytes.get(id).copied().unwrap_or(0) {
            0 => {
                s.unused_packs += 1;
                s.unused_bytes += size;
                drop_packs.push((*id, *size));
            }
            u => {
                s.used_bytes += u;
                // Waste is blob bytes nobody needs (the header is not waste).
                let blobs = objects.blob_bytes.get(id).copied().unwrap_or(u).max(u);
                partly.push((*id, blobs, u));
            }
        }
    }
    let mut orphans = vec![];
    for (name, size) in repo.storage().list(ObjectKind::Pack)? {
        let Some(id) = Id::from_hex(&name) else { continue };
        if !live.contains_key(&id) && !marked.contains(&id) {
            s.orphan_packs += 1;
            s.orphan_bytes += size;
            orphans.push((id, size));
        }
    }
    // Repack the most wasteful packs first until the unused share is within the limit.
    partly.sort_by(|a, b| {
        let waste = |(_, size, used): &(Id, u64, u64)| (size - used.min(size)) as f64 / (*size).max(1) as f64;
        waste(b).total_cmp(&waste(a)).then(a.0.cmp(&b.0))
    });
    let mut unused_left: u64 = partly.iter().map(|(_, size, used)| size.saturating_sub(*used)).sum();
    let allowed = match opts.max_unused {
        MaxUnused::Bytes(b) => b,
        MaxUnused::Percent(p) => {
            let p = p.clamp(0.0, 99.9);
            (p / (100.0 - p) * s.used_bytes as f64) as u64
        }
    };
    let mut repack = vec![];
    // Packs sealed with a key being rewritten go first, however full.
    let (forced, partly): (Vec<_>, Vec<_>) = partly.into_iter().partition(|(id, _, _)| rewritten.contains(id));
    for (id, size, used_b) in forced {
        if opts.max_repack.is_some_and(|m| s.repack_bytes + used_b > m) {
            continue;
        }
        let waste = size.saturating_sub(used_b);
        s.repack_packs += 1;
        s.repack_bytes += used_b;
        s.rewrite_packs += 1;
        s.rewrite_bytes += used_b;
        s.repack_frees += waste;
        unused_left -= waste.min(unused_left);
        repack.push((id, size));
    }
    for (id, size, used_b) in partly {
        let waste = size.saturating_sub(used_b);
        if unused_left <= allowed || waste == 0 {
            break;
        }
        if opts.max_repack.is_some_and(|m| s.repack_bytes + used_b > m) {
            continue;
        }
        s.repack_packs += 1;
        s.repack_bytes += used_b;
        s.repack_frees += waste;
        unused_left -= waste;
        repack.push((id, size));
    }
    s.unused_left = unused_left;
    let chosen: HashSet<Id> = repack.iter().map(|r| r.0).collect();
    let index = repo.index();
    s.repack_blobs = index.iter().filter(|(id, loc)| chosen.contains(&loc.pack) && used.contains(id)).count() as u64;
    drop(index);
    drop_packs.sort();
    Ok(MarkPlan { summary: s, drop: drop_packs, repack, orphans, objects })
}

/// The mark phase: repack, write the mark, take the marked packs out of the index, record the
/// sessions that might have missed that.
fn mark(
    repo: &Arc<Repository>,
    session: &SessionLock,
    plan: &MarkPlan,
    used: &HashSet<Id>,
    opts: &PruneOptions,
    events: &dyn Events,
) -> RepoResult<()> {
    if plan.drop.is_empty() && plan.repack.is_empty() && plan.orphans.is_empty() {
        return Ok(());
    }
    if !plan.repack.is_empty() {
        repack(repo, session, plan, used, opts, events)?;
        failpoint::hit("prune-after-repack");
    }
    let marked: HashSet<Id> = plan.drop.iter().chain(&plan.repack).map(|p| p.0).collect();
    // The marked packs' entries, from the index objects that list them.
    let mut entries: HashMap<Id, IndexPack> = HashMap::new();
    let mut affected: Vec<Id> = vec![];
    for (obj, packs) in &plan.objects.effective {
        if packs.iter().any(|p| marked.contains(p)) || packs.len() < SMALL_INDEX {
            affected.push(*obj);
        }
    }
    let mut live_parts: Vec<IndexPack> = vec![];
    let mut seen: HashSet<Id> = HashSet::new();
    for obj in &affected {
        let f: IndexFile = repo.load_object(ObjectKind::Index, &obj.to_hex())?;
        for p in f.packs {
            if !seen.insert(p.id) {
                continue;
            }
            if marked.contains(&p.id) {
                entries.insert(p.id, p);
            } else {
                live_parts.push(p);
            }
        }
    }
    for (id, size) in &plan.orphans {
        // An orphan's header names its blobs, so the sweep can tell whether anything needs it.
        let (key, blobs) = pack::read_header(repo, id, *size).map(|h| (h.key, h.blobs)).unwrap_or_default();
        entries.insert(*id, IndexPack { id: *id, size: *size, key, blobs });
    }
    let mut m = MarkFile {
        created: lock::now_ns(),
        packs: entries.into_values().collect(),
        index_files: affected.clone(),
        sessions: None,
    };
    m.packs.sort_by_key(|p| p.id);
    let incomplete = repo.save_object(ObjectKind::Mark, &m)?;
    failpoint::hit("prune-after-mark");
    // Compaction: the live packs of the affected objects in new objects; the last one
    // supersedes the affected objects, so they stop counting only once all parts exist.
    let groups: Vec<&[IndexPack]> =
        if live_parts.is_empty() { vec![&[]] } else { live_parts.chunks(PACKS_PER_INDEX).collect() };
    let last = groups.len() - 1;
    for (i, g) in groups.into_iter().enumerate() {
        let supersedes = if i == last { affected.clone() } else { vec![] };
        repo.save_object(ObjectKind::Index, &IndexFile { packs: g.to_vec(), supersedes })?;
        failpoint::hit("prune-compact");
    }
    m.sessions = Some(live_sessions(repo, session.session())?.iter().map(|l| l.session).collect());
    repo.save_object(ObjectKind::Mark, &m)?;
    failpoint::hit("prune-after-complete");
    repo.storage().delete(ObjectKind::Mark, &incomplete.to_hex())?;
    Ok(())
}

/// Copy the used blobs of the packs chosen for repacking into new packs.
fn repack(
    repo: &Arc<Repository>,
    session: &SessionLock,
    plan: &MarkPlan,
    used: &HashSet<Id>,
    opts: &PruneOptions,
    events: &dyn Events,
) -> RepoResult<()> {
    let chosen: HashSet<Id> = plan.repack.iter().map(|p| p.0).collect();
    let mut blobs: Vec<(Id, crate::index::BlobLocation)> = {
        let mut ix = repo.index_mut();
        chosen.iter().for_each(|p| ix.retire(p));
        ix.iter().filter(|(id, loc)| chosen.contains(&loc.pack) && used.contains(id)).collect()
    };
    // By the key each blob is sealed with afterwards (a blob stays in its class), then pack
    // order, then offset: each pack is read front to back.
    let mut targets: HashMap<u32, Arc<ContentKey>> = HashMap::new();
    for (_, l) in &blobs {
        if let std::collections::hash_map::Entry::Vacant(e) = targets.entry(l.key) {
            e.insert(repack_key(repo, l.key, &opts.rewrite_keys, &l.pack)?);
        }
    }
    let target = |l: &crate::index::BlobLocation| targets.get(&l.key).map_or(l.key, |k| k.number);
    blobs.sort_by_key(|(_, l)| (target(l), l.pack, l.offset));
    let total = blobs.len() as u64;
    let mut done = 0u64;
    for group in blobs.chunk_by(|a, b| target(&a.1) == target(&b.1)) {
        let Some(key) = targets.get(&group[0].1.key).cloned() else {
            return Err(RepoError::Internal("prune: a repack group without its key"));
        };
        let writer_opts = WriterOptions { threads: opts.threads.max(1), ..Default::default() };
        let writer = BlobWriter::with_key(repo.clone(), key, session, writer_opts);
        for (id, loc) in group {
            events.phase("repacking", done, total);
            done += 1;
            let data = repo.read_blob(loc.kind, id)?;
            let kind = if loc.kind == BlobKind::Tree { BlobKind::Tree } else { BlobKind::Data };
            // The same MAC key, so the same id: a snapshot's references stay valid.
            if writer.add(kind, &data)?.0 != *id {
                return Err(RepoError::Internal("prune: a repacked blob would change its id"));
            }
        }
        writer.finish()?;
    }
    events.phase("repacking", total, total);
    Ok(())
}

/// The key a blob sealed with key `number` (in `pack`) is repacked under: its own, or its
/// class's writing key for blobs of before an upgrade (key 0) and for keys being rewritten
/// (a backup-only session's key counts as the default class's). Each has the MAC key of the
/// key it replaces, so blob ids stay valid.
fn repack_key(repo: &Repository, number: u32, rewrite: &BTreeSet<u32>, pack: &Id) -> RepoResult<Arc<ContentKey>> {
    let key = repo.content_key(number, || format!("pack {pack}"))?;
    if repo.version() < 2 || (number != arca_format::MASTER_KEY_NUMBER && !rewrite.contains(&number)) {
        return Ok(key);
    }
    let class = if key.role == KeyRole::Session { arca_format::DEFAULT_CLASS } else { key.class.as_str() };
    repo.keyring().writing(class).ok_or_else(|| RepoError::Unsuitable(format!("class {class:?} has no writing key")))
}

/// Delete the packs of every mark that is ready, oldest first.
fn sweep(
    repo: &Repository,
    session: &SessionLock,
    opts: &PruneOptions,
    events: &dyn Events,
    walk: &mut Option<Walk>,
) -> RepoResult<Sweep> {
    let mut out = Sweep::default();
    let marks = load_marks(repo)?;
    if marks.is_empty() {
        return Ok(out);
    }
    let live: HashMap<Id, arca_format::LockFile> =
        live_sessions(repo, session.session())?.into_iter().map(|l| (l.session, l)).collect();
    let now = lock::now_ns();
    let mut ready = vec![];
    let mut blocked = false;
    for (name, m) in marks {
        // Marks are swept in order: a later one may supersede index objects an earlier one
        // is waiting to delete.
        if blocked {
            out.marks_waiting += 1;
            continue;
        }
        let waiting = m.sessions.iter().flatten().find_map(|s| live.get(s));
        let reason = if m.sessions.is_none() {
            Some(format!("mark {name} is still being written by a prune"))
        } else if let Some(l) = waiting {
            Some(format!(
                "`{}` on {} (pid {}), running since {}",
                l.command,
                l.host,
                l.pid,
                chrono::DateTime::from_timestamp_nanos(l.started).format("%Y-%m-%d %H:%M:%S UTC")
            ))
        } else if now.saturating_sub(m.created) < opts.grace.as_nanos() as i64 {
            Some(format!("mark {name} is younger than the grace period"))
        } else {
            None
        };
        match reason {
            Some(r) => {
                blocked = true;
                out.marks_waiting += 1;
                out.waiting_for.push(r);
            }
            None => ready.push((name, m)),
        }
    }
    if ready.is_empty() {
        return Ok(out);
    }
    // Sessions listed in the marks have ended, so every snapshot they wrote exists now.
    let used = referenced_blobs(repo, events, walk)?;
    let mut objects = index_objects(repo)?;
    let index = repo.index();
    let live_packs: HashSet<Id> = index.packs().into_iter().map(|p| p.0).filter(|p| !index.is_retired(p)).collect();
    let mut restore = vec![];
    let mut delete = vec![];
    for (_, m) in &ready {
        for p in &m.packs {
            if live_packs.contains(&p.id) {
                continue; // back in the index (a repair, or an interrupted sweep restored it)
            }
            if p.blobs.iter().any(|b| used.contains(&b.id) && !index.has_live(&b.id)) {
                restore.push(p.clone());
            } else {
                delete.push((p.id, p.size));
            }
        }
    }
    drop(index);
    if !restore.is_empty() {
        out.packs_restored = restore.len() as u64;
        repo.save_object(ObjectKind::Index, &IndexFile { packs: restore, supersedes: vec![] })?;
    }
    failpoint::hit("prune-sweep-start");
    let stored: HashMap<String, u64> = repo.storage().list(ObjectKind::Pack)?.into_iter().collect();
    for (i, (id, size)) in delete.iter().enumerate() {
        events.phase("deleting packs", i as u64, delete.len() as u64);
        let name = id.to_hex();
        if stored.contains_key(&name) {
            repo.storage().delete(ObjectKind::Pack, &name)?;
            out.packs_deleted += 1;
            out.bytes_deleted += size;
        }
        repo.storage().delete(ObjectKind::Parity, &name)?;
        failpoint::hit("prune-sweep-delete");
    }
    for (name, m) in &ready {
        for f in &m.index_files {
            // Only an object something supersedes (if the compaction never finished, the old
            // objects are still the index), and only once what it supersedes is gone.
            let holds_back =
                objects.supersedes_of.get(f).is_some_and(|s| s.iter().any(|o| objects.present.contains(o)));
            if objects.superseded.contains(f) && !holds_back {
                repo.storage().delete(ObjectKind::Index, &f.to_hex())?;
                objects.present.remove(f);
                out.index_files_deleted += 1;
            }
        }
        repo.storage().delete(ObjectKind::Mark, name)?;
        out.marks_swept += 1;
        failpoint::hit("prune-sweep-mark");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::tests::cheap_opts;
    use arca_format::{encode, Node, Snapshot, SnapshotKind, Tree};
    use arca_storage::{MemoryStorage, Storage};

    fn repo() -> (Arc<dyn Storage>, Arc<Repository>) {
        let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
        let mut o = cheap_opts();
        o.pack_size = 4096;
        let r = Repository::init(s.clone(), b"pw", &o).unwrap();
        (s, Arc::new(r))
    }

    fn reopen(s: &Arc<dyn Storage>) -> Arc<Repository> {
        let r = Repository::open(s.clone(), b"pw").unwrap();
        assert!(r.load_index().unwrap().is_empty());
        Arc::new(r)
    }

    fn blob(i: u32) -> Vec<u8> {
        (0..3000u32).map(|j| (j.wrapping_mul(2654435761).wrapping_add(i * 7919) >> 13) as u8).collect()
    }

    /// Back up "files" (blob numbers) as one snapshot through a writer session.
    fn snapshot(repo: &Arc<Repository>, files: &[u32]) -> Id {
        let lock = crate::lock::SessionLock::acquire(repo, "test", false).unwrap();
        let w = BlobWriter::new(repo.clone(), &lock, WriterOptions { threads: 1, ..Default::default() });
        let mut t = Tree::default();
        for f in files {
            let mut n = Node::new(format!("f{f}").as_bytes(), NodeKind::File);
            n.content = vec![w.add(BlobKind::Data, &blob(*f)).unwrap().0];
            t.nodes.push(n);
        }
        t.sort();
        let (tree, _) = w.add(BlobKind::Tree, &encode("tree", &t).unwrap()).unwrap();
        w.finish().unwrap();
        crate::snapshots::save(
            repo,
            &Snapshot::new(SnapshotKind::Files, tree, vec!["/".into()], "h", "u", "2026-01-01T00:00:00Z"),
        )
        .unwrap()
    }

    fn restores(repo: &Repository, snap: &Id, files: &[u32]) {
        let s: Snapshot = repo.load_object(ObjectKind::Snapshot, &snap.to_hex()).unwrap();
        let t = repo.read_tree(&s.tree).unwrap();
        for f in files {
            let n = t.find(format!("f{f}").as_bytes()).unwrap();
            assert_eq!(repo.read_blob(BlobKind::Data, &n.content[0]).unwrap(), blob(*f), "file {f}");
        }
    }

    fn run(repo: &Arc<Repository>, max_unused: f64) -> PruneReport {
        let lock = SessionLock::acquire(repo, "prune", true).unwrap();
        let opts = PruneOptions { max_unused: MaxUnused::Percent(max_unused), ..Default::default() };
        prune(repo, Some(&lock), &opts, &crate::events::Quiet).unwrap()
    }

    #[test]
    fn deletes_unused_packs_and_repacks_partly_used_ones() {
        let (s, r) = repo();
        let keep = snapshot(&r, &[1, 2, 3, 4]);
        let gone = snapshot(&r, &[5, 6, 7, 8]);
        s.delete(ObjectKind::Snapshot, &gone.to_hex()).unwrap();
        let r = reopen(&s);
        let dry = {
            let lock = SessionLock::acquire(&r, "prune", true).unwrap();
            prune(
                &r,
                Some(&lock),
                &PruneOptions { dry_run: true, max_unused: MaxUnused::Percent(0.0), ..Default::default() },
                &crate::events::Quiet,
            )
            .unwrap()
        };
        assert!(dry.plan.unused_bytes + dry.plan.repack_frees > 0);
        assert_eq!(crate::prune::stored_size(&r).unwrap().bytes, dry.before.bytes, "a dry run changes nothing");
        let rep = run(&r, 0.0);
        assert!(rep.swept.packs_deleted > 0, "{rep:?}");
        assert!(rep.after.bytes < rep.before.bytes);
        assert_eq!(rep.plan.unused_left, 0, "{rep:?}");
        let r = reopen(&s);
        restores(&r, &keep, &[1, 2, 3, 4]);
        assert!(s.list(ObjectKind::Mark).unwrap().is_empty(), "swept in the same run");
        let c = crate::check::check(&r, crate::check::ReadData::All, &crate::events::Quiet).unwrap();
        assert!(c.ok(), "{:?}", c.errors);
        // A second prune finds nothing to do.
        let again = run(&r, 0.0);
        assert_eq!(
            (again.plan.unused_packs, again.plan.repack_packs, again.swept.packs_deleted),
            (0, 0, 0),
            "{again:?}"
        );
    }

    #[test]
    fn a_backup_running_across_a_prune_keeps_what_it_deduplicated_against() {
        let (s, r) = repo();
        let old = snapshot(&r, &[1, 2]);
        s.delete(ObjectKind::Snapshot, &old.to_hex()).unwrap();
        // A backup session starts and loads the index: blob 1 is there to deduplicate against.
        let backup = reopen(&s);
        let backup_lock = SessionLock::acquire(&backup, "backup", false).unwrap();
        // A prune marks everything (no snapshot is left) but must not sweep: the backup runs.
        let pruner = reopen(&s);
        let rep = run(&pruner, 0.0);
        assert_eq!(rep.swept.packs_deleted, 0, "{rep:?}");
        assert_eq!(rep.swept.marks_waiting, 1);
        assert!(rep.swept.waiting_for[0].contains("backup"), "{rep:?}");
        // A backup that starts now does not deduplicate against marked packs.
        let fresh = reopen(&s);
        let fresh_snap = snapshot(&fresh, &[2]);
        // The old session finishes, relying on blob 1 in a marked pack.
        let new = snapshot(&backup, &[1, 3]);
        drop(backup_lock);
        restores(&reopen(&s), &new, &[1, 3]);
        // The next prune sweeps, keeping (restoring to the index) the pack the backup needs.
        let rep = run(&reopen(&s), 100.0);
        assert!(rep.swept.packs_restored >= 1, "{rep:?}");
        assert!(rep.swept.packs_deleted >= 1, "{rep:?}");
        let r = reopen(&s);
        restores(&r, &new, &[1, 3]);
        restores(&r, &fresh_snap, &[2]);
        let c = crate::check::check(&r, crate::check::ReadData::All, &crate::events::Quiet).unwrap();
        assert!(c.ok(), "{:?}", c.errors);
    }

    #[test]
    fn one_exclusive_session_at_a_time() {
        let (_, r) = repo();
        let a = SessionLock::acquire(&r, "prune", true).unwrap();
        let e = SessionLock::acquire(&r, "prune", true).err().unwrap();
        assert!(e.to_string().contains("another exclusive session"), "{e}");
        let _shared = SessionLock::acquire(&r, "backup", false).unwrap();
        drop(a);
        SessionLock::acquire(&r, "prune", true).unwrap();
    }
}
