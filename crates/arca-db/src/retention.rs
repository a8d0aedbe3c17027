//! Retention that understands point-in-time recovery: "recoverable to any moment of the last
//! 14 days, and daily base backups for 90" keeps the base backups the policy names, the ones
//! the window needs (every base backup that ended inside it, and the last one before it, where
//! a recovery to the window's first moment starts), and the WAL from that base backup's first
//! segment on. Older WAL goes: a base backup carries the WAL it needs to be consistent
//! (`pg_basebackup --wal-method=fetch`), so only recovery past its end needs the archive.

use crate::wal;
use arca_repo::retention::{self, GroupBy, Policy};
use arca_repo::snapshots::SnapshotEntry;
use chrono::{DateTime, FixedOffset};

/// What retention decides for one cluster.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Plan {
    pub system_identifier: String,
    /// The first moment recovery must reach (now minus the window).
    pub window_start: Option<String>,
    /// Base backups kept, with why.
    pub keep_bases: Vec<(String, Vec<String>)>,
    pub forget_bases: Vec<String>,
    /// Archived WAL files kept and forgotten (snapshot ids).
    pub keep_wal: usize,
    pub forget_wal: Vec<String>,
}

impl Plan {
    /// Every snapshot to forget.
    pub fn forget(&self) -> Vec<String> {
        self.forget_bases.iter().chain(&self.forget_wal).cloned().collect()
    }
}

fn ended(s: &SnapshotEntry) -> Option<DateTime<FixedOffset>> {
    s.snapshot.source.get("end_time").and_then(|t| DateTime::parse_from_rfc3339(t).ok()).or_else(|| s.time())
}

