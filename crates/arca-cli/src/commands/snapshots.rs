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
        "original": s.original.map(|o| o.to_hex()),
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
    if out.json {
        out.json_doc(&list.iter().map(to_json).collect::<Vec<_>>());
        return Ok(crate::exit::OK);
    }
    out.line(format!("{:<8}  {:<19}  {:<16}  {:<12}  {:>10}  Paths", "ID", "Time", "Host", "Tags", "Size"));
    for e in &list {
        let s = &e.snapshot;
        let mut notes = String::new();
        if let Some(u) = &s.keep_until {
            notes.push_str(&format!("  [protected until {u}]"));
        }
        if let Some(d) = &s.destroy_after {
            notes.push_str(&format!("  [destroy after {d}]"));
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
    out.info(crate::text::count(list.len() as u64, "snapshot", "snapshots"));
    Ok(crate::exit::OK)
}
