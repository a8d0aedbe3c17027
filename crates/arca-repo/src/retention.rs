//! Retention policies: which snapshots `forget` keeps, and why — with restic's semantics.
//!
//! Snapshots are grouped (by host and paths by default). Within a group, from newest to
//! oldest, `keep_daily = N` keeps the newest snapshot of each of the N most recent calendar
//! days that have snapshots (likewise hours, ISO weeks, months, years, in local time); a
//! snapshot kept by any rule is kept. Protected snapshots (`keep_until` in the future) are
//! always kept.

use crate::snapshots::SnapshotEntry;
use chrono::{DateTime, Datelike, FixedOffset, Local, Months, TimeZone, Timelike};
use serde::Serialize;
use std::collections::BTreeMap;

/// A span for `--keep-within`: calendar years, months, days and hours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl Span {
    /// Parse "2y3m", "14d", "1y6m2d12h".
    pub fn parse(s: &str) -> Result<Span, String> {
        let mut span = Span::default();
        let mut num = String::new();
        let mut any = false;
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            if num.is_empty() {
                return Err(format!("{s:?}: a number must come before {c:?} (e.g. 2y3m, 14d, 12h)"));
            }
            let n: u32 = num.parse().map_err(|_| format!("{s:?}: {num} is too large"))?;
            num.clear();
            let field = match c {
                'y' => &mut span.years,
                'm' => &mut span.months,
                'd' => &mut span.days,
                'h' => &mut span.hours,
                _ => return Err(format!("{s:?}: unknown unit {c:?}; use y, m, d, h")),
            };
            *field = field.checked_add(n).ok_or_else(|| format!("{s:?}: too large"))?;
            any = true;
        }
        if !num.is_empty() || !any {
            return Err(format!("{s:?}: give units, e.g. 2y3m, 14d, 12h"));
        }
        if span == Span::default() {
            // A zero span keeps nothing, not even the newest snapshot: never what was meant.
            return Err(format!("{s:?}: a span must be longer than zero (it would keep no snapshot at all)"));
        }
        Ok(span)
    }

    /// `t` minus this span (calendar arithmetic; clamps at month ends), or `None` if that lies
    /// before any time that can be represented: then the span covers everything.
    pub fn before(&self, t: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
        let months = self.years.checked_mul(12)?.checked_add(self.months)?;
        let t = t.checked_sub_months(Months::new(months))?;
        let t = t.checked_sub_signed(chrono::TimeDelta::try_days(self.days as i64)?)?;
        t.checked_sub_signed(chrono::TimeDelta::try_hours(self.hours as i64)?)
    }
}

/// The rules of one policy.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    pub last: usize,
    pub hourly: usize,
    pub daily: usize,
    pub weekly: usize,
    pub monthly: usize,
    pub yearly: usize,
    pub within: Option<Span>,
    pub tags: Vec<String>,
}

impl Policy {
    /// True if no rule is set (forget would remove everything).
    pub fn is_empty(&self) -> bool {
        self.last + self.hourly + self.daily + self.weekly + self.monthly + self.yearly == 0
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// What grouping keys to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy { host: true, paths: true, tags: false }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = String;

    /// `host,paths,tags` or any subset of them (singular forms too); empty groups nothing.
    fn from_str(s: &str) -> Result<GroupBy, String> {
        let mut g = GroupBy { host: false, paths: false, tags: false };
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w {
                "host" | "hosts" => g.host = true,
                "path" | "paths" => g.paths = true,
                "tag" | "tags" => g.tags = true,
                other => return Err(format!("{other:?}: group by host, paths or tags (comma-separated)")),
            }
        }
        Ok(g)
    }
}

/// The verdict on one snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub id: String,
    pub time: String,
    pub hostname: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub group: String,
    /// Why it is kept ("daily #3", "protected until …"); empty means remove.
    pub reasons: Vec<String>,
}

