//! arca's application layer: the use cases every front-end (the CLI, a job runner, a server)
//! calls, so the rules that keep a repository safe live in one place.
//!
//! Writing use cases take a [`Target`] (a held lock, so an unlocked backup does not compile,
//! or a dry run); reading ones take a repository the caller opened with the session it needs
//! (`arca_repo::session::open`: a read session for restore, so a prune waits). Requests are
//! serde types whose options parse their own small languages; unknown fields are refused, so
//! a typo in a job file is an error, not a silently dropped rule. Use cases report through an
//! [`Events`](arca_repo::Events) sink (backup also checks a [`Cancel`](arca_repo::Cancel)
//! token) and return reports that serialise. Front-ends keep parsing, printing and exit codes.

pub mod backup;
pub mod check;
pub mod copy;
mod error;
pub mod export;
pub mod forget;
pub mod keys;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod rewrite;
pub mod serve;
pub mod source;
pub mod time;
pub mod tool;

pub use error::{OpsError, OpsResult};
pub use source::Source;

use arca_repo::lock::SessionLock;
use arca_repo::snapshots::{self as snaps, SnapshotEntry};
use arca_repo::{Event, Events, Repository};

/// Where a writing use case writes: under a held session lock, or nowhere (a dry run, which
/// reads what is there and stores no data and no snapshot; its read session may still hold a
/// shared lock).
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Locked(&'a SessionLock),
    DryRun,
}

impl<'a> Target<'a> {
    /// The lock, for a session that writes; `None` for a dry run.
    pub fn lock(&self) -> Option<&'a SessionLock> {
        match self {
            Target::Locked(l) => Some(l),
            Target::DryRun => None,
        }
    }

    pub fn is_dry_run(&self) -> bool {
        matches!(self, Target::DryRun)
    }
}

/// Every snapshot that can be read; unreadable ones are reported as events and skipped.
pub fn readable_snapshots(repo: &Repository, events: &dyn Events) -> OpsResult<Vec<SnapshotEntry>> {
    let (all, errors) = snaps::list_all(repo)?;
    const SHOWN: usize = 10;
    for e in errors.iter().take(SHOWN) {
        events.emit(Event::Caution(&format!("skipping unreadable snapshot: {e}")));
    }
    if errors.len() > SHOWN {
        let more = format!("skipping {} more unreadable snapshots (`arca check` lists them all)", errors.len() - SHOWN);
        events.emit(Event::Caution(&more));
    }
    Ok(all)
}
