//! Snapshot sets: the read-only btrfs subvolumes in one directory (what btrbk, snapper or a
//! cron job makes), pushed into a repository one arca snapshot each and pulled back as
//! read-only subvolumes that share extents, as ButterSink synced them.
//!
//! **Push** backs up each read-only subvolume the repository does not hold yet, oldest first,
//! with the previous one's snapshot as parent (unchanged files are not read again: btrfs keeps
//! inode numbers and change times across snapshots). The arca snapshot records the set
//! directory as its path (so consecutive members line up as parent and child) and the
//! subvolume's name, UUIDs and transaction ids in its `source` map (`btrfs.*`).
//!
//! **Pull** recreates members on a btrfs filesystem in order: each starts as a writable
//! snapshot of the previously received one (so every unchanged file shares its extents), is
//! brought to the member's contents by a restore that keeps files whose contents already
//! match and deletes what the member lacks, gets the member's UUID as its received UUID (so a
//! later `btrfs send -p` from the original host finds it as a parent), and is made read-only
//! and renamed into place last: until then it is `<name>.arca-partial`, never complete-looking,
//! and the next pull carries on from it.

use crate::{btrfs, FsnapError, FsnapResult};
use arca_format::{Id, SnapshotKind};
use arca_fs::backup::Redirect;
use arca_fs::BackupOutcome;
use arca_ops::backup::BackupRequest;
use arca_ops::restore::RestoreRequest;
use arca_ops::source::{Files, FilesOptions};
use arca_ops::{OpsResult, Source, Target};
use arca_repo::snapshots::SnapshotEntry;
use arca_repo::{BlobWriter, Cancel, Events, Repository};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `source` keys a member records.
pub const KEY_SET: &str = "btrfs.set";
pub const KEY_NAME: &str = "btrfs.name";
pub const KEY_UUID: &str = "btrfs.uuid";
pub const KEY_PARENT_UUID: &str = "btrfs.parent_uuid";
pub const KEY_RECEIVED_UUID: &str = "btrfs.received_uuid";
pub const KEY_CTRANSID: &str = "btrfs.ctransid";
pub const KEY_STRANSID: &str = "btrfs.stransid";
pub const KEY_OTRANSID: &str = "btrfs.otransid";
pub const KEY_GENERATION: &str = "btrfs.generation";

/// The suffix of a member being pulled.
pub const PARTIAL: &str = ".arca-partial";

/// A member of a set as the repository holds it.
#[derive(Clone, Debug)]
pub struct Stored {
    pub entry: SnapshotEntry,
    pub host: String,
    pub set: String,
    pub name: String,
    pub uuid: String,
    /// The UUID and transaction id `btrfs send -p` names this member by when it is a parent:
    /// those it was received from, if it was received, else its own.
    pub send_uuid: String,
    pub send_transid: u64,
    pub otransid: u64,
}

impl Stored {
    fn of(entry: &SnapshotEntry) -> Option<Stored> {
        let s = &entry.snapshot.source;
        if entry.snapshot.kind != SnapshotKind::Files {
            return None;
        }
        let num = |k: &str| s.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        let uuid = s.get(KEY_UUID)?.clone();
        let (send_uuid, send_transid) = match s.get(KEY_RECEIVED_UUID) {
            Some(r) => (r.clone(), num(KEY_STRANSID)),
            None => (uuid.clone(), num(KEY_CTRANSID)),
        };
        Some(Stored {
            entry: entry.clone(),
            host: entry.snapshot.hostname.clone(),
            set: s.get(KEY_SET)?.clone(),
            name: s.get(KEY_NAME)?.clone(),
            uuid,
            send_uuid,
            send_transid,
            otransid: num(KEY_OTRANSID),
        })
    }
}

/// The members of every set the repository holds, oldest first within a set.
pub fn stored(all: &[SnapshotEntry]) -> Vec<Stored> {
    let mut out: Vec<Stored> = all.iter().filter_map(Stored::of).collect();
    out.sort_by(|a, b| {
        (&a.host, &a.set, a.otransid, &a.entry.snapshot.time).cmp(&(
            &b.host,
            &b.set,
            b.otransid,
            &b.entry.snapshot.time,
        ))
    });
    out
}

