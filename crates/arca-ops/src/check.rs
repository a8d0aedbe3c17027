//! The check use case: verify structure and, as asked, data.

use crate::OpsResult;
use arca_repo::check::{self as engine, CheckReport, ReadData};
use arca_repo::lock::SessionLock;
use arca_repo::{Events, Repository};
use serde::{Deserialize, Serialize};

/// A check request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckRequest {
    /// How much stored data to read back ("none", "all", "1/5", "10%", "2G").
    pub read_data: ReadData,
}

impl Default for CheckRequest {
    fn default() -> Self {
        CheckRequest { read_data: ReadData::None }
    }
}

/// Check the repository, opened with a read session (`lock` is its lock, if it could take
/// one: the check's own lock is not reported as a leftover).
pub fn check(
    repo: &Repository,
    lock: Option<&SessionLock>,
    req: &CheckRequest,
    events: &dyn Events,
) -> OpsResult<CheckReport> {
    let mut r = engine::check(repo, req.read_data, events)?;
    if let Some(own) = lock.map(|l| format!("lock {}", l.session())) {
        r.notes.retain(|n| n.object != own);
    }
    Ok(r)
}
