//! `arca diff` and `arca find`.

use crate::cli::{Cli, DiffArgs, FindArgs};
use crate::context;
use crate::output::Output;
use crate::text::escape;
use anyhow::{bail, Context, Result};
use arca_format::NodeKind;
use arca_repo::diff::{diff_trees, Change};
use arca_repo::treewalk::{lookup, walk, Found, Visit};

fn print(out: &Output, changes: &[Change]) {
    if out.json {
        out.json_doc(&changes);
        return;
    }
    for c in changes {
        let what = if c.what.is_empty() { String::new() } else { format!("  ({})", c.what.join(", ")) };
        out.line(format!("{}  {}{what}", c.op, escape(c.path.as_bytes())));
    }
    let count = |op| changes.iter().filter(|c| c.op == op).count();
    out.info(format!("{} added, {} removed, {} changed", count('+'), count('-'), count('M') + count('T')));
}

pub fn run(cli: &Cli, out: &Output, a: &DiffArgs) -> Result<i32> {
    let repo = context::open(cli, out)?;
    let first = super::find_snapshot(&repo, out, &a.first, &a.filter)?;
    let on_disk = a.second.contains('/') || std::path::Path::new(&a.second).exists();
    let mut changes = vec![];
    if on_disk {
        if a.path.is_some() {
            bail!("against disk, the path is the second argument itself");
        }
        let dir = std::fs::canonicalize(&a.second).with_context(|| format!("cannot read {}", a.second))?;
        let tree = match lookup(&repo, &first.snapshot.tree, dir.as_os_str().as_encoded_bytes())? {
            Some(Found::Root(t)) => Some(t),
            Some(Found::Node(n)) if n.kind == NodeKind::Dir => n.subtree,
            Some(_) => bail!("{} is not a directory in snapshot {}", dir.display(), first.id.short()),
            None => bail!("{} is not in snapshot {}", dir.display(), first.id.short()),
        };
        let patterns = first.snapshot.excludes.iter().chain(&a.excludes).cloned().collect();
        let excludes = arca_fs::Excludes::new(patterns, false, vec![]).map_err(anyhow::Error::msg)?;
        let key = repo.writing_key(first.snapshot.class.as_deref().unwrap_or_default())?;
        changes = arca_fs::livediff::diff_live(&repo, &key, tree.as_ref(), &dir, a.content, &excludes)?;
    } else {
        if a.content {
            bail!("--content compares with files on disk; between snapshots contents are always compared");
        }
        let second = super::find_snapshot(&repo, out, &a.second, &a.filter)?;
        let path = a.path.clone().unwrap_or_default();
        let sub = |root| -> Result<Option<arca_format::Id>> {
            Ok(match lookup(&repo, root, path.trim_end_matches('/').as_bytes())? {
                Some(Found::Root(t)) => Some(t),
                Some(Found::Node(n)) => n.subtree,
                None => None,
            })
        };
        let (ta, tb) = (sub(&first.snapshot.tree)?, sub(&second.snapshot.tree)?);
        diff_trees(&repo, ta.as_ref(), tb.as_ref(), path.trim_end_matches('/'), &mut changes)?;
    }
    print(out, &changes);
    Ok(crate::exit::OK)
}

pub fn find(cli: &Cli, out: &Output, a: &FindArgs) -> Result<i32> {
    let glob = globset::GlobBuilder::new(&a.pattern)
        .literal_separator(false)
        .case_insensitive(a.ignore_case)
        .build()?
        .compile_matcher();
    let whole_path = a.pattern.contains('/');
    let repo = context::open(cli, out)?;
    let filter = a.filter.filter();
    let mut snaps: Vec<_> = if a.snapshots.is_empty() {
        super::all_snapshots(&repo, out)?.into_iter().filter(|e| filter.matches(&e.snapshot)).collect()
    } else {
        a.snapshots.iter().map(|s| super::find_snapshot(&repo, out, s, &a.filter)).collect::<Result<_>>()?
    };
    match a.newest.as_deref().map(|v| (v, v.parse::<usize>())) {
        Some((_, Ok(n))) => {
            let skip = snaps.len().saturating_sub(n);
            snaps.drain(..skip);
        }
        Some((date, Err(_))) => {
            let from = super::backup::parse_time_arg(date)
                .with_context(|| format!("--newest {date:?}: a number or a date"))?;
            snaps.retain(|e| e.time().is_some_and(|t| t >= from));
        }
        None => {}
    }
    if let Some(date) = &a.oldest {
        let until = super::backup::parse_time_end(date)?;
        snaps.retain(|e| e.time().is_some_and(|t| t <= until));
    }
    let mut hits = vec![];
    for s in &snaps {
        walk(
            &repo,
            &s.snapshot.tree,
            &mut |p, n| {
                let path = format!("/{}", String::from_utf8_lossy(p));
                let subject = if whole_path { path.as_str() } else { path.rsplit('/').next().unwrap_or("") };
                if glob.is_match(subject) {
                    hits.push(serde_json::json!({
                        "snapshot": s.id.to_hex(), "time": s.snapshot.time, "path": path,
                        "type": n.kind, "size": n.size, "mtime_ns": n.mtime_ns,
                    }));
                }
                Ok(Visit::Continue)
            },
            &mut |p, e| out.warn(format!("/{}: {e}", escape(p))),
        )?;
    }
    if out.json {
        out.json_doc(&hits);
    } else {
        if !hits.is_empty() {
            out.line(format!("{:<8}  {:<19}  {:>10}  path", "snapshot", "time", "size"));
        }
        for h in &hits {
            out.line(format!(
                "{:<8}  {:<19}  {:>10}  {}",
                h["snapshot"].as_str().unwrap_or("").get(..8).unwrap_or(""),
                super::snapshots::short_time(h["time"].as_str().unwrap_or("")),
                crate::text::size(h["size"].as_u64().unwrap_or(0)),
                escape(h["path"].as_str().unwrap_or("").as_bytes())
            ));
        }
        out.info(format!(
            "{} in {}",
            crate::text::count(hits.len() as u64, "match", "matches"),
            crate::text::count(snaps.len() as u64, "snapshot", "snapshots")
        ));
    }
    Ok(crate::exit::OK)
}
