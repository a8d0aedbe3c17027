//! Check: structure (every reference resolves, every indexed pack exists with the right size)
//! and, optionally, every byte (each pack re-hashed, each blob opened and re-hashed). Damage is
//! reported as the packs, snapshots and paths it affects.

use crate::events::Events;
use crate::snapshots::SnapshotEntry;
use crate::treewalk::{walk, Visit};
use crate::{blob, pack, RepoError, RepoResult, Repository};
use arca_format::{Id, NodeKind};
use arca_storage::ObjectKind;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// How much data to read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReadData {
    None,
    All,
    /// Group `n` of `m` (1-based), by pack id.
    Subset {
        n: u32,
        m: u32,
    },
    /// About this percentage of packs, chosen at random.
    Percent(f64),
    /// Packs chosen at random until they hold at least this many bytes.
    Bytes(u64),
}

/// One problem found.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// The damaged or missing object, e.g. "pack 3fa9…".
    pub object: String,
    pub message: String,
}

/// Paths hurt by damage, per snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct Affected {
    pub snapshot: String,
    pub time: String,
    pub paths: Vec<String>,
}

/// The outcome of a check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    pub errors: Vec<Problem>,
    /// Not errors: e.g. packs no index names (left by an interrupted backup).
    pub notes: Vec<Problem>,
    pub damaged_packs: Vec<String>,
    pub affected: Vec<Affected>,
    pub snapshots_checked: usize,
    pub trees_checked: usize,
    pub packs_read: usize,
    pub blobs_read: usize,
    pub bytes_read: u64,
    /// What the signed history accounts for.
    pub history: HistorySummary,
}

/// The signed history as check saw it (docs/FORMAT.md, "History").
#[derive(Clone, Debug, Default, Serialize)]
pub struct HistorySummary {
    /// Valid statements, and the signers who wrote them.
    pub statements: usize,
    pub signers: usize,
    /// Present snapshots a statement records, and ones none does.
    pub signed_snapshots: usize,
    pub unsigned_snapshots: usize,
}

impl CheckReport {
    /// True if nothing is wrong.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
    fn error(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Problem { object: object.into(), message: message.into() });
    }
}

