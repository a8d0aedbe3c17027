//! Opening a repository for a session: one call that takes the lock the session needs and
//! only then loads the index. The order is the rule that keeps a concurrent prune from
//! deleting what the session is about to rely on (a prune must see the lock of anyone who may
//! have read the index before its mark); every front-end gets it by calling this.

use crate::lock::SessionLock;
use crate::{RepoError, RepoResult, Repository};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a session does, and so which lock it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only metadata (snapshots, keys): no lock.
    Metadata,
    /// Reads data a prune could remove (restore, check, mount): a shared lock if one can be
    /// written (a read-only key cannot; the session then goes on without one).
    Read(&'static str),
    /// Adds data (backup, copy): a shared lock, required.
    Write(&'static str),
    /// Rewrites or deletes (prune, repair index): an exclusive lock.
    Exclusive(&'static str),
}

/// An open repository with its lock held and its index loaded.
pub struct Session {
    pub repo: Arc<Repository>,
    pub lock: Option<SessionLock>,
    /// Index objects that could not be read (their blobs are unreachable until `repair index`).
    pub index_problems: Vec<RepoError>,
    /// Why a read session has no lock, if it has none.
    pub lock_warning: Option<RepoError>,
}

/// Take `access`'s lock on `repo`, waiting up to `retry` for another exclusive session to
/// end, then load the index.
pub fn open(repo: Repository, access: Access, retry: Duration) -> RepoResult<Session> {
    if repo.is_backup_only() {
        // A backup-only key backs up; everything else would need keys it does not have, and
        // is refused here rather than failing half-way (docs/SECURITY.md).
        match access {
            Access::Write("backup") | Access::Read("backup --dry-run") => {}
            Access::Metadata => repo.require_full("list snapshots, keys or statistics")?,
            Access::Read(cmd) | Access::Write(cmd) | Access::Exclusive(cmd) => repo.require_full(cmd)?,
        }
    }
    if let Some(level) = repo.reader_level() {
        // A reader key lists and reads metadata; restoring, checking, copying and every
        // write need keys it does not have (docs/SECURITY.md).
        match access {
            Access::Metadata => {}
            Access::Read(cmd) | Access::Write(cmd) | Access::Exclusive(cmd) => {
                return Err(RepoError::ReaderKey {
                    slot: repo.key_slot().to_string(),
                    role: level.name(),
                    can: level.can(),
                    action: cmd.to_string(),
                })
            }
        }
    }
    let repo = Arc::new(repo);
    let mut lock_warning = None;
    let lock = match access {
        Access::Metadata => None,
        Access::Read(cmd) => match SessionLock::acquire(&repo, cmd, false) {
            Ok(l) => Some(l),
            Err(e) => {
                lock_warning = Some(e);
                None
            }
        },
        Access::Write(cmd) => Some(SessionLock::acquire(&repo, cmd, false)?),
        Access::Exclusive(cmd) => Some(exclusive(&repo, cmd, retry)?),
    };
    // On a remote repository the snapshots are listed while the index loads (both after the
    // lock): nearly every command lists them next, and that is a round trip saved.
    // Not for an exclusive session (prune): what it deletes must follow from a listing made
    // after it has seen which sessions are alive.
    let exclusive = matches!(access, Access::Exclusive(_));
    let listing = (repo.is_remote() && !repo.is_backup_only() && !exclusive).then(|| {
        let r = repo.clone();
        std::thread::spawn(move || r.storage().list(arca_storage::ObjectKind::Snapshot))
    });
    let index_problems = repo.load_index();
    if let Some(Ok(Ok(listed))) = listing.map(|h| h.join()) {
        repo.keep_snapshot_listing(listed);
    }
    let index_problems = index_problems?;
    Ok(Session { repo, lock, index_problems, lock_warning })
}

fn exclusive(repo: &Arc<Repository>, cmd: &'static str, retry: Duration) -> RepoResult<SessionLock> {
    let deadline = Instant::now() + retry;
    loop {
        match SessionLock::acquire(repo, cmd, true) {
            Err(RepoError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now())));
            }
            r => return r,
        }
    }
}