/// The members of the set `set` of `host` (each `None`: the only one there is). A set is a
/// directory on one host: two hosts' `/mnt/pool/snaps` are two sets.
pub fn members_of(all: &[SnapshotEntry], set: Option<&str>, host: Option<&str>) -> FsnapResult<(String, Vec<Stored>)> {
    let mut every = stored(all);
    every.retain(|m| host.is_none_or(|h| m.host == h));
    let mut sets: Vec<(String, String)> = every.iter().map(|m| (m.host.clone(), m.set.clone())).collect();
    sets.dedup();
    let wanted = set.map(|s| s.trim_end_matches('/').to_string());
    sets.retain(|(_, s)| wanted.as_ref().is_none_or(|w| w == s));
    let (chosen_host, chosen) = match sets.as_slice() {
        [one] => one.clone(),
        [] => {
            let what = match (&wanted, host) {
                (Some(s), Some(h)) => format!("no btrfs snapshot set {s:?} of host {h:?}"),
                (Some(s), None) => format!("no btrfs snapshot set {s:?}"),
                (None, Some(h)) => format!("no btrfs snapshot set of host {h:?}"),
                (None, None) => "no btrfs snapshot set (`arca btrfs push DIR` stores one)".into(),
            };
            return Err(FsnapError::NotFound(format!("the repository holds {what}")));
        }
        many => {
            let named: Vec<String> = many.iter().map(|(h, s)| format!("{s} of {h}")).collect();
            return Err(FsnapError::Invalid(format!(
                "the repository holds several btrfs snapshot sets ({}): choose one with --set and --host",
                named.join(", ")
            )));
        }
    };
    let members = every.into_iter().filter(|m| m.set == chosen && m.host == chosen_host).collect();
    Ok((chosen, members))
}

/// Every snapshot, or an error if any cannot be read: a deletion decided on a listing with
/// holes would delete what the holes hide.
fn all_snapshots_for_delete(repo: &Repository) -> FsnapResult<Vec<SnapshotEntry>> {
    let (all, errors) = arca_repo::snapshots::list_all(repo)?;
    if let Some(first) = errors.first() {
        return Err(FsnapError::Invalid(format!(
            "{} snapshots cannot be read (the first: {first}); --delete decides nothing on an incomplete listing (`arca check`)",
            errors.len()
        )));
    }
    Ok(all)
}

/// One member of a set, backed up from its subvolume.
struct Member {
    set: PathBuf,
    name: String,
    info: btrfs::SubvolInfo,
    files: Files,
}

impl Source for Member {
    fn kind(&self) -> SnapshotKind {
        SnapshotKind::Files
    }

    fn paths(&self) -> Vec<String> {
        vec![self.set.display().to_string()]
    }

    fn uses_parent(&self) -> bool {
        true
    }

    fn excludes(&self) -> Vec<String> {
        self.files.excludes()
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        let i = &self.info;
        let mut m = BTreeMap::from([
            (KEY_SET.to_string(), self.set.display().to_string()),
            (KEY_NAME.to_string(), self.name.clone()),
            (KEY_UUID.to_string(), i.uuid.clone()),
            (KEY_CTRANSID.to_string(), i.ctransid.to_string()),
            (KEY_STRANSID.to_string(), i.stransid.to_string()),
            (KEY_OTRANSID.to_string(), i.otransid.to_string()),
            (KEY_GENERATION.to_string(), i.generation.to_string()),
        ]);
        if let Some(p) = &i.parent_uuid {
            m.insert(KEY_PARENT_UUID.into(), p.clone());
        }
        if let Some(r) = &i.received_uuid {
            m.insert(KEY_RECEIVED_UUID.into(), r.clone());
        }
        m
    }

    fn store(
        &mut self,
        writer: &BlobWriter,
        parent: Option<Id>,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> OpsResult<BackupOutcome> {
        self.files.store(writer, parent, events, cancel)
    }
}

/// How to push.
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// The directory holding the set's read-only subvolumes.
    pub dir: PathBuf,
    /// Report what would be pushed and forgotten; store nothing.
    pub dry_run: bool,
    /// Forget members the directory no longer has.
    pub delete: bool,
    /// Host, tags, compression, threads, class of the snapshots made.
    pub request: BackupRequest,
    pub files: FilesOptions,
}