/// Run a check.
pub fn check(repo: &Repository, read: ReadData, events: &dyn Events) -> RepoResult<CheckReport> {
    repo.read_trees_from_storage();
    let mut r = CheckReport::default();
    for e in repo.load_index()? {
        r.error(object_of(&e), e.to_string());
    }
    // Packs: indexed vs. stored.
    let stored: HashMap<String, u64> = repo.storage().list(ObjectKind::Pack)?.into_iter().collect();
    let indexed: Vec<(Id, u64)> = repo.index().packs();
    let mut bad_packs: HashSet<Id> = HashSet::new();
    let mut damaged_packs: HashSet<Id> = HashSet::new();
    let indexed_names: HashSet<String> = indexed.iter().map(|(id, _)| id.to_hex()).collect();
    // Packs a prune marked may already be deleted by an interrupted sweep: only a snapshot
    // that needs one of their blobs makes that an error (found below).
    let mut swept: HashSet<Id> = HashSet::new();
    for (id, size) in &indexed {
        match stored.get(&id.to_hex()) {
            None if repo.index().is_retired(id) => {
                swept.insert(*id);
            }
            None => {
                r.error(format!("pack {id}"), "missing from storage");
                bad_packs.insert(*id);
            }
            Some(s) if *size != 0 && s != size => {
                r.error(
                    format!("pack {id}"),
                    format!("size is {s} bytes, the index says {size} (truncated or overwritten)"),
                );
                bad_packs.insert(*id);
            }
            _ => {}
        }
    }
    for name in stored.keys() {
        if !indexed_names.contains(name) {
            r.notes.push(Problem {
                object: format!("pack {name}"),
                message: "not in any index: left by an interrupted backup (prune removes it) or its index was lost (`arca repair index` adds it)".into(),
            });
        }
    }
    for e in repo.keyring_problems() {
        r.error(object_of(e), e.to_string());
    }
    // Packs sealed with a key the keyring lacks: a destroyed class's (shredded on purpose),
    // or keys lost to damage; either way nothing can read them, so they are not read below.
    let shredded: HashSet<Id> = {
        let ring = repo.keyring();
        repo.index().packs_with_keys().into_iter().filter(|p| ring.get(p.2).is_none()).map(|p| p.0).collect()
    };
    if !shredded.is_empty() {
        let bytes: u64 = indexed.iter().filter(|p| shredded.contains(&p.0)).map(|p| p.1).sum();
        r.notes.push(Problem {
            object: "keyring".into(),
            message: format!(
                "{} packs ({bytes} bytes) are sealed with keys this repository no longer has (a destroyed class): unreadable by anyone; prune deletes them once no snapshot needs them",
                shredded.len()
            ),
        });
    }
    marks_and_locks(repo, &mut r)?;
    // Snapshots and trees.
    // From the storage, not the cache: check judges what is stored.
    let (snaps, errs) = crate::snapshots::list_all_from_storage(repo)?;
    for e in errs {
        r.error(object_of(&e), e.to_string());
    }
    history(repo, &mut r)?;
    digests(repo, &snaps, &mut r)?;
    reader_keys(repo, &mut r)?;
    let mut bad_blobs: HashSet<Id> = HashSet::new();
    let mut seen_trees: HashSet<Id> = HashSet::new();
    for (i, s) in snaps.iter().enumerate() {
        events.phase("snapshots", i as u64, snaps.len() as u64);
        r.snapshots_checked += 1;
        check_tree(repo, &s.snapshot.tree, &swept, &mut seen_trees, &mut bad_blobs, &mut r)?;
    }
    r.trees_checked = seen_trees.len();
    // Data.
    if read != ReadData::None {
        let selected: Vec<&(Id, u64)> = match read {
            ReadData::Bytes(limit) => {
                use rand::seq::SliceRandom;
                let mut all: Vec<&(Id, u64)> = indexed.iter().collect();
                all.shuffle(&mut rand::thread_rng());
                let mut sum = 0u64;
                all.into_iter()
                    .take_while(|(_, size)| {
                        let take = sum < limit;
                        sum = sum.saturating_add(*size);
                        take
                    })
                    .collect()
            }
            _ => indexed.iter().filter(|(id, _)| selected(read, id)).collect(),
        };
        let mut blobs_by_pack: HashMap<Id, Vec<(Id, crate::index::BlobLocation)>> = HashMap::new();
        for (id, loc) in repo.index().iter() {
            blobs_by_pack.entry(loc.pack).or_default().push((id, loc));
        }
        let work: Vec<(Id, Vec<_>)> = selected
            .iter()
            .filter(|(pid, _)| !bad_packs.contains(pid) && !swept.contains(pid) && !shredded.contains(pid))
            .map(|(pid, _)| (*pid, blobs_by_pack.remove(pid).unwrap_or_default()))
            .collect();
        // Packs are read and verified in parallel; each thread keeps its own partial report.
        let total = work.len() as u64;
        let queue = std::sync::Mutex::new(work.into_iter());
        let done = std::sync::atomic::AtomicU64::new(0);
        // One per core; on a remote repository more, as each waits a round trip for its pack
        // (each holds a pack in memory: 8 packs at most).
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let threads = if repo.is_remote() { cores.max(8) } else { cores };
        let parts: Vec<RepoResult<PackCheck>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut part = CheckReport::default();
                        let (mut damaged, mut bad) = (vec![], vec![]);
                        loop {
                            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                            let Some((pid, blobs)) = next else { break };
                            let (ok, b) = read_pack(repo, &pid, &blobs, &mut part)?;
                            if !ok {
                                damaged.push(pid);
                            }
                            bad.extend(b);
                            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                            events.phase("packs", n, total);
                        }
                        Ok((part, damaged, bad))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(RepoError::WorkerPanicked { stage: "check", message: "a check thread panicked".into() })
                    })
                })
                .collect()
        });
        events.phase("packs", done.into_inner(), total);
        for part in parts {
            let (part, damaged, bad) = part?;
            r.errors.extend(part.errors);
            r.packs_read += part.packs_read;
            r.blobs_read += part.blobs_read;
            r.bytes_read += part.bytes_read;
            damaged_packs.extend(damaged);
            bad_blobs.extend(bad);
        }
    }
    // A pack that is missing or truncated loses all its blobs; one that was read loses only
    // the blobs that failed verification.
    for (id, loc) in repo.index().iter() {
        if bad_packs.contains(&loc.pack) {
            bad_blobs.insert(id);
        }
    }
    damaged_packs.extend(bad_packs.iter().copied());
    r.damaged_packs = damaged_packs.iter().map(|p| p.to_hex()).collect();
    r.damaged_packs.sort();
    parity_notes(repo, &stored, &r.damaged_packs.clone(), &mut r)?;
    if !bad_blobs.is_empty() {
        r.affected = affected_paths(repo, &snaps, &bad_blobs)?;
    }
    Ok(r)
}

