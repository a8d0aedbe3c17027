//! `arca snapshots`: list snapshots.

use crate::cli::{Cli, SnapshotsArgs};
use crate::context;
use crate::output::Output;
use crate::text::size;
use anyhow::Result;
use arca_repo::history::SignedBy;
use arca_repo::snapshots::SnapshotEntry;
use std::collections::HashMap;

/// Who signed each snapshot (with `--signers`).
type Signers = Option<HashMap<arca_format::Id, SignedBy>>;

/// A snapshot as JSON for scripts.
pub fn to_json(e: &SnapshotEntry) -> serde_json::Value {
    let s = &e.snapshot;
    serde_json::json!({
        "id": e.id.to_hex(), "short_id": e.id.short(), "time": s.time, "hostname": s.hostname,
        "username": s.username, "paths": s.paths, "tags": s.tags, "parent": s.parent.map(|p| p.to_hex()),
        "tree": s.tree.to_hex(), "kind": s.kind, "summary": s.summary, "warnings": s.warnings,
        "keep_until": s.keep_until, "destroy_after": s.destroy_after, "program_version": s.program_version,
        "original": s.original.map(|o| o.to_hex()), "source": s.source, "class": s.class,
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
    let all = super::all_snapshots(&repo, out)?;
    let signers: Signers = if a.signers {
        let present = all.iter().map(|e| e.id).collect();
        let audit = arca_repo::history::audit(&repo, &present, arca_repo::history::Source::Cached)?;
        if !audit.problems.is_empty() {
            out.warn(format!("the signed history has {} problems (`arca check` lists them)", audit.problems.len()));
        }
        Some(audit.signed)
    } else {
        None
    };
    let mut list: Vec<SnapshotEntry> = all.into_iter().filter(|e| filter.matches(&e.snapshot)).collect();
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
        let row = |e: &SnapshotEntry| {
            let mut v = to_json(e);
            if let (Some(m), Some(o)) = (&signers, v.as_object_mut()) {
                o.insert("signed_by".into(), serde_json::to_value(m.get(&e.id)).unwrap_or_default());
            }
            v
        };
        if a.group_by.is_none() {
            out.json_doc(&groups[0].1.iter().map(row).collect::<Vec<_>>());
        } else {
            let v: Vec<serde_json::Value> = groups
                .iter()
                .map(|(g, l)| serde_json::json!({"group": g, "snapshots": l.iter().map(row).collect::<Vec<_>>()}))
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
        table(out, list, &signers);
    }
    out.info(crate::text::count(total as u64, "snapshot", "snapshots"));
    Ok(crate::exit::OK)
}

/// The snapshots as a table.
fn table(out: &Output, list: &[SnapshotEntry], signers: &Signers) {
    let signed_head = if signers.is_some() { format!("{:<34}  ", "Signed by") } else { String::new() };
    out.line(format!(
        "{:<8}  {:<19}  {:<16}  {:<12}  {:>10}  {signed_head}Paths",
        "ID", "Time", "Host", "Tags", "Size"
    ));
    for e in list {
        let signed = match signers {
            Some(m) => {
                let by = m.get(&e.id).map_or_else(
                    || "unsigned".to_string(),
                    |b| format!("{}@{} {}", b.username, b.hostname, b.fingerprint),
                );
                format!("{by:<34}  ")
            }
            None => String::new(),
        };
        let s = &e.snapshot;
        let mut notes = String::new();
        if let Some(c) = &s.class {
            notes.push_str(&format!("  [class {c}]"));
        }
        if let Some(u) = &s.keep_until {
            notes.push_str(&format!("  [protected until {}]", if u == "forever" { u.clone() } else { short_time(u) }));
        }
        if let Some(d) = &s.destroy_after {
            notes.push_str(&format!("  [destroy after {}]", short_time(d)));
        }
        out.line(format!(
            "{:<8}  {:<19}  {:<16}  {:<12}  {:>10}  {signed}{}{notes}",
            e.id.short(),
            short_time(&s.time),
            s.hostname,
            s.tags.join(","),
            size(s.summary.total_bytes),
            s.paths.join(" ")
        ));
    }
}