/// One member pushed (or, in a dry run, to push).
#[derive(Clone, Debug, Serialize)]
pub struct Pushed {
    pub name: String,
    pub uuid: String,
    pub snapshot_id: Option<String>,
    /// The arca snapshot it was stored against.
    pub parent: Option<String>,
    pub files_read: u64,
    pub files_unchanged: u64,
    pub bytes_added_stored: u64,
}

/// What a push did.
#[derive(Clone, Debug, Serialize)]
pub struct PushReport {
    pub set: String,
    pub dry_run: bool,
    pub pushed: Vec<Pushed>,
    /// Members the repository already held.
    pub present: Vec<String>,
    /// Members forgotten because the directory no longer has them (`--delete`): names.
    pub forgotten: Vec<String>,
}

/// Push the read-only subvolumes of `opts.dir` that the repository does not hold yet.
pub fn push(
    repo: &Arc<Repository>,
    target: Target,
    opts: &PushOptions,
    events: &dyn Events,
    cancel: &Cancel,
) -> FsnapResult<PushReport> {
    let dir = std::fs::canonicalize(&opts.dir).map_err(|e| FsnapError::io(&opts.dir, e))?;
    if !btrfs::is_btrfs(&dir) {
        return Err(FsnapError::Unsupported { path: dir, why: "is not on btrfs".into() });
    }
    let set = dir.display().to_string();
    let local: Vec<(String, btrfs::SubvolInfo)> =
        btrfs::subvolumes_in(&dir)?.into_iter().filter(|(_, i)| i.readonly).collect();
    let all = if opts.delete { all_snapshots_for_delete(repo)? } else { arca_ops::readable_snapshots(repo, events)? };
    let host = opts.request.host.clone().unwrap_or_else(|| arca_repo::keys::Origin::current().hostname);
    let (_, held) = members_of(&all, Some(&set), Some(&host)).or_else(|e| match e {
        FsnapError::NotFound(_) => Ok((set.clone(), vec![])),
        e => Err(e),
    })?;
    // A member is here if its subvolume is, or a copy received from it (a set restored by a
    // pull, or received by btrfs from the original).
    let mut held_by_uuid: HashMap<&str, &Stored> = HashMap::new();
    for m in &held {
        held_by_uuid.insert(m.uuid.as_str(), m);
        held_by_uuid.entry(m.send_uuid.as_str()).or_insert(m);
    }
    let stored_as = |i: &btrfs::SubvolInfo| {
        held_by_uuid
            .get(i.uuid.as_str())
            .or_else(|| i.received_uuid.as_deref().and_then(|r| held_by_uuid.get(r)))
            .copied()
    };
    if opts.delete && !held.is_empty() && !local.iter().any(|(_, i)| stored_as(i).is_some()) {
        return Err(FsnapError::Invalid(format!(
            "{set} holds none of the {} members the repository has of it (is it mounted?): --delete would forget them all; refused",
            held.len()
        )));
    }
    let mut report =
        PushReport { set: set.clone(), dry_run: opts.dry_run, pushed: vec![], present: vec![], forgotten: vec![] };
    // The arca snapshot of the newest member so far: the next one's parent.
    let mut last: Option<Id> = None;
    for (name, info) in &local {
        cancel.check().map_err(arca_ops::OpsError::from)?;
        if let Some(m) = stored_as(info) {
            report.present.push(name.clone());
            last = Some(m.entry.id);
            continue;
        }
        if opts.dry_run {
            report.pushed.push(Pushed {
                name: name.clone(),
                uuid: info.uuid.clone(),
                snapshot_id: None,
                parent: last.map(|p| p.to_hex()),
                files_read: 0,
                files_unchanged: 0,
                bytes_added_stored: 0,
            });
            continue;
        }
        let mut files = Files::new(std::slice::from_ref(&dir), opts.files.clone(), &[])?;
        files.set_redirects(vec![Redirect { path: dir.clone(), read_from: dir.join(name) }]);
        let mut member = Member { set: dir.clone(), name: name.clone(), info: info.clone(), files };
        let mut req = opts.request.clone();
        req.parent = last.map(|p| p.to_hex());
        if req.time.is_none() {
            req.time = chrono::DateTime::from_timestamp(info.otime, 0).and_then(|t| t.to_rfc3339().parse().ok());
        }
        let done = arca_ops::backup::backup(repo, target, &mut member, &req, events, cancel)?;
        let id = done.snapshot_id.clone();
        report.pushed.push(Pushed {
            name: name.clone(),
            uuid: info.uuid.clone(),
            snapshot_id: id.clone(),
            parent: done.parent.clone(),
            files_read: done.summary.files_read,
            files_unchanged: done.summary.files_unchanged,
            bytes_added_stored: done.summary.bytes_added_stored,
        });
        last = id.as_deref().and_then(Id::from_hex).or(last);
    }
    if opts.delete {
        let here: HashSet<Id> = local.iter().filter_map(|(_, i)| stored_as(i)).map(|m| m.entry.id).collect();
        let gone: Vec<&Stored> = held.iter().filter(|m| !here.contains(&m.entry.id)).collect();
        if !gone.is_empty() {
            let req = arca_ops::forget::ForgetRequest {
                selection: arca_ops::forget::Selection::Snapshots(gone.iter().map(|m| m.entry.id.to_hex()).collect()),
                filter: Default::default(),
                dry_run: opts.dry_run,
            };
            arca_ops::forget::forget(repo, &req, chrono::Local::now().fixed_offset(), events)?;
            report.forgotten = gone.iter().map(|m| m.name.clone()).collect();
        }
    }
    Ok(report)
}