/// Parity status: how many packs have parity, and which damaged ones it can repair.
fn parity_notes(
    repo: &Repository,
    stored: &HashMap<String, u64>,
    damaged: &[String],
    r: &mut CheckReport,
) -> RepoResult<()> {
    let parity: HashSet<String> = repo.storage().list(ObjectKind::Parity)?.into_iter().map(|(n, _)| n).collect();
    if parity.is_empty() && repo.config().parity_percent == 0 {
        return Ok(());
    }
    let with = stored.keys().filter(|n| parity.contains(*n)).count();
    r.notes.push(Problem {
        object: "parity".into(),
        message: format!("{with} of {} packs have parity ({}% configured)", stored.len(), repo.config().parity_percent),
    });
    for d in damaged.iter().filter(|d| parity.contains(*d)) {
        r.notes.push(Problem {
            object: format!("pack {d}"),
            message: "has parity: `arca repair packs` may restore it".into(),
        });
    }
    Ok(())
}

/// Notes on prune marks waiting for their sweep and on locks: neither is an error, but an
/// unreadable one is (a damaged object).
fn marks_and_locks(repo: &Repository, r: &mut CheckReport) -> RepoResult<()> {
    for (name, _) in repo.storage().list(ObjectKind::Mark)? {
        match repo.load_object::<arca_format::MarkFile>(ObjectKind::Mark, &name) {
            Ok(m) => r.notes.push(Problem {
                object: format!("mark {name}"),
                message: format!(
                    "{} packs ({} bytes) marked by a prune{}; a later prune deletes them",
                    m.packs.len(),
                    m.packs.iter().map(|p| p.size).sum::<u64>(),
                    if m.sessions.is_none() { " that was interrupted" } else { "" }
                ),
            }),
            Err(RepoError::Storage(e)) if e.is_not_found() => {}
            Err(e) => r.error(format!("mark {name}"), e.to_string()),
        }
    }
    let (locks, bad) = crate::lock::list(repo)?;
    let now = crate::lock::now_ns();
    for l in locks {
        let when = chrono::DateTime::from_timestamp_nanos(l.started).format("%Y-%m-%d %H:%M:%S UTC");
        let state =
            if crate::lock::is_stale(&l, now) { "stale (its process is gone; prune removes it)" } else { "alive" };
        r.notes.push(Problem {
            object: format!("lock {}", l.session),
            message: format!("`{}` on {} (pid {}) since {when}: {state}", l.command, l.host, l.pid),
        });
    }
    for (name, e) in bad {
        r.error(format!("lock {name}"), e.to_string());
    }
    Ok(())
}

fn object_of(e: &RepoError) -> String {
    match e {
        RepoError::Corrupt { what, .. } => what.clone(),
        _ => "repository".into(),
    }
}

fn selected(read: ReadData, id: &Id) -> bool {
    match read {
        ReadData::None => false,
        ReadData::All => true,
        ReadData::Subset { n, m } => (u32::from_be_bytes([id.0[0], id.0[1], id.0[2], id.0[3]]) % m.max(1)) + 1 == n,
        ReadData::Percent(p) => rand::random::<f64>() * 100.0 < p,
        ReadData::Bytes(_) => true,
    }
}

