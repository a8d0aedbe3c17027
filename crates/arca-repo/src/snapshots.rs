//! Snapshots: save, list, resolve an id prefix or `latest`, filter by host, tag and path.

use crate::{RepoError, RepoResult, Repository};
use arca_format::{Id, Snapshot, SnapshotKind};
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

/// Save a snapshot, and record it in the history; returns its id.
pub fn save(repo: &Repository, s: &Snapshot) -> RepoResult<Id> {
    repo.require_writer("save a snapshot")?;
    if let Err(e) = crate::history::finish_interrupted_removals(repo) {
        tracing::warn!("could not finish removing the snapshots an interrupted run left: {e}");
    }
    let id = repo.save_object(ObjectKind::Snapshot, s)?;
    crate::history::record(repo, &[id], &[])?;
    Ok(id)
}

/// Delete snapshots. Their removal is recorded first: a crash in between leaves a snapshot
/// the history calls removed (check says so, and forgetting it again finishes the job),
/// never one deleted without a trace, which is what a storage deleting it would look like.
pub fn delete(repo: &Repository, ids: &[Id]) -> RepoResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    repo.require_writer("remove snapshots")?;
    if !repo.storage().capabilities().delete {
        return Err(RepoError::DeleteNotAllowed { action: "removing snapshots" });
    }
    crate::history::require_signer(repo, "removing snapshots")?;
    crate::history::finish_interrupted_removals(repo)?;
    crate::history::begin_removal(repo, ids)?;
    crate::history::record(repo, &[], ids)?;
    repo.snapshots_changed();
    for id in ids {
        repo.storage().delete(ObjectKind::Snapshot, &id.to_hex())?;
    }
    crate::history::end_removal(repo);
    Ok(())
}

/// Replace snapshot `old` with `new` (protect, tag, rewrite): the new object is stored first,
/// then the old one deleted, so a crash in between leaves both rather than neither. The new
/// one lists the old id among its `previous_ids`, which keep selecting it. Refused up front
/// where the storage may not delete, rather than leaving a duplicate behind.
pub fn replace(repo: &Repository, old: &SnapshotEntry, mut new: Snapshot) -> RepoResult<Id> {
    repo.require_writer("change a snapshot")?;
    if !repo.storage().capabilities().delete {
        return Err(RepoError::DeleteNotAllowed { action: "replacing a snapshot" });
    }
    if new == old.snapshot {
        return Ok(old.id);
    }
    crate::history::require_signer(repo, "replacing a snapshot")?;
    if !new.previous_ids.contains(&old.id) {
        new.previous_ids.push(old.id);
    }
    crate::history::finish_interrupted_removals(repo)?;
    let id = repo.save_object(ObjectKind::Snapshot, &new)?;
    if id != old.id {
        crate::history::begin_removal(repo, &[old.id])?;
        crate::history::record(repo, &[id], &[old.id])?;
        repo.snapshots_changed();
        repo.storage().delete(ObjectKind::Snapshot, &old.id.to_hex())?;
        crate::history::end_removal(repo);
    }
    Ok(id)
}

/// All readable snapshots, oldest first, and the errors of unreadable ones. With a cache
/// directory, snapshot objects read before come from there (they are immutable and named by
/// their hash, which opening them checks again), so listing a repository of many snapshots
/// costs one listing of the storage, not one read per snapshot.
pub fn list_all(repo: &Repository) -> RepoResult<(Vec<SnapshotEntry>, Vec<RepoError>)> {
    list(repo, repo.cache_dir().map(|d| d.join("snapshots")).as_deref())
}

/// Keep the stored bytes of snapshot `name` in the snapshot cache of the repository cache
/// directory `cache` (a snapshot this session saved: the next listing need not fetch it).
pub(crate) fn cache_object(cache: &std::path::Path, name: &str, bytes: &[u8]) {
    let d = cache.join("snapshots");
    if std::fs::create_dir_all(&d).is_ok() {
        keep(&d, name, bytes);
    }
}

/// Write a cached snapshot whole or not at all (a temporary file renamed into place).
fn keep(dir: &std::path::Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!("{name}.tmp-{}", std::process::id()));
    if std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, dir.join(name))).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// [`list_all`] reading every object from the storage (what `check` must see).
pub fn list_all_from_storage(repo: &Repository) -> RepoResult<(Vec<SnapshotEntry>, Vec<RepoError>)> {
    list(repo, None)
}