/// How to pull.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// The directory (on btrfs) that receives the set's subvolumes.
    pub dir: PathBuf,
    /// The set (its directory on the pushing host); `None`: the repository's only set.
    pub set: Option<String>,
    /// The host that pushed it; `None`: the only one with such a set.
    pub host: Option<String>,
    /// Only these members (by name).
    pub only: Vec<String>,
    pub dry_run: bool,
    /// Delete subvolumes earlier pulls of this set from this repository made in `dir` whose
    /// member the repository no longer holds (listed in [`PULLED`]; nothing else is touched).
    pub delete: bool,
    /// Files written at once.
    pub threads: Option<usize>,
}

/// One member pulled (or to pull).
#[derive(Clone, Debug, Serialize)]
pub struct Pulled {
    pub name: String,
    pub snapshot_id: String,
    /// The received subvolume it started from (sharing its extents).
    pub based_on: Option<String>,
    /// A partial member from an interrupted pull that this one finished.
    pub resumed: bool,
    pub files_written: u64,
    pub files_kept: u64,
    pub bytes_written: u64,
    pub deleted: u64,
    /// Why it was not given the original's UUID as received UUID (it may differ from the
    /// original, so `btrfs send -p` must not build on it), if it was not.
    pub not_marked: Option<String>,
}

/// What a pull did.
#[derive(Clone, Debug, Serialize)]
pub struct PullReport {
    pub set: String,
    pub host: String,
    pub dry_run: bool,
    pub pulled: Vec<Pulled>,
    pub present: Vec<String>,
    /// Received subvolumes deleted because the repository no longer holds them (`--delete`).
    pub deleted: Vec<String>,
}

/// The file in a pull's directory that lists the subvolumes pulls made there, with the
/// repository and set each came from: `--delete` removes only those, never a subvolume
/// `btrfs receive` or a person put beside them, nor one another repository's pull made.
pub const PULLED: &str = ".arca-pulled.json";

/// One subvolume a pull made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
struct PulledRecord {
    /// The name it was given in the directory.
    name: String,
    /// The member's UUID on the pushing host.
    uuid: String,
    repository: String,
    host: String,
    set: String,
}

fn read_pulled(dir: &Path) -> FsnapResult<Vec<PulledRecord>> {
    let path = dir.join(PULLED);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| FsnapError::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(FsnapError::io(&path, e)),
    }
}