fn check_tree(
    repo: &Repository,
    root: &Id,
    swept: &HashSet<Id>,
    seen: &mut HashSet<Id>,
    bad: &mut HashSet<Id>,
    r: &mut CheckReport,
) -> RepoResult<()> {
    if !seen.insert(*root) {
        return Ok(());
    }
    let tree = match repo.read_tree(root) {
        Ok(t) => t,
        Err(e) => {
            bad.insert(*root);
            r.error(format!("tree {root}"), e.to_string());
            return Ok(());
        }
    };
    let index = repo.index();
    let mut subtrees = vec![];
    for n in &tree.nodes {
        for c in &n.content {
            match index.get(c) {
                None if bad.insert(*c) => r.error(
                    format!("data blob {c}"),
                    "referenced but not in the index (lost pack or index; try `arca repair index`)",
                ),
                Some(loc) if swept.contains(&loc.pack) && bad.insert(*c) => r.error(
                    format!("data blob {c}"),
                    format!("referenced, but its pack {} was deleted by a prune", loc.pack),
                ),
                _ => {}
            }
        }
        if n.kind == NodeKind::Dir {
            match n.subtree {
                Some(s) => subtrees.push(s),
                None => r.error(
                    format!("tree {root}"),
                    format!("directory {:?} has no subtree", String::from_utf8_lossy(&n.name)),
                ),
            }
        }
    }
    drop(index);
    for s in subtrees {
        check_tree(repo, &s, swept, seen, bad, r)?;
    }
    Ok(())
}

/// One thread's share of the data check: its findings, damaged packs and damaged blobs.
type PackCheck = (CheckReport, Vec<Id>, Vec<Id>);

