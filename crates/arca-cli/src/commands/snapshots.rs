//! `arca snapshots`: list snapshots.

use crate::cli::{Cli, SnapshotsArgs};
use crate::context;
use crate::output::Output;
use crate::text::size;
use anyhow::Result;
use arca_repo::snapshots::SnapshotEntry;
use std::collections::HashMap;

/// A snapshot as JSON for scripts.
pub fn to_json(e: &SnapshotEntry) -> serde_json::Value {
    let s = &e.snapshot;
    serde_json::json!({
        "id": e.id.to_hex(), "short_id": e.id.short(), "time": s.time, "hostname": s.hostname,
        "username": s.username, "paths": s.paths, "tags": s.tags, "parent": s.parent.map(|p| p.to_hex()),
        "tree": s.tree.to_hex(), "kind": s.kind, "summary": s.summary, "warnings": s.warnings,
        "keep_until": s.keep_until, "destroy_after": s.destroy_after, "program_version": s.program_version,
        "original": s.original.map(|o| o.to_hex()), "source": s.source,
    })
}

/// A time for a table: local "YYYY-MM-DD HH:MM:SS".
pub fn short_time(t: &str) -> String {
    arca_repo::snapshots::parse_time(t)
        .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| t.to_string())
}

pub fn run(cli: &Cli, out: &Output, a: &SnapshotsArgs) -> Result<i32> {
    let repo = context::open(cli, out)?;
    let filter = a.filter.filter();
    let mut list: Vec<SnapshotEntry> =
        super::all_snapshots(&repo, out)?.into_iter().filter(|e| filter.matches(&e.snapshot)).collect();
    if let Some(n) = a.latest {
        let mut seen: HashMap<(String, Vec<String>), usize> = HashMap::new();
        let mut keep = vec![];
        for e in list.into_iter().rev() {
            let c = seen.entry((e.snapshot.hostname.clone(), e.snapshot.paths.clone())).or_default();
            if *c < n {
                *c += 1;
                keep.push(e);
            }
        }
        keep.reverse();
        list = keep;
    }
    let groups: Vec<(String, Vec<SnapshotEntry>)> = match &a.group_by {
        Some(g) => {
            let by: arca_repo::retention::GroupBy = g.parse().map_err(|e: String| anyhow::anyhow!("--group-by {e}"))?;
            let mut m: std::collections::BTreeMap<String, Vec<SnapshotEntry>> = Default::default();
            for e in list {
                m.entry(arca_repo::retention::group_key(&e, by)).or_default().push(e);
            }
            m.into_iter().collect()
        }
        None => vec![(String::new(), list)],
    };
    if out.json {
        if a.group_by.is_none() {
            out.json_doc(&groups[0].1.iter().map(to_json).collect::<Vec<_>>());
        } else {
            let v: Vec<serde_json::Value> = groups
                .iter()
                .map(|(g, l)| serde_json::json!({"group": g, "snapshots": l.iter().map(to_json).collect::<Vec<_>>()}))
                .collect();
            out.json_doc(&v);
        }
        return Ok(crate::exit::OK);
    }
    let total: usize = groups.iter().map(|g| g.1.len()).sum();
    for (i, (group, list)) in groups.iter().enumerate() {
        if !group.is_empty() {
            if i > 0 {
                out.line("");
            }
            out.line(format!("{group}:"));
        }
        table(out, list);
    }
    out.info(crate::text::count(total as u64, "snapshot", "snapshots"));
    Ok(crate::exit::OK)
}

/// The snapshots as a table.
fn table(out: &Output, list: &[SnapshotEntry]) {
    out.line(format!("{:<8}  {:<19}  {:<16}  {:<12}  {:>10}  Paths", "ID", "Time", "Host", "Tags", "Size"));
    for e in list {
        let s = &e.snapshot;
        let mut notes = String::new();
        if let Some(u) = &s.keep_until {
            notes.push_str(&format!("  [protected until {}]", if u == "forever" { u.clone() } else { short_time(u) }));
        }
        if let Some(d) = &s.destroy_after {
            notes.push_str(&format!("  [destroy after {}]", short_time(d)));
        }
        out.line(format!(
            "{:<8}  {:<19}  {:<16}  {:<12}  {:>10}  {}{notes}",
            e.id.short(),
            short_time(&s.time),
            s.hostname,
            s.tags.join(","),
            size(s.summary.total_bytes),
            s.paths.join(" ")
        ));
    }
}
