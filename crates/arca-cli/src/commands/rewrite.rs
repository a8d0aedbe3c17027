//! `arca tag` and `arca rewrite`: snapshots replaced by changed copies (snapshots are
//! immutable objects named by their hash). The replaced ids keep selecting the new objects.

use crate::cli::{Cli, FilterArgs, RewriteArgs, TagArgs};
use crate::context::{self, Session};
use crate::output::Output;
use crate::text::{count, escape};
use anyhow::{bail, Result};
use arca_repo::snapshots::{self as snaps, SnapshotEntry};
use arca_repo::writer::WriterOptions;
use arca_repo::{BlobWriter, Repository};

/// The snapshots named, or all that pass the filters.
fn selected(repo: &Repository, out: &Output, specs: &[String], filter: &FilterArgs) -> Result<Vec<SnapshotEntry>> {
    let all = super::all_snapshots(repo, out)?;
    if specs.is_empty() {
        let f = filter.filter();
        return Ok(all.into_iter().filter(|e| f.matches(&e.snapshot)).collect());
    }
    let mut picked: Vec<SnapshotEntry> = vec![];
    for s in specs {
        let e = snaps::resolve(&all, s, &filter.filter())?;
        if !picked.iter().any(|p| p.id == e.id) {
            picked.push(e);
        }
    }
    Ok(picked)
}

pub fn tag(cli: &Cli, out: &Output, a: &TagArgs) -> Result<i32> {
    if a.add.is_empty() && a.remove.is_empty() && a.set.is_empty() {
        bail!("give --add, --remove or --set");
    }
    let adds_or_removes = !a.add.is_empty() || !a.remove.is_empty();
    if !a.set.is_empty() && adds_or_removes {
        bail!("--set replaces all tags: give it alone, or use --add and --remove");
    }
    if a.snapshots.is_empty() && a.filter.hosts.is_empty() && a.filter.tags.is_empty() && a.filter.paths.is_empty() {
        bail!("which snapshots? name them, or select with --host, --tag or --path");
    }
    let repo = context::open(cli, out)?;
    let mut changed = vec![];
    for e in selected(&repo, out, &a.snapshots, &a.filter)? {
        let mut s = e.snapshot.clone();
        if !a.set.is_empty() {
            s.tags = a.set.clone();
        }
        s.tags.retain(|t| !a.remove.contains(t));
        for t in &a.add {
            if !s.tags.contains(t) {
                s.tags.push(t.clone());
            }
        }
        if s.tags == e.snapshot.tags {
            continue;
        }
        let id = snaps::replace(&repo, &e, s.clone())?;
        out.info(format!(
            "snapshot {} is now {} (tags: {}; {} still selects it)",
            e.id.short(),
            id.short(),
            s.tags.join(", "),
            e.id.short()
        ));
        changed.push(serde_json::json!({"old": e.id.to_hex(), "new": id.to_hex(), "tags": s.tags}));
    }
    if out.json {
        out.json_doc(&changed);
    } else if changed.is_empty() {
        out.info("no snapshot needed a change");
    }
    Ok(crate::exit::OK)
}

pub fn rewrite(cli: &Cli, out: &Output, a: &RewriteArgs) -> Result<i32> {
    let excludes = arca_fs::Excludes::new(a.excludes.clone(), false, vec![])
        .and_then(|e| e.with_case_insensitive(a.iexcludes.clone()))
        .map_err(anyhow::Error::msg)?;
    let session = if a.dry_run { Session::Read("rewrite --dry-run") } else { Session::Write("rewrite") };
    let (repo, lock) = context::open_session(cli, out, session)?;
    let todo = selected(&repo, out, &a.snapshots, &a.filter)?;
    let writer = match &lock {
        Some(l) if !a.dry_run => Some(BlobWriter::new(repo.clone(), l, WriterOptions::default())),
        _ if a.dry_run => None,
        _ => bail!("rewrite needs a lock on the repository"),
    };
    let leave_out = |p: &std::path::Path, is_dir: bool| excludes.matches(p, is_dir);
    let mut rewriter = arca_repo::rewrite::Rewriter::new(&repo, writer.as_ref(), &leave_out);
    let mut plans = vec![];
    for e in &todo {
        let mut removed = vec![];
        if let Some(tree) = rewriter.tree(&e.snapshot.tree, &mut removed)? {
            plans.push((e.clone(), tree, removed));
        }
    }
    drop(rewriter);
    if let Some(w) = writer {
        w.finish()?;
    }
    if let Some(l) = &lock {
        let trees: Vec<_> = plans.iter().map(|p| p.1).collect();
        l.confirm_commit(&repo, &trees)?;
    }
    let mut report = vec![];
    for (e, tree, removed) in &plans {
        for r in removed {
            out.line(format!(
                "{} {}: {}",
                if a.dry_run { "would remove" } else { "removed" },
                e.id.short(),
                escape(r.as_bytes())
            ));
        }
        let new_id = if a.dry_run {
            None
        } else {
            let mut s = e.snapshot.clone();
            s.tree = *tree;
            if !s.tags.iter().any(|t| t == "rewritten") {
                s.tags.push("rewritten".into());
            }
            Some(if a.forget { snaps::replace(&repo, e, s)? } else { snaps::save(&repo, &s)? })
        };
        report.push(
            serde_json::json!({"snapshot": e.id.to_hex(), "new": new_id.map(|i| i.to_hex()), "removed": removed}),
        );
    }
    let entries: usize = plans.iter().map(|p| p.2.len()).sum();
    if out.json {
        out.json_line(&serde_json::json!({"type": "summary", "dry_run": a.dry_run, "rewritten": report}));
    } else {
        out.info(format!(
            "{}{} of {}: {} removed{}",
            if a.dry_run { "dry run: would rewrite " } else { "rewrote " },
            count(plans.len() as u64, "snapshot", "snapshots"),
            todo.len(),
            count(entries as u64, "entry", "entries"),
            match (a.dry_run, a.forget) {
                (true, _) => String::new(),
                (false, true) => "; the originals are forgotten: run `arca prune` to remove the data".into(),
                (false, false) =>
                    "; the originals stay (tag `rewritten` marks the copies): forget them, then prune".into(),
            }
        ));
    }
    Ok(crate::exit::OK)
}
