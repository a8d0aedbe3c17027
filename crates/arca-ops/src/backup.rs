//! The backup use case: choose the parent, reuse what an interrupted session left, store the
//! source, assemble the snapshot, make sure everything it references still exists, save.

use crate::readable_snapshots;
use crate::source::Source;
use crate::time::TimeSpec;
use crate::{OpsError, OpsResult, Target};
use arca_format::{Snapshot, SnapshotSummary, SnapshotWarning, WarningKind};
use arca_repo::blob::Compression;
use arca_repo::keys::Origin;
use arca_repo::snapshots::{self as snaps, find_parent};
use arca_repo::writer::WriterOptions;
use arca_repo::RepoError;
use arca_repo::{BlobWriter, Cancel, Event, Events, Repository};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a backup records and how it stores; the source says what it reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupRequest {
    /// The host name the snapshot records (default: this machine's).
    pub host: Option<String>,
    pub tags: Vec<String>,
    /// The time the snapshot records (default: now).
    pub time: Option<TimeSpec>,
    /// The parent snapshot (an id prefix, `latest`, ...); default: the latest snapshot of the
    /// same host and paths, for sources that use one.
    pub parent: Option<String>,
    pub compression: Compression,
    /// Confirm every deduplication hit byte for byte.
    pub paranoid_dedup: bool,
    /// Threads compressing and encrypting (default: one per core).
    pub threads: Option<usize>,
    /// The class to write in (`backup --class`): its own keys, deduplicated only within the
    /// class, destroyable with `key destroy-class`. Created on first use.
    pub class: Option<String>,
}

/// What a backup did.
#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    /// The new snapshot's id (full hex); `None` for a dry run.
    pub snapshot_id: Option<String>,
    pub dry_run: bool,
    /// The parent snapshot's id (full hex).
    pub parent: Option<String>,
    pub summary: SnapshotSummary,
    pub warnings: Vec<SnapshotWarning>,
    /// Packs an interrupted session left that this one reuses.
    pub packs_reused: usize,
    /// Pack uploads an interrupted session began that this one finished (S3).
    pub uploads_resumed: u64,
    /// The snapshot as saved (or as it would have been).
    #[serde(skip)]
    pub snapshot: Snapshot,
}

impl BackupReport {
    /// True if some source files could not be read (the snapshot lacks them).
    pub fn partial(&self) -> bool {
        self.warnings.iter().any(|w| w.kind == WarningKind::Unreadable)
    }
}