/// Decide for cluster `sysid`: base backups by `policy`, and (with `window`) what recovery to
/// any moment of the last `window` needs.
pub fn plan(
    all: &[SnapshotEntry],
    sysid: &str,
    policy: &Policy,
    window: Option<std::time::Duration>,
    now: DateTime<FixedOffset>,
) -> Plan {
    let mut plan = Plan { system_identifier: sysid.to_string(), ..Default::default() };
    let mut bases: Vec<&SnapshotEntry> = all
        .iter()
        .filter(|s| {
            s.snapshot.source.get("engine").map(String::as_str) == Some("postgresql-physical")
                && s.snapshot.source.get("system_identifier").map(String::as_str) == Some(sysid)
        })
        .collect();
    bases.sort_by_key(|s| ended(s));
    let owned: Vec<SnapshotEntry> = bases.iter().map(|s| (*s).clone()).collect();
    let decisions = retention::apply(&owned, policy, GroupBy { host: false, paths: false, tags: false }, now);
    let mut keep: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for d in decisions.iter().filter(|d| !d.reasons.is_empty()) {
        keep.insert(d.id.clone(), d.reasons.clone());
    }
    // The earliest base backup recovery may start from; WAL before its start is not needed.
    let mut first_needed: Option<&SnapshotEntry> = None;
    if let Some(w) = window {
        let start = now - chrono::Duration::from_std(w).unwrap_or(chrono::Duration::MAX);
        plan.window_start = Some(start.to_rfc3339());
        let before = bases.iter().rev().find(|s| ended(s).is_some_and(|e| e <= start));
        first_needed = before.copied().or(bases.first().copied());
        for s in &bases {
            let inside = ended(s).is_some_and(|e| e > start);
            if inside || before.is_some_and(|b| b.id == s.id) {
                keep.entry(s.id.to_hex()).or_default().push("point-in-time window".into());
            }
        }
    }
    for s in &bases {
        match keep.remove(&s.id.to_hex()) {
            Some(why) => plan.keep_bases.push((s.id.to_hex(), why)),
            None => plan.forget_bases.push(s.id.to_hex()),
        }
    }
    // WAL: without a window nothing is decided (the archive is left as it is).
    let Some(first) = first_needed.filter(|_| window.is_some()) else {
        return plan;
    };
    let from = first.snapshot.source.get("start_wal").and_then(|w| wal::segment_parts(w));
    let from_time = first.time();
    let path = wal::cluster_path(sysid);
    for s in all.iter().filter(|s| s.snapshot.paths == [path.clone()]) {
        let Some(name) = s.snapshot.source.get("segment") else { continue };
        let needed = if name.ends_with(".history") {
            true // tiny, and recovery needs every timeline's history
        } else {
            match (wal::segment_parts(name), from) {
                (Some((tli, log, seg)), Some((ftli, flog, fseg))) => {
                    tli > ftli || (tli == ftli && (log, seg) >= (flog, fseg))
                }
                // .backup and .partial files, or a base backup without a start segment: by time.
                _ => match (s.time(), from_time) {
                    (Some(t), Some(f)) => t >= f,
                    _ => true,
                },
            }
        };
        if needed {
            plan.keep_wal += 1;
        } else {
            plan.forget_wal.push(s.id.to_hex());
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_format::{Id, Snapshot, SnapshotKind};

    fn at(days_ago: i64) -> String {
        (chrono::Utc::now() - chrono::Duration::days(days_ago)).to_rfc3339()
    }

    fn base(n: u8, days_ago: i64, start_wal: &str) -> SnapshotEntry {
        let mut s = Snapshot::new(SnapshotKind::Database, Id([n; 32]), vec!["/pgdata".into()], "h", "u", &at(days_ago));
        s.source = [
            ("engine", "postgresql-physical"),
            ("system_identifier", "42"),
            ("start_wal", start_wal),
            ("end_time", &at(days_ago)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        SnapshotEntry { id: Id([n; 32]), snapshot: s }
    }

    fn wal(n: u8, name: &str, days_ago: i64) -> SnapshotEntry {
        let mut s = Snapshot::new(SnapshotKind::Database, Id([n; 32]), vec!["/wal/42".into()], "h", "u", &at(days_ago));
        s.source =
            [("segment".to_string(), name.to_string()), ("system_identifier".to_string(), "42".to_string())].into();
        SnapshotEntry { id: Id([n; 32]), snapshot: s }
    }

    fn seg(i: u32) -> String {
        format!("{:08X}{:08X}{:08X}", 1, 0, i)
    }

    #[test]
    fn a_window_keeps_the_base_before_it_and_the_wal_from_its_start() {
        let mut all = vec![base(1, 20, &seg(1)), base(2, 10, &seg(5)), base(3, 3, &seg(9))];
        for i in 1..=12u32 {
            all.push(wal(100 + i as u8, &seg(i), 21 - 2 * i as i64 + 1));
        }
        all.push(wal(200, "00000002.history", 19));
        let now = chrono::Local::now().fixed_offset();
        let day = std::time::Duration::from_secs(86400);

        let p = plan(&all, "42", &Policy::default(), Some(14 * day), now);
        assert_eq!(p.keep_bases.len(), 3, "the base before the window and both inside it: {p:?}");
        assert!(p.forget_wal.is_empty(), "{p:?}");

        let p = plan(&all, "42", &Policy::default(), Some(5 * day), now);
        let kept: Vec<&str> = p.keep_bases.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(kept, [Id([2; 32]).to_hex(), Id([3; 32]).to_hex()], "{p:?}");
        assert_eq!(p.forget_bases, [Id([1; 32]).to_hex()]);
        assert_eq!(p.forget_wal.len(), 4, "segments 1 to 4 come before the base the window starts from: {p:?}");
        assert_eq!(p.keep_wal, 9, "8 segments and the history file");

        // The policy keeps more base backups; their own WAL is inside them.
        let keep_all = Policy { last: 3, ..Default::default() };
        let p = plan(&all, "42", &keep_all, Some(5 * day), now);
        assert!(p.forget_bases.is_empty());
        assert_eq!(p.forget_wal.len(), 4);
        // Without a window the archive is left alone.
        let p = plan(&all, "42", &keep_all, None, now);
        assert!(p.forget_wal.is_empty() && p.keep_wal == 0);
    }
}
