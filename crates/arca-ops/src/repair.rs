//! The repair use cases: rebuild the index from the packs, rewrite snapshots around lost
//! data, and repair packs from their parity.

use crate::{OpsError, OpsResult};
use arca_format::Id;
use arca_repo::lock::SessionLock;
use arca_repo::parity::RepairPacksReport;
use arca_repo::repair::{RepairIndexReport, RepairSnapshotsReport};
use arca_repo::session::Access;
use arca_repo::{Events, Repository};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What to repair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "repair", deny_unknown_fields)]
pub enum RepairRequest {
    /// Rebuild the index from the packs in storage.
    Index,
    /// Rewrite snapshots whose data is lost, without the lost parts.
    Snapshots {
        #[serde(default)]
        dry_run: bool,
        /// Forget the damaged originals once their repaired copies are saved.
        #[serde(default)]
        forget: bool,
    },
    /// Repair damaged packs from their parity (these full pack ids; none: every pack).
    Packs {
        #[serde(default)]
        packs: Vec<String>,
    },
}

/// What a repair did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case", untagged)]
pub enum RepairReport {
    Index(RepairIndexReport),
    Snapshots(RepairSnapshotsReport),
    Packs(RepairPacksReport),
}

impl RepairRequest {
    /// The session this repair needs: the index is rewritten only under an exclusive lock
    /// (a backup must not add to an index being replaced); the others add objects.
    pub fn access(&self) -> Access {
        match self {
            RepairRequest::Index => Access::Exclusive("repair index"),
            RepairRequest::Snapshots { .. } => Access::Write("repair snapshots"),
            RepairRequest::Packs { .. } => Access::Write("repair packs"),
        }
    }

    /// The phase name events carry.
    pub fn phase(&self) -> &'static str {
        match self {
            RepairRequest::Index => "repair-index",
            RepairRequest::Snapshots { .. } => "repair-snapshots",
            RepairRequest::Packs { .. } => "repair-packs",
        }
    }
}

/// Repair, under the lock `access()` named.
pub fn repair(
    repo: &Arc<Repository>,
    lock: &SessionLock,
    req: &RepairRequest,
    events: &dyn Events,
) -> OpsResult<RepairReport> {
    Ok(match req {
        RepairRequest::Index => RepairReport::Index(arca_repo::repair::repair_index(repo, lock, events)?),
        RepairRequest::Snapshots { dry_run, forget } => {
            RepairReport::Snapshots(arca_repo::repair::repair_snapshots(repo, lock, *dry_run, *forget, events)?)
        }
        RepairRequest::Packs { packs } => {
            let only = packs
                .iter()
                .map(|p| {
                    Id::from_hex(p).ok_or_else(|| OpsError::bad_option("PACK", format!("{p:?} is not a full pack id")))
                })
                .collect::<OpsResult<Vec<_>>>()?;
            RepairReport::Packs(arca_repo::parity::repair_packs(repo, lock, &only, events)?)
        }
    })
}
