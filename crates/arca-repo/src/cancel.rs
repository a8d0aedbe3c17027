//! Cancellation: a front-end (a signal handler, a web request, a scheduler) asks a running
//! operation to stop; the engine checks at safe points, between two writes, so a cancelled
//! operation leaves the repository as a kill would: consistent, and resumable by the next run.

use crate::{RepoError, RepoResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cancel request shared between the one who asks and the operation that checks.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token that is not cancelled yet.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Ask the operation to stop at its next safe point.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// A safe point: `Err(RepoError::Cancelled)` once cancelled.
    pub fn check(&self) -> RepoResult<()> {
        if self.is_cancelled() {
            Err(RepoError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// The flag itself, for a signal handler to set.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}
