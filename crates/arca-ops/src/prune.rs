//! The prune use case: free the space of forgotten snapshots under an exclusive lock.

use crate::{OpsResult, Target};
use arca_repo::prune::{self as engine, MaxUnused, PruneOptions, PruneReport};
use arca_repo::session::Access;
use arca_repo::units::{ByteSize, Interval};
use arca_repo::{Events, Repository};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A prune request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PruneRequest {
    /// Unused space tolerated in partly used packs ("5%", "200M", "unlimited").
    pub max_unused: MaxUnused,
    /// Rewrite at most this much used data by repacking in one run.
    pub max_repack: Option<ByteSize>,
    /// Sweep a marked pack only once its mark is this old (on top of the session rule).
    pub grace: Interval,
    /// Packs read and written at once (default: one per core).
    pub threads: Option<usize>,
}

impl Default for PruneRequest {
    fn default() -> Self {
        PruneRequest {
            max_unused: MaxUnused::Percent(5.0),
            max_repack: None,
            grace: Interval::default(),
            threads: None,
        }
    }
}

/// The session a prune needs: exclusive, or none for a dry run (it plans from what is there
/// and writes nothing, not even a lock).
pub fn access(dry_run: bool) -> Access {
    if dry_run {
        Access::Metadata
    } else {
        Access::Exclusive("prune")
    }
}

/// One worker per core, as every parallel use case defaults to.
pub(crate) fn default_threads(threads: Option<usize>) -> usize {
    threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)).max(1)
}

/// Prune. `target` holds the exclusive lock (`Target::DryRun` plans and reports only).
pub fn prune(
    repo: &Arc<Repository>,
    target: Target,
    req: &PruneRequest,
    events: &dyn Events,
) -> OpsResult<PruneReport> {
    Ok(engine::prune(repo, target.lock(), &options(req, target.is_dry_run()), events)?)
}

/// The engine's options for `req`.
pub(crate) fn options(req: &PruneRequest, dry_run: bool) -> PruneOptions {
    PruneOptions {
        max_unused: req.max_unused,
        max_repack: req.max_repack.map(|b| b.0),
        dry_run,
        grace: req.grace.0,
        threads: default_threads(req.threads),
        ..Default::default()
    }
}