/// Back up `source` into `repo`. A locked target stores; a dry run computes everything and
/// stores nothing. Cancelling leaves the repository as a kill does: consistent, and the next
/// backup reuses what was uploaded.
pub fn backup(
    repo: &Arc<Repository>,
    target: Target,
    source: &mut dyn Source,
    req: &BackupRequest,
    events: &dyn Events,
    cancel: &Cancel,
) -> OpsResult<BackupReport> {
    let time = req.time.as_ref().map(TimeSpec::start).unwrap_or_else(|| chrono::Local::now().fixed_offset());
    let backup_only = repo.is_backup_only();
    if backup_only {
        if req.parent.is_some() {
            repo.require_full(
                "choose a parent (--parent): it uses the last backup of the same host and paths it made",
            )?;
        }
        if req.paranoid_dedup {
            repo.require_full("compare deduplicated blobs with what is stored (--paranoid-dedup)")?;
        }
    }
    let origin = Origin::current();
    let host = match (repo.backup_only_host(), &req.host) {
        (Some(bound), Some(asked)) if bound != asked => {
            return Err(RepoError::BackupOnly {
                slot: repo.key_slot().to_string(),
                action: format!("back up as host {asked:?}: it is bound to host {bound:?}"),
            }
            .into())
        }
        (Some(bound), _) => bound.to_string(),
        (None, asked) => asked.clone().unwrap_or(origin.hostname.clone()),
    };
    let paths = source.paths();
    let class = req.class.clone().filter(|c| !c.is_empty());
    let key = match (&class, target) {
        (None, _) => repo.default_key(),
        (Some(c), Target::Locked(_)) => repo.create_class(c)?,
        (Some(c), Target::DryRun) => match repo.writing_key(c) {
            Ok(k) => k,
            Err(RepoError::Class(..)) => {
                arca_repo::keyring::validate_class(c).map_err(|why| RepoError::Class(c.clone(), why))?;
                Arc::new(arca_repo::keyring::ContentKey::unsaved(c, repo.config().encryption))
            }
            Err(e) => return Err(e.into()),
        },
    };
    // A parent lends its content ids and trees: it must be of the same class, or the new
    // snapshot would name blobs sealed with another class's keys.
    // A backup-only key reads no snapshots: its parent is the last one it made, from its
    // send log.
    let send_log = repo.send_log_dir().map(|d| arca_repo::sendlog::path(d, &repo.config().repo_id, &host, &paths));
    // What an interrupted session left is taken up while the snapshots are listed (each is a
    // few round trips on a remote repository); both are done before the first blob is added.
    // Packs of another backup-only session are sealed with a key this one does not have.
    let (recovered, listed) = std::thread::scope(|scope| {
        let recovering = match (target, backup_only) {
            (Target::Locked(lock), false) => Some(scope.spawn(move || recover_interrupted(repo, lock, events))),
            _ => None,
        };
        let listed = if backup_only { Ok(vec![]) } else { readable_snapshots(repo, events) };
        (recovering.map(|h| h.join().unwrap_or_default()).unwrap_or_default(), listed)
    });
    let (packs_reused, uploads_resumed) = recovered;
    let all: Vec<_> = match (backup_only, repo.send_log(), &send_log) {
        (false, ..) => listed?.into_iter().filter(|s| s.snapshot.class == class).collect(),
        (true, Some(log), Some(file)) if source.uses_parent() => {
            let key = repo.default_key();
            log.load(file, &repo.config().repo_id, |b| key.blob_id(b))
                .map(|r| snaps::SnapshotEntry { id: r.id, snapshot: r.snapshot })
                .into_iter()
                .collect()
        }
        (true, ..) => vec![],
    };
    let parent = match &req.parent {
        Some(spec) => Some(snaps::resolve(&all, spec, &Default::default()).map_err(|e| match (e, &class) {
            (RepoError::SnapshotNotFound(s), Some(c)) => RepoError::SnapshotNotFound(format!(
                "{s} among the snapshots of class {c:?} (a parent must be of the same class)"
            )),
            (RepoError::SnapshotNotFound(s), None) => RepoError::SnapshotNotFound(format!(
                "{s} among the snapshots of the default class (a parent must be of the same class)"
            )),
            (e, _) => e,
        })?),
        None if !source.uses_parent() => None,
        None => find_parent(&all, source.kind(), &host, &paths).cloned(),
    };
    let writer_opts = WriterOptions {
        compression: req.compression,
        paranoid_dedup: req.paranoid_dedup,
        dry_run: target.is_dry_run(),
        threads: req.threads.unwrap_or(WriterOptions::default().threads),
    };
    if !target.is_dry_run() {
        // Before the first pack: a full key must find the key a backup-only session seals with.
        repo.store_session_key()?;
    }
    let writer = match target {
        Target::Locked(lock) => BlobWriter::with_key(repo.clone(), key.clone(), lock, writer_opts),
        Target::DryRun => BlobWriter::dry_run(repo.clone(), Some(key.clone()), writer_opts),
    };
    let parent_tree = parent.as_ref().filter(|_| source.uses_parent()).map(|p| p.snapshot.tree);
    // A failure after this session's lock lapsed is most likely a prune having taken what
    // the backup was writing (a temporary pack it counted as abandoned): say that, which also
    // says that nothing was committed. (The original error is shown as a caution.)
    let lapse_explains = |e: OpsError| match (target, &e) {
        (_, OpsError::Repo(RepoError::Cancelled)) => e,
        (Target::Locked(lock), _) => match lock.lapsed() {
            Some(gap) => {
                events.emit(Event::Caution(&format!("after the lock lapsed: {e}")));
                OpsError::Repo(RepoError::LockLate { secs: gap.as_secs() })
            }
            None => e,
        },
        _ => e,
    };
    let outcome = source.store(&writer, parent_tree, events, cancel).map_err(lapse_explains)?;
    let stats = writer.finish().map_err(|e| lapse_explains(e.into()))?;
    let mut summary = outcome.summary.clone();
    summary.blobs_added = stats.blobs_added;
    summary.bytes_added = stats.bytes_added;
    summary.bytes_added_stored = stats.bytes_stored;
    let snapshot = Snapshot {
        time: time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
        hostname: host,
        username: origin.username,
        paths,
        tags: req.tags.iter().flat_map(|t| t.split(',')).filter(|t| !t.is_empty()).map(String::from).collect(),
        parent: parent.as_ref().map(|p| p.id),
        tree: outcome.tree,
        kind: source.kind(),
        summary,
        warnings: outcome.warnings.clone(),
        excludes: source.excludes(),
        keep_until: None,
        destroy_after: None,
        program_version: format!("arca {}", env!("CARGO_PKG_VERSION")),
        original: None,
        previous_ids: vec![],
        source: source.metadata(),
        class: class.clone(),
    };
    if let Target::Locked(lock) = target {
        // A lock that lapsed (suspended, stalled) may have let a prune take what this backup
        // relies on: confirm it is all still there, or commit nothing.
        lock.confirm_commit(repo, &[outcome.tree])?;
        lock.check_alive()?;
        arca_repo::shred::confirm_class_alive(repo, &key)?;
    }
    arca_repo::failpoint::hit("backup-before-snapshot");
    // The last safe point: after it the snapshot is saved even if a signal arrives.
    cancel.check()?;
    let id = match target {
        Target::Locked(_) => Some(snaps::save(repo, &snapshot)?),
        Target::DryRun => None,
    };
    if let (Some(id), Some(log), Some(file)) = (id, repo.send_log(), &send_log) {
        if let Err(e) = log.save(file, &repo.config().repo_id, id, &snapshot) {
            events.emit(Event::Caution(&format!("{e}: the next backup reads every file again")));
        }
    }
    Ok(BackupReport {
        snapshot_id: id.map(|i| i.to_hex()),
        dry_run: target.is_dry_run(),
        parent: parent.map(|p| p.id.to_hex()),
        summary: snapshot.summary.clone(),
        warnings: outcome.warnings,
        packs_reused,
        uploads_resumed,
        snapshot,
    })
}