fn write_pulled(dir: &Path, pulled: &[PulledRecord]) -> FsnapResult<()> {
    let path = dir.join(PULLED);
    let tmp = dir.join(format!("{PULLED}.tmp"));
    let bytes = serde_json::to_vec_pretty(pulled).map_err(|e| FsnapError::Invalid(e.to_string()))?;
    std::fs::write(&tmp, bytes).map_err(|e| FsnapError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| FsnapError::io(&path, e))
}

/// Why a pulled member must not pass for the original in `btrfs send -p`, if it must not.
fn differs_from_original(m: &Stored, r: &arca_fs::RestoreReport) -> Option<String> {
    let left_out = m.entry.snapshot.warnings.iter().filter(|w| w.kind == arca_format::WarningKind::Unreadable).count();
    if left_out > 0 {
        return Some(format!("its snapshot lacks {left_out} paths the backup could not read"));
    }
    r.warnings.first().map(|w| format!("not all of it could be restored as it was: {w}"))
}

/// Pull the set's members that `opts.dir` lacks, oldest first.
pub fn pull(repo: &Repository, opts: &PullOptions, events: &dyn Events, cancel: &Cancel) -> FsnapResult<PullReport> {
    let dir = std::fs::canonicalize(&opts.dir).map_err(|e| FsnapError::io(&opts.dir, e))?;
    if !btrfs::is_btrfs(&dir) {
        return Err(FsnapError::Unsupported { path: dir, why: "is not on btrfs (a pull makes subvolumes)".into() });
    }
    let all = if opts.delete { all_snapshots_for_delete(repo)? } else { arca_ops::readable_snapshots(repo, events)? };
    let (set, members) = members_of(&all, opts.set.as_deref(), opts.host.as_deref())?;
    let host = members.first().map(|m| m.host.clone()).unwrap_or_default();
    for o in &opts.only {
        if !members.iter().any(|m| &m.name == o) {
            return Err(FsnapError::NotFound(format!("the set {set} has no member {o:?}")));
        }
    }
    let repository = repo.config().repo_id.to_hex();
    let mut records = read_pulled(&dir)?;
    let local = btrfs::subvolumes_in(&dir)?;
    // Here already: received from the member (by btrfs or a pull), or recorded as pulled from
    // it (a member that could not be marked as received).
    let here = |m: &Stored, records: &[PulledRecord]| -> Option<String> {
        let received = local
            .iter()
            .find(|(n, i)| i.readonly && !n.ends_with(PARTIAL) && i.received_uuid.as_deref() == Some(&m.send_uuid));
        if let Some((n, _)) = received {
            return Some(n.clone());
        }
        records
            .iter()
            .find(|r| r.uuid == m.uuid && r.repository == repository && btrfs::is_subvolume(&dir.join(&r.name)))
            .map(|r| r.name.clone())
    };
    let mut report = PullReport {
        set: set.clone(),
        host: host.clone(),
        dry_run: opts.dry_run,
        pulled: vec![],
        present: vec![],
        deleted: vec![],
    };
    // The newest member present here: the next one starts as its snapshot.
    let mut base: Option<String> = None;
    for m in &members {
        cancel.check().map_err(arca_ops::OpsError::from)?;
        if let Some(name) = here(m, &records) {
            report.present.push(m.name.clone());
            base = Some(name);
            continue;
        }
        if !opts.only.is_empty() && !opts.only.contains(&m.name) {
            continue;
        }
        validate_name(&m.name)?;
        let final_path = dir.join(&m.name);
        if std::fs::symlink_metadata(&final_path).is_ok() {
            return Err(FsnapError::Invalid(format!(
                "{} exists and was not received from member {} ({}): move it away or pull into another directory",
                final_path.display(),
                m.name,
                m.uuid
            )));
        }
        let partial = dir.join(format!("{}{PARTIAL}", m.name));
        let resumed = btrfs::is_subvolume(&partial);
        let mut pulled = Pulled {
            name: m.name.clone(),
            snapshot_id: m.entry.id.to_hex(),
            based_on: base.clone(),
            resumed,
            files_written: 0,
            files_kept: 0,
            bytes_written: 0,
            deleted: 0,
            not_marked: None,
        };
        if opts.dry_run {
            report.pulled.push(pulled);
            continue;
        }
        // A partial member is marked as received and made read-only only once complete: then
        // only its rename was left to do. Read-only without the mark, it is made writable and
        // brought up to date again (which costs a comparison of what is there).
        let info = if resumed { Some(btrfs::subvolume_info(&partial)?) } else { None };
        let complete = info.as_ref().is_some_and(|i| i.readonly && i.received_uuid.as_deref() == Some(&m.send_uuid));
        if info.as_ref().is_some_and(|i| i.readonly && !complete) {
            btrfs::set_readonly(&partial, false)?;
        }
        if !complete {
            if !resumed {
                match &base {
                    Some(b) => btrfs::snapshot(&dir.join(b), &partial, false)?,
                    None => btrfs::create(&partial)?,
                }
            }
            let req = RestoreRequest {
                snapshot: Some(m.entry.id.to_hex()),
                path: m.set.clone(),
                target: partial.clone(),
                overwrite: arca_fs::Overwrite::IfChanged,
                delete: true,
                threads: opts.threads,
                ..Default::default()
            };
            let done = arca_ops::restore::restore(repo, &req, events)?;
            let r = &done.report;
            if let Some((path, why)) = r.errors.first() {
                return Err(FsnapError::Invalid(format!(
                    "member {} was not pulled completely ({} problems, the first at {path}: {why}); {} is left for the next pull to finish",
                    m.name,
                    r.errors.len(),
                    partial.display()
                )));
            }
            pulled.files_written = r.files;
            pulled.files_kept = r.unchanged;
            pulled.bytes_written = r.bytes;
            pulled.deleted = r.deleted;
            pulled.not_marked = differs_from_original(m, r);
            if pulled.not_marked.is_none() {
                btrfs::set_received(&partial, &m.send_uuid, m.send_transid)?;
            }
            btrfs::set_readonly(&partial, true)?;
        }
        std::fs::rename(&partial, &final_path).map_err(|e| FsnapError::io(&final_path, e))?;
        records.retain(|r| r.name != m.name);
        records.push(PulledRecord {
            name: m.name.clone(),
            uuid: m.uuid.clone(),
            repository: repository.clone(),
            host: m.host.clone(),
            set: m.set.clone(),
        });
        write_pulled(&dir, &records)?;
        report.pulled.push(pulled);
        base = Some(m.name.clone());
    }
    if opts.delete {
        let held: HashSet<&str> = members.iter().map(|m| m.uuid.as_str()).collect();
        let gone: Vec<PulledRecord> = records
            .iter()
            .filter(|r| r.repository == repository && r.host == host && r.set == set && !held.contains(r.uuid.as_str()))
            .cloned()
            .collect();
        for r in gone {
            if btrfs::is_subvolume(&dir.join(&r.name)) {
                if !opts.dry_run {
                    btrfs::delete(&dir.join(&r.name))?;
                }
                report.deleted.push(r.name.clone());
            }
            if !opts.dry_run {
                records.retain(|x| x != &r);
                write_pulled(&dir, &records)?;
            }
        }
        report.deleted.sort();
    }
    Ok(report)
}

