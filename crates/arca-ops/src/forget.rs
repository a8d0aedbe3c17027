//! Forgetting snapshots (by name, by policy, or when their destruction date has come) and
//! protecting them.

use crate::readable_snapshots;
use crate::time::{TimeSpec, Until};
use crate::{OpsError, OpsResult};
use arca_repo::retention::{apply, protected_until, Decision, GroupBy, Policy};
use arca_repo::snapshots::{self as snaps, Filter, SnapshotEntry};
use arca_repo::units::Interval;
use arca_repo::{Event, Events, RepoError, Repository};
use arca_storage::ObjectKind;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Which snapshots to forget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Selection {
    /// These (ids, id prefixes, `latest`); each must pass the filter.
    Snapshots(Vec<String>),
    /// All the policy does not keep, in groups.
    Policy {
        policy: Policy,
        #[serde(default)]
        group_by: GroupBy,
        /// A snapshot whose claimed time is further than this from when an append-only server
        /// received it is kept and not counted.
        #[serde(default = "default_skew")]
        max_clock_skew: Interval,
    },
    /// Those whose `destroy_after` date has come (unless still protected).
    DueForDestruction,
}

fn default_skew() -> Interval {
    Interval(std::time::Duration::from_secs(86400))
}

/// A forget request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetRequest {
    pub selection: Selection,
    #[serde(default)]
    pub filter: Filter,
    /// Decide and report only.
    #[serde(default)]
    pub dry_run: bool,
}

/// What forget decided and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ForgetReport {
    pub dry_run: bool,
    pub decisions: Vec<Decision>,
    /// Ids (full hex) of the snapshots removed.
    pub removed: Vec<String>,
    /// Snapshots due for destruction that are still protected.
    pub overdue: Vec<String>,
    /// Classes of the removed snapshots (`backup --class`).
    #[serde(skip)]
    pub removed_classes: std::collections::BTreeSet<String>,
}

fn decision_of(e: &SnapshotEntry, reasons: Vec<String>) -> Decision {
    Decision {
        id: e.id.to_hex(),
        time: e.snapshot.time.clone(),
        hostname: e.snapshot.hostname.clone(),
        paths: e.snapshot.paths.clone(),
        tags: e.snapshot.tags.clone(),
        group: String::new(),
        reasons,
    }
}

/// Forget the selected snapshots (delete their objects; `prune` frees their data). Only
/// metadata changes, so no lock is needed: a concurrent backup's parent may go, but its data
/// stays until a prune, which waits for the backup's lock.
pub fn forget(
    repo: &Repository,
    req: &ForgetRequest,
    now: DateTime<FixedOffset>,
    events: &dyn Events,
) -> OpsResult<ForgetReport> {
    // Even its dry run: a reader key's view (a summary key's snapshots have no paths to group
    // by) would plan wrongly, and it may not remove what the plan says anyway.
    repo.require_writer("forget snapshots")?;
    let all = readable_snapshots(repo, events)?;
    let filter = &req.filter;
    let mut report = ForgetReport { dry_run: req.dry_run, ..Default::default() };
    report.decisions = match &req.selection {
        Selection::Snapshots(specs) => {
            let mut d = vec![];
            for spec in specs {
                let e = snaps::resolve(&all, spec, filter)?;
                if let Some(p) = protected_until(&e, now) {
                    return Err(OpsError::Protected {
                        snapshot: e.id.short(),
                        why: format!("{p}; it cannot be forgotten before then"),
                    });
                }
                d.push(decision_of(&e, vec![]));
            }
            d
        }
        Selection::DueForDestruction => {
            let mut d = vec![];
            for e in all.iter().filter(|e| filter.matches(&e.snapshot)) {
                let Some(by) = e.snapshot.destroy_after.as_deref() else { continue };
                let due = DateTime::parse_from_rfc3339(by).map(|t| t <= now).unwrap_or(false);
                if !due {
                    d.push(decision_of(e, vec![format!("destroy after {by} (not yet due)")]));
                } else if let Some(p) = protected_until(e, now) {
                    report.overdue.push(format!("{} was due for destruction on {by} but is {p}", e.id.short()));
                    d.push(decision_of(e, vec![p]));
                } else {
                    d.push(decision_of(e, vec![]));
                }
            }
            d
        }
        Selection::Policy { policy, group_by, max_clock_skew } => {
            if policy.is_empty() {
                return Err(OpsError::NothingToDo(
                    "no policy given: add --keep-last/--keep-daily/... (or name snapshots to remove)".into(),
                ));
            }
            // Archived WAL files are snapshots, but a policy of days and weeks would thin out a
            // point-in-time archive into gaps: `arca db forget --pitr` decides for them.
            let managed: Vec<SnapshotEntry> = all
                .iter()
                .filter(|e| e.snapshot.source.get("engine").map(String::as_str) != Some("postgresql-wal"))
                .cloned()
                .collect();
            by_policy(repo, &managed, filter, policy, *group_by, max_clock_skew.0, now, events)?
        }
    };
    if !req.dry_run {
        let gone: Vec<arca_format::Id> =
            report.decisions.iter().filter(|d| !d.keep()).filter_map(|d| arca_format::Id::from_hex(&d.id)).collect();
        // One signed statement for the whole run, then the deletions (arca_repo::snapshots::delete).
        arca_repo::snapshots::delete(repo, &gone)?;
        let classes: HashMap<arca_format::Id, &String> =
            all.iter().filter_map(|e| Some((e.id, e.snapshot.class.as_ref()?))).collect();
        report.removed_classes = gone.iter().filter_map(|id| classes.get(id).map(|c| (*c).clone())).collect();
        for id in gone {
            // The server's receipt goes with it (an append-only server keeps its own).
            let _ = repo.storage().delete(ObjectKind::Received, &id.to_hex());
            report.removed.push(id.to_hex());
        }
    }
    Ok(report)
}