/// Read one whole pack and verify it: whether it is intact, and which blobs are damaged.
fn read_pack(
    repo: &Repository,
    pid: &Id,
    blobs: &[(Id, crate::index::BlobLocation)],
    r: &mut CheckReport,
) -> RepoResult<(bool, Vec<Id>)> {
    let name = pid.to_hex();
    let bytes = match repo.storage().get(ObjectKind::Pack, &name) {
        Ok(b) => b,
        Err(e) => {
            r.error(format!("pack {pid}"), e.to_string());
            return Ok((false, blobs.iter().map(|b| b.0).collect()));
        }
    };
    let mut bad = vec![];
    r.packs_read += 1;
    r.bytes_read += bytes.len() as u64;
    let mut ok = true;
    if Id::of_bytes(&bytes) != *pid {
        r.error(format!("pack {pid}"), "contents do not match the pack id (bit rot, tampering or a torn write)");
        ok = false;
    } else if repo.config().parity_percent > 0 {
        // Parity nobody reads until a pack is damaged must be known good before then.
        let problem = match repo.storage().get(ObjectKind::Parity, &name) {
            Ok(p) => crate::parity::verify(&bytes, &p).err(),
            Err(e) if e.is_not_found() => Some("missing".into()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = problem {
            r.error(
                format!("parity {pid}"),
                format!("damaged ({why}); the pack itself is intact: `arca repair packs` writes its parity anew"),
            );
        }
    }
    match pack::header_from_bytes(repo, pid, &bytes) {
        Ok(header) => {
            let in_header: HashSet<Id> = header.blobs.iter().map(|b| b.id).collect();
            for (id, _) in blobs {
                if !in_header.contains(id) {
                    r.error(format!("pack {pid}"), format!("index says it holds blob {id}, its header does not"));
                    ok = false;
                }
            }
        }
        Err(e) => {
            r.error(format!("pack {pid}"), e.to_string());
            ok = false;
        }
    }
    for (id, loc) in blobs {
        r.blobs_read += 1;
        let start = loc.offset as usize;
        let Some(sealed) = bytes.get(start..start + loc.length as usize) else {
            r.error(format!("pack {pid}"), format!("blob {id} lies beyond the end of the pack"));
            ok = false;
            bad.push(*id);
            continue;
        };
        let verified = repo.content_key(loc.key, || format!("pack {pid}")).and_then(|k| {
            let cipher = k.blob_cipher(loc.kind).ok_or(RepoError::Internal("check without a data key"))?;
            blob::verify(k.key(), cipher, loc.kind, id, sealed, loc.raw_length)
        });
        if let Err(e) = verified {
            r.error(format!("pack {pid}"), e.to_string());
            ok = false;
            bad.push(*id);
        }
    }
    Ok((ok, bad))
}

/// The digest of each snapshot in the split form (what summary-only keys see) must say what
/// its body says: a writer could make them differ.
fn digests(repo: &Repository, snaps: &[SnapshotEntry], r: &mut CheckReport) -> RepoResult<()> {
    for s in snaps {
        let name = s.id.to_hex();
        let bytes = match repo.storage().get(ObjectKind::Snapshot, &name) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue, // forgotten meanwhile
            Err(e) => return Err(e.into()),
        };
        let what = || format!("snapshot {name}");
        match repo.snapshot_digest(&bytes, &what) {
            Ok(Some(d)) if d != arca_format::SnapshotDigest::of(&s.snapshot) => r.error(
                what(),
                "its digest (what summary-only keys read) does not match the snapshot: written by a faulty or hostile writer",
            ),
            Ok(_) => {}
            Err(e) => r.error(what(), e.to_string()),
        }
    }
    Ok(())
}

/// Every key that splits what it seals must have its metadata and summary keys stored for
/// reader keys, as the master key derives them: otherwise reader keys cannot read (or a
/// planted object misleads them into failing on) what it sealed.
fn reader_keys(repo: &Repository, r: &mut CheckReport) -> RepoResult<()> {
    let Ok(master) = repo.key("check the reader keys") else { return Ok(()) };
    if repo.version() < 2 {
        return Ok(());
    }
    let config = repo.config();
    let mut found: HashMap<(u32, u32), Vec<arca_format::ReaderKeyFile>> = HashMap::new();
    for (name, _) in repo.storage().list(ObjectKind::Keyring)? {
        let bytes = match repo.storage().get(ObjectKind::Keyring, &name) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let Some((env @ (arca_format::SEALED_TO_METADATA | arca_format::SEALED_TO_SUMMARY), sealed)) =
            arca_format::keyring::envelope(&bytes)
        else {
            continue;
        };
        let secret = if env == arca_format::SEALED_TO_METADATA {
            master.metadata_recipient(&config.repo_id)
        } else {
            master.summary_recipient(&config.repo_id)
        };
        let ad = crate::repository::object_ad_v2(ObjectKind::Keyring, &config.repo_id, env);
        let file = secret
            .open(sealed, &ad)
            .ok()
            .and_then(|p| arca_format::decode::<arca_format::ReaderKeyFile>("reader key", &p).ok());
        match file {
            Some(f) => found.entry((f.number, env)).or_default().push(f),
            // Sealed to a master key of before a rotation (left by one that was killed),
            // or damaged: no reader key opens it.
            None => r.notes.push(Problem {
                object: format!("reader key {name}"),
                message: "no reader key of this repository opens it (left by an interrupted `key rotate`, or damaged); the next `key rotate` removes it".into(),
            }),
        }
    }
    let ring = repo.keyring().all();
    let known: HashSet<u32> = ring.iter().map(|k| k.number).collect();
    let orphans: std::collections::BTreeSet<u32> =
        found.keys().map(|(n, _)| *n).filter(|n| !known.contains(n)).collect();
    for n in orphans {
        r.notes.push(Problem {
            object: format!("reader keys of {n:08x}"),
            message: "they name a content key the keyring does not have: left by a backup-only backup that was interrupted (or is running), or planted; reader keys read what that key sealed, nobody else".into(),
        });
    }
    for k in ring {
        if !k.split || k.held() != crate::keyring::Held::All {
            continue;
        }
        let summary = *k.key().summary_key();
        for (env, expect, label) in [
            (arca_format::SEALED_TO_METADATA, *k.key().metadata_key(), "metadata"),
            (arca_format::SEALED_TO_SUMMARY, summary, "summary"),
        ] {
            let copies = found.get(&(k.number, env)).map(Vec::as_slice).unwrap_or_default();
            let right = |f: &arca_format::ReaderKeyFile| {
                f.key.as_slice() == expect
                    && f.class == k.class
                    && f.host == k.host
                    && f.session == (k.role == crate::keyring::KeyRole::Session)
                    && (env != arca_format::SEALED_TO_METADATA
                        || f.summary_key.as_ref().map(|b| b.as_slice()) == Some(&summary[..]))
            };
            if copies.is_empty() {
                r.error(
                    format!("content key {:08x}", k.number),
                    format!(
                        "no object in keyring/ gives reader keys its {label} key (deleted?): {label}-only keys cannot read what it sealed; `arca key add --{label}-only` with a full key stores it again"
                    ),
                );
            } else if copies.iter().any(|c| !right(c)) {
                r.error(
                    format!("content key {:08x}", k.number),
                    format!("a keyring object gives reader keys a wrong {label} key for it (planted by a backup-only key holder?): they fail on what it sealed"),
                );
            }
        }
    }
    Ok(())
}

/// Compare the signed history with the snapshots the storage holds (readable or not).
fn history(repo: &Repository, r: &mut CheckReport) -> RepoResult<()> {
    let present: HashSet<Id> =
        repo.storage().list(ObjectKind::Snapshot)?.into_iter().filter_map(|(n, _)| Id::from_hex(&n)).collect();
    let audit = crate::history::audit(repo, &present, crate::history::Source::Storage)?;
    let interrupted = crate::history::interrupted_removals(repo);
    for p in &audit.problems {
        if let crate::history::Problem::Resurrected { snapshot, .. } = p {
            if interrupted.contains(snapshot) {
                // This host's own record says it was deleting it when the run died.
                r.notes.push(Problem {
                    object: format!("snapshot {snapshot}"),
                    message: format!("{p}; this host was removing it when a run was interrupted, and its next forget, tag or backup finishes that"),
                });
                continue;
            }
        }
        let object = match p {
            crate::history::Problem::Deleted { snapshot, .. }
            | crate::history::Problem::Resurrected { snapshot, .. } => {
                format!("snapshot {snapshot}")
            }
            crate::history::Problem::BadStatement { statement, .. } => format!("history {statement}"),
            _ => "history".to_string(),
        };
        r.error(object, p.to_string());
    }
    if !audit.unsigned.is_empty() {
        r.notes.push(Problem {
            object: "history".into(),
            message: format!(
                "{} snapshots are not in the signed history (made before arca signed its history, or by an arca that does not); a storage could delete them unnoticed",
                audit.unsigned.len()
            ),
        });
    }
    r.history = HistorySummary {
        statements: audit.statements,
        signers: audit.signers,
        signed_snapshots: audit.signed.len(),
        unsigned_snapshots: audit.unsigned.len(),
    };
    Ok(())
}

/// Every path in every snapshot whose data or tree is among `bad`.
fn affected_paths(repo: &Repository, snaps: &[SnapshotEntry], bad: &HashSet<Id>) -> RepoResult<Vec<Affected>> {
    let mut out = vec![];
    for s in snaps {
        let mut paths = vec![];
        if bad.contains(&s.snapshot.tree) {
            paths.push("/".to_string());
        }
        walk(
            repo,
            &s.snapshot.tree,
            &mut |path, node| {
                let hit =
                    node.content.iter().any(|c| bad.contains(c)) || node.subtree.is_some_and(|t| bad.contains(&t));
                if hit {
                    paths.push(format!("/{}", String::from_utf8_lossy(path)));
                }
                Ok(Visit::Continue)
            },
            &mut |_, _| {},
        )?;
        if !paths.is_empty() {
            out.push(Affected { snapshot: s.id.to_hex(), time: s.snapshot.time.clone(), paths });
        }
    }
    Ok(out)
}