impl Decision {
    /// True if the snapshot stays.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// True if `keep_until` protects the snapshot at time `now`.
pub fn protected_until(e: &SnapshotEntry, now: DateTime<FixedOffset>) -> Option<String> {
    let until = e.snapshot.keep_until.as_ref()?;
    if until == "forever" {
        return Some("protected forever".into());
    }
    match DateTime::parse_from_rfc3339(until) {
        Ok(t) if t > now => Some(format!("protected until {}", t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"))),
        Ok(_) => None,
        // Unreadable dates protect: never remove by accident.
        Err(_) => Some(format!("protected (unreadable date {until:?})")),
    }
}

/// The group a snapshot belongs to, in words ("host web01, paths /etc").
pub fn group_key(e: &SnapshotEntry, by: GroupBy) -> String {
    let mut parts = vec![];
    if by.host {
        parts.push(format!("host {}", e.snapshot.hostname));
    }
    if by.paths {
        parts.push(format!("paths {}", e.snapshot.paths.join(",")));
    }
    if by.tags {
        let mut t = e.snapshot.tags.clone();
        t.sort();
        parts.push(format!("tags {}", t.join(",")));
    }
    parts.join(", ")
}

/// Apply `policy` to `snaps` (any order). Returns one decision per snapshot, newest first
/// within each group.
pub fn apply(snaps: &[SnapshotEntry], policy: &Policy, by: GroupBy, now: DateTime<FixedOffset>) -> Vec<Decision> {
    let mut groups: BTreeMap<String, Vec<&SnapshotEntry>> = BTreeMap::new();
    for e in snaps {
        groups.entry(group_key(e, by)).or_default().push(e);
    }
    let mut out = vec![];
    for (key, mut list) in groups {
        list.sort_by(|a, b| b.time().cmp(&a.time()).then(b.id.cmp(&a.id)));
        let newest = list.first().and_then(|e| e.time());
        type Bucket = fn(&DateTime<Local>) -> i64;
        let rules: [(&str, usize, Bucket); 5] = [
            ("hourly", policy.hourly, |t| (t.year() as i64 * 400 + t.ordinal() as i64) * 24 + t.hour() as i64),
            ("daily", policy.daily, |t| t.year() as i64 * 400 + t.ordinal() as i64),
            ("weekly", policy.weekly, |t| {
                let w = t.iso_week();
                w.year() as i64 * 100 + w.week() as i64
            }),
            ("monthly", policy.monthly, |t| t.year() as i64 * 100 + t.month() as i64),
            ("yearly", policy.yearly, |t| t.year() as i64),
        ];
        let mut left: Vec<usize> = rules.iter().map(|r| r.1).collect();
        let mut last: Vec<Option<i64>> = vec![None; rules.len()];
        for (i, e) in list.iter().enumerate() {
            let mut reasons = vec![];
            if let Some(p) = protected_until(e, now) {
                reasons.push(p);
            }
            if i < policy.last {
                reasons.push(format!("last #{}", i + 1));
            }
            if let Some(t) = e.time() {
                let local = Local.from_utc_datetime(&t.naive_utc());
                for (r, (name, _, bucket)) in rules.iter().enumerate() {
                    let b = bucket(&local);
                    if left[r] > 0 && last[r] != Some(b) {
                        last[r] = Some(b);
                        left[r] -= 1;
                        reasons.push(format!("{name} #{}", rules[r].1 - left[r]));
                    }
                }
                if let (Some(span), Some(newest)) = (policy.within, newest) {
                    // The newest snapshot is always within a non-zero span; a span reaching
                    // back past the representable times covers every snapshot.
                    if span.before(newest).is_none_or(|start| t > start) {
                        reasons.push("within".into());
                    }
                }
            }
            for tag in &policy.tags {
                if e.snapshot.tags.contains(tag) {
                    reasons.push(format!("tag {tag}"));
                }
            }
            out.push(Decision {
                id: e.id.to_hex(),
                time: e.snapshot.time.clone(),
                hostname: e.snapshot.hostname.clone(),
                paths: e.snapshot.paths.clone(),
                tags: e.snapshot.tags.clone(),
                group: key.clone(),
                reasons,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(Span::parse("2y3m").unwrap(), Span { years: 2, months: 3, days: 0, hours: 0 });
        assert_eq!(Span::parse("1d12h").unwrap(), Span { years: 0, months: 0, days: 1, hours: 12 });
        assert!(Span::parse("3").is_err());
        assert!(Span::parse("3w").is_err());
        assert!(Span::parse("").is_err());
        let t = DateTime::parse_from_rfc3339("2026-03-31T10:00:00+00:00").unwrap();
        assert_eq!(Span::parse("1m").unwrap().before(t).unwrap().to_rfc3339(), "2026-02-28T10:00:00+00:00");
    }

    /// Issue 17 #3: `--keep-within 0d` removed every snapshot, huge spans removed every
    /// snapshot (overflow fell back to "keep nothing"), and `3000000000d` panicked.
    #[test]
    fn zero_spans_are_refused_and_huge_spans_keep_everything() {
        for zero in ["0d", "0h", "0y0m", "00d"] {
            assert!(Span::parse(zero).unwrap_err().contains("longer than zero"), "{zero}");
        }
        assert!(Span::parse("99999999999d").is_err(), "a number past u32 is an error, not a panic");
        assert!(Span::parse("4294967295d4294967295d").is_err());
        let t = DateTime::parse_from_rfc3339("2026-03-31T10:00:00+00:00").unwrap();
        for huge in ["300000y", "3000000000d", "4294967295h", "4294967295y4294967295m"] {
            assert_eq!(Span::parse(huge).unwrap().before(t), None, "{huge} covers every time");
        }
        let snap = |id: u8, time: &str| crate::snapshots::SnapshotEntry {
            id: arca_format::Id([id; 32]),
            snapshot: arca_format::Snapshot::new(
                arca_format::SnapshotKind::Files,
                arca_format::Id([0; 32]),
                vec!["/p".into()],
                "h",
                "u",
                time,
            ),
        };
        let snaps = vec![snap(1, "2026-03-31T10:00:00+00:00"), snap(2, "1970-01-01T00:00:00+00:00")];
        for span in ["300000y", "3000000000d", "1h"] {
            let policy = Policy { within: Some(Span::parse(span).unwrap()), ..Default::default() };
            let d = apply(&snaps, &policy, GroupBy::default(), t);
            assert!(d[0].keep(), "{span}: the newest snapshot is kept");
            assert_eq!(d[1].keep(), span != "1h", "{span}: the old one");
        }
    }
}