/// A member name is a file name made on another host: refused if it could leave `dir`.
fn validate_name(name: &str) -> FsnapResult<()> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.ends_with(PARTIAL)
    {
        return Err(FsnapError::Invalid(format!("{name:?} cannot be the name of a received subvolume")));
    }
    Ok(())
}

/// One member in a listing, with its sizes as btrfs and as the repository see them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Listed {
    pub name: String,
    pub uuid: String,
    /// Here as a read-only subvolume (`local_*` sizes from `btrfs filesystem du`).
    pub local: bool,
    pub local_total: Option<u64>,
    pub local_exclusive: Option<u64>,
    pub local_shared: Option<u64>,
    /// In the repository (`stored_*`: bytes as stored, compressed and encrypted; exclusive is
    /// what only this member references, i.e. what forgetting it would free).
    pub snapshot_id: Option<String>,
    pub time: Option<String>,
    pub stored_total: Option<u64>,
    pub stored_exclusive: Option<u64>,
    pub stored_shared: Option<u64>,
}

/// The set in `dir` (if given, as btrfs sees it) and in the repository (if given), by name.
pub fn list(
    repo: Option<&Repository>,
    dir: Option<&Path>,
    set: Option<&str>,
    host: Option<&str>,
    events: &dyn Events,
) -> FsnapResult<(String, Vec<Listed>)> {
    let mut rows: BTreeMap<String, Listed> = BTreeMap::new();
    let mut order: Vec<String> = vec![];
    let mut set_name = set.map(String::from);
    if let Some(dir) = dir {
        let dir = std::fs::canonicalize(dir).map_err(|e| FsnapError::io(dir, e))?;
        set_name.get_or_insert_with(|| dir.display().to_string());
        let local: Vec<_> = btrfs::subvolumes_in(&dir)?.into_iter().filter(|(_, i)| i.readonly).collect();
        let paths: Vec<PathBuf> = local.iter().map(|(n, _)| dir.join(n)).collect();
        let usage = if paths.is_empty() { vec![] } else { btrfs::disk_usage(&paths)? };
        for (k, (name, info)) in local.iter().enumerate() {
            let u = usage.get(k);
            order.push(name.clone());
            rows.insert(
                name.clone(),
                Listed {
                    name: name.clone(),
                    uuid: info.received_uuid.clone().unwrap_or(info.uuid.clone()),
                    local: true,
                    local_total: u.map(|u| u.0),
                    local_exclusive: u.map(|u| u.1),
                    local_shared: u.map(|u| u.2),
                    ..Default::default()
                },
            );
        }
    }
    if let Some(repo) = repo {
        let all = arca_ops::readable_snapshots(repo, events)?;
        let (chosen, members) = match members_of(&all, set_name.as_deref(), host) {
            Ok(x) => x,
            Err(FsnapError::NotFound(_)) if dir.is_some() => (set_name.clone().unwrap_or_default(), vec![]),
            Err(e) => return Err(e),
        };
        set_name = Some(chosen);
        let sizes = stored_sizes(repo, &members)?;
        for (m, (total, exclusive)) in members.iter().zip(sizes) {
            // A member received here has another UUID of its own: match by the one it was
            // received from.
            let key = rows
                .values()
                .find(|r| r.uuid == m.uuid || r.uuid == m.send_uuid)
                .map(|r| r.name.clone())
                .unwrap_or(m.name.clone());
            let row = rows.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                Listed { name: m.name.clone(), uuid: m.uuid.clone(), ..Default::default() }
            });
            row.snapshot_id = Some(m.entry.id.to_hex());
            row.time = Some(m.entry.snapshot.time.clone());
            row.stored_total = Some(total);
            row.stored_exclusive = Some(exclusive);
            row.stored_shared = Some(total - exclusive);
        }
    }
    let listed = order.into_iter().filter_map(|n| rows.remove(&n)).collect();
    Ok((set_name.unwrap_or_default(), listed))
}

