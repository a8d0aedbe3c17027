//! `arca forget` and `arca protect`.

use crate::cli::{Cli, ForgetArgs, ProtectArgs};
use crate::context;
use crate::output::Output;
use crate::progress::Reporter;
use anyhow::{anyhow, bail, Result};
use arca_ops::forget::{forget, ForgetRequest, ProtectRequest, Selection};
use arca_repo::retention::Policy;
use chrono::Local;

pub fn run(cli: &Cli, out: &Output, a: &ForgetArgs) -> Result<i32> {
    let selection = if !a.snapshots.is_empty() {
        Selection::Snapshots(a.snapshots.clone())
    } else if a.enforce_destroy {
        Selection::DueForDestruction
    } else {
        Selection::Policy {
            policy: Policy {
                last: a.keep_last,
                hourly: a.keep_hourly,
                daily: a.keep_daily,
                weekly: a.keep_weekly,
                monthly: a.keep_monthly,
                yearly: a.keep_yearly,
                within: a
                    .keep_within
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(|e| anyhow!("--keep-within {e}"))?,
                tags: a.keep_tags.clone(),
            },
            group_by: a.group_by.parse().map_err(|e: String| anyhow!("--group-by {e}"))?,
            max_clock_skew: a.max_clock_skew.parse().map_err(|e| anyhow!("--max-clock-skew {e}"))?,
        }
    };
    let req = ForgetRequest { selection, filter: a.filter.filter(), dry_run: a.dry_run };
    let prune_req = if a.prune { Some(super::prune::request(cli, &a.tuning)?) } else { None };
    // --enforce-destroy shreds the classes it empties, which needs an exclusive session.
    let session = match (a.dry_run, a.prune, a.enforce_destroy) {
        (false, true, _) => context::Session::Exclusive("forget --prune"),
        (false, false, true) => context::Session::Exclusive("forget --enforce-destroy"),
        _ => context::Session::Metadata,
    };
    let (repo, lock) = context::open_session(cli, out, session)?;
    let r = forget(&repo, &req, Local::now().fixed_offset(), &Reporter::new(out, "forget"))?;
    let shredded = match (&lock, a.enforce_destroy) {
        (Some(lock), true) => arca_ops::forget::shred_emptied_classes(&repo, lock, &r)?,
        _ => vec![],
    };
    for c in &shredded {
        out.info(format!("class {c:?} destroyed: its last snapshots were due for destruction, its keys are deleted"));
    }
    if out.json {
        out.json_line(&serde_json::json!({"type": "summary", "dry_run": r.dry_run, "decisions": r.decisions, "removed": r.removed, "overdue": r.overdue, "classes_destroyed": shredded}));
    } else {
        let mut group = None;
        for d in &r.decisions {
            if group.as_ref() != Some(&d.group) && !d.group.is_empty() {
                out.line(format!("{}:", d.group));
                group = Some(d.group.clone());
            }
            let verdict = if d.keep() { format!("keep ({})", d.reasons.join(", ")) } else { "remove".to_string() };
            out.line(format!("  {}  {:<19}  {verdict}", &d.id[..8], super::snapshots::short_time(&d.time)));
        }
        for o in &r.overdue {
            out.warn(format!("overdue: {o}"));
        }
        let n = r.decisions.iter().filter(|d| !d.keep()).count();
        out.info(if a.dry_run {
            format!("dry run: {} would be removed", crate::text::count(n as u64, "snapshot", "snapshots"))
        } else {
            format!("{} removed", crate::text::count(n as u64, "snapshot", "snapshots"))
        });
    }
    if let Some(req) = prune_req {
        if a.dry_run {
            out.info("a dry run of forget does not plan the prune: the snapshots it would remove are still there");
        } else if let Some(lock) = &lock {
            super::prune::execute(out, &repo, arca_ops::Target::Locked(lock), &req)?;
        }
    }
    Ok(crate::exit::OK)
}

pub fn protect(cli: &Cli, out: &Output, a: &ProtectArgs) -> Result<i32> {
    if a.destroy_after.as_deref() == Some("forever") {
        bail!("--destroy-after needs a date");
    }
    let req = ProtectRequest {
        snapshots: a.snapshots.clone(),
        filter: a.filter.filter(),
        until: a.until.as_deref().map(str::parse).transpose().map_err(|e| anyhow!("--until: {e}"))?,
        destroy_after: a.destroy_after.as_deref().map(super::backup::parse_time).transpose()?,
    };
    req.validate()?;
    let repo = context::open(cli, out)?;
    let changed = arca_ops::forget::protect(&repo, &req, &Reporter::new(out, "protect"))?;
    if out.json {
        out.json_doc(&changed);
    }
    Ok(crate::exit::OK)
}