/// Finish the pack uploads and adopt the packs an interrupted session left (see
/// [`arca_repo::resume`] and [`arca_repo::repair::adopt_orphan_packs`]), saying what was
/// found; returns how many packs were adopted and how many uploads finished.
fn recover_interrupted(
    repo: &Arc<Repository>,
    lock: &arca_repo::lock::SessionLock,
    events: &dyn Events,
) -> (usize, u64) {
    let mut uploads_resumed = 0;
    let mut packs_reused = 0;
    // Pack uploads an interrupted session began are finished from the cache, not begun
    // again; this session's uploads wait there too.
    match arca_repo::resume::resume_uploads(repo, lock) {
        Ok(r) => {
            uploads_resumed = r.packs;
            if r.packs > 0 {
                events.emit(Event::Notice(&format!(
                    "finished {} pack uploads ({:.1} MiB) an interrupted session began",
                    r.packs,
                    r.bytes as f64 / (1 << 20) as f64
                )));
            }
            if r.dropped > 0 {
                events.emit(Event::Caution(&format!(
                    "{} packs an interrupted session was uploading were damaged in the local cache: their uploads were abandoned, and what they held is stored anew",
                    r.dropped
                )));
            }
        }
        Err(e) => events.emit(Event::Caution(&format!("could not finish the uploads of an interrupted session: {e}"))),
    }
    // Packs an interrupted backup uploaded after its last checkpoint are reused, not sent again.
    match arca_repo::repair::adopt_orphan_packs(repo, lock) {
        Ok(0) => {}
        Ok(n) => {
            packs_reused = n;
            events.emit(Event::Notice(&format!("reusing {n} packs left by an interrupted session")));
        }
        Err(e) => events.emit(Event::Caution(&format!("could not look for packs of an interrupted session: {e}"))),
    }
    (packs_reused, uploads_resumed)
}