fn list(repo: &Repository, cache: Option<&std::path::Path>) -> RepoResult<(Vec<SnapshotEntry>, Vec<RepoError>)> {
    let mut out = vec![];
    let mut errors = vec![];
    if let Some(d) = cache {
        let _ = std::fs::create_dir_all(d);
    }
    let listed = repo.list_snapshots()?;
    for (name, _) in &listed {
        let name = name.clone();
        let Some(id) = Id::from_hex(&name) else {
            errors.push(RepoError::corrupt(format!("snapshot {name}"), "name is not an id"));
            continue;
        };
        // The name is an id (checked above), so it is safe as a file name.
        let cached = cache.and_then(|d| std::fs::read(d.join(&name)).ok()).filter(|b| Id::of_bytes(b) == id);
        let from_storage = cached.is_none();
        let loaded = match cached {
            Some(b) => Ok(b),
            None => repo.storage().get(ObjectKind::Snapshot, &name).map_err(RepoError::from),
        }
        .and_then(|bytes| {
            let s: Snapshot = repo.open_object(ObjectKind::Snapshot, &name, &bytes)?;
            check_bound_host(repo, &name, &bytes, &s)?;
            if let (Some(d), true) = (cache, from_storage) {
                keep(d, &name, &bytes);
            }
            Ok(s)
        });
        match loaded {
            Ok(snapshot) => out.push(SnapshotEntry { id, snapshot }),
            // Forgotten between the listing and the read.
            Err(RepoError::Storage(e)) if e.is_not_found() => {}
            Err(e) => errors.push(e),
        }
    }
    // Forgotten snapshots leave the cache too.
    if let Some(d) = cache {
        let names: std::collections::HashSet<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
        for f in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let n = f.file_name();
            if n.to_str().is_none_or(|n| !names.contains(n)) {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
    // A total order (a comparator mixing instants and text is not one, and sorting may panic
    // on it): unreadable times first, then by instant, then by id.
    out.sort_by_cached_key(|e| (e.time(), e.time().is_none().then(|| e.snapshot.time.clone()), e.id));
    Ok((out, errors))
}

/// A snapshot sealed with the key of a backup-only session bound to a host must name that
/// host: a holder of a key bound to one host cannot pass its snapshots off as another's.
fn check_bound_host(repo: &Repository, name: &str, bytes: &[u8], s: &Snapshot) -> RepoResult<()> {
    let number = match arca_format::snapshot::split_parts(bytes) {
        Some((number, _, _)) => number,
        None => match arca_format::keyring::envelope(bytes) {
            Some((number, _)) => number,
            None => return Ok(()),
        },
    };
    let Some(key) = repo.keyring().get(number) else { return Ok(()) };
    match &key.host {
        Some(host) if *host != s.hostname => Err(RepoError::corrupt(
            format!("snapshot {name}"),
            format!(
                "it names host {:?}, but a backup-only key bound to host {host:?} wrote it: not trusted",
                s.hostname
            ),
        )),
        _ => Ok(()),
    }
}

/// Which snapshots a command applies to.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filter {
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
}

impl Filter {
    /// True if `s` passes every given criterion (a snapshot must have all given tags and paths).
    /// Paths compare without trailing slashes (`/etc/` names `/etc`, as backup stores it).
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && self.tags.iter().all(|t| s.tags.contains(t))
            && self.paths.iter().all(|p| {
                let p = normal_path(p);
                s.paths.iter().any(|q| normal_path(q) == p)
            })
    }

    /// The criteria in words, for "no snapshot matches" messages; empty without any.
    pub fn describe(&self) -> String {
        let mut parts = vec![];
        parts.extend(self.hosts.iter().map(|h| format!("--host {h}")));
        parts.extend(self.tags.iter().map(|t| format!("--tag {t}")));
        parts.extend(self.paths.iter().map(|p| format!("--path {p}")));
        parts.join(" ")
    }
}

/// A path without trailing slashes (but `/` stays `/`).
fn normal_path(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() && p.starts_with('/') {
        "/"
    } else {
        t
    }
}

/// "no snapshot matches" for `spec` under `filter`.
fn not_found(spec: &str, filter: &Filter) -> RepoError {
    let f = filter.describe();
    RepoError::SnapshotNotFound(if f.is_empty() { format!("{spec:?}") } else { format!("{spec:?} with {f}") })
}

/// Resolve `latest` (the newest matching `filter`) or a unique id prefix.
pub fn resolve(all: &[SnapshotEntry], spec: &str, filter: &Filter) -> RepoResult<SnapshotEntry> {
    // `latest`, or `latest~N`: the N-th before the newest (of those passing the filter).
    let back = match spec.strip_prefix("latest") {
        Some("") => Some(0),
        Some(rest) => rest.strip_prefix('~').and_then(|n| n.parse::<usize>().ok()),
        None => None,
    };
    if let Some(back) = back {
        return all
            .iter()
            .rev()
            .filter(|e| filter.matches(&e.snapshot))
            .nth(back)
            .cloned()
            .ok_or_else(|| not_found(spec, filter));
    }
    let spec_l = spec.to_ascii_lowercase();
    if spec_l.is_empty() || !spec_l.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(RepoError::SnapshotNotFound(format!("{spec:?}")));
    }
    // A snapshot's own id comes first; an id a snapshot had before protect, tag or rewrite
    // replaced it selects it only where no snapshot has that id itself (so the old object an
    // interrupted replace left can still be named, e.g. to forget it).
    let mut m: Vec<&SnapshotEntry> = all.iter().filter(|e| e.id.to_hex().starts_with(&spec_l)).collect();
    if m.is_empty() {
        m = all.iter().filter(|e| e.snapshot.previous_ids.iter().any(|p| p.to_hex().starts_with(&spec_l))).collect();
    }
    match m.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(RepoError::SnapshotNotFound(format!("{spec:?}"))),
        many => {
            let mut ids: Vec<String> = many.iter().take(10).map(|e| e.id.to_hex()[..12].to_string()).collect();
            if many.len() > 10 {
                ids.push(format!("and {} more", many.len() - 10));
            }
            Err(RepoError::AmbiguousSnapshot { spec: spec.into(), candidates: ids.join(", ") })
        }
    }
}

