//! `arca tag` and `arca rewrite`: snapshots replaced by changed copies (snapshots are
//! immutable objects named by their hash). The replaced ids keep selecting the new objects.

use crate::cli::{Cli, RewriteArgs, TagArgs};
use crate::context::{self, Session};
use crate::output::Output;
use crate::progress::Reporter;
use crate::text::{count, escape};
use anyhow::{bail, Result};
use arca_ops::rewrite::{RewriteRequest, TagRequest};
use arca_ops::Target;

pub fn tag(cli: &Cli, out: &Output, a: &TagArgs) -> Result<i32> {
    let req = TagRequest {
        snapshots: a.snapshots.clone(),
        filter: a.filter.filter(),
        add: a.add.clone(),
        remove: a.remove.clone(),
        set: a.set.clone(),
    };
    req.validate()?;
    let repo = context::open(cli, out)?;
    let changed = arca_ops::rewrite::tag(&repo, &req, &Reporter::new(out, "tag"))?;
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
    let target = match (&lock, a.dry_run) {
        (_, true) => Target::DryRun,
        (Some(l), false) => Target::Locked(l),
        (None, false) => bail!("rewrite needs a lock on the repository"),
    };
    let leave_out = |p: &std::path::Path, is_dir: bool| excludes.matches(p, is_dir);
    let req = RewriteRequest {
        snapshots: a.snapshots.clone(),
        filter: a.filter.filter(),
        leave_out: &leave_out,
        forget: a.forget,
    };
    let (selected, rewritten) = arca_ops::rewrite::rewrite(&repo, target, &req, &Reporter::new(out, "rewrite"))?;
    if out.json {
        out.json_line(&serde_json::json!({"type": "summary", "dry_run": a.dry_run, "rewritten": rewritten}));
        return Ok(crate::exit::OK);
    }
    for r in &rewritten {
        for p in &r.removed {
            let verb = if a.dry_run { "would remove" } else { "removed" };
            out.line(format!("{verb} {}: {}", &r.snapshot[..8], escape(p.as_bytes())));
        }
    }
    let entries: usize = rewritten.iter().map(|r| r.removed.len()).sum();
    out.info(format!(
        "{}{} of {}: {} removed{}",
        if a.dry_run { "dry run: would rewrite " } else { "rewrote " },
        count(rewritten.len() as u64, "snapshot", "snapshots"),
        selected,
        count(entries as u64, "entry", "entries"),
        match (a.dry_run, a.forget) {
            (true, _) => String::new(),
            (false, true) => "; the originals are forgotten: run `arca prune` to remove the data".into(),
            (false, false) => "; the originals stay (tag `rewritten` marks the copies): forget them, then prune".into(),
        }
    ));
    Ok(crate::exit::OK)
}
