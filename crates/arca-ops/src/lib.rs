//! arca's application layer: the use cases every front-end (the CLI, a job runner, a server)
//! calls, so the rules that keep a repository safe live in one place.
//!
//! Each use case takes the session it needs (a [`Target`] holding a lock for writers, so an
//! unlocked backup does not compile), options that are serde-serialisable and parse their
//! own small languages, an [`Events`](arca_repo::Events) sink and a
//! [`Cancel`](arca_repo::Cancel) token, and returns a serialisable report. Front-ends keep
//! parsing, printing and exit codes, nothing else.

pub mod backup;
pub mod copy;
mod error;
pub mod forget;
pub mod keys;
pub mod restore;
pub mod rewrite;
pub mod serve;
pub mod source;
pub mod time;

pub use error::{OpsError, OpsResult};
pub use source::Source;

use arca_repo::lock::SessionLock;

/// Where a writing use case writes: under a held session lock, or nowhere (a dry run, which
/// reads what is there and stores nothing, not even a lock).
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