/// The newest snapshot at or before `at` that passes `filter`.
pub fn resolve_at(all: &[SnapshotEntry], at: DateTime<FixedOffset>, filter: &Filter) -> RepoResult<SnapshotEntry> {
    all.iter()
        .rev()
        .find(|e| filter.matches(&e.snapshot) && e.time().is_some_and(|t| t <= at))
        .cloned()
        .ok_or_else(|| not_found(&format!("at or before {}", at.to_rfc3339()), filter))
}

/// The parent for a new backup: the newest snapshot of the same kind, host and paths.
pub fn find_parent<'a>(
    all: &'a [SnapshotEntry],
    kind: SnapshotKind,
    host: &str,
    paths: &[String],
) -> Option<&'a SnapshotEntry> {
    all.iter().rev().find(|e| e.snapshot.kind == kind && e.snapshot.hostname == host && e.snapshot.paths == paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_format::SnapshotKind;

    fn entry(id: u8, previous: &[u8]) -> SnapshotEntry {
        let mut s = Snapshot::new(SnapshotKind::Files, Id([0; 32]), vec![], "h", "u", "2026-12-04T00:00:00Z");
        s.previous_ids = previous.iter().map(|p| Id([*p; 32])).collect();
        SnapshotEntry { id: Id([id; 32]), snapshot: s }
    }

    #[test]
    fn an_own_id_wins_over_a_previous_one() {
        // 0xaa was replaced by 0xbb, but an interrupted replace left 0xaa's object too.
        let all = vec![entry(0xaa, &[]), entry(0xbb, &[0xaa])];
        let f = Filter::default();
        assert_eq!(resolve(&all, "aaaa", &f).unwrap().id, Id([0xaa; 32]), "the object itself, not its replacement");
        let replaced = vec![entry(0xbb, &[0xaa])];
        assert_eq!(resolve(&replaced, "aaaa", &f).unwrap().id, Id([0xbb; 32]), "an old id still selects");
        let two = vec![entry(0xab, &[]), entry(0xac, &[])];
        assert!(matches!(resolve(&two, "a", &f), Err(RepoError::AmbiguousSnapshot { .. })));
    }

    /// Snapshots come from the cache once read; a damaged cached copy is read again from the
    /// storage; a forgotten one leaves the cache; `check`'s listing reads the storage.
    #[test]
    fn listings_use_the_cache_and_check_reads_the_storage() {
        use arca_storage::{MemoryStorage, Storage};
        let storage: std::sync::Arc<dyn Storage> = std::sync::Arc::new(MemoryStorage::default());
        let mut repo = Repository::init(storage.clone(), b"pw", &crate::repository::tests::cheap_opts()).unwrap();
        let cache = tempfile::tempdir().unwrap();
        repo.set_cache_dir(cache.path().to_path_buf());
        let s = Snapshot::new(SnapshotKind::Files, Id([1; 32]), vec!["/a".into()], "h", "u", "2026-12-04T00:00:00Z");
        let a = save(&repo, &s).unwrap();
        let b = save(&repo, &Snapshot { hostname: "other".into(), ..s.clone() }).unwrap();
        assert_eq!(list_all(&repo).unwrap().0.len(), 2);
        let cached = cache.path().join("snapshots").join(a.to_hex());
        assert!(cached.exists(), "read once, kept");
        // The storage's copy damaged: listings use the cache, check sees the damage.
        let mut bytes = storage.get(ObjectKind::Snapshot, &a.to_hex()).unwrap();
        let n = bytes.len() - 1;
        bytes[n] ^= 1;
        storage.put(ObjectKind::Snapshot, &a.to_hex(), &bytes).unwrap();
        assert_eq!(list_all(&repo).unwrap().0.len(), 2);
        let (ok, errors) = list_all_from_storage(&repo).unwrap();
        assert_eq!((ok.len(), errors.len()), (1, 1), "the storage's copy is damaged");
        // A damaged cached copy is not used.
        std::fs::write(&cached, b"garbage").unwrap();
        let (ok, errors) = list_all(&repo).unwrap();
        assert_eq!((ok.len(), errors.len()), (1, 1), "read from the storage again");
        // Forgotten: gone from the cache too.
        storage.delete(ObjectKind::Snapshot, &a.to_hex()).unwrap();
        assert_eq!(list_all(&repo).unwrap().0.iter().map(|e| e.id).collect::<Vec<_>>(), vec![b]);
        assert!(!cached.exists());
    }
}