/// After `forget --enforce-destroy`: crypto-shred each class whose snapshots were removed and
/// of which no snapshot is left, so data due for destruction is unreadable at once (and in
/// every copy of the storage taken from now on), not only once a prune deletes its packs.
/// Needs an exclusive session. Returns the classes destroyed.
pub fn shred_emptied_classes(
    repo: &Repository,
    lock: &arca_repo::lock::SessionLock,
    report: &ForgetReport,
) -> OpsResult<Vec<String>> {
    if report.removed_classes.is_empty() {
        return Ok(vec![]);
    }
    let (left, errors) = snaps::list_all(repo)?;
    if let Some(e) = errors.into_iter().next() {
        return Err(RepoError::UnreadableSnapshot {
            detail: e.to_string(),
            consequence: "it may belong to a class due for destruction; no class was destroyed",
        }
        .into());
    }
    let mut done = vec![];
    for class in &report.removed_classes {
        if left.iter().any(|e| e.snapshot.class.as_ref() == Some(class)) {
            continue;
        }
        if repo.keyring().of_class(class).is_empty() {
            continue;
        }
        arca_repo::shred::destroy_class(repo, Some(lock), class)?;
        done.push(class.clone());
    }
    Ok(done)
}

/// Apply `policy`. Snapshots whose claimed time is far from when an append-only server
/// received them are kept and left out of the count: a client with a wrong clock (or a
/// hostile one) must not push genuine snapshots out.
#[allow(clippy::too_many_arguments)]
fn by_policy(
    repo: &Repository,
    all: &[SnapshotEntry],
    filter: &Filter,
    policy: &Policy,
    by: GroupBy,
    skew: std::time::Duration,
    now: DateTime<FixedOffset>,
    events: &dyn Events,
) -> OpsResult<Vec<Decision>> {
    let received = received_times(repo)?;
    let mut suspicious = vec![];
    let mut counted = vec![];
    for e in all.iter().filter(|e| filter.matches(&e.snapshot)) {
        let got = received.get(&e.id.to_hex()).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        match (got, e.time()) {
            (Some(got), Some(claimed)) if (claimed - got).abs().to_std().unwrap_or_default() > skew => {
                let why = format!(
                    "suspicious: claims {}, but the append-only server received it {}",
                    claimed.to_rfc3339(),
                    got.to_rfc3339()
                );
                let note = format!("snapshot {} is {why}; kept and not counted by the policy", e.id.short());
                events.emit(Event::Caution(&note));
                suspicious.push(decision_of(e, vec![why]));
            }
            _ => counted.push(e.clone()),
        }
    }
    let mut d = apply(&counted, policy, by, now);
    d.extend(suspicious);
    Ok(d)
}

