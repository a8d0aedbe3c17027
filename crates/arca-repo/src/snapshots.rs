//! Snapshots: save, list, resolve an id prefix or `latest`, filter by host, tag and path.

use crate::{RepoError, RepoResult, Repository};
use arca_format::{Id, Snapshot};
use arca_storage::ObjectKind;
use chrono::{DateTime, FixedOffset};

/// A snapshot with its id.
#[derive(Clone, Debug)]
pub struct SnapshotEntry {
    pub id: Id,
    pub snapshot: Snapshot,
}

impl SnapshotEntry {
    /// The snapshot's time, if it parses.
    pub fn time(&self) -> Option<DateTime<FixedOffset>> {
        parse_time(&self.snapshot.time)
    }
}

/// Parse a stored RFC 3339 time.
pub fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

/// Save a snapshot; returns its id.
pub fn save(repo: &Repository, s: &Snapshot) -> RepoResult<Id> {
    repo.save_object(ObjectKind::Snapshot, s)
}

/// All readable snapshots, oldest first, and the errors of unreadable ones.
pub fn list_all(repo: &Repository) -> RepoResult<(Vec<SnapshotEntry>, Vec<RepoError>)> {
    let mut out = vec![];
    let mut errors = vec![];
    for (name, _) in repo.storage().list(ObjectKind::Snapshot)? {
        let Some(id) = Id::from_hex(&name) else {
            errors.push(RepoError::corrupt(format!("snapshot {name}"), "name is not an id"));
            continue;
        };
        match repo.load_object::<Snapshot>(ObjectKind::Snapshot, &name) {
            Ok(snapshot) => out.push(SnapshotEntry { id, snapshot }),
            // Forgotten between the listing and the read.
            Err(RepoError::Storage(e)) if e.is_not_found() => {}
            Err(e) => errors.push(e),
        }
    }
    out.sort_by(|a, b| match (a.time(), b.time()) {
        (Some(x), Some(y)) => x.cmp(&y).then(a.id.cmp(&b.id)),
        _ => a.snapshot.time.cmp(&b.snapshot.time),
    });
    Ok((out, errors))
}

/// Which snapshots a command applies to.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
}

impl Filter {
    /// True if `s` passes every given criterion (a snapshot must have all given tags and paths).
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && self.tags.iter().all(|t| s.tags.contains(t))
            && self.paths.iter().all(|p| s.paths.contains(p))
    }
}

/// Resolve `latest` (the newest matching `filter`) or a unique id prefix.
pub fn resolve(all: &[SnapshotEntry], spec: &str, filter: &Filter) -> RepoResult<SnapshotEntry> {
    if spec == "latest" {
        return all
            .iter()
            .rev()
            .find(|e| filter.matches(&e.snapshot))
            .cloned()
            .ok_or_else(|| RepoError::SnapshotNotFound(spec.into()));
    }
    let spec_l = spec.to_ascii_lowercase();
    if spec_l.is_empty() || !spec_l.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(RepoError::SnapshotNotFound(spec.into()));
    }
    let m: Vec<&SnapshotEntry> = all.iter().filter(|e| e.id.to_hex().starts_with(&spec_l)).collect();
    match m.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(RepoError::SnapshotNotFound(spec.into())),
        _ => Err(RepoError::AmbiguousSnapshot(spec.into())),
    }
}

/// The newest snapshot at or before `at` that passes `filter`.
pub fn resolve_at(all: &[SnapshotEntry], at: DateTime<FixedOffset>, filter: &Filter) -> RepoResult<SnapshotEntry> {
    all.iter()
        .rev()
        .find(|e| filter.matches(&e.snapshot) && e.time().is_some_and(|t| t <= at))
        .cloned()
        .ok_or_else(|| RepoError::SnapshotNotFound(format!("at or before {}", at.to_rfc3339())))
}

/// The parent for a new backup: the newest snapshot of the same host and the same paths.
pub fn find_parent<'a>(all: &'a [SnapshotEntry], host: &str, paths: &[String]) -> Option<&'a SnapshotEntry> {
    all.iter().rev().find(|e| e.snapshot.hostname == host && e.snapshot.paths == paths)
}