/// Per member: the stored bytes of every blob it references, and of those no other member of
/// the set references.
fn stored_sizes(repo: &Repository, members: &[Stored]) -> FsnapResult<Vec<(u64, u64)>> {
    let mut per: Vec<HashSet<Id>> = vec![];
    let mut count: HashMap<Id, u32> = HashMap::new();
    for m in members {
        let mut blobs = HashSet::new();
        blobs.insert(m.entry.snapshot.tree);
        arca_repo::treewalk::walk(
            repo,
            &m.entry.snapshot.tree,
            &mut |_, n| {
                blobs.extend(n.content.iter().copied());
                if let Some(t) = n.subtree {
                    blobs.insert(t);
                }
                Ok(arca_repo::treewalk::Visit::Continue)
            },
            &mut |_, _| {},
        )?;
        for b in &blobs {
            *count.entry(*b).or_default() += 1;
        }
        per.push(blobs);
    }
    let ix = repo.index();
    let size = |id: &Id| ix.get(id).map(|l| u64::from(l.length)).unwrap_or(0);
    Ok(per
        .iter()
        .map(|blobs| {
            let total = blobs.iter().map(size).sum();
            let exclusive = blobs.iter().filter(|b| count.get(b) == Some(&1)).map(size).sum();
            (total, exclusive)
        })
        .collect())
}