/// `received/<snapshot id>` records of append-only servers: snapshot id → RFC 3339 time.
fn received_times(repo: &Repository) -> OpsResult<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (name, size) in repo.storage().list(ObjectKind::Received)? {
        if size > 64 {
            continue;
        }
        if let Ok(b) = repo.storage().get(ObjectKind::Received, &name) {
            out.insert(name, String::from_utf8_lossy(&b).trim().to_string());
        }
    }
    Ok(out)
}

/// A protect request: extend protection and/or set a destruction date.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectRequest {
    pub snapshots: Vec<String>,
    #[serde(default)]
    pub filter: Filter,
    /// Keep until then (or forever); protection can be extended, never shortened.
    pub until: Option<Until>,
    /// Let `forget --enforce-destroy` remove it after then.
    pub destroy_after: Option<TimeSpec>,
}

impl ProtectRequest {
    /// Refuse a request that changes nothing (before any repository is opened).
    pub fn validate(&self) -> OpsResult<()> {
        if self.until.is_none() && self.destroy_after.is_none() {
            return Err(OpsError::NothingToDo("give --until DATE|forever and/or --destroy-after DATE".into()));
        }
        Ok(())
    }
}

/// One snapshot protect replaced.
#[derive(Clone, Debug, Serialize)]
pub struct Protected {
    pub old: String,
    pub new: String,
    pub keep_until: Option<String>,
    pub destroy_after: Option<String>,
}

/// Protect snapshots. The snapshot object is replaced (new, then the old deleted), which
/// needs a key that may delete.
pub fn protect(repo: &Repository, req: &ProtectRequest, events: &dyn Events) -> OpsResult<Vec<Protected>> {
    req.validate()?;
    if !repo.storage().capabilities().delete {
        // Through a key that may not delete, the replacement would leave a protected
        // duplicate beside the original.
        return Err(RepoError::DeleteNotAllowed { action: "protect (it replaces the snapshot object)" }.into());
    }
    let until = req.until.as_ref().map(Until::stored);
    let destroy = req.destroy_after.as_ref().map(|t| t.start().to_rfc3339());
    let all = readable_snapshots(repo, events)?;
    let mut changed = vec![];
    for spec in &req.snapshots {
        let e = snaps::resolve(&all, spec, &req.filter)?;
        let mut s = e.snapshot.clone();
        if let Some(u) = &until {
            if let Some(now) = &e.snapshot.keep_until {
                let later = |a: &str, b: &str| match (a, b) {
                    (_, "forever") => false,
                    ("forever", _) => true,
                    (a, b) => matches!((snaps::parse_time(a), snaps::parse_time(b)), (Some(x), Some(y)) if x > y),
                };
                if later(now, u) {
                    return Err(OpsError::Protected {
                        snapshot: e.id.short(),
                        why: format!("protected until {now}; protection can be extended, not shortened (to {u})"),
                    });
                }
            }
            s.keep_until = Some(u.clone());
        }
        if let Some(d) = &destroy {
            s.destroy_after = Some(d.clone());
        }
        let new_id = snaps::replace(repo, &e, s.clone())?;
        // Told at once: if a later snapshot fails, the user knows which ids already changed.
        let what = [
            s.keep_until.as_ref().map(|u| format!("protected until {u}")),
            s.destroy_after.as_ref().map(|d| format!("destroy after {d}")),
        ];
        let what: Vec<String> = what.into_iter().flatten().collect();
        events.emit(Event::Notice(&format!(
            "snapshot {} is now {} ({})",
            e.id.short(),
            new_id.short(),
            what.join(", ")
        )));
        changed.push(Protected {
            old: e.id.to_hex(),
            new: new_id.to_hex(),
            keep_until: s.keep_until,
            destroy_after: s.destroy_after,
        });
    }
    Ok(changed)
}
