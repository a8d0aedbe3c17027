//! The restore use case: choose the snapshot (by name or by time), find the path in it, and
//! restore it into a target directory.

use crate::readable_snapshots;
use crate::time::TimeSpec;
use crate::{OpsError, OpsResult};
use arca_fs::{Overwrite, RestoreOptions, RestoreReport};
use arca_repo::snapshots::{self as snaps, Filter, SnapshotEntry};
use arca_repo::treewalk::lookup;
use arca_repo::{Events, Repository};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A restore request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreRequest {
    /// The snapshot (an id prefix, `latest`, `latest~2`); leave out to choose by `at`.
    pub snapshot: Option<String>,
    /// The newest snapshot (passing the filter) taken at or before this time.
    pub at: Option<TimeSpec>,
    /// Of the snapshot, only this path (and what lies below); empty: all of it.
    pub path: String,
    pub filter: Filter,
    pub target: PathBuf,
    /// Restore only paths matching one of these globs (full snapshot paths).
    pub includes: Vec<String>,
    /// Skip paths matching one of these globs.
    pub excludes: Vec<String>,
    /// Read every restored file back and check it against the snapshot.
    pub verify: bool,
    pub overwrite: Overwrite,
    /// Remove entries of restored directories that the snapshot does not have.
    pub delete: bool,
    /// Change nothing; report what would be restored, kept and deleted.
    pub dry_run: bool,
    /// Set owners (default: when running as root).
    pub set_owner: Option<bool>,
    /// Files written at once (default: one per core).
    pub threads: Option<usize>,
    /// Clone files whose contents equal those at the same path in this earlier restore
    /// (`--reflink-from`: space shared on btrfs and XFS).
    pub reflink_from: Option<PathBuf>,
}

/// What a restore did.
#[derive(Debug, Serialize)]
pub struct Restored {
    /// The snapshot restored from (full hex).
    pub snapshot_id: String,
    pub report: RestoreReport,
}

fn globs(patterns: &[String], option: &'static str) -> OpsResult<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(GlobBuilder::new(p).build().map_err(|e| OpsError::bad_option(option, format!("{p:?}: {e}")))?);
    }
    Ok(Some(b.build().map_err(|e| OpsError::bad_option(option, e))?))
}

/// The snapshot a request names.
pub fn choose(
    repo: &Repository,
    snapshot: Option<&str>,
    at: Option<&TimeSpec>,
    filter: &Filter,
    events: &dyn Events,
) -> OpsResult<SnapshotEntry> {
    let all = readable_snapshots(repo, events)?;
    match (snapshot, at) {
        (None | Some(""), Some(at)) => Ok(snaps::resolve_at(&all, at.end(), filter)?),
        (Some(spec), Some(_)) => {
            Err(OpsError::bad_option("--at", format!("chooses the snapshot: give only :PATH, not {spec:?}")))
        }
        (None | Some(""), None) => Err(OpsError::NothingToDo(
            "which snapshot? give SNAPSHOT[:PATH] (an id prefix or `latest`) or --at TIME".into(),
        )),
        (Some(spec), None) => Ok(snaps::resolve(&all, spec, filter)?),
    }
}

/// Restore what `req` names. Per-entry failures are in the report's `errors` (everything
/// else is restored); a sink that [`Events::wants_totals`] first gets the bytes to restore.
pub fn restore(repo: &Repository, req: &RestoreRequest, events: &dyn Events) -> OpsResult<Restored> {
    if req.target.as_os_str().is_empty() {
        // An empty target would mean the current directory: never a default to fall into.
        return Err(OpsError::bad_option("target", "is required (the directory to restore into)"));
    }
    let snap = choose(repo, req.snapshot.as_deref(), req.at.as_ref(), &req.filter, events)?;
    let base: Vec<u8> = req.path.trim_end_matches('/').as_bytes().to_vec();
    let found = lookup(repo, &snap.snapshot.tree, &base)?.ok_or_else(|| not_in_snapshot(&req.path, &snap))?;
    // A repository behind a network (a URL): each read waits a round trip, so more files are
    // written at once and each file's blobs are fetched several at a time; on a local disk
    // the cores decide.
    let remote = repo.is_remote();
    let opts = RestoreOptions {
        target: req.target.clone(),
        includes: globs(&req.includes, "--include")?,
        excludes: globs(&req.excludes, "--exclude")?,
        verify: req.verify,
        set_owner: req.set_owner.unwrap_or_else(|| nix::unistd::geteuid().is_root()),
        overwrite: req.overwrite,
        delete: req.delete,
        dry_run: req.dry_run,
        threads: req.threads.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
            if remote {
                cores.max(16)
            } else {
                cores
            }
        }),
        read_ahead: if remote { 4 } else { 1 },
        base: if base.starts_with(b"/") || base.is_empty() { base.clone() } else { [b"/".as_slice(), &base].concat() },
        reflink_from: req.reflink_from.clone(),
    };
    let report = arca_fs::restore(repo, found, &opts, events)?;
    Ok(Restored { snapshot_id: snap.id.to_hex(), report })
}

/// "PATH not found in snapshot": names what the snapshot holds and, when the path lies outside
/// its backed-up paths (`latest` picked a newer snapshot of other paths, such as a stdin
/// backup), how to pick a snapshot of that path.
pub fn not_in_snapshot(path: &str, snap: &SnapshotEntry) -> OpsError {
    let shown = if path.is_empty() { "/" } else { path };
    let mut msg = format!("{shown} not found in snapshot {} (of {})", snap.id.short(), snap.snapshot.paths.join(", "));
    let inside = snap.snapshot.paths.iter().any(|p| path.starts_with(p.trim_end_matches('/')) || p.starts_with(path));
    if !inside {
        msg.push_str(&format!(
            "; the path lies outside what that snapshot backed up: choose a snapshot of it with --path (`latest --path {shown}` takes the newest snapshot of exactly that path) or an id from `arca snapshots`"
        ));
    }
    OpsError::NotInSnapshot(msg)
}
